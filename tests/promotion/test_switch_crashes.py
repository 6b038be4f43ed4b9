"""The production switch survives a crash at every step: a real ``retrain promote`` process is
SIGKILLed at each failpoint of the switch; then ``retrain notify --flush`` (another real
process) finishes what it left. A real SMTP server on loopback records what arrives, in which
order: the pending notice is never left without what follows it (the promotion notice, or a
notice that the change did not happen), and a switch whose smoke check fails is undone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SMALL
from retrain.demo import append_drifted_month, write_workspace
from retrain.errors import RegistryError
from retrain.evaluation.results import Evaluation, MetricPair
from retrain.evaluation.smoke import recorded_smoke_sample
from retrain.notify.outbox import Outbox
from retrain.notify.service import NotificationService
from retrain.pipeline import run_pipeline
from retrain.promotion.switch import ProductionChange, change_production
from retrain.registry.tables import ProductionSwitch
from retrain.workspace import Workspace
from smoke_samples import tamper_smoke_sample
from smtp_server import SmtpServer, free_port
from sqlmodel import select

pytestmark = pytest.mark.slow

MODEL = "lightgbm"
RECIPIENTS = ["ml-team@example.com"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A workspace whose lightgbm-v1 is production and lightgbm-v2 (rejected by a
    threshold nobody can meet, but evaluated, so it has a smoke sample) waits for a hand."""
    directory = tmp_path_factory.mktemp("switch") / "ws"
    config = write_workspace(directory, **SMALL)
    ws = Workspace.open(config)
    ws.settings.drift.save_reports = False
    run_pipeline(ws, [MODEL])
    append_drifted_month(directory, index=SMALL["months"], rows=2000)
    ws.settings.promotion.min_relative_improvement = 10.0
    assert run_pipeline(ws, [MODEL]).models[MODEL].decision == "rejected"
    ws.registry.dispose()
    return directory


@pytest.fixture
def workspace(template, tmp_path):
    directory = tmp_path / "ws"
    shutil.copytree(template, directory)
    return directory


