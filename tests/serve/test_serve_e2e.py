"""The prediction service end to end: `retrain serve` as a real process on a free loopback
port, an A/B test created and ended through ABTestingManager while it runs, predictions and
feedback over HTTP, the registry checked at the end."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlmodel import func, select

from retrain.demo import generate_month
from retrain.experiments import ABTestingManager
from retrain.modeling import fit_model
from retrain.pipeline import run_pipeline
from retrain.registry.tables import Feedback, PredictionLog
from retrain.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REFRESH = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def workspace_with_two_versions(make_workspace) -> Workspace:
    """lightgbm-v1 in production (the library pipeline's bootstrap), lightgbm-v2 a candidate."""
    ws = make_workspace()
    run_pipeline(ws, ["lightgbm"])
    assert ws.registry.production_version("lightgbm").version_id == "lightgbm-v1"
    frame = generate_month(1, 900, drifted=False, seed=99)
    challenger = fit_model("lightgbm", {"n_estimators": 10, "num_leaves": 4}, frame,
                           ws.store.schema(), "defaulted", seed=3)
    ws.registry.register_version(
        model_name="lightgbm", model=challenger, train_start=datetime(2026, 2, 1),
        train_end=datetime(2026, 2, 28), holdout_start=None, row_count=900, holdout_rows=0,
        data_fingerprint="2" * 64, metrics={"roc_auc": 0.7}, actor="test", reason="challenger")
    return ws


@contextmanager
def serving(ws: Workspace, tmp_path: Path, *options: str):
    """`retrain serve` in its own process; always stopped, whatever the test does."""
    port = free_port()
    env = {**os.environ, "RETRAIN_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT),
           "RETRAIN_SERVE__REFRESH_SECONDS": str(REFRESH), "RETRAIN_SERVE__LOG_FLUSH_SECONDS": "0.1"}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "retrain.cli", "serve", "--config",
             str(ws.settings.base_dir / "retrain.toml"), "--port", str(port), *options],
            env=env, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            if proc.poll() is not None:
                raise AssertionError(f"retrain serve exited with {proc.returncode}:\n"
                                     f"{log_path.read_text()}")
            try:
                return httpx.get(f"{base}/health", timeout=2).json()["status"] == "ok"
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "the service to become healthy")
        with httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
            yield ws, client, proc, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def server(workspace_with_two_versions, tmp_path):
    with serving(workspace_with_two_versions, tmp_path) as running:
        yield running


def features(frame, i: int) -> dict:
    row = frame.row(i, named=True)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
            if k not in ("application_id", "applied_at", "defaulted")}


