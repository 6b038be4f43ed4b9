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

and prints the times, the ratio, peak memory, and the largest relative difference between our
values and Evidently's.
"""

from __future__ import annotations

import argparse
import gc
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side (default 1000000)")
    parser.add_argument("--cols", type=int, default=50, help="numeric features (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evidently", choices=["valuedrift", "preset"], default="valuedrift")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    print(f"data: {args.rows:,} rows x {args.cols} numeric features, reference and current", flush=True)
    reference, current = make_frames(args.rows, args.cols, args.seed)
    gc.collect()
    frames = reference.estimated_size() + current.estimated_size()
    print(f"  input frames: {gib(frames)} together; {os.cpu_count()} CPUs", flush=True)

    with PeakRSS() as mem:
        t = time.perf_counter()
        ours = compute_drift(reference, current, methods=("ks", "psi"), decision="share")
        ours_s = time.perf_counter() - t
    print(f"ours (raw frames): {ours_s:.2f} s for {len(ours.rows)} statistics", flush=True)
    print(f"  peak memory: {gib(mem.peak)} process RSS ({mem.peak / frames:.2f}x the input frames; "
          f"{gib(mem.peak - mem.before)} above the RSS before the check)", flush=True)

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
    print(f"peak memory (ours, raw frames): {gib(mem.peak)} = {mem.peak / frames:.2f}x the input "
          f"frames ({gib(frames)}); limit 3x")
    print(f"values compared with Evidently: {len(diffs)}; largest relative difference {worst:.2e} "
          f"({'equal within 1e-9' if worst <= 1e-9 else 'NOT EQUAL'})")
    return 0 if worst <= 1e-9 and same else 1


if __name__ == "__main__":
    sys.exit(main())
