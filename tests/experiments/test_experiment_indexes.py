"""The prediction log's queries on SQLite and PostgreSQL: the indexes they use, the SQL ``ln``
the log_loss metric needs on any SQLite build, and which feedback a live outcome counts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, inspect

from pg import registry_url  # noqa: F401  (fixture)
from retrain.experiments import store
from retrain.triggers.live import live_outcomes
from retrain.registry import Registry
from retrain.registry.tables import Feedback, PredictionLog

T0 = datetime(2026, 4, 1, 9, 0)
MODEL, V1, V2 = "churn", "churn-v1", "churn-v2"


@pytest.fixture
def registry(registry_url, tmp_path):  # noqa: F811
    registry = Registry(registry_url, tmp_path / "artifacts")
    yield registry
    registry.dispose()


@pytest.fixture
def sqlite_registry(tmp_path):
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    yield registry
    registry.dispose()


def log(registry: Registry, request_id: str, version_id: str, at: datetime,
        probability: float = 0.8, experiment_id: str | None = None, variant: str = "production"):
    store.insert_rows(registry, PredictionLog, store.prediction_rows([{
        "request_id": request_id, "model_name": MODEL, "version_id": version_id,
        "variant": variant, "experiment_id": experiment_id, "prediction": float(probability >= .5),
        "probability": probability, "at": at}]))


def feedback(registry: Registry, request_id: str, label: float, at: datetime) -> None:
    store.insert_rows(registry, Feedback, store.feedback_rows([{
        "request_id": request_id, "label": label, "at": at}]))


def query_plans(registry: Registry, call) -> list[tuple[str, list[str]]]:
    """Each SELECT ``call`` runs on the SQLite registry with its EXPLAIN QUERY PLAN lines."""
    engine = registry._engine
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert statements, "the call ran no SELECT"
    with engine.connect() as conn:
        return [(statement, [row[-1] for row in
                             conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)])
                for statement, parameters in statements]


# Indexes ------------------------------------------------------------------------------------

def test_the_prediction_log_has_the_indexes_its_queries_need(registry):
    indexes = {ix["name"]: ix["column_names"]
               for ix in inspect(registry._engine).get_indexes("prediction_log")}
    assert indexes.get("ix_prediction_log_model_version_at") == ["model_name", "version_id", "at"]
    assert indexes.get("ix_prediction_log_experiment_at") == ["experiment_id", "at"]
    # The single-column experiment index is redundant with (experiment_id, at).
    assert "ix_prediction_log_experiment_id" not in indexes, indexes


def test_live_outcomes_search_the_version_index_and_each_request_by_its_id(sqlite_registry):
    [(_, plan)] = query_plans(sqlite_registry, lambda: live_outcomes(
        sqlite_registry, MODEL, V1, since=T0, limit=1000))
    text = "\n".join(plan)
    assert any("SEARCH prediction_log USING INDEX ix_prediction_log_model_version_at "
               "(model_name=? AND version_id=? AND at>?)" in line for line in plan), text
    # No full scan of the log, and the request's other predictions are looked up by its id
    # (not by scanning all of the version's predictions for each of them).
    assert not any(line.startswith("SCAN") for line in plan), text
    assert any("SEARCH p2 USING INDEX ix_prediction_log_request_id" in line for line in plan), text
    # Newest first comes from the index: no sort of the version's rows.
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan[:2], text


def test_request_counts_since_a_time_search_the_experiment_index(sqlite_registry):
    [(_, plan)] = query_plans(sqlite_registry, lambda: store.request_counts(
        sqlite_registry, "ab-churn-1", since=T0))
    assert any("USING INDEX ix_prediction_log_experiment_at (experiment_id=? AND at>?)" in line
               for line in plan), "\n".join(plan)


# ln on SQLite --------------------------------------------------------------------------------

def test_log_loss_uses_the_registrys_own_ln_on_sqlite(sqlite_registry, monkeypatch):
    """SQLite has ``ln`` only when built with its math functions: the registry registers
    its own on every connection, so log_loss does not depend on the build."""
    expected = -math.log(0.8)
    log(sqlite_registry, "r1", V1, T0, 0.8, experiment_id="ab-churn-1", variant="A")
    feedback(sqlite_registry, "r1", 1.0, T0 + timedelta(minutes=1))
    calls = []
    log_ = math.log
    monkeypatch.setattr(math, "log", lambda x: calls.append(x) or log_(x))
    n, total, _ = store.outcome_sums(sqlite_registry, "ab-churn-1", "log_loss")["A"]
    monkeypatch.undo()
    assert n == 1 and total == pytest.approx(expected)
    assert pytest.approx(0.8) in calls, \
        "log_loss used SQLite's built-in ln, which not every SQLite build has"


def test_log_loss_on_every_backend(registry):
    log(registry, "r1", V1, T0, 0.8, experiment_id="ab-churn-1", variant="A")
    log(registry, "r2", V1, T0, 0.3, experiment_id="ab-churn-1", variant="A")
    feedback(registry, "r1", 1.0, T0 + timedelta(minutes=1))
    feedback(registry, "r2", 0.0, T0 + timedelta(minutes=1))
    n, total, _ = store.outcome_sums(registry, "ab-churn-1", "log_loss")["A"]
    assert n == 2 and total == pytest.approx(-math.log(0.8) - math.log(0.7))


# Which feedback a live outcome counts ---------------------------------------------------------

def test_feedback_sent_before_the_prediction_is_not_its_outcome(registry):
    """A request id reused later (another day, another order with the same number) does not
    inherit the label of the earlier request."""
    log(registry, "order-1", V2, T0)
    feedback(registry, "order-1", 1.0, T0 + timedelta(minutes=5))
    log(registry, "order-1", V1, T0 + timedelta(days=3))  # no feedback since
    y, _ = live_outcomes(registry, MODEL, V1)
    assert len(y) == 0, "feedback sent before V1's prediction was counted as its outcome"
    y, _ = live_outcomes(registry, MODEL, V2)
    assert list(y) == [1]
    feedback(registry, "order-1", 0.0, T0 + timedelta(days=3, minutes=5))
    y, _ = live_outcomes(registry, MODEL, V1)
    assert list(y) == [0]


def test_a_request_predicted_twice_by_a_version_counts_once(registry):
    """A retried request is one outcome, with the version's first prediction of it."""
    log(registry, "r1", V1, T0, probability=0.9)
    log(registry, "r1", V1, T0 + timedelta(seconds=2), probability=0.7)  # a client's retry
    log(registry, "r2", V1, T0, probability=0.2)
    feedback(registry, "r1", 1.0, T0 + timedelta(minutes=1))
    feedback(registry, "r2", 0.0, T0 + timedelta(minutes=1))
    y, proba = live_outcomes(registry, MODEL, V1)
    assert sorted(zip(y.tolist(), proba.tolist())) == [(0, 0.2), (1, 0.9)]
