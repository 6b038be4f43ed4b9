"""Shared pieces of the prediction-service tests: a served workspace, a client with the token,
feature rows and the routing headers of an answer."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from retrain.demo import generate_month, write_workspace
from retrain.experiments import ABTestingManager
from retrain.modeling import fit_model
from retrain.serve import build_app
from retrain.workspace import Workspace

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def train(ws: Workspace, kind: str, seed: int = 1, month: int = 0, trees: int = 15):
    frame = generate_month(month, 600, drifted=False, seed=seed)
    params = {"n_estimators": trees} if kind != "logistic_regression" else {}
    return fit_model(kind, params, frame, ws.store.schema(), "defaulted", seed)


def register(ws: Workspace, name: str, model, promote: bool = True):
    version = ws.registry.register_version(
        model_name=name, model=model, train_start=datetime(2026, 1, 1),
        train_end=datetime(2026, 1, 31), holdout_start=None, row_count=600, holdout_rows=0,
        data_fingerprint="0" * 64, metrics={"roc_auc": 0.7}, actor="test")
    if promote:
        ws.registry.promote(version.version_id, reason="test", actor="test")
    return version


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Workspace:
    """A workspace whose registry has production versions of a LightGBM and a random forest."""
    directory = tmp_path_factory.mktemp("serve")
    write_workspace(directory, months=2, rows_per_month=600, trees=15)
    ws = Workspace.open(directory / "retrain.toml")
    register(ws, "lightgbm", train(ws, "lightgbm"))
    register(ws, "random_forest", train(ws, "random_forest"))
    yield ws
    ws.registry.dispose()


def client_for(ws: Workspace, token: str | None = TOKEN) -> TestClient:
    manager = ABTestingManager(workspace=ws, cache_seconds=ws.settings.serve.refresh_seconds)
    return TestClient(build_app(ws, token, manager=manager))


@pytest.fixture(scope="module")
def api(served):
    """An HTTP client of the service over ``served``, with the token."""
    with client_for(served) as c:
        yield c


def features(i: int = 0, month: int = 1) -> dict:
    row = generate_month(month, 50, drifted=False, seed=3).row(i, named=True)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
            if k not in ("application_id", "applied_at", "defaulted")}


def predict(client, body, model="lightgbm", headers=AUTH):
    return client.post(f"/predict/{model}", json=body, headers=headers)


def locs(response) -> dict[str, str]:
    return {"/".join(str(p) for p in d["loc"]): d["msg"] for d in response.json()["detail"]}
