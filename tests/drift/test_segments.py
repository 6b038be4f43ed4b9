"""Drift inside segments: many segments do not raise the alarm rate on data that did not
change (two-level false-discovery control), a shift inside one segment is found and named,
and segments with too few rows are merged into "other", which says so."""

from __future__ import annotations

import numpy as np
import polars as pl

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.drift.compute import compute_drift
from retrain.drift.segments import OTHER, segment_drift, simes, two_level_decision

FEATURES = tuple(f"x{i}" for i in range(8))
SCHEMA = Schema(FEATURES, ())
REGIONS = [f"r{i}" for i in range(10)]


def frame(rng, rows_per_region: int, shift: dict[tuple[str, str], float] | None = None,
          tiny: dict[str, int] | None = None) -> pl.DataFrame:
    parts = []
    sizes = {**{r: rows_per_region for r in REGIONS}, **(tiny or {})}
    for region, n in sizes.items():
        data = {f: rng.normal(size=n) + (shift or {}).get((region, f), 0.0) for f in FEATURES}
        parts.append(pl.DataFrame({**data, "region": [region] * n}))
    return pl.concat(parts)


def test_many_segments_do_not_raise_the_false_alarm_rate():
    rng = np.random.default_rng(0)
    config = DriftConfig()
    runs = 100
    alarms = naive = 0
    for _ in range(runs):
        reference, current = frame(rng, 600), frame(rng, 600)
        result = segment_drift(reference, current, "region", SCHEMA, config, min_rows=200)
        assert len(result.segments) == len(REGIONS)
        alarms += result.detected
        # Each segment on its own at alpha, an alarm when any drifts: what the control avoids.
        naive += any(s.report.detected for s in result.segments)
    assert alarms / runs <= 0.10, alarms
    assert naive / runs >= 0.25, naive  # the uncontrolled rate is several times alpha


def test_a_shift_inside_one_segment_is_found_and_named():
    rng = np.random.default_rng(0)
    reference = frame(rng, 800)
    current = frame(rng, 800, shift={("r3", "x5"): 0.35})
    overall = compute_drift(reference.select(FEATURES), current.select(FEATURES))
    assert not overall.detected  # diluted over all regions, the shift is not seen
    result = segment_drift(reference, current, "region", SCHEMA, DriftConfig(), min_rows=200)
    assert result.detected
    assert [(s.value, s.drifted_features) for s in result.drifted] == [("r3", ["x5"])]


def test_small_segments_are_merged_into_other_which_says_so():
    rng = np.random.default_rng(2)
    tiny = {"t1": 120, "t2": 130, "t3": 5}
    reference = frame(rng, 400, tiny=tiny)
    current = frame(rng, 400, tiny=tiny)
    result = segment_drift(reference, current, "region", SCHEMA, DriftConfig(), min_rows=200)
    [other] = [s for s in result.segments if s.value == OTHER]
    assert other.merged == ["t1", "t2", "t3"] and other.current_rows == 255
    assert result.as_dict()["segments"][-1]["merged"] == ["t1", "t2", "t3"]
    # Too few rows even merged: left out, and the note names them.
    few = segment_drift(frame(rng, 400, tiny={"t9": 10}), frame(rng, 400, tiny={"t9": 10}),
                        "region", SCHEMA, DriftConfig(), min_rows=200)
    assert OTHER not in [s.value for s in few.segments] and "t9" in few.note


def test_simes_and_the_two_levels():
    assert simes([0.01, 0.5, 0.9]) == 0.03
    assert simes([]) == 1.0
    selected, cutoffs = two_level_decision([[0.0001, 0.2, 0.3], [0.4, 0.6, 0.9]], 0.05)
    assert selected == [True, False]
    assert cutoffs[1] == 0.0 and 0.0001 <= cutoffs[0] < 0.2


def test_the_check_of_a_model_names_the_segment_that_drifted(make_workspace):
    """End to end on the demo: incomes 15% higher among car loans only are found by the
    check per `purpose` (the whole window's test does not see it), and the summary, the
    event payload and the dashboard's markdown name the segment."""
    from retrain.demo import generate_month
    from retrain.drift.check import check_drift
    from retrain.pipeline import run_pipeline
    from retrain.reporting.model import drift_markdown
    from retrain.triggers.volume import VolumeCheck
    from retrain_prefect.events import drift_event

    ws = make_workspace(rows_per_month=2500)
    run_pipeline(ws, ["lightgbm"], reason="manual")
    month = generate_month(4, 6000, drifted=False, seed=7)
    month = month.with_columns(pl.when(pl.col("purpose") == "car")
                               .then(pl.col("income") * 1.15).otherwise(pl.col("income"))
                               .alias("income"))
    month.write_parquet(ws.settings.base_dir / "data" / "applications_05.parquet")
    ws.settings.drift.save_reports = False
    plain = check_drift(ws, "lightgbm")
    assert "income" not in plain.drifted_features, plain.drifted_features
    ws.settings.drift.segments = ["purpose"]
    check = check_drift(ws, "lightgbm")
    assert check.detected and "features" in check.triggered_by
    summary = check.summary()
    [segments] = summary.segments
    drifted = [(row.value, row.drifted_features) for row in segments.segments if row.detected]
    assert drifted == [("car", ["income"])], (drifted, plain.drifted_features)
    _, payload = drift_event(check)
    assert payload["segments"] == [{"segment": "purpose", "value": "car",
                                    "drifted_features": ["income"]}]
    markdown = drift_markdown(summary, VolumeCheck(model="lightgbm", met=False, new_rows=0,
                                                   threshold=1))
    assert "## Segments by purpose" in markdown and "| car" in markdown