def env_for(port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN_")}
    env.update(RETRAIN_NOTIFICATIONS__SMTP_HOST="127.0.0.1",
               RETRAIN_NOTIFICATIONS__SMTP_PORT=str(port),
               RETRAIN_NOTIFICATIONS__EMAIL_RECIPIENTS='["ml-team@example.com"]',
               RETRAIN_NOTIFICATIONS__RETRY_BACKOFF_SECONDS="0", RETRAIN_ACTOR="crash-test",
               **extra)
    return env


def retrain(directory: Path, env: dict[str, str], *args: str, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "retrain.cli", "--config",
                           str(directory / "retrain.toml"), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def promote_and_kill(directory: Path, port: int, point: str) -> None:
    """``retrain promote lightgbm-v2 --force``, killed with SIGKILL at ``point``."""
    marker = directory / "failpoint.reached"
    env = env_for(port, RETRAIN_FAILPOINT=point, RETRAIN_FAILPOINT_FILE=str(marker))
    process = subprocess.Popen([sys.executable, "-m", "retrain.cli", "--config",
                                str(directory / "retrain.toml"), "promote", f"{MODEL}-v2",
                                "--force", "--reason", "hand-picked"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"{point} was never reached: {process.stderr.read()}")
        assert time.monotonic() < deadline, f"{point} not reached in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def kinds(server) -> list[tuple[str, str]]:
    return [(r.message["X-Retrain-Kind"], r.subject) for r in server.received]


def state(directory: Path) -> tuple[str | None, list[str]]:
    """Production now, and the states of the switches made since the template's bootstrap."""
    ws = Workspace.open(directory / "retrain.toml")
    production = ws.registry.production_version(MODEL)
    with ws.registry.reading() as s:
        states = [r.state for r in s.exec(select(ProductionSwitch)
                                          .order_by(ProductionSwitch.created_at))][1:]
    ws.registry.dispose()
    return (production.version_id if production else None), states


PENDING = ("pending_promotion", f"[retrain] {MODEL}: {MODEL}-v2 will replace {MODEL}-v1 in production")
PROMOTED = ("promotion", f"[retrain] {MODEL}: {MODEL}-v2 promoted to production")
ABANDONED = ("switch_abandoned", f"[retrain] {MODEL}: {MODEL}-v2 did not replace {MODEL}-v1 after all")


@pytest.mark.parametrize("point, switched", [
    ("switch:announced", False),       # pending notice out, the pointer not moved
    ("promote:after-archive", False),  # inside the switch's transaction, not committed
    ("promote:before-commit", False),
    ("switch:switched", True),         # committed; smoke check not run, notice held
    ("switch:checked", True),          # smoke check passed; notice not released yet
])
def test_a_killed_switch_is_finished_by_the_next_flush(workspace, point, switched):
    port = free_port()
    with SmtpServer(port) as server:
        promote_and_kill(workspace, port, point)
        assert kinds(server) == [PENDING]  # the notice went out before anything moved
        production, states = state(workspace)
        assert production == (f"{MODEL}-v2" if switched else f"{MODEL}-v1")
        assert states == ["switched" if switched else "announced"]

        flushed = retrain(workspace, env_for(port), "notify", "--flush")
        assert flushed.returncode == 0, flushed.stderr
        assert "interrupted production switch" in flushed.stderr
        # Whatever the kill interrupted, what arrives says what happened, in order.
        assert kinds(server) == [PENDING, PROMOTED if switched else ABANDONED]
        production, states = state(workspace)
        assert production == (f"{MODEL}-v2" if switched else f"{MODEL}-v1")
        assert states == ["checked" if switched else "abandoned"]

        again = retrain(workspace, env_for(port), "notify", "--flush")
        assert again.returncode == 0 and "interrupted" not in again.stderr
        assert len(server.received) == 2  # nothing is finished twice


def test_a_killed_switch_whose_smoke_check_fails_is_undone_on_recovery(workspace):
    ws = Workspace.open(workspace / "retrain.toml")
    sample = recorded_smoke_sample(ws.registry, f"{MODEL}-v2")
    # As a deployed artifact that does not predict what was evaluated would look.
    tamper_smoke_sample(ws, Evaluation(model=MODEL, candidate_version=f"{MODEL}-v2",
                                       metric="roc_auc", metrics=MetricPair(), smoke_sample=sample))
    port = free_port()
    with SmtpServer(port) as server:
        promote_and_kill(workspace, port, "switch:switched")
        flushed = retrain(workspace, env_for(port), "notify", "--flush")
        assert flushed.returncode == 0, flushed.stderr
    assert kinds(server) == [
        PENDING,
        ("pending_promotion", f"[retrain] {MODEL}: {MODEL}-v1 will replace {MODEL}-v2 in production"),
        ("rollback", f"[retrain] {MODEL}: rolled back to {MODEL}-v1")]
    production, states = state(workspace)
    assert production == f"{MODEL}-v1" and states == ["undone", "checked"]
    held = [m for m in Outbox(ws.registry, ws.settings.notifications).messages()
            if m.kind == "promotion" and m.payload["version_id"] == f"{MODEL}-v2"]
    assert [m.status for m in held] == ["cancelled"]  # "v2 promoted" was never sent


def test_a_refused_switch_after_its_notice_says_so(workspace):
    """Production changes between the pending notice and the switch (another person takes
    v1 out): the switch is refused in its transaction, and a notice says that the announced
    change did not happen."""
    ws = Workspace.open(workspace / "retrain.toml")
    port = free_port()
    n = ws.settings.notifications
    n.smtp_host, n.smtp_port, n.email_recipients = "127.0.0.1", port, RECIPIENTS
    notifier = NotificationService(workspace=ws)
    deliver = notifier.flush

    def deliver_then_someone_withdraws_v1(now: bool = False):
        counts = deliver(now)
        if ws.registry.get_version(f"{MODEL}-v1").status == "production":
            ws.registry.withdraw(f"{MODEL}-v1", reason="someone else")
        return counts

    notifier.flush = deliver_then_someone_withdraws_v1
    change = ProductionChange(MODEL, f"{MODEL}-v2", "promotion", "hand-picked",
                              expected_production=f"{MODEL}-v1", allow_rejected=True)
    with SmtpServer(port) as server:
        with pytest.raises(RegistryError, match="changed meanwhile"):
            change_production(ws, change, notifier)
    assert [k for k, _ in kinds(server)] == ["pending_promotion", "switch_abandoned"]
    assert f"production of {MODEL} is none" in server.received[-1].part("text/plain")
    assert state(workspace) == (None, ["abandoned"])
