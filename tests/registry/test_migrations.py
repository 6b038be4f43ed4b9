"""Schema migrations on SQLite and PostgreSQL: data written at revision 0001 survives the
upgrade to head, new columns get their defaults, and the constraints still hold."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from pg import registry_url  # noqa: F401  (fixture)
from retrain.registry.artifacts import save_model
from retrain.data import Schema
from retrain.demo import generate_month
from retrain.errors import RegistryError
from retrain.modeling import fit_model
from retrain.registry import Registry, db
from retrain.registry.tables import SQLModel

SCHEMA = Schema(("income", "credit_score", "purpose"), ("purpose",))


@pytest.fixture(scope="module")
def frame():
    return generate_month(0, 300, drifted=False, seed=2)


@pytest.fixture(scope="module")
def model(frame):
    return fit_model("logistic_regression", {}, frame, SCHEMA, "defaulted", seed=0)


def _insert_at_0001(engine, artifact_path, sha):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO registered_model (name, kind, created_at) "
                          "VALUES ('churn', 'logistic_regression', :at)"),
                     {"at": datetime(2025, 12, 1, 8, 0)})
        conn.execute(text(
            "INSERT INTO model_version (version_id, model_name, number, kind, params, train_start, "
            "train_end, row_count, data_fingerprint, feature_schema, metrics, artifact_path, "
            "artifact_sha256, created_at, status, promoted_at) VALUES ('churn-v1', 'churn', 1, "
            "'logistic_regression', :params, :ts, :te, 300, :fp, :schema, :metrics, :path, :sha, "
            ":at, 'production', :at)"),
            {"params": '{"C": 1.0}', "ts": datetime(2025, 10, 1), "te": datetime(2025, 11, 30),
             "fp": "a" * 64, "schema": '{"features": ["income", "credit_score", "purpose"], '
                                       '"categorical": ["purpose"]}',
             "metrics": '{"roc_auc": 0.7}', "path": str(artifact_path), "sha": sha,
             "at": datetime(2025, 12, 1, 9, 0)})
        conn.execute(text("INSERT INTO audit_event (model_name, version_id, action, actor, reason, "
                          "at) VALUES ('churn', 'churn-v1', 'promoted', 'ops', 'first', :at)"),
                     {"at": datetime(2025, 12, 1, 9, 0)})


def test_rows_written_at_0001_survive_the_upgrade_to_head(
        registry_url, model, frame, tmp_path):  # noqa: F811
    artifact = tmp_path / "old" / "churn-v1.zip"
    sha = save_model(model, artifact)
    engine = db.make_engine(registry_url)
    try:
        db.upgrade(engine, "0001")
        assert db.current_revision(engine) == "0001"
        columns = {c["name"] for c in inspect(engine).get_columns("model_version")}
        assert "holdout_rows" not in columns
        _insert_at_0001(engine, artifact, sha)
    finally:
        engine.dispose()

    registry = Registry(registry_url, tmp_path / "artifacts")  # upgrades to head
    try:
        engine = db.make_engine(registry_url)
        assert db.current_revision(engine) == db.head_revision() != "0001"
        old = registry.get_version("churn-v1")
        assert (old.status, old.params, old.metrics, old.promoted_at) == (
            "production", {"C": 1.0}, {"roc_auc": 0.7}, datetime(2025, 12, 1, 9, 0))
        assert old.holdout_rows == 0 and old.holdout_start is None  # new columns' defaults
        [event] = registry.history("churn")
        assert (event.action, event.actor, event.reason, event.details) == (
            "promoted", "ops", "first", {})
        assert np.array_equal(registry.load(old).predict_proba(frame), model.predict_proba(frame))

        # The one-production index and the status check survived the upgrade.
        with pytest.raises(IntegrityError):
            with engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO model_version (version_id, model_name, number, kind, params, "
                    "train_start, train_end, row_count, data_fingerprint, feature_schema, metrics, "
                    "artifact_path, artifact_sha256, created_at, status) SELECT 'churn-v9', "
                    "model_name, 9, kind, params, train_start, train_end, row_count, "
                    "data_fingerprint, feature_schema, metrics, artifact_path, artifact_sha256, "
                    "created_at, 'production' FROM model_version WHERE version_id = 'churn-v1'"))
        with pytest.raises(IntegrityError):
            with engine.begin() as conn:
                conn.execute(text("UPDATE model_version SET status = 'gone' "
                                  "WHERE version_id = 'churn-v1'"))
        engine.dispose()

        # The registry keeps working on the migrated data.
        new = registry.register_version(
            model_name="churn", model=model, train_start=datetime(2026, 1, 1),
            train_end=datetime(2026, 2, 1), holdout_start=datetime(2026, 1, 25), row_count=300,
            holdout_rows=60, data_fingerprint="b" * 64, metrics={"roc_auc": 0.8}, actor="ops")
        assert new.version_id == "churn-v2"
        registry.promote("churn-v2", reason="better")
        assert [(v.number, v.status) for v in registry.versions("churn")] == [
            (1, "archived"), (2, "production")]
        assert registry.rollback("churn").version_id == "churn-v1"
    finally:
        registry.dispose()


def test_migrated_schema_matches_the_table_definitions(registry_url, tmp_path):  # noqa: F811
    Registry(registry_url, tmp_path).dispose()
    engine = create_engine(registry_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_a_registry_from_a_newer_retrain_is_refused(registry_url, tmp_path):  # noqa: F811
    Registry(registry_url, tmp_path).dispose()
    engine = create_engine(registry_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        engine.dispose()
    with pytest.raises(RegistryError, match="revision '9999_future'.*does not know"):
        Registry(registry_url, tmp_path)


def test_opening_twice_is_a_no_op(registry_url, tmp_path):  # noqa: F811
    Registry(registry_url, tmp_path).dispose()
    registry = Registry(registry_url, tmp_path)
    try:
        assert registry.models() == []
        engine = db.make_engine(registry_url)
        assert db.current_revision(engine) == db.head_revision()
        engine.dispose()
    finally:
        registry.dispose()
