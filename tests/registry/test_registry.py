"""The registry on SQLite and PostgreSQL: numbering, promotion, rejection, rollback, audit,
and the database's own guarantee of at most one production version per model."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from pg import registry_url  # noqa: F401  (fixture)
from retrain.data import Schema
from retrain.demo import generate_month
from retrain.errors import ArtifactIntegrityError, RegistryError
from retrain.modeling import fit_model
from retrain.registry import Registry

FEATURES = ("income", "credit_score", "debt_to_income", "home_ownership", "purpose")
SCHEMA = Schema(FEATURES, ("home_ownership", "purpose"))


@pytest.fixture(scope="module")
def frame():
    return generate_month(0, 300, drifted=False, seed=11)


@pytest.fixture(scope="module")
def tiny_model(frame):
    return fit_model("random_forest", {"n_estimators": 5, "n_jobs": 1}, frame, SCHEMA,
                     "defaulted", seed=1)


@pytest.fixture
def registry(registry_url, tmp_path):  # noqa: F811
    reg = Registry(registry_url, tmp_path / "artifacts")
    yield reg
    reg.dispose()


def register(reg: Registry, model, name: str = "churn", *, actor: str = "alice",
             reason: str = "test", auc: float = 0.7):
    return reg.register_version(
        model_name=name, model=model, train_start=datetime(2026, 1, 1),
        train_end=datetime(2026, 2, 28, 23, 59), holdout_start=datetime(2026, 2, 15),
        row_count=300, holdout_rows=60, data_fingerprint="f" * 64, metrics={"roc_auc": auc},
        actor=actor, reason=reason)


def statuses(reg: Registry, name: str = "churn") -> dict[int, str]:
    return {v.number: v.status for v in reg.versions(name)}


def test_register_numbers_versions_per_model_and_records_them(registry, tiny_model):
    v1, v2 = register(registry, tiny_model), register(registry, tiny_model, auc=0.75)
    other = register(registry, tiny_model, name="fraud")
    assert [(v.version_id, v.number, v.status) for v in (v1, v2, other)] == [
        ("churn-v1", 1, "candidate"), ("churn-v2", 2, "candidate"), ("fraud-v1", 1, "candidate")]
    assert [m.name for m in registry.models()] == ["churn", "fraud"]
    stored = registry.get_version("churn-v2")
    assert stored.metrics == {"roc_auc": 0.75}
    assert stored.holdout_rows == 60 and stored.holdout_start == datetime(2026, 2, 15)
    assert stored.feature_schema == {"features": list(FEATURES),
                                     "categorical": ["home_ownership", "purpose"]}
    assert stored.train_end == datetime(2026, 2, 28, 23, 59)  # naive UTC round-trips
    assert [v.number for v in registry.versions("churn")] == [1, 2]
    events = registry.history("churn")
    assert [(e.action, e.version_id, e.actor, e.reason) for e in events] == [
        ("registered", "churn-v1", "alice", "test"), ("registered", "churn-v2", "alice", "test")]
    assert events[1].details["metrics"] == {"roc_auc": 0.75}


def test_registered_artifact_loads_and_predicts_like_the_fitted_model(registry, tiny_model, frame):
    version = register(registry, tiny_model)
    loaded = registry.load(version)
    assert np.array_equal(loaded.predict_proba(frame), tiny_model.predict_proba(frame))


def test_load_refuses_an_artifact_changed_after_registration(registry, tiny_model):
    version = register(registry, tiny_model)
    path = registry.artifacts_dir / "churn" / "churn-v1.zip"
    assert registry.artifact_file(version) == path and version.artifact_path == "churn/churn-v1.zip"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        registry.load(registry.get_version("churn-v1"))


def test_bootstrap_then_replace_archives_the_old_version_in_the_audit_log(registry, tiny_model):
    register(registry, tiny_model)
    register(registry, tiny_model)
    assert registry.production_version("churn") is None

    boot = registry.promote("churn-v1", reason="first version", actor="bot")
    assert boot.status == "production" and boot.promoted_at is not None
    assert registry.production_version("churn").version_id == "churn-v1"

    new = registry.promote("churn-v2", reason="better by 7%", actor="carol",
                           details={"relative_improvement": 0.07})
    assert new.status == "production"
    assert statuses(registry) == {1: "archived", 2: "production"}
    assert registry.production_version("churn").version_id == "churn-v2"

    events = [(e.action, e.version_id, e.actor, e.reason) for e in registry.history("churn")]
    assert events == [
        ("registered", "churn-v1", "alice", "test"),
        ("registered", "churn-v2", "alice", "test"),
        ("promoted", "churn-v1", "bot", "first version"),
        ("archived", "churn-v1", "carol", "replaced by churn-v2"),
        ("promoted", "churn-v2", "carol", "better by 7%"),
    ]
    promoted = registry.history("churn")[-1]
    assert promoted.details == {"relative_improvement": 0.07, "previous_version": "churn-v1"}
    assert registry.history("churn")[2].details["previous_version"] is None


def test_promote_refuses_production_rejected_and_unknown_versions(registry, tiny_model):
    register(registry, tiny_model)
    register(registry, tiny_model)
    registry.promote("churn-v1", reason="boot")
    with pytest.raises(RegistryError, match="already production"):
        registry.promote("churn-v1", reason="again")
    registry.reject("churn-v2", reason="worse", actor="dave")
    with pytest.raises(RegistryError, match="rejected"):
        registry.promote("churn-v2", reason="try")
    with pytest.raises(RegistryError, match="no model version"):
        registry.promote("churn-v9", reason="nope")
    assert statuses(registry) == {1: "production", 2: "rejected"}
    # An explicit override (retrain promote --force) may deploy a rejected version.
    registry.promote("churn-v2", reason="forced", allow_rejected=True)
    assert registry.history("churn")[-1].details["override"] is True
    assert statuses(registry) == {1: "archived", 2: "production"}


def test_reject_only_candidates(registry, tiny_model):
    register(registry, tiny_model)
    register(registry, tiny_model)
    rejected = registry.reject("churn-v2", reason="roc_auc -3%", actor="dave",
                               details={"relative_improvement": -0.03})
    assert rejected.status == "rejected"
    event = registry.history("churn")[-1]
    assert (event.action, event.version_id, event.actor, event.reason) == (
        "rejected", "churn-v2", "dave", "roc_auc -3%")
    assert event.details == {"relative_improvement": -0.03}
    registry.promote("churn-v1", reason="boot")
    for version_id in ("churn-v1", "churn-v2"):
        with pytest.raises(RegistryError, match="only a candidate"):
            registry.reject(version_id, reason="again")
    assert statuses(registry) == {1: "production", 2: "rejected"}


def test_rollback_to_previous_and_to_a_named_version(registry, tiny_model):
    for _ in range(4):
        register(registry, tiny_model)
    with pytest.raises(RegistryError, match="no earlier production"):
        registry.rollback("churn")
    for n in (1, 2, 3):
        registry.promote(f"churn-v{n}", reason=f"deploy {n}")

    back = registry.rollback("churn", reason="v3 misbehaves", actor="erin")
    assert back.version_id == "churn-v2"
    assert statuses(registry) == {1: "archived", 2: "production", 3: "archived", 4: "candidate"}
    last = registry.history("churn")[-1]
    assert (last.action, last.version_id, last.actor, last.reason) == (
        "rolled-back", "churn-v2", "erin", "v3 misbehaves")
    assert last.details == {"rolled_back_from": "churn-v3", "previous_version": "churn-v3"}

    named = registry.rollback("churn", to="v1")
    assert named.version_id == "churn-v1"
    assert statuses(registry) == {1: "production", 2: "archived", 3: "archived", 4: "candidate"}
    assert registry.history("churn")[-1].reason == "rollback from churn-v2"

    # Only versions that were production before can be rolled back to.
    with pytest.raises(RegistryError, match="already production"):
        registry.rollback("churn", to="churn-v1")
    with pytest.raises(RegistryError, match="never production"):
        registry.rollback("churn", to="4")
    registry.reject("churn-v4", reason="worse")
    with pytest.raises(RegistryError, match="never production"):
        registry.rollback("churn", to="v4")
    assert statuses(registry) == {1: "production", 2: "archived", 3: "archived", 4: "rejected"}


def test_promote_with_expected_production_refuses_a_stale_decision(registry, tiny_model):
    for _ in range(3):
        register(registry, tiny_model)
    registry.promote("churn-v1", reason="boot", expected_production=None)
    # v3 was evaluated against v1, but v2 became production meanwhile.
    registry.promote("churn-v2", reason="manual", expected_production="churn-v1")
    with pytest.raises(RegistryError, match="churn-v2, not churn-v1"):
        registry.promote("churn-v3", reason="better than v1", expected_production="churn-v1")
    with pytest.raises(RegistryError, match="is churn-v2, not none"):
        registry.promote("churn-v3", reason="bootstrap", expected_production=None)
    assert statuses(registry) == {1: "archived", 2: "production", 3: "candidate"}
    assert [e.action for e in registry.history("churn")].count("promoted") == 2


def test_resolve_version_by_id_number_or_production(registry, tiny_model):
    register(registry, tiny_model)
    register(registry, tiny_model)
    register(registry, tiny_model, name="fraud")
    with pytest.raises(RegistryError, match="no production version"):
        registry.resolve_version("churn", None)
    registry.promote("churn-v1", reason="boot")
    assert registry.resolve_version("churn", None).version_id == "churn-v1"
    for ref in ("2", "v2", " v2 ", "churn-v2"):
        assert registry.resolve_version("churn", ref).version_id == "churn-v2"
    with pytest.raises(RegistryError, match="belongs to model 'fraud'"):
        registry.resolve_version("churn", "fraud-v1")
    with pytest.raises(RegistryError, match="no model version 'churn-v7'"):
        registry.resolve_version("churn", "v7")


def test_record_writes_a_standalone_audit_event(registry, tiny_model):
    register(registry, tiny_model)
    registry.record("churn", "evaluated", version_id="churn-v1", reason="holdout",
                    details={"roc_auc": 0.71}, actor="pipeline")
    event = registry.history("churn")[-1]
    assert (event.action, event.version_id, event.actor, event.details) == (
        "evaluated", "churn-v1", "pipeline", {"roc_auc": 0.71})
    assert isinstance(event.at, datetime) and event.at.tzinfo is None


def test_actor_defaults_to_retrain_actor(registry, tiny_model, monkeypatch):
    monkeypatch.setenv("RETRAIN_ACTOR", "scheduler")
    register(registry, tiny_model, actor=None)
    assert registry.history("churn")[-1].actor == "scheduler"


def test_database_refuses_a_second_production_version(
        registry, tiny_model, registry_url):  # noqa: F811
    register(registry, tiny_model)
    v2 = register(registry, tiny_model)
    registry.promote("churn-v1", reason="boot")
    # Bypass the Registry class: a plain connection, plain SQL.
    engine = create_engine(registry_url)
    try:
        with pytest.raises(IntegrityError):
            with engine.begin() as conn:
                conn.execute(text("UPDATE model_version SET status = 'production' "
                                  "WHERE version_id = 'churn-v2'"))
        row = {c: getattr(v2, c) for c in (
            "model_name", "kind", "train_start", "train_end", "row_count", "data_fingerprint",
            "artifact_path", "artifact_sha256", "created_at")}
        with pytest.raises(IntegrityError):
            with engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO model_version (version_id, model_name, number, kind, params, "
                    "train_start, train_end, row_count, data_fingerprint, feature_schema, metrics, "
                    "artifact_path, artifact_sha256, created_at, status) VALUES ('churn-v99', "
                    ":model_name, 99, :kind, '{}', :train_start, :train_end, :row_count, "
                    ":data_fingerprint, '{}', '{}', :artifact_path, :artifact_sha256, "
                    ":created_at, 'production')"), row)
        with pytest.raises(IntegrityError):  # statuses are a closed set
            with engine.begin() as conn:
                conn.execute(text("UPDATE model_version SET status = 'live' "
                                  "WHERE version_id = 'churn-v2'"))
        # Another model may have its own production version.
        register(registry, tiny_model, name="fraud")
        with engine.begin() as conn:
            conn.execute(text("UPDATE model_version SET status = 'production' "
                              "WHERE version_id = 'fraud-v1'"))
    finally:
        engine.dispose()
    assert statuses(registry) == {1: "production", 2: "candidate"}
    assert registry.production_version("fraud").version_id == "fraud-v1"


def test_unreachable_or_bad_url_is_a_registry_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot open the registry"):
        Registry("postgresql+psycopg://postgres@127.0.0.1:1/none", tmp_path)
    with pytest.raises(RegistryError, match="not usable"):
        Registry("nosuchdb://x", tmp_path)


def test_a_moved_workspace_still_loads_its_models(tmp_path):
    """Artifact paths are stored relative to the artifacts folder."""
    import shutil

    from retrain.demo import write_workspace
    from retrain.pipeline import run_pipeline
    from retrain.workspace import Workspace

    write_workspace(tmp_path / "a", months=3, rows_per_month=500, trees=10)
    run_pipeline(Workspace.open(tmp_path / "a" / "retrain.toml"), models=["lightgbm"])
    shutil.move(tmp_path / "a", tmp_path / "b")
    ws = Workspace.open(tmp_path / "b" / "retrain.toml")
    version = ws.registry.production_version("lightgbm")
    assert not version.artifact_path.startswith("/")
    assert ws.registry.load(version).predict_proba(ws.store.rows().collect()).shape[0] > 0
