"""A team's own models through the whole life of a version: an XGBoost model, a scikit-learn
estimator named by import path and a factory Pipeline holding the team's own type are trained,
promoted, reloaded (sha256 and trusted types checked), served and rolled back."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import polars as pl
import pytest

from conftest import SMALL
from retrain.demo import append_drifted_month, write_workspace
from retrain.errors import ArtifactIntegrityError
from retrain.pipeline import run_pipeline
from retrain.promotion.decisions import rollback_model
from retrain.registry import Registry
from retrain.workspace import Workspace
from own_models import TEAM_MODULE
from serving import AUTH, client_for


MODELS = '''
[models.xgb]
kind = "xgboost"
params = { n_estimators = 60, max_depth = 4, learning_rate = 0.1 }

[models.hgb]
kind = "sklearn"
estimator = "sklearn.ensemble.HistGradientBoostingClassifier"
params = { max_iter = 60, learning_rate = 0.1 }

[models.team]
kind = "sklearn"
factory = "team_models:build"
params = { C = 0.5 }
trusted_types = ["team_models.Log1p"]
'''

NAMES = {"xgb", "hgb", "team"}


@pytest.fixture(scope="module")
def own_workspace(tmp_path_factory):
    directory = tmp_path_factory.mktemp("own") / "ws"
    write_workspace(directory, **SMALL)
    (directory / "team_models.py").write_text(textwrap.dedent(TEAM_MODULE))
    toml = directory / "retrain.toml"
    text = toml.read_text()
    text = text[:text.index("[models.random_forest]")] + MODELS.lstrip() + \
        text[text.index("[triggers]"):]
    toml.write_text(text)
    yield directory
    sys.modules.pop("team_models", None)


def test_own_models_are_trained_promoted_reloaded_served_and_rolled_back(own_workspace):
    ws = Workspace.open(own_workspace / "retrain.toml")
    first = run_pipeline(ws)
    assert {n: m.decision for n, m in first.models.items()} == dict.fromkeys(NAMES, "bootstrapped")

    append_drifted_month(own_workspace, index=SMALL["months"], rows=2000)
    second = run_pipeline(ws, reason="schedule")
    for name, outcome in second.models.items():
        assert outcome.decision == "promoted", (name, outcome.reason)
        assert outcome.production_version_after == f"{name}-v2"
    assert set(second.models) == NAMES

    # Reloaded from the registry: sha256 checked, the team's type trusted by its section only.
    rows = pl.read_parquet(sorted((own_workspace / "data").glob("*.parquet"))[-1]).head(30)
    for name in NAMES:
        version = ws.registry.production_version(name)
        model = ws.registry.load(version)
        assert model.kind == ws.settings.models[name].kind
        assert np.isfinite(model.predict_proba(rows)).all()
    stranger = Registry(ws.settings.registry_url, ws.settings.artifacts_dir)  # no trusted types
    with pytest.raises(ArtifactIntegrityError, match=r"team_models.Log1p.*trusted_types"):
        stranger.load(ws.registry.production_version("team"))
    stranger.dispose()

    features = {k: v for k, v in rows.row(0, named=True).items()
                if k not in ("application_id", "applied_at", "defaulted")}
    expected = {name: float(ws.registry.load(ws.registry.production_version(name))
                            .predict_proba(rows.head(1))[0]) for name in NAMES}
    with client_for(ws) as api:
        for name in NAMES:
            r = api.post(f"/predict/{name}", json={"request_id": f"r-{name}", "features": features},
                         headers=AUTH)
            assert r.status_code == 200, r.text
            assert r.json()["version"] == f"{name}-v2"
            assert r.json()["probability"] == pytest.approx(expected[name], abs=1e-9)

    for name in NAMES:
        result = rollback_model(ws, name, reason="test")
        assert (result["outcome"], result["production_version"]) == ("switched", f"{name}-v1")
    with client_for(ws) as api:
        for name in NAMES:
            r = api.post(f"/predict/{name}", json={"request_id": f"b-{name}", "features": features},
                         headers=AUTH)
            assert r.status_code == 200 and r.json()["version"] == f"{name}-v1", r.text
    ws.registry.dispose()
