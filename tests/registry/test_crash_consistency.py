"""Crash consistency: a real process that trains, registers and promotes is SIGKILLed at each
failpoint (and while fitting); the registry it leaves behind must be consistent, and the next
run must complete.

Every scenario gets its own registry; the scenarios of one backend run side by side. The
processes come from a multiprocessing fork server that has already imported the library, so a
scenario does not spend ~3 s of CPU importing the scientific stack: each is still a separate
OS process with its own database connections, killed with SIGKILL, and the failpoints are
armed through its environment (``RETRAIN_FAILPOINT``, ``RETRAIN_FAILPOINT_FILE``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pg import BACKENDS, backend_urls, process_context
from retrain.config import load_config
from retrain.demo import write_workspace
from retrain.registry import Registry
from retrain.training import load_training_data, train_candidate
from retrain.workspace import Workspace

pytestmark = pytest.mark.slow

MODEL = "random_forest"
SMALL = '{"n_estimators": 10, "min_samples_leaf": 10}'
# Big enough that fitting takes seconds, so a kill shortly after it starts lands inside it.
BIG = '{"n_estimators": 5000, "min_samples_leaf": 1}'


def run_pipeline(config: str, env: dict[str, str]) -> None:
    """The child: one normal run (train, register, promote) under ``env``."""
    for key in [k for k in os.environ if k.startswith("RETRAIN_")]:
        del os.environ[key]
    os.environ.update(env)
    ws = Workspace.open(config)
    data = load_training_data(ws)
    marker = os.environ.get("CRASH_TEST_TRAINING_MARKER")
    if marker:
        Path(marker).write_text("training")
    version = train_candidate(ws, MODEL, data, reason="crash test")
    ws.registry.promote(version.version_id, reason="crash test", actor="crash-test")


# kill point -> does the kill come before the new version's registration commits?
SCENARIOS = {
    "artifact:before-replace": True,
    "register:after-artifact": True,
    "register:before-commit": True,
    "promote:after-archive": False,
    "promote:before-commit": False,
    "training": True,
}


@dataclass
class Scenario:
    name: str
    url: str
    artifacts: Path
    marker: Path
    process: multiprocessing.process.BaseProcess | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"RETRAIN_REGISTRY__URL": self.url,
                "RETRAIN_REGISTRY__ARTIFACTS": str(self.artifacts),
                "RETRAIN_MODELS__RANDOM_FOREST__PARAMS": SMALL}

    def workspace(self, config: Path) -> Workspace:
        return Workspace.open(load_config(config, env=self.env))


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory) -> Path:
    return write_workspace(tmp_path_factory.mktemp("crash") / "ws", months=3, rows_per_month=600)


@pytest.fixture(scope="module")
def training_data(demo_config):
    ws = Workspace.open(load_config(demo_config, env={}))
    try:
        return load_training_data(ws)
    finally:
        ws.registry.dispose()


def _start(scenario: Scenario, config: Path) -> None:
    env = dict(scenario.env)
    if scenario.name == "training":
        env["CRASH_TEST_TRAINING_MARKER"] = str(scenario.marker)
        env["RETRAIN_MODELS__RANDOM_FOREST__PARAMS"] = BIG
    else:
        env["RETRAIN_FAILPOINT"] = scenario.name
        env["RETRAIN_FAILPOINT_FILE"] = str(scenario.marker)
    scenario.process = process_context().Process(target=run_pipeline, args=(str(config), env),
                                                 name=f"crash-{scenario.name}")
    scenario.process.start()


def _reached(scenario: Scenario) -> bool:
    return scenario.marker.exists() and scenario.marker.read_text() != ""


def _kill(scenario: Scenario) -> None:
    proc = scenario.process
    if scenario.name == "training":
        time.sleep(0.3)  # well inside a fit that takes many seconds
    else:
        assert scenario.marker.read_text() == scenario.name
    assert proc.is_alive(), f"{scenario.name}: the process went past its kill point"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    assert proc.exitcode == -signal.SIGKILL


def _kill_each_at_its_point(scenarios: list[Scenario], timeout: float = 120.0) -> None:
    """SIGKILL every process as soon as it reports reaching its point."""
    waiting = list(scenarios)
    deadline = time.monotonic() + timeout
    while waiting:
        for scenario in list(waiting):
            proc = scenario.process
            if _reached(scenario):
                _kill(scenario)
                waiting.remove(scenario)
            elif not proc.is_alive():
                pytest.fail(f"{scenario.name}: the process ended (exit code {proc.exitcode}) "
                            "before its kill point; its traceback is in the captured stderr")
        if time.monotonic() > deadline:
            pytest.fail(f"kill points not reached in {timeout:.0f} s: "
                        f"{[s.name for s in waiting]}")
        time.sleep(0.01)


def assert_consistent(registry: Registry) -> dict[str, str | None]:
    """At most one production version per model; every version row has its artifact with
    the recorded sha256; the audit log and the version rows agree. Returns production ids."""
    production: dict[str, str | None] = {}
    for model in registry.models():
        versions = registry.versions(model.name)
        live = [v.version_id for v in versions if v.status == "production"]
        assert len(live) <= 1, f"{model.name}: several production versions {live}"
        production[model.name] = live[0] if live else None
        assert [v.number for v in versions] == list(range(1, len(versions) + 1))
        for version in versions:
            registry.load(version)  # verifies the sha256; raises if missing or changed
        events = registry.history(model.name)
        registered = [e.version_id for e in events if e.action == "registered"]
        assert registered == [v.version_id for v in versions]
        promoted = [e.version_id for e in events if e.action == "promoted"]
        assert (promoted[-1] if promoted else None) == production[model.name]
        archived = [e.version_id for e in events if e.action == "archived"]
        assert sorted(set(archived)) == sorted(v.version_id for v in versions
                                               if v.status == "archived")
    return production


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_runs_leave_a_consistent_registry(backend, demo_config, training_data, tmp_path):
    with backend_urls(backend, tmp_path, count=len(SCENARIOS)) as urls:
        scenarios = [Scenario(name, url, tmp_path / f"s{i}" / "artifacts",
                              tmp_path / f"s{i}.marker")
                     for i, (name, url) in enumerate(zip(SCENARIOS, urls))]
        # Each registry starts with v1 in production.
        for scenario in scenarios:
            ws = scenario.workspace(demo_config)
            v1 = train_candidate(ws, MODEL, training_data)
            ws.registry.promote(v1.version_id, reason="bootstrap", actor="test")
            ws.registry.dispose()
        for scenario in scenarios:
            _start(scenario, demo_config)
        try:
            _kill_each_at_its_point(scenarios)
        finally:
            for scenario in scenarios:
                if scenario.process and scenario.process.is_alive():
                    scenario.process.kill()
                    scenario.process.join()

        for scenario in scenarios:
            _check_after_kill(scenario, demo_config, training_data)


def _check_after_kill(scenario: Scenario, config: Path, training_data) -> None:
    name = scenario.name
    ws = scenario.workspace(config)
    registry = ws.registry
    try:
        assert assert_consistent(registry) == {MODEL: f"{MODEL}-v1"}, name
        statuses = [(v.version_id, v.status) for v in registry.versions(MODEL)]
        files = sorted(p.name for p in (scenario.artifacts / MODEL).iterdir())
        if SCENARIOS[name]:  # killed before the registration committed
            assert statuses == [(f"{MODEL}-v1", "production")], name
            if name == "artifact:before-replace":
                # The half-written artifact never took the version's name.
                assert f"{MODEL}-v2.zip" not in files and len(files) == 2, files
                assert files[0].startswith(f".{MODEL}-v2.zip.") and files[0].endswith(".tmp")
            elif name == "training":
                assert files == [f"{MODEL}-v1.zip"], files
            else:  # an orphan artifact without a row is harmless; it is replaced next run
                assert files == [f"{MODEL}-v1.zip", f"{MODEL}-v2.zip"], files
        else:  # killed inside the promotion: v2 is a candidate, v1 still production
            assert statuses == [(f"{MODEL}-v1", "production"), (f"{MODEL}-v2", "candidate")], name
            actions = [e.action for e in registry.history(MODEL)]
            assert actions == ["registered", "promoted", "registered"], (name, actions)

        # The next normal run completes, on top of whatever the crash left.
        version = train_candidate(ws, MODEL, training_data, reason="after crash")
        registry.promote(version.version_id, reason="after crash", actor="test")
        expected = f"{MODEL}-v2" if SCENARIOS[name] else f"{MODEL}-v3"
        assert version.version_id == expected, name
        assert assert_consistent(registry) == {MODEL: expected}, name
        assert registry.get_version(f"{MODEL}-v1").status == "archived"
    finally:
        registry.dispose()