@pytest.mark.slow
def test_an_ab_test_runs_through_the_live_service_and_its_winner_is_served(server):
    ws, client, proc, log_path = server
    frame = generate_month(3, 600, drifted=False, seed=21)
    first = client.post("/predict/lightgbm", json={"request_id": "warm", "features": features(frame, 0)})
    assert first.status_code == 200, first.text
    assert first.json()["version"] == "lightgbm-v1" and first.json()["variant"] == "production"

    manager = ABTestingManager(workspace=ws, cache_seconds=0)
    test_id = manager.create_ab_test("lightgbm", "lightgbm-v1", "lightgbm-v2", 0.5, 7)["test_id"]

    # The running service picks the test up within its refresh interval.
    wait_for(lambda: client.post("/predict/lightgbm", json={
        "request_id": "probe", "features": features(frame, 0)}).json()["variant"] in ("A", "B"),
        10 * REFRESH + 5, "the service to route the A/B test")

    answers = {}
    for i in range(600):
        request_id = f"req-{i}"
        r = client.post("/predict/lightgbm", json={"request_id": request_id,
                                                   "features": features(frame, i)})
        assert r.status_code == 200, r.text
        answers[request_id] = r.json()
    variants = {a["variant"] for a in answers.values()}
    assert variants == {"A", "B"}
    for request_id, answer in answers.items():
        assert answer["version"] == {"A": "lightgbm-v1", "B": "lightgbm-v2"}[answer["variant"]]
        # Sticky and the same in every process: this process routes each id the same way.
        assert manager.route("lightgbm", request_id).variant == answer["variant"]

    # Outcomes that make B right every time and A wrong every time.
    for request_id, answer in answers.items():
        right = answer["prediction"] if answer["variant"] == "B" else 1 - answer["prediction"]
        r = client.post("/feedback", json={"request_id": request_id, "label": right})
        assert r.status_code == 202, r.text

    counts = {v: sum(a["variant"] == v for a in answers.values()) for v in ("A", "B")}

    def all_outcomes_stored():
        status = manager.check_test_status(test_id)
        seen = {v: status["variants"][v]["outcomes"] for v in ("A", "B")}
        return status if seen == counts else None

    status = wait_for(all_outcomes_stored, 20, "the feedback to reach the registry")
    for v in ("A", "B"):
        # The probe requests routed during the test count too.
        assert status["variants"][v]["requests"] >= counts[v]
    assert status["status"] == "significant" and status["winner"] == "B"
    assert status["variants"]["B"]["metric"] == 1.0 and status["variants"]["A"]["metric"] == 0.0

    ended = manager.end_test(test_id, promote_winner=True)
    assert ended["promoted"] == "lightgbm-v2"
    assert ws.registry.production_version("lightgbm").version_id == "lightgbm-v2"
    promoted = [e for e in ws.registry.history("lightgbm") if e.action == "promoted"]
    assert promoted[-1].version_id == "lightgbm-v2" and test_id in promoted[-1].reason

    # Without a restart, every request now goes to the new production version.
    def serves_v2():
        answer = client.post("/predict/lightgbm", json={
            "request_id": "after", "features": features(frame, 1)}).json()
        return answer["version"] == "lightgbm-v2" and answer["variant"] == "production"

    wait_for(serves_v2, 10 * REFRESH + 5, "the promotion to be served")
    after = [client.post("/predict/lightgbm", json={"request_id": f"after-{i}",
                                                    "features": features(frame, i)}).json()
             for i in range(50)]
    assert {(a["version"], a["variant"]) for a in after} == {("lightgbm-v2", "production")}
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert models["lightgbm"]["production_version"] == "lightgbm-v2"
    assert models["lightgbm"]["experiment"] is None

    # A graceful stop writes out every queued prediction.
    sent = client.get("/health").json()
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then ends with the signal it caught.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM), log_path.read_text()
    assert "every prediction and feedback row is written" in log_path.read_text()
    with ws.registry.reading() as s:
        logged = s.exec(select(func.count()).select_from(PredictionLog)).one()
        in_test = s.exec(select(func.count()).select_from(PredictionLog)
                         .where(PredictionLog.experiment_id == test_id)).one()
        outcomes = s.exec(select(func.count()).select_from(Feedback)).one()
    assert in_test >= 600
    assert logged >= 600 + 50 + 2 and outcomes == 600
    assert sent["log"]["predictions"]["dropped"] == 0


@pytest.mark.slow
def test_several_server_processes_share_the_port_the_registry_and_the_log(
        workspace_with_two_versions, tmp_path):
    """`retrain serve --workers 2`: both processes answer; each follows the registry; every
    prediction and every outcome (sent to whichever process) is logged exactly once."""
    ws = workspace_with_two_versions
    frame = generate_month(3, 400, drifted=False, seed=5)
    with serving(ws, tmp_path, "--workers", "2") as (_, client, proc, log_path):
        base = str(client.base_url)

        def burst(prefix: str, n: int) -> tuple[dict, set[int]]:
            """``n`` predictions over fresh connections from 8 threads, so the kernel hands
            them to both processes; the pids that answered /health in between."""
            from concurrent.futures import ThreadPoolExecutor

            def one(i: int):
                with httpx.Client(base_url=base, headers=AUTH, timeout=10) as c:
                    r = c.post("/predict/lightgbm", json={"request_id": f"{prefix}-{i}",
                                                          "features": features(frame, i)})
                    pid = c.get("/health").json()["process"]
                return r, pid

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(one, range(n)))
            assert all(r.status_code == 200 for r, _ in results), [r.text for r, _ in results
                                                                    if r.status_code != 200][:3]
            return {f"{prefix}-{i}": r.json() for i, (r, _) in enumerate(results)}, \
                {pid for _, pid in results}

        answers, pids = burst("one", 300)
        assert len(pids) == 2 and proc.pid not in pids, pids
        assert {a["version"] for a in answers.values()} == {"lightgbm-v1"}
        # Outcomes, sent to whichever process takes the connection.
        for i, request_id in enumerate(answers):
            with httpx.Client(base_url=base, headers=AUTH, timeout=10) as c:
                assert c.post("/feedback", json={"request_id": request_id,
                                                 "label": i % 2}).status_code == 202
        # A promotion is followed by every process within its refresh interval.
        ws.registry.promote("lightgbm-v2", reason="test", actor="test")
        time.sleep(4 * REFRESH + 1)
        after, pids = burst("two", 200)
        assert len(pids) == 2 and {a["version"] for a in after.values()} == {"lightgbm-v2"}
    assert proc.returncode is not None
    # Both processes wrote their batches at shutdown: each row once, none lost.
    with ws.registry.reading() as s:
        logged = s.exec(select(PredictionLog.request_id)).all()
        outcomes = s.exec(select(Feedback.request_id)).all()
    assert sorted(logged) == sorted([*answers, *after])
    assert sorted(outcomes) == sorted(answers)
