"""Drift engine vs Evidently: KS and PSI for every feature, same data, same numbers.

    .venv/bin/python bench/drift.py [--rows 1000000] [--cols 50] [--evidently valuedrift|preset]

Builds a reference and a current frame of ROWS x COLS numeric features (continuous, rounded
with ties, integer-valued with few distinct values, some missing values, some shifted), then

1. ``retrain.drift.compute_drift(reference, current, methods=("ks", "psi"))`` on the raw
   frames (sorting both sides), with its peak memory;
2. the same check against a reference profile made once beforehand (what a scheduled check
   does: only the current window is sorted);
3. Evidently's ``Report`` on the same data: per column ``ValueDrift(method="ks")`` and
   ``ValueDrift(method="psi")`` (``--evidently preset``: ``DataDriftPreset`` with KS for every
   column, then again with PSI), printing progress;

and prints the times, the ratio, the floor (the same run's unavoidable steps: sorting every
column of both sides, and each KS p-value from its statistic) with our time over it, peak
memory, and the largest relative difference between our values and Evidently's.

    .venv/bin/python bench/drift.py --larger-than-memory [--window-rows 20000000]

Larger than memory: the demo workspace with lightgbm in production, then a month of
WINDOW_ROWS new applications in one Parquet file (row groups of 100 000 rows). Each check runs
in a child process that first checks two hours of the window (what every check pays once:
thread pools, the model, SciPy), then, with ``RLIMIT_DATA`` set to what it holds plus a fifth of
the window's features in memory, checks the whole window:

1. ``check_drift`` (features, label and prediction drift), streamed;
2. the feature drift alone, streamed (the window sampled in the scan to ``[drift] max_rows``);
3. the feature drift as it was computed before: the window loaded whole, then sampled; once
   without a limit (its memory) and once under the same limit.

Each prints its wall time, its peak resident memory during the check (VmHWM, reset before
it) and above the RSS before it, and the child's ``ru_maxrss`` (imports and warm-up included).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrain.drift import compute_drift  # noqa: E402
from retrain.drift.profile import build_profile  # noqa: E402
from retrain.data import Schema  # noqa: E402


def make_frames(rows: int, cols: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    ref, cur = {}, {}
    for i in range(cols):
        kind = i % 10
        shift = 0.05 if i % 7 == 0 else 0.0
        if kind < 6:  # continuous
            a, b = rng.normal(size=rows), rng.normal(shift, 1.0, size=rows)
        elif kind < 8:  # rounded: many ties
            a, b = rng.normal(size=rows).round(1), rng.normal(shift, 1.0, size=rows).round(1)
        elif kind == 8:  # integer-valued with few distinct values (PSI bins per value)
            a, b = rng.poisson(3, rows).astype(np.float64), rng.poisson(3 + shift, rows).astype(np.float64)
        else:  # lognormal with 1% missing
            a, b = rng.lognormal(size=rows), rng.lognormal(shift, 1.0, size=rows)
            a[rng.random(rows) < 0.01] = np.nan
            b[rng.random(rows) < 0.01] = np.nan
        ref[f"f{i:02d}"], cur[f"f{i:02d}"] = a, b
    return pl.DataFrame(ref), pl.DataFrame(cur)


class PeakRSS:
    """Peak resident memory of this process while the block runs (Linux: VmHWM reset through
    /proc/self/clear_refs; elsewhere a 5 ms sampler)."""

    def __enter__(self):
        self.before = self._rss()
        self.hwm = self._reset_hwm()
        self.peak = self.before
        self._stop = threading.Event()
        if not self.hwm:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.hwm:
            self.peak = self._status("VmHWM")
        else:
            self._stop.set()
            self._thread.join()
        return False

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def _rss(self) -> int:
        try:
            return self._status("VmRSS")
        except OSError:
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def run_evidently(reference: pl.DataFrame, current: pl.DataFrame, mode: str) -> dict[tuple[str, str], float]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = reference.columns
    definition = DataDefinition(numerical_columns=columns)
    t = time.perf_counter()
    ref_ds = Dataset.from_pandas(reference.to_pandas(), data_definition=definition)
    cur_ds = Dataset.from_pandas(current.to_pandas(), data_definition=definition)
    print(f"  evidently: datasets built in {time.perf_counter() - t:.1f} s", flush=True)
    values: dict[tuple[str, str], float] = {}
    if mode == "preset":
        for method in ("ks", "psi"):
            t = time.perf_counter()
            snap = Report([DataDriftPreset(method=method)]).run(current_data=cur_ds, reference_data=ref_ds)
            for m in snap.dict()["metrics"]:
                if m["config"].get("type", "").endswith("ValueDrift"):
                    values[(m["config"]["column"], method)] = float(m["value"])
            print(f"  evidently: DataDriftPreset(method={method!r}) in {time.perf_counter() - t:.1f} s",
                  flush=True)
        return values
    batch = 5
    for start in range(0, len(columns), batch):
        names = columns[start:start + batch]
        t = time.perf_counter()
        snap = Report([ValueDrift(column=c, method=m) for c in names for m in ("ks", "psi")]).run(
            current_data=cur_ds, reference_data=ref_ds)
        for m in snap.dict()["metrics"]:
            values[(m["config"]["column"], m["config"]["method"])] = float(m["value"])
        print(f"  evidently: columns {start + 1}-{start + len(names)} of {len(columns)} in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
    return values


def floor_seconds(reference: pl.DataFrame, current: pl.DataFrame) -> float:
    """What no KS + PSI check of these frames can skip, timed on the same threads the check
    uses: sorting every column of both sides (as numpy does it for ``compute_drift``) and
    each KS p-value from its statistic (scipy's distribution, exact or asymptotic)."""
    from concurrent.futures import ThreadPoolExecutor

    from retrain.stats.drift import NumericSample, ks_pvalue, ks_statistic

    columns = reference.columns

    def sort_both(column: str) -> None:
        # Each sorted copy is dropped at once, as the check drops it: the floor pays no more
        # fresh memory than the check does.
        np.sort(reference.get_column(column).cast(pl.Float64).to_numpy())
        np.sort(current.get_column(column).cast(pl.Float64).to_numpy())

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        t = time.perf_counter()
        list(pool.map(sort_both, columns))
        sorting = time.perf_counter() - t
    samples = []
    for column in columns:
        r = np.sort(reference.get_column(column).cast(pl.Float64).to_numpy())
        c = np.sort(current.get_column(column).cast(pl.Float64).to_numpy())
        samples.append((NumericSample(r[np.isfinite(r)]), NumericSample(c[np.isfinite(c)])))
    statistics = [ks_statistic(a, b) for a, b in samples]  # not part of the floor
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        t = time.perf_counter()
        list(pool.map(lambda i: ks_pvalue(*samples[i], statistic=statistics[i]),
                      range(len(samples))))
        pvalues = time.perf_counter() - t
    return sorting + pvalues


def _vm_data() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmData in /proc/self/status")


def child(mode: str, directory: str, limit: int) -> int:
    """One check of the larger-than-memory case, in this (child) process; prints JSON."""
    import resource
    from datetime import timedelta

    from retrain.data import validate_frame
    from retrain.drift import detect_drift
    from retrain.drift.check import check_drift, reference_profile
    from retrain.drift.profile import sample_rows
    from retrain.drift.window import feature_sample
    from retrain.workspace import Workspace

    ws = Workspace.open(Path(directory) / "retrain.toml").for_model("lightgbm")
    ws.settings.drift.save_reports = False
    cfg = ws.settings.drift
    production = ws.registry.production_version("lightgbm")
    schema = Schema.from_dict(production.feature_schema)
    profile, _ = reference_profile(ws, production)

    def run():
        newer = ws.store.rows(after=production.train_end, labeled=False)
        if mode == "check":
            check = check_drift(ws, "lightgbm")
            return check.current_window_rows, check.result
        if mode == "streamed":
            window = feature_sample(ws, newer, schema, cfg.max_rows, validate_as="drift current")
            return window.window_rows, detect_drift(profile, window.frame, schema, cfg)
        current = newer.select(schema.features).collect()  # as before: the window whole
        validate_frame(current, schema, target=None, what="drift current")
        return current.height, detect_drift(profile, sample_rows(current, cfg.max_rows), schema, cfg)

    ws.store.as_of = production.train_end + timedelta(hours=2)
    run()  # what every check pays once
    ws.store.as_of = None
    gc.collect()
    if limit:
        resource.setrlimit(resource.RLIMIT_DATA, (_vm_data() + limit, resource.RLIM_INFINITY))
    with PeakRSS() as mem:  # the check's own peak (the high-water mark reset before it)
        t = time.perf_counter()
        window_rows, report = run()
        seconds = time.perf_counter() - t
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the process's peak
    print(json.dumps({"seconds": seconds, "peak": mem.peak, "added": mem.peak - mem.before,
                      "maxrss": maxrss, "window_rows": window_rows,
                      "current_rows": report.current_rows,
                      "drifted": len(report.drifted_features)}))
    return 0


def larger_than_memory(window_rows: int, keep: Path | None) -> int:
    """The larger-than-memory case (see the module's docstring)."""
    import shutil
    import subprocess
    import tempfile

    from retrain.demo import write_large_month, write_workspace
    from retrain.pipeline import run_pipeline
    from retrain.workspace import Workspace

    base = keep or Path(tempfile.mkdtemp(prefix="retrain-bench-drift-"))
    try:
        directory = base / "ws"
        t = time.perf_counter()
        ws = Workspace.open(write_workspace(directory, months=4, rows_per_month=2500, trees=40))
        ws.settings.drift.save_reports = False
        run_pipeline(ws, models=["lightgbm"])
        path = write_large_month(directory, index=4, rows=window_rows, chunk_rows=100_000)
        production = ws.registry.production_version("lightgbm")
        schema = Schema.from_dict(production.feature_schema)
        head = pl.scan_parquet(path).select(schema.features).head(100_000).collect()
        window = head.estimated_size() * window_rows // head.height
        limit = window // 5
        print(f"window: {window_rows:,} rows x {len(schema.features)} features in one Parquet file "
              f"({gib(path.stat().st_size)} on disk, {gib(window)} loaded); written in "
              f"{time.perf_counter() - t:.0f} s; {os.cpu_count()} CPUs; [drift] max_rows "
              f"{ws.settings.drift.max_rows:,}", flush=True)
        print(f"memory limit of each limited child: what it holds after a warm-up check plus "
              f"{gib(limit)} (RLIMIT_DATA; the window is {window / limit:.1f}x that)", flush=True)
        results = {}
        runs = [("check", limit, "check_drift, streamed (features, label, prediction)"),
                ("streamed", limit, "feature drift, streamed"),
                ("in-memory", 0, "feature drift, window loaded whole (as before), no limit"),
                ("in-memory", limit, "feature drift, window loaded whole (as before), limited")]
        for mode, run_limit, title in runs:
            done = subprocess.run([sys.executable, __file__, "--child", mode, str(directory),
                                   str(run_limit)], capture_output=True, text=True)
            if done.returncode != 0:
                lines = [l for l in done.stderr.strip().splitlines() if "backtrace" not in l]
                last = ("out of memory: an allocation failed" if "memory allocation" in done.stderr
                        else (lines or ["(no output)"])[-1][:120])
                print(f"  {title}: FAILED (exit {done.returncode}: {last})", flush=True)
                continue
            r = results[(mode, run_limit)] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {title}: {r['seconds']:.1f} s, peak RSS during the check {gib(r['peak'])} "
                  f"({gib(r['added'])} above the RSS before it; ru_maxrss {gib(r['maxrss'])}), "
                  "statistics on "
                  f"{r['current_rows']:,} of {r['window_rows']:,} rows, {r['drifted']} features "
                  "drifted", flush=True)
        streamed, loaded = results.get(("streamed", limit)), results.get(("in-memory", 0))
        if streamed and loaded:
            print(f"streamed vs loaded whole: {loaded['peak'] / streamed['peak']:.1f}x less peak "
                  f"memory, {loaded['seconds'] / streamed['seconds']:.1f}x the speed")
        return 0 if ("check", limit) in results and streamed else 1
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side (default 1000000)")
    parser.add_argument("--cols", type=int, default=50, help="numeric features (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evidently", choices=["valuedrift", "preset"], default="valuedrift")
    parser.add_argument("--larger-than-memory", action="store_true",
                        help="only the case of a window larger than the memory a check may use")
    parser.add_argument("--window-rows", type=int, default=20_000_000,
                        help="rows of that window (default 20000000)")
    parser.add_argument("--keep", type=Path, help="build that case's workspace here and keep it")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "DIR", "LIMIT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    if args.larger_than_memory:
        logging.getLogger("retrain").setLevel(logging.ERROR)  # not the bootstrap's notices
        return larger_than_memory(args.window_rows, args.keep)

    print(f"data: {args.rows:,} rows x {args.cols} numeric features, reference and current", flush=True)
    reference, current = make_frames(args.rows, args.cols, args.seed)
    gc.collect()
    frames = reference.estimated_size() + current.estimated_size()
    print(f"  input frames: {gib(frames)} together; {os.cpu_count()} CPUs", flush=True)

    with PeakRSS() as mem:
        t = time.perf_counter()
        ours = compute_drift(reference, current, methods=("ks", "psi"), decision="share")
        times = [time.perf_counter() - t]
    for _ in range(2):  # the median of three: one run swings by a tenth on a shared machine
        t = time.perf_counter()
        compute_drift(reference, current, methods=("ks", "psi"), decision="share")
        times.append(time.perf_counter() - t)
    ours_s = sorted(times)[1]
    print(f"ours (raw frames): {ours_s:.2f} s for {len(ours.rows)} statistics (median of 3: "
          f"{', '.join(f'{x:.2f}' for x in times)})", flush=True)
    print(f"  peak memory: {gib(mem.peak)} process RSS ({mem.peak / frames:.2f}x the input frames; "
          f"{gib(mem.peak - mem.before)} above the RSS before the check)", flush=True)

    floor_s = sorted(floor_seconds(reference, current) for _ in range(3))[1]  # median of 3
    print(f"floor (the same data: sorting every column of both sides, then each KS p-value "
          f"from its statistic): {floor_s:.2f} s; ours / floor = {ours_s / floor_s:.2f}",
          flush=True)

    schema = Schema(tuple(reference.columns), ())
    t = time.perf_counter()
    profile = build_profile(reference, schema, max_rows=None, report_rows=1000)
    profile_s = time.perf_counter() - t
    t = time.perf_counter()
    from_profile = compute_drift(profile, current, methods=("ks", "psi"), decision="share")
    check_s = time.perf_counter() - t
    same = from_profile.table().equals(ours.table())
    print(f"ours (stored profile): profile built once in {profile_s:.2f} s; check {check_s:.2f} s; "
          f"results {'identical' if same else 'DIFFERENT'} to the raw-frame run", flush=True)
    del profile, from_profile
    gc.collect()

    t = time.perf_counter()
    import evidently.presets  # noqa: F401 - its import (seconds) is not part of the timing
    print(f"evidently ({args.evidently}): imported in {time.perf_counter() - t:.1f} s (not timed); "
          "running, progress below", flush=True)
    t = time.perf_counter()
    theirs = run_evidently(reference, current, args.evidently)
    evidently_s = time.perf_counter() - t

    diffs = []
    for row in ours.rows:
        expected = theirs.get((row.feature, row.method))
        if expected is None:
            continue
        scale = max(abs(expected), abs(row.value))
        diffs.append(0.0 if scale == 0 else abs(row.value - expected) / scale)
    worst = max(diffs) if diffs else float("nan")
    print()
    print(f"evidently:  {evidently_s:8.2f} s")
    print(f"ours:       {ours_s:8.2f} s  (raw frames)   -> {evidently_s / ours_s:6.1f}x faster")
    print(f"ours:       {check_s:8.2f} s  (with profile) -> {evidently_s / check_s:6.1f}x faster")
    print(f"floor:      {floor_s:8.2f} s  (sorting both sides + p-values) -> ours is "
          f"{ours_s / floor_s:.2f}x the floor (goal <= 1.5x)")
    print(f"peak memory (ours, raw frames): {gib(mem.peak)} = {mem.peak / frames:.2f}x the input "
          f"frames ({gib(frames)}); limit 3x")
    print(f"values compared with Evidently: {len(diffs)}; largest relative difference {worst:.2e} "
          f"({'equal within 1e-9' if worst <= 1e-9 else 'NOT EQUAL'})")
    return 0 if worst <= 1e-9 and same else 1


if __name__ == "__main__":
    sys.exit(main())
