"""The prediction service's log writer: batching, flush on close, bounded queue, and retries
after a real database error (the prediction_log table renamed away under it), on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlmodel import select

from pg import registry_url  # noqa: F401  (fixture)
from retrain.data import FeatureStore
from retrain.errors import DataValidationError
from retrain.experiments import ABTestingManager
from retrain.registry import Registry
from retrain.registry.tables import Feedback, PredictionLog
from retrain.serve.writer import LogWriter
from retrain.workspace import Workspace


class Recorder:
    """A sink that keeps each batch it is given (and can be told to fail)."""

    def __init__(self):
        self.batches: list[list[dict]] = []
        self.fail_with: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self, rows: list[dict]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        with self.lock:
            self.batches.append(list(rows))

    @property
    def rows(self) -> list[dict]:
        return [r for b in self.batches for r in b]


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def prediction(i: int, model: str = "churn") -> dict:
    return {"request_id": f"r{i}", "model_name": model, "version_id": f"{model}-v1",
            "variant": "production", "experiment_id": None, "prediction": float(i % 2),
            "probability": 0.25, "at": datetime(2026, 3, 1, 12, 0, i % 60)}


def test_full_batches_are_written_without_waiting_for_the_flush_interval():
    sink = Recorder()
    writer = LogWriter({"predictions": sink}, batch_size=10, flush_seconds=60)
    writer.start()
    try:
        for i in range(35):
            assert writer.submit("predictions", prediction(i))
        assert wait_until(lambda: len(sink.rows) == 30)
        assert [len(b) for b in sink.batches] == [10, 10, 10]
        assert writer.stats()["predictions"]["pending"] == 5  # the partial batch waits
    finally:
        writer.close()
    assert [r["request_id"] for r in sink.rows] == [f"r{i}" for i in range(35)]


def test_a_partial_batch_is_written_after_flush_seconds():
    sink = Recorder()
    writer = LogWriter({"predictions": sink}, batch_size=1000, flush_seconds=0.1)
    writer.start()
    try:
        for i in range(3):
            writer.submit("predictions", prediction(i))
        assert wait_until(lambda: len(sink.rows) == 3, timeout=5)
    finally:
        writer.close()


def test_close_writes_every_queued_row_of_every_stream():
    predictions, feedback = Recorder(), Recorder()
    writer = LogWriter({"predictions": predictions, "feedback": feedback},
                       batch_size=1000, flush_seconds=3600)
    writer.start()
    for i in range(7):
        writer.submit("predictions", prediction(i))
    writer.submit("feedback", {"request_id": "r1", "label": 1.0})
    assert predictions.rows == [] and feedback.rows == []
    assert writer.close() == 0
    assert len(predictions.rows) == 7 and feedback.rows == [{"request_id": "r1", "label": 1.0}]


def test_a_full_queue_refuses_rows_instead_of_blocking_and_says_so():
    sink = Recorder()
    sink.fail_with = OSError("disk unavailable")
    writer = LogWriter({"predictions": sink}, batch_size=2, flush_seconds=0.01, max_queue=5)
    writer.start()
    try:
        accepted = [writer.submit("predictions", prediction(i)) for i in range(8)]
        assert accepted == [True] * 5 + [False] * 3
        stats = writer.stats()["predictions"]
        assert stats["dropped"] == 3 and stats["pending"] == 5
        assert wait_until(lambda: writer.stats()["predictions"]["failing"])
        assert "disk unavailable" in writer.stats()["predictions"]["last_error"]
        assert not writer.healthy()
        sink.fail_with = None
        writer.max_retry_seconds = 0.05
    finally:
        writer.close(timeout=5)
    assert [r["request_id"] for r in sink.rows] == [f"r{i}" for i in range(5)]


def test_rows_the_sink_refuses_as_invalid_are_dropped_one_by_one_not_retried_for_ever():
    written = []

    def strict(rows):
        if any(r.get("bad") for r in rows):
            raise DataValidationError("bad", "refused")
        written.extend(rows)

    writer = LogWriter({"predictions": strict}, batch_size=10, flush_seconds=0.01)
    writer.start()
    try:
        for i in range(5):
            writer.submit("predictions", {"request_id": f"r{i}", "bad": i == 2})
        assert wait_until(lambda: writer.pending() == 0)
    finally:
        writer.close()
    assert [r["request_id"] for r in written] == ["r0", "r1", "r3", "r4"]
    assert writer.stats()["predictions"]["rejected"] == 1


@pytest.fixture
def manager(make_workspace, registry_url):  # noqa: F811
    """An ABTestingManager (its log sinks are what the service uses) on SQLite or PostgreSQL."""
    base = make_workspace()
    settings = base.settings
    base.registry.dispose()
    settings.registry.url = registry_url
    ws = Workspace(settings, FeatureStore(settings), Registry.from_settings(settings))
    yield ABTestingManager(workspace=ws, cache_seconds=0.1)
    ws.registry.dispose()


def logged(registry: Registry) -> list[str]:
    with registry.reading() as s:
        return sorted(r.request_id for r in s.exec(select(PredictionLog)))


def test_a_database_error_keeps_the_batch_and_the_rows_are_written_once_it_recovers(manager):
    registry = manager.registry
    writer = LogWriter({"predictions": manager.log_predictions, "feedback": manager.log_feedback},
                       batch_size=4, flush_seconds=0.05, max_retry_seconds=0.2)
    writer.start()
    try:
        writer.submit("predictions", prediction(0))
        assert wait_until(lambda: logged(registry) == ["r0"])
        # A real failure: the table disappears under the writer.
        with registry.transaction() as s:
            s.exec(text("ALTER TABLE prediction_log RENAME TO prediction_log_away"))
        for i in range(1, 10):
            writer.submit("predictions", prediction(i))
        assert wait_until(lambda: writer.stats()["predictions"]["failing"])
        stats = writer.stats()["predictions"]
        assert stats["pending"] == 9 and stats["written"] == 1
        assert "prediction_log" in stats["last_error"]
        assert not writer.healthy()
        with registry.transaction() as s:
            s.exec(text("ALTER TABLE prediction_log_away RENAME TO prediction_log"))
        assert wait_until(lambda: writer.pending() == 0)
        assert writer.healthy()
    finally:
        writer.close()
    assert logged(registry) == sorted(f"r{i}" for i in range(10))  # each row exactly once


def test_close_retries_a_failing_write_until_the_database_is_back(manager):
    registry = manager.registry
    writer = LogWriter({"predictions": manager.log_predictions}, batch_size=100,
                       flush_seconds=3600, max_retry_seconds=0.1)
    writer.start()
    for i in range(3):
        writer.submit("predictions", prediction(i))
    with registry.transaction() as s:
        s.exec(text("ALTER TABLE prediction_log RENAME TO prediction_log_away"))

    def restore():
        time.sleep(0.5)
        with registry.transaction() as s:
            s.exec(text("ALTER TABLE prediction_log_away RENAME TO prediction_log"))

    thread = threading.Thread(target=restore)
    thread.start()
    left = writer.close(timeout=20)
    thread.join()
    assert left == 0
    assert logged(registry) == ["r0", "r1", "r2"]


def test_close_gives_up_after_its_timeout_and_reports_the_rows_left(manager):
    registry = manager.registry
    writer = LogWriter({"feedback": manager.log_feedback}, batch_size=100, flush_seconds=3600,
                       max_retry_seconds=0.1)
    writer.start()
    writer.submit("feedback", {"request_id": "r1", "label": 1.0})
    with registry.transaction() as s:
        s.exec(text("ALTER TABLE feedback RENAME TO feedback_away"))
    assert writer.close(timeout=0.5) == 1
    with registry.transaction() as s:
        s.exec(text("ALTER TABLE feedback_away RENAME TO feedback"))
    with registry.reading() as s:
        assert list(s.exec(select(Feedback))) == []
