"""Model artifacts: atomic writes, sha256 verification, exact round trips, and a skops
allow-list that refuses anything our estimators do not need."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import skops
import skops.io as sio

from retrain.registry.artifacts import FORMAT, load_model, save_model, serialize, sha256_file
from retrain.storage import atomic_write_bytes
from retrain.data import Schema
from retrain.demo import generate_month
from retrain.errors import ArtifactIntegrityError, ConfigError
from retrain.estimators import EstimatorSource
from retrain.modeling import KINDS, Preprocessing, TrainedModel, fit_model

FEATURES = ("income", "loan_amount", "credit_score", "debt_to_income", "months_employed",
            "home_ownership", "purpose")
SCHEMA = Schema(FEATURES, ("home_ownership", "purpose"))
SMALL_PARAMS = {"random_forest": {"n_estimators": 10, "n_jobs": 1},
                "lightgbm": {"n_estimators": 10, "num_leaves": 7, "min_child_samples": 5},
                "logistic_regression": {},
                "xgboost": {"n_estimators": 10, "max_depth": 3},
                "sklearn": {"max_iter": 10}}
SOURCES = {"sklearn": EstimatorSource(estimator="sklearn.ensemble.HistGradientBoostingClassifier")}


@pytest.fixture(scope="module")
def train():
    return generate_month(0, 600, drifted=False, seed=5)


@pytest.fixture(scope="module")
def scoring_rows():
    """Fresh rows plus rows with unseen categories, null categories and NaN/null numbers."""
    rows = generate_month(1, 200, drifted=True, seed=5).select(FEATURES)
    odd = rows.head(40).with_columns(
        pl.Series("home_ownership", ["SPACESHIP", None] * 20),
        pl.Series("purpose", ["crypto"] * 10 + [None] * 10 + ["car"] * 20),
        pl.Series("income", [float("nan")] * 15 + [None] * 5 + [50_000.0] * 20),
        pl.Series("months_employed", [None] * 40, dtype=pl.Float64),
    )
    return pl.concat([rows, odd])


@pytest.mark.parametrize("kind", KINDS)
def test_loaded_model_predicts_exactly_like_the_fitted_one(kind, train, scoring_rows, tmp_path):
    source = SOURCES.get(kind, EstimatorSource())
    model = fit_model(kind, SMALL_PARAMS[kind], train, SCHEMA, "defaulted", seed=3, source=source)
    path = tmp_path / "models" / f"{kind}.zip"
    sha = save_model(model, path)
    assert sha == sha256_file(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left

    loaded = load_model(path, sha, source)
    X = loaded.preprocessing.transform(scoring_rows)
    assert np.isnan(X[-40:, FEATURES.index("home_ownership")]).all()  # unseen/null -> missing
    assert np.isnan(X[-40:, FEATURES.index("income")][:20]).all()
    expected_labels, expected = model.predict(scoring_rows)
    labels, proba = loaded.predict(scoring_rows)
    assert np.isfinite(proba).all() and len(np.unique(proba)) > 5
    assert np.array_equal(proba, expected)
    assert np.array_equal(labels, expected_labels)
    assert (loaded.kind, loaded.params, loaded.classes) == (model.kind, model.params, model.classes)
    assert loaded.preprocessing == model.preprocessing


def test_atomic_write_replaces_the_file_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "deep" / "folder" / "artifact.zip"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert sorted(p.name for p in target.parent.iterdir()) == ["artifact.zip"]


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "artifact.zip"
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def small_forest(train):
    return fit_model("random_forest", SMALL_PARAMS["random_forest"], train, SCHEMA,
                     "defaulted", seed=3)


def test_a_flipped_byte_is_refused_never_loaded(small_forest, tmp_path):
    path = tmp_path / "m.zip"
    sha = save_model(small_forest, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as info:
        load_model(path, sha)
    message = str(info.value)
    assert str(path) in message and "sha256" in message and sha[:12] in message
    assert "refusing to load" in message


def test_a_missing_artifact_is_an_integrity_error(tmp_path):
    with pytest.raises(ArtifactIntegrityError, match="is missing"):
        load_model(tmp_path / "gone.zip", "0" * 64)


def test_a_corrupt_file_whose_sha_was_recorded_is_an_integrity_error(small_forest, tmp_path):
    path = tmp_path / "m.zip"
    save_model(small_forest, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the compressed estimator
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="not a readable model artifact"):
        load_model(path, sha256_file(path))


class Gadget:
    """Not a scikit-learn type: must never be rebuilt from an artifact."""

    restored = False

    def __setstate__(self, state):
        Gadget.restored = True
        self.__dict__.update(state)


def _artifact_with_skops_payload(path: Path, payload: bytes) -> str:
    prep = Preprocessing(Schema(("x",), ()), {})
    manifest = {"format": FORMAT, "kind": "random_forest", "params": {}, "classes": [0, 1],
                "preprocessing": prep.as_dict()}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("model.skops", payload)
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def test_a_type_outside_the_allow_list_is_refused(tmp_path):
    gadget = Gadget()
    gadget.value = 42
    path = tmp_path / "gadget.zip"
    sha = _artifact_with_skops_payload(path, sio.dumps(gadget))
    with pytest.raises(ArtifactIntegrityError,
                       match=r"refusing to load: .*'test_artifacts.Gadget', which is not trusted"):
        load_model(path, sha)
    assert Gadget.restored is False


def test_a_callable_from_a_trusted_module_is_refused(tmp_path):
    """skops calls the object named by a reduce node: ``builtins.exec`` must not be trusted."""
    witness = tmp_path / "code-ran"
    code = f"open({str(witness)!r}, 'w').write('x')"
    schema = {"__class__": "exec", "__module__": "builtins",
              "__loader__": "ConstructorFromReduceNode", "__id__": 1,
              "content": {"__class__": "tuple", "__module__": "builtins",
                          "__loader__": "TupleNode", "__id__": 2,
                          "content": [{"__class__": "str", "__module__": "builtins",
                                       "__loader__": "JsonNode", "content": json.dumps(code),
                                       "is_json": True, "__id__": 3}]},
              "protocol": 2, "_skops_version": skops.__version__}
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
    assert sio.get_untrusted_types(data=payload.getvalue()) == ["builtins.exec"]
    path = tmp_path / "exec.zip"
    sha = _artifact_with_skops_payload(path, payload.getvalue())
    with pytest.raises(ArtifactIntegrityError, match="builtins.exec"):
        load_model(path, sha)
    assert not witness.exists()


def test_a_model_that_could_not_be_loaded_again_is_never_saved(tmp_path):
    prep = Preprocessing(Schema(("x",), ()), {})
    model = TrainedModel("random_forest", {}, prep, [0, 1], Gadget())
    with pytest.raises(ConfigError, match="cannot store the model: .*Gadget.*not trusted"):
        save_model(model, tmp_path / "gadget.zip")
    assert not (tmp_path / "gadget.zip").exists()
    with pytest.raises(ConfigError):
        serialize(model)
    assert list(tmp_path.iterdir()) == []


def test_a_version_is_unpacked_once_and_its_file_still_checked_at_every_load(tmp_path, monkeypatch):
    """The registry keeps what an artifact holds (by sha256 and trust) so a run does not
    unpack the same version again and again; the file's sha256 is checked at every load."""
    from retrain.registry import Registry, artifacts
    from retrain.demo import generate_month
    registry = Registry(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    model = fit_model("lightgbm", SMALL_PARAMS["lightgbm"], generate_month(0, 600, drifted=False, seed=5),
                      SCHEMA, "defaulted", seed=3)
    version = registry.register_version(
        model_name="m", model=model, train_start=datetime(2026, 1, 1), train_end=datetime(2026, 1, 31),
        holdout_start=None, row_count=600, holdout_rows=0, data_fingerprint="0" * 16,
        metrics={"roc_auc": 0.7}, actor="test")
    unpacked = []
    original = artifacts.model_from_bytes
    monkeypatch.setattr("retrain.registry.registry.model_from_bytes",
                        lambda *a, **k: unpacked.append(1) or original(*a, **k))
    first, second = registry.load(version), registry.load(version)
    assert first is second and len(unpacked) == 1
    path = registry.artifact_file(version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="refusing to load a changed or corrupt file"):
        registry.load(version)  # never from the cache once the file changed
    registry.dispose()
