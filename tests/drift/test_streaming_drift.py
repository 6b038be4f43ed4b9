"""The drift check reads its windows in a stream: the sample of a window larger than
``[drift] max_rows`` is chosen in the scan (deterministic, exactly max_rows rows, uniform), a
window that fits gives the report loading it whole gives, a larger one the report of its
sample, and a window several times larger than the memory the check may use is checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from conftest import SMALL
from retrain.data import Schema, validate_frame, validate_window
from retrain.data.stream import count_rows, sample_window
from retrain.demo import append_drifted_month, write_large_month, write_workspace
from retrain.drift import compute_drift, detect_drift
from retrain.drift.check import _prediction_drift, check_drift, reference_profile
from retrain.drift.profile import ReferenceProfile, build_profile, window_profile
from retrain.errors import DataValidationError
from retrain.pipeline import run_pipeline
from retrain.stats.drift import categorical_counts, categorical_sample
from retrain.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
MODEL = "lightgbm"
KEY = ("application_id", "applied_at")  # the demo's [data] entity_id and timestamp


# The sample ---------------------------------------------------------------------------------

def window(rows: int, seed: int = 0) -> pl.LazyFrame:
    rng = np.random.default_rng(seed)
    return pl.LazyFrame({"position": np.arange(rows), "x": rng.normal(size=rows),
                         "id": [f"e{i}" for i in range(rows)], "ts": rng.integers(0, 10, rows)})


@pytest.mark.parametrize("key", [None, ("id", "ts")], ids=["by position", "by entity id"])
def test_the_sample_is_deterministic_exactly_max_rows_and_uniform(key):
    lf = window(200_000)
    first = sample_window(lf, 2_000, key=key)
    again = sample_window(lf, 2_000, key=key)
    assert first.frame.equals(again.frame) and first.window_rows == 200_000 and first.sampled
    assert first.frame.height == 2_000
    positions = first.frame.get_column("position")
    assert positions.n_unique() == 2_000 and positions.is_sorted()  # the window's order
    # Spread over the whole window (not its head), and the values' distribution kept.
    assert stats.kstest(positions.to_numpy() / 200_000, "uniform").pvalue > 0.01
    whole = lf.collect().get_column("x").to_numpy()
    assert stats.ks_2samp(first.frame.get_column("x").to_numpy(), whole).pvalue > 0.01
    other_seed = sample_window(lf, 2_000, key=key, seed=1).frame.get_column("position")
    assert other_seed.to_list() != positions.to_list()


def test_a_window_that_fits_comes_back_whole_and_one_row_more_is_cut_to_max_rows():
    lf = window(1_000)
    fits = sample_window(lf, 1_000, columns=["x", "position"])
    assert not fits.sampled and fits.frame.equals(lf.select("x", "position").collect())
    assert sample_window(lf, None).frame.equals(lf.collect())
    over = sample_window(window(1_001), 1_000)  # the pass keeps every row, the cut does the rest
    assert over.frame.height == 1_000 and over.window_rows == 1_001


def test_a_sample_by_entity_id_does_not_depend_on_how_the_rows_are_stored(tmp_path):
    frame = window(50_000).collect()
    frame.head(20_000).write_parquet(tmp_path / "a.parquet")
    frame.tail(30_000).write_parquet(tmp_path / "b.parquet")
    a, b = pl.scan_parquet(tmp_path / "a.parquet"), pl.scan_parquet(tmp_path / "b.parquet")
    one = sample_window(pl.concat([a, b]), 1_000, key=("id", "ts")).frame
    other = sample_window(pl.concat([b, a.reverse()]), 1_000, key=("id", "ts")).frame
    assert one.height == 1_000 and set(one["position"]) == set(other["position"])
    with pytest.raises(DataValidationError, match="entity"):
        sample_window(pl.concat([a, b]), 1_000, key=("entity", "ts"))


def test_the_streamed_checks_and_counts_are_the_collected_ones():
    schema = Schema(("x", "c"), ("c",))
    good = pl.DataFrame({"x": [1.0, None, 3.0], "c": ["a", None, "b"]})
    bad = [good.with_columns(pl.lit(None, dtype=pl.Float64).alias("x")),
           good.with_columns(pl.Series("x", [1.0, float("inf"), 2.0])),
           good.clear()]
    assert validate_window(good.lazy(), schema, what="drift current") == 3
    for frame in bad:
        with pytest.raises(DataValidationError) as collected:
            validate_frame(frame, schema, target=None, what="drift current")
        with pytest.raises(DataValidationError) as streamed:
            validate_window(frame.lazy(), schema, what="drift current")
        assert str(streamed.value) == str(collected.value)
    labels = pl.DataFrame({"y": [1, 0, None, 1, 1], "z": [0.5, float("nan"), 0.5, None, 2.0],
                           "s": ["b", "a", None, "b", "b"]})
    for col in labels.columns:
        lazy, eager = categorical_counts(labels.lazy(), col), categorical_sample(labels[col])
        assert (lazy.keys, lazy.counts.tolist(), lazy.missing) == \
            (eager.keys, eager.counts.tolist(), eager.missing)


# The check ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory) -> Path:
    """A workspace whose lightgbm is in production on four stable months (no newer rows)."""
    directory = tmp_path_factory.mktemp("stream") / "base"
    ws = Workspace.open(write_workspace(directory, **SMALL))
    ws.settings.drift.save_reports = False
    run_pipeline(ws, models=[MODEL])
    return directory


def copy_of(bootstrapped: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bootstrapped, tmp_path / "ws"))


def open_ws(directory: Path, **drift) -> Workspace:
    ws = Workspace.open(directory / "retrain.toml").for_model(MODEL)
    ws.settings.drift.save_reports = False
    for key, value in drift.items():
        setattr(ws.settings.drift, key, value)
    return ws


def test_a_window_that_fits_gives_the_report_of_loading_it_whole(bootstrapped, tmp_path):
    directory = copy_of(bootstrapped, tmp_path)
    append_drifted_month(directory, index=SMALL["months"], rows=2000)
    ws = open_ws(directory)
    cfg, target = ws.settings.drift, ws.settings.data.target
    production = ws.registry.production_version(MODEL)
    schema = Schema.from_dict(production.feature_schema)
    check = check_drift(ws, MODEL)
    assert check.current_window_rows == check.result.current_rows == 2000

    # What the check did before it streamed: load the windows whole.
    profile, source = reference_profile(ws, production)
    newer = ws.store.rows(after=production.train_end, labeled=False)
    current = newer.select(schema.features).collect()
    assert check.result.as_dict() == detect_drift(profile, current, schema, cfg).as_dict()
    labels = ws.store.rows(after=production.train_end).select(target).collect()
    label_reference = ReferenceProfile(Schema((target,), (target,)), {target: profile.label},
                                       rows=profile.label.n, window_rows=profile.label.n,
                                       max_rows=None)
    assert check.label.as_dict() == compute_drift(label_reference, labels, config=cfg).as_dict()
    prediction, _ = _prediction_drift(ws, production, profile, current, cfg)
    assert check.prediction.as_dict() == prediction.as_dict()
    # The reference profile, streamed, is the one made from the loaded training window.
    start, end = production.train_start, production.train_end
    loaded = build_profile(
        ws.store.rows(start, end, labeled=False).select(schema.features).collect(), schema,
        max_rows=cfg.max_rows, report_rows=cfg.report_rows,
        labels=ws.store.rows(start, end).select(target).collect().get_column(target))
    assert window_profile(ws, start, end, schema).to_bytes() == loaded.to_bytes()


def test_a_window_larger_than_max_rows_gives_the_report_of_its_sample(bootstrapped, tmp_path):
    directory = copy_of(bootstrapped, tmp_path)
    append_drifted_month(directory, index=SMALL["months"], rows=2000)
    ws = open_ws(directory, max_rows=500)
    cfg = ws.settings.drift
    production = ws.registry.production_version(MODEL)
    schema = Schema.from_dict(production.feature_schema)
    check = check_drift(ws, MODEL)
    assert check.detected and check.current_window_rows == 2000
    assert check.result.current_rows == 500 and check.result.reference_rows == 500

    newer = ws.store.rows(after=production.train_end, labeled=False)
    sample = sample_window(newer, 500, columns=[*KEY, *schema.features], key=KEY)
    assert sample.frame.height == 500 and sample.window_rows == count_rows(newer) == 2000
    assert sample.frame.join(newer.collect(), on=list(sample.frame.columns)).height == 500
    profile, _ = reference_profile(ws, production)
    rows = sample.frame.select(schema.features)
    assert check.result.as_dict() == detect_drift(profile, rows, schema, cfg).as_dict()
    prediction, _ = _prediction_drift(ws, production, profile, rows, cfg)
    assert check.prediction.as_dict() == prediction.as_dict()
    # The label's class counts are over every newly labeled row, sampled or not.
    assert check.label.current_rows == 2000


CHILD = textwrap.dedent("""
    import json, resource, sys
    from datetime import timedelta
    from retrain.drift.check import check_drift
    from retrain.workspace import Workspace

    def vm_data():
        for line in open("/proc/self/status"):
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024

    directory, budget = sys.argv[1], int(sys.argv[2])
    ws = Workspace.open(directory + "/retrain.toml")
    ws.settings.drift.save_reports = False
    ws.settings.drift.max_rows = 2000
    production = ws.registry.production_version("lightgbm")
    # A first check on a few hours of the window pays what any check costs once (thread
    # pools, the model, SciPy); the limit is on what the whole window adds.
    ws.store.as_of = production.train_end + timedelta(hours=2)
    check_drift(ws, "lightgbm")
    ws.store.as_of = None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (vm_data() + budget, resource.RLIM_INFINITY))
    check = check_drift(ws, "lightgbm")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"window_rows": check.current_window_rows,
                      "current_rows": check.result.current_rows, "detected": check.detected,
                      "peak_growth": peak - before}))
""")


@pytest.mark.slow
def test_a_window_four_times_the_memory_the_check_may_use_is_checked(bootstrapped, tmp_path):
    directory = copy_of(bootstrapped, tmp_path)
    rows = 3_000_000
    path = write_large_month(directory, index=SMALL["months"], rows=rows, chunk_rows=25_000)
    schema = Schema.from_dict(open_ws(directory).registry.production_version(MODEL).feature_schema)
    head = pl.scan_parquet(path).select(schema.features).head(100_000).collect()
    window_bytes = head.estimated_size() * rows // head.height  # the window's features, loaded
    budget = window_bytes // 4
    env = {**os.environ, "POLARS_MAX_THREADS": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(directory), str(budget)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"the check did not finish within {budget >> 20} MiB more memory (window "
        f"{window_bytes >> 20} MiB): {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["window_rows"] == rows and result["current_rows"] == 2000
    assert result["detected"]
    assert result["peak_growth"] < budget
