"""Feature store and validation at the boundary: every bad input names its column."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from retrain.config import settings_from_dict
from retrain.data import FeatureStore, Schema, fingerprint, temporal_split, validate_frame
from retrain.errors import DataValidationError
from retrain.training import load_training_data


def frame(n: int = 200, start: datetime = datetime(2026, 1, 1), seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "ts": [start + timedelta(hours=i) for i in range(n)],
        "x1": rng.normal(size=n), "x2": rng.integers(0, 10, n),
        "cat": rng.choice(["a", "b", "c"], n),
        "y": rng.integers(0, 2, n),
    })


def settings(tmp_path: Path, **data):
    raw = {"data": {"source": "data", "target": "y", "timestamp": "ts", **data},
           "models": {"rf": {"kind": "random_forest", "params": {"n_estimators": 5}}},
           "training": {"window": "all"}}
    return settings_from_dict(raw, base_dir=tmp_path)


def store(tmp_path: Path, *frames: pl.DataFrame, csv: bool = False, **data) -> FeatureStore:
    d = tmp_path / "data"
    d.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        if csv:
            f.write_csv(d / f"part{i}.csv")
        else:
            f.write_parquet(d / f"part{i}.parquet")
    return FeatureStore(settings(tmp_path, **data))


def test_schema_is_inferred(tmp_path):
    s = store(tmp_path, frame()).schema()
    assert s.features == ("x1", "x2", "cat")
    assert s.categorical == ("cat",)


def test_csv_and_parquet_read_the_same(tmp_path):
    a = store(tmp_path / "a", frame(), csv=True).scan().collect()
    b = store(tmp_path / "b", frame()).scan().collect()
    assert a.height == b.height == 200
    assert a["ts"].to_list() == b["ts"].to_list()


def test_windows(tmp_path):
    fs = store(tmp_path, frame(100), frame(100, start=datetime(2026, 2, 1), seed=1))
    full = fs.time_range()
    assert full.start == datetime(2026, 1, 1) and full.end == datetime(2026, 2, 1) + timedelta(hours=99)
    assert fs.count_rows(fs.rows(after=datetime(2026, 1, 31))) == 100
    assert fs.count_rows(fs.rows(datetime(2026, 1, 1), datetime(2026, 1, 1, 9))) == 10


def test_unlabeled_rows_are_not_counted_as_labeled(tmp_path):
    f = frame(50).with_columns(pl.when(pl.col("x2") > 4).then(None).otherwise(pl.col("y")).alias("y"))
    fs = store(tmp_path, f)
    labeled = f["y"].drop_nulls().len()
    assert fs.count_rows(fs.rows(labeled=True)) == labeled < 50
    assert fs.count_rows(fs.rows(labeled=False)) == 50


@pytest.mark.parametrize("drop, column, problem", [
    ("y", "y", "target column is missing"),
    ("ts", "ts", "timestamp column is missing"),
])
def test_missing_target_or_timestamp(tmp_path, drop, column, problem):
    fs = store(tmp_path, frame().drop(drop))
    with pytest.raises(DataValidationError) as info:
        fs.schema()
    assert info.value.column == column and problem in str(info.value)


def test_missing_configured_feature(tmp_path):
    fs = store(tmp_path, frame(), features=["x1", "x3"])
    with pytest.raises(DataValidationError, match="'x3': feature column is missing"):
        fs.schema()


def test_feature_type_changed_between_files(tmp_path):
    bad = frame(start=datetime(2026, 2, 1)).with_columns(pl.col("x1").cast(pl.String))
    fs = store(tmp_path, frame(), bad)
    with pytest.raises(DataValidationError, match="'x1': type changed between files"):
        fs.scan()


def test_feature_type_changed_since_production(tmp_path):
    fs = store(tmp_path, frame().with_columns(pl.col("x2").cast(pl.String)))
    expected = Schema(("x1", "x2", "cat"), ("cat",))
    with pytest.raises(DataValidationError, match="'x2': type changed: the production model was trained on numeric"):
        fs.schema(expected=expected)


def test_int_to_float_is_not_a_type_change(tmp_path):
    later = frame(start=datetime(2026, 2, 1)).with_columns(pl.col("x2").cast(pl.Float64))
    fs = store(tmp_path, frame(), later)
    assert fs.scan().collect().height == 400


def test_all_null_column(tmp_path):
    df = frame().with_columns(pl.lit(None, dtype=pl.Float64).alias("x1"))
    with pytest.raises(DataValidationError, match="'x1': all values are null in the training window"):
        validate_frame(df, Schema(("x1", "x2"), ()), target="y", what="training")


def test_infinite_values(tmp_path):
    df = frame().with_columns(pl.when(pl.col("x2") == 3).then(np.inf).otherwise(pl.col("x1")).alias("x1"))
    with pytest.raises(DataValidationError, match=r"'x1': non-finite values \(inf\)"):
        validate_frame(df, Schema(("x1",), ()), target="y", what="training")


def test_nan_values_are_allowed(tmp_path):
    df = frame().with_columns(pl.when(pl.col("x2") == 3).then(np.nan).otherwise(pl.col("x1")).alias("x1"))
    validate_frame(df, Schema(("x1",), ()), target="y", what="training")


def test_empty_window():
    with pytest.raises(DataValidationError, match="the current window is empty"):
        validate_frame(frame().head(0), Schema(("x1",), ()), target="y", what="current")


def test_one_class_training_window():
    df = frame().with_columns(pl.lit(1).alias("y"))
    with pytest.raises(DataValidationError, match="'y': the training window has only one class"):
        validate_frame(df, Schema(("x1",), ()), target="y", what="training", require_two_classes=True)


def test_null_labels_and_multiclass():
    with pytest.raises(DataValidationError, match="'y': 3 null labels"):
        validate_frame(frame().with_columns(pl.when(pl.col("x2") == 100).then(0).otherwise(None).alias("y")).head(3),
                       Schema(("x1",), ()), target="y", what="training")
    with pytest.raises(DataValidationError, match="a binary target needs 2 classes, found 3.*task = \"multiclass\""):
        validate_frame(frame().with_columns((pl.col("x2") % 3).alias("y")), Schema(("x1",), ()),
                       target="y", what="training")


def test_no_files(tmp_path):
    fs = FeatureStore(settings(tmp_path))
    with pytest.raises(DataValidationError, match="no Parquet or CSV files"):
        fs.scan()


def test_temporal_split_keeps_the_newest_rows_out_and_never_splits_an_instant():
    df = frame(100).with_columns(pl.col("ts").dt.truncate("1d"))  # 24 rows share each day
    train, holdout = temporal_split(df, "ts", 0.2)
    assert train["ts"].max() < holdout["ts"].min()
    assert train.height + holdout.height == 100
    assert holdout.height >= 20


def test_fingerprint_tells_data_apart():
    a, b = frame(seed=1), frame(seed=2)
    assert fingerprint(a) == fingerprint(a.clone())
    assert fingerprint(a) != fingerprint(b)
    assert len(fingerprint(a)) == 16


def test_invalid_training_data_writes_nothing(make_workspace):
    ws = make_workspace()
    bad = pl.read_parquet(next((ws.settings.base_dir / "data").glob("*.parquet")))
    bad = bad.with_columns(pl.lit(None, dtype=pl.Float64).alias("income"))
    for f in (ws.settings.base_dir / "data").glob("*.parquet"):
        bad.write_parquet(f)
    with pytest.raises(DataValidationError, match="'income': all values are null"):
        load_training_data(ws)
    assert ws.registry.models() == []


def test_training_window_by_days_and_rows(tmp_path):
    fs = store(tmp_path, frame(24 * 30))  # 30 days, hourly
    from retrain.config import TrainingConfig
    w = fs.training_window(TrainingConfig(window="10d"))
    assert w.end - w.start == timedelta(days=10)
    w = fs.training_window(TrainingConfig(window="48rows"))
    assert fs.count_rows(fs.rows(w.start, w.end)) == 48
    assert fs.training_window(TrainingConfig(window="all")).start == datetime(2026, 1, 1)


def test_workspace_rejects_unknown_model(workspace):
    from retrain.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown model 'xgboost'; configured models: "
                                          "random_forest, lightgbm"):
        workspace.model_names(["xgboost"])
    with pytest.raises(ConfigError, match="unknown model 'xgboost'"):
        workspace.model_names(["lightgbm", "xgboost"])  # one bad name in a list is named too
    assert workspace.model_names("lightgbm") == ["lightgbm"]
    assert workspace.model_names(None) == workspace.model_names([]) == ["random_forest", "lightgbm"]


# Data that must not silently change production ---------------------------------------------

def _run_with_new_column(make_workspace, drift_month, policy: str | None):
    from retrain.pipeline import run_pipeline
    ws = make_workspace(f"new-{policy}")
    ws.settings.drift.save_reports = False
    run_pipeline(ws, ["lightgbm"])
    path = drift_month(ws)
    pl.read_parquet(path).with_columns(pl.lit(1.0).alias("extra_0")).write_parquet(path)
    if policy:
        ws.settings.data.new_columns = policy
    return ws, run_pipeline


def test_a_new_column_is_left_out_by_default_and_named(make_workspace, drift_month):
    ws, run = _run_with_new_column(make_workspace, drift_month, None)
    doc = run(ws, ["lightgbm"], reason="schedule")
    outcome = doc.models["lightgbm"]
    assert outcome.new_columns_ignored == ["extra_0"] and outcome.features_added == []
    candidate = ws.registry.get_version(outcome.candidate_version)
    assert "extra_0" not in candidate.feature_schema["features"]
    assert candidate.feature_schema == ws.registry.get_version("lightgbm-v1").feature_schema


def test_a_new_column_fails_the_model_when_configured_so(make_workspace, drift_month):
    ws, run = _run_with_new_column(make_workspace, drift_month, "error")
    doc = run(ws, ["lightgbm"], reason="schedule")
    outcome = doc.models["lightgbm"]
    assert doc.success is False and outcome.decision == "failed"
    assert "new column(s) 'extra_0'" in outcome.reason and "[data] new_columns" in outcome.reason
    assert [v.version_id for v in ws.registry.versions("lightgbm")] == ["lightgbm-v1"]


def test_a_new_column_included_is_named_in_the_document_and_the_notices(make_workspace, drift_month):
    ws, run = _run_with_new_column(make_workspace, drift_month, "include")
    doc = run(ws, ["lightgbm"], reason="schedule")
    outcome = doc.models["lightgbm"]
    assert outcome.features_added == ["extra_0"]
    candidate = ws.registry.get_version(outcome.candidate_version)
    assert candidate.feature_schema["features"][-1] == "extra_0"
    assert "new features extra_0" in outcome.reason
    from retrain.notify import NotificationService
    notices = [m for m in NotificationService(workspace=ws).outbox.messages()
               if m.kind in ("pending_promotion", "rejection")]
    assert "new features extra_0" in notices[0].body_text


def test_rows_from_the_future_are_an_error_naming_the_file(tmp_path):
    future = frame(10).with_columns(pl.lit(datetime(2099, 1, 1)).alias("ts"))
    fs = store(tmp_path, frame(50), future)
    with pytest.raises(DataValidationError, match=r"10 rows of .*part1.parquet are stamped "
                                                  r"later than now plus \[data\] max_future \(1d\)"):
        fs.scan()
    fs.config.max_future = "30000d"  # a margin beyond 2099: the rows are accepted
    fs._scanned = None
    assert fs.count_rows(fs.rows()) == 60
    with pytest.raises(ValidationError, match="at most 36500 days"):
        fs.config.max_future = "99999d"


def test_a_file_without_the_target_is_an_error_unless_allowed(tmp_path):
    fs = store(tmp_path, frame(50), frame(10).drop("y"))
    with pytest.raises(DataValidationError, match=r"target column is missing in .*part1.parquet; "
                                                  r"set \[data\] allow_unlabeled_files"):
        fs.scan()
    fs.config.allow_unlabeled_files = True
    fs._scanned = None
    assert fs.count_rows(fs.rows()) == 50 and fs.count_rows(fs.rows(labeled=False)) == 60


def test_rows_without_a_timestamp_are_counted_and_above_a_share_an_error(tmp_path):
    nulls = frame(5).with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("ts"))
    fs = store(tmp_path, frame(995), nulls)
    fs.scan()
    assert fs.report.rows_without_timestamp == 5 and fs.report.rows == 1000
    fs.config.max_null_timestamp_share = 0.001
    fs._scanned = None
    with pytest.raises(DataValidationError, match=r"5 of 1000 rows have no timestamp \(5 in .*part1"):
        fs.scan()
