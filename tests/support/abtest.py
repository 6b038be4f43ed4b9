"""Shared pieces of the A/B-test and rollout tests: a workspace with two registered versions,
a manager, and traffic with chosen per-variant accuracy."""

from __future__ import annotations

from datetime import datetime

import pytest

from retrain.experiments import ABTestingManager
from retrain.pipeline import run_pipeline
from retrain.registry.tables import Experiment
from retrain.workspace import Workspace

MODEL = "lightgbm"


def add_version(ws: Workspace, model_name: str = MODEL) -> str:
    """Register another version of the model (a copy of production's artifact, as a candidate)."""
    source = ws.registry.versions(model_name)[0]
    version = ws.registry.register_version(
        model_name=model_name, model=ws.registry.load(source), train_start=source.train_start,
        train_end=source.train_end, holdout_start=source.holdout_start,
        row_count=source.row_count, holdout_rows=source.holdout_rows,
        data_fingerprint=source.data_fingerprint, metrics=source.metrics, actor="test")
    return version.version_id


@pytest.fixture
def ab_workspace(make_workspace) -> Workspace:
    """A workspace whose lightgbm model has production v1 and candidates v2 and v3."""
    ws = make_workspace("ab")
    run_pipeline(ws, [MODEL])
    add_version(ws)
    add_version(ws)
    return ws


@pytest.fixture
def manager(ab_workspace) -> ABTestingManager:
    # A long cache: these tests see changes only through refresh() (or the manager's own).
    return ABTestingManager(workspace=ab_workspace, cache_seconds=3600)


START = datetime(2026, 3, 1)


def set_salt(ws, test_id: str, salt: str) -> None:
    """Fix a test's salt so that which key lands in which variant is the same in every run."""
    with ws.registry.transaction() as s:
        s.get(Experiment, test_id).salt = salt


def simulate(manager, accuracy: dict[str, float], n: int, rng, *, start: int = 0,
             prefix: str = "r", at: datetime = START) -> None:
    """``n`` requests routed by the manager; each variant is right with its own probability."""
    predictions, feedback = [], []
    for i in range(start, start + n):
        key = f"{prefix}-{i}"
        route = manager.route(MODEL, key)
        label = 1.0 if rng.random() < accuracy[route.variant] else 0.0
        predictions.append({"request_id": key, "model_name": MODEL, "version_id": route.version_id,
                            "variant": route.variant, "experiment_id": route.experiment_id,
                            "prediction": 1.0, "probability": 0.7, "at": at})
        feedback.append({"request_id": key, "label": label, "at": at})
    manager.log_predictions(predictions)
    manager.log_feedback(feedback)
