"""The kinds beyond the three built-in ones: XGBoost, and any scikit-learn estimator named by
import path or built by the user's own factory; their artifacts and the types they may hold."""

from __future__ import annotations

import json
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from retrain.config import settings_from_dict
from retrain.data import Schema
from retrain.demo import generate_month
from retrain.errors import ArtifactIntegrityError, ConfigError
from retrain.estimators import EstimatorSource
from retrain.modeling import fit_model, validate_params
from retrain.registry.artifacts import load_model, save_model
from retrain.stats.metrics import compute_metrics
from own_models import TEAM_MODULE

SCHEMA = Schema(("income", "loan_amount", "credit_score", "debt_to_income", "months_employed", "age",
                 "home_ownership", "purpose"), ("home_ownership", "purpose"))
HGB = EstimatorSource(where="[models.hgb]",
                      estimator="sklearn.ensemble.HistGradientBoostingClassifier")

@pytest.fixture(scope="module")
def train_test():
    return generate_month(0, 1500, drifted=False, seed=3), generate_month(1, 600, drifted=False, seed=3)


@pytest.fixture
def team_code(tmp_path):
    """A workspace folder holding the team's own module (importable only through it)."""
    module = f"team_models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(TEAM_MODULE))
    yield tmp_path, module
    sys.modules.pop(module, None)


def auc(model, test) -> float:
    return compute_metrics(test["defaulted"].to_numpy(), model.predict_proba(test))["roc_auc"]


@pytest.mark.parametrize("kind, params, source", [
    ("xgboost", {"n_estimators": 40, "max_depth": 4}, EstimatorSource()),
    ("sklearn", {"max_iter": 60}, HGB),
])
def test_each_new_kind_learns_is_deterministic_and_reloads_the_same(kind, params, source,
                                                                    train_test, tmp_path):
    train, test = train_test
    a = fit_model(kind, params, train, SCHEMA, "defaulted", seed=1, source=source)
    b = fit_model(kind, params, train, SCHEMA, "defaulted", seed=1, source=source)
    assert np.array_equal(a.predict_proba(test), b.predict_proba(test))
    assert auc(a, test) > 0.7, f"{kind} did not learn the demo relation"
    sha = save_model(a, tmp_path / "m.zip")
    loaded = load_model(tmp_path / "m.zip", sha, source)
    assert np.array_equal(loaded.predict_proba(test), a.predict_proba(test))
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["kind"] == kind and manifest["entry"] in zf.namelist()
    if kind == "xgboost":
        assert manifest["entry"] == "model.ubj"  # XGBoost's own format, no pickle
        assert loaded.estimator.feature_types == ["q"] * 6 + ["c", "c"]
    else:
        assert manifest["estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
        # Categoricals reach the estimator as pandas categoricals, by name.
        assert list(a.estimator.feature_names_in_) == list(SCHEMA.features)
        assert a.estimator.is_categorical_.tolist() == [False] * 6 + [True] * 2


def test_a_seed_reaches_every_unset_random_state(train_test):
    train, _ = train_test
    model = fit_model("sklearn", {"max_iter": 5}, train, SCHEMA, "defaulted", seed=11, source=HGB)
    assert model.estimator.random_state == 11
    fixed = fit_model("sklearn", {"max_iter": 5, "random_state": 3}, train, SCHEMA, "defaulted",
                      seed=11, source=HGB)
    assert fixed.estimator.random_state == 3


def test_a_factory_pipeline_with_the_teams_own_type_needs_it_trusted(team_code, train_test,
                                                                      tmp_path):
    folder, module = team_code
    train, test = train_test
    untrusted = EstimatorSource(where="[models.team]", factory=f"{module}:build", code_dir=folder)
    model = fit_model("sklearn", {"C": 0.5}, train, SCHEMA, "defaulted", seed=1, source=untrusted)
    assert auc(model, test) > 0.7
    with pytest.raises(ConfigError) as refused:
        save_model(model, tmp_path / "refused.zip")
    message = str(refused.value)
    assert f"'{module}.Log1p'" in message and "[models.team] trusted_types" in message
    assert not (tmp_path / "refused.zip").exists()

    trusted = EstimatorSource(where="[models.team]", factory=f"{module}:build", code_dir=folder,
                              trusted_types=(f"{module}.Log1p",))
    model.source = trusted
    sha = save_model(model, tmp_path / "team.zip")
    loaded = load_model(tmp_path / "team.zip", sha, trusted)
    assert np.array_equal(loaded.predict_proba(test), model.predict_proba(test))
    # Trust comes from the configuration at load time, never from the artifact itself.
    with pytest.raises(ArtifactIntegrityError, match=rf"{module}.Log1p.*trusted_types"):
        load_model(tmp_path / "team.zip", sha, untrusted)


@pytest.mark.parametrize("kind, params, source, needle", [
    ("xgboost", {"max_depht": 3}, EstimatorSource(), "XGBoost has no parameter 'max_depht'"),
    ("xgboost", {"max_depth": -2}, EstimatorSource(), "max_depth"),
    ("xgboost", {"n_estimators": 0}, EstimatorSource(), "n_estimators must be at least 1"),
    ("sklearn", {"max_iter": -1}, HGB, "max_iter"),
    ("sklearn", {"leaves": 3}, HGB, "leaves"),
    ("sklearn", {}, EstimatorSource(where="[models.m]", estimator="sklearn.ensemble.NoSuchModel"),
     "[models.m] estimator: module 'sklearn.ensemble' has no 'NoSuchModel'"),
    ("sklearn", {}, EstimatorSource(where="[models.m]", estimator="nosuchpackage.Model"),
     "[models.m] estimator: cannot import 'nosuchpackage'"),
    ("sklearn", {}, EstimatorSource(where="[models.m]", estimator="sklearn.preprocessing.StandardScaler"),
     "StandardScaler has no predict_proba()"),
    ("sklearn", {}, EstimatorSource(where="[models.m]", factory="json:dumps"),
     "dumps() missing 1 required positional argument"),
])
def test_bad_parameters_and_sources_are_refused_before_training(kind, params, source, needle):
    with pytest.raises(ConfigError) as refused:
        validate_params(kind, params, 0, f"{source.where} params", source)
    assert needle in str(refused.value)


@pytest.mark.parametrize("section, needle", [
    ({"kind": "sklearn"}, 'kind "sklearn" needs exactly one of estimator'),
    ({"kind": "sklearn", "estimator": "a.B", "factory": "a:b"}, "exactly one of"),
    ({"kind": "lightgbm", "estimator": "a.B"}, 'estimator and factory are for kind "sklearn"'),
    ({"kind": "sklearn", "factory": "no_colon"}, "[models.m.factory]"),
    ({"kind": "catboost"}, "[models.m.kind]: Input should be"),
])
def test_the_model_section_is_checked_when_loaded(tmp_path, section, needle):
    with pytest.raises(ConfigError) as refused:
        settings_from_dict({"data": {"source": "data", "target": "y", "timestamp": "t"},
                            "models": {"m": section}}, base_dir=tmp_path)
    assert needle in str(refused.value)


def test_a_workspace_model_section_names_its_source(tmp_path):
    settings = settings_from_dict(
        {"data": {"source": "data", "target": "y", "timestamp": "t"},
         "models": {"m": {"kind": "sklearn", "factory": "team:build", "trusted_types": ["team.X"]}}},
        base_dir=tmp_path)
    source = EstimatorSource.of(settings, "m")
    assert source == EstimatorSource(where="[models.m]", factory="team:build",
                                     trusted_types=("team.X",), code_dir=Path(tmp_path))
