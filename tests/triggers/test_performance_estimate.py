"""Performance before the labels come: `retrain estimate` on an unlabeled file, and the
performance trigger with `[triggers] performance_estimate`, which takes the realised metric
where labels exist and CBPE's estimate where they do not yet."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import polars as pl
import pytest

from retrain.demo import generate_month
from retrain.modeling import encode_target
from retrain.pipeline import run_pipeline
from retrain.stats.metrics import compute_metrics
from retrain.triggers import check_performance
from retrain_prefect.cli import main

MODEL = "lightgbm"


@pytest.fixture
def bootstrapped(make_workspace, monkeypatch):
    for key in ("RETRAIN_CONFIG",):
        monkeypatch.delenv(key, raising=False)
    ws = make_workspace()
    run_pipeline(ws, [MODEL], reason="manual")
    return ws


def realised(ws, frame: pl.DataFrame) -> dict[str, float]:
    model = ws.registry.load(ws.registry.production_version(MODEL))
    y, _ = encode_target(frame.get_column("defaulted"), model.classes, model.task)
    return compute_metrics(y, model.predict_scores(frame))


def test_estimate_of_an_unlabeled_file_covers_what_its_labels_say(bootstrapped, tmp_path):
    ws = bootstrapped
    month = generate_month(9, 3000, drifted=False, seed=123)  # rows the model never saw
    path = tmp_path / "unlabeled.parquet"
    month.drop("defaulted").write_parquet(path)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(["--config", str(ws.settings.base_dir / "retrain.toml"), "estimate", MODEL,
                   str(path), "--json"])
    assert rc == 0
    document = json.loads(out.getvalue())
    assert set(document) == {"model", "version_id", "rows", "metrics"}
    assert (document["model"], document["version_id"], document["rows"]) == (MODEL, "lightgbm-v1", 3000)
    assert set(document["metrics"]) == {"roc_auc", "accuracy", "precision", "recall", "f1"}
    truth = realised(ws, month)
    for metric in ("roc_auc", "accuracy"):
        lo, hi = document["metrics"][metric]["interval"]
        assert lo <= document["metrics"][metric]["estimate"] <= hi
        assert lo <= truth[metric] <= hi, (metric, truth[metric], lo, hi)


def near_the_boundary(ws, frame: pl.DataFrame, width: float = 0.12) -> pl.DataFrame:
    """The rows the production model scores near its decision threshold: a shift of the
    inputs toward the boundary, where it is right less often."""
    model = ws.registry.load(ws.registry.production_version(MODEL))
    scores = model.predict_scores(frame)
    return frame.filter(pl.Series(np.abs(scores - 0.5) < width))


def test_the_trigger_sees_a_drop_before_the_labels_come(bootstrapped, monkeypatch):
    ws = bootstrapped
    newest = ws.settings.base_dir / "data" / "applications_99.parquet"
    months = [generate_month(4 + i, 4000, drifted=False, seed=40 + i) for i in range(2)]
    hard = near_the_boundary(ws, pl.concat(months))
    at_promotion = ws.registry.production_version(MODEL).metrics["roc_auc"]
    assert realised(ws, hard)["roc_auc"] < at_promotion - 0.1  # a real drop
    # The labels have not come yet: the target is empty on every new row.
    hard.with_columns(pl.lit(None, dtype=hard.schema["defaulted"]).alias("defaulted")) \
        .write_parquet(newest)
    ws.settings.data.allow_unlabeled_files = True
    ws = type(ws).open(ws.settings)  # a fresh view of the store
    without = check_performance(ws, MODEL)
    assert not without.triggered and without.note == "no new labeled rows"
    ws.settings.triggers.performance_estimate = True
    check = check_performance(ws, MODEL)
    assert check.triggered, check
    assert (check.labeled_rows, check.estimated_rows) == (0, hard.height)
    assert check.realised is None and check.current == pytest.approx(check.estimated)
    assert check.source == "feature store, estimated where unlabeled"
    lo, hi = check.estimated_interval
    assert lo <= realised(ws, hard)["roc_auc"] <= hi


def test_labeled_and_unlabeled_rows_are_weighted_by_rows(bootstrapped):
    ws = bootstrapped
    ws.settings.triggers.performance_estimate = True
    fresh = generate_month(4, 3000, drifted=False, seed=77)
    half = fresh.height // 2
    labeled, unlabeled = fresh.head(half), fresh.tail(fresh.height - half)
    pl.concat([labeled, unlabeled.with_columns(
        pl.lit(None, dtype=fresh.schema["defaulted"]).alias("defaulted"))]).write_parquet(
        ws.settings.base_dir / "data" / "applications_98.parquet")
    ws.settings.data.allow_unlabeled_files = True
    ws = type(ws).open(ws.settings)
    check = check_performance(ws, MODEL)
    assert (check.labeled_rows, check.estimated_rows) == (half, fresh.height - half)
    assert check.realised == pytest.approx(realised(ws, labeled)["roc_auc"])
    weighted = (half * check.realised + (fresh.height - half) * check.estimated) / fresh.height
    assert check.current == pytest.approx(weighted)
    assert not check.triggered  # the same distribution as the training window
