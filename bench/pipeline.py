"""Orchestration overhead and where a run's time goes: the demo pipeline under Prefect vs the
same library calls made directly, at 1x and 10x the demo's rows.

    .venv/bin/python bench/pipeline.py [--rounds 3] [--scales 1,10] [--with-subflow-heartbeats]

Each round builds identical demo workspaces (``retrain demo``'s data: six stable months of
2,500 loan applications, 150 trees per model; at scale N, N x 2,500 rows a month and an
N x 5,000-row drifted month) and runs the demo's two pipeline runs in each: the bootstrap,
then, after the drifted month is appended, the monthly run that detects the drift, retrains,
evaluates and promotes. One workspace goes through ``retrain.pipeline.run_pipeline`` (the
library steps called directly), the other through the ``retraining-pipeline`` flow against a
local Prefect API (the temporary server ``retrain run`` starts, ``retrain_prefect.ephemeral``,
in a temporary PREFECT_HOME, started and warmed up before anything is timed), with the
settings ``retrain`` gives processes that start flows themselves
(``retrain_prefect.environment.LOCAL_ENV``; a variable set in the environment wins, which is
how a setting is compared with Prefect's default) and flows run against that server
(``retrain_prefect.ephemeral.temporary_server_settings``). ``--with-subflow-heartbeats`` adds
a third variant: the flow with heartbeats in every flow and subflow (Prefect's default), to
show what ``retrain_prefect.common.step_settings`` and the temporary server's settings save.

Wall time is what the issue's target (Prefect / direct <= 1.10 at 10x) is about. On a busy
machine it swings by seconds from one run to the next (LightGBM's OpenMP threads suffer most),
so the bench also times the library steps inside each variant: wall - steps is what
orchestration added, whatever the steps cost that time. The order of the variants alternates
by round.

Where the steps' time goes (load, fit, serialize, ...) is measured by wrapping library
functions where they are looked up (module attributes, a few class methods); each piece of
time counts once, for the innermost wrapped call it is in. The bench prints which names it
found: code that moved (or work done in other processes) is not counted, and the bench says so
rather than failing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import importlib
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="retrain-bench-"))
os.environ["PREFECT_HOME"] = str(TMP / "prefect-home")
os.environ.pop("PREFECT_API_URL", None)
for key in [k for k in os.environ if k.startswith("RETRAIN_")]:
    os.environ.pop(key)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrain_prefect.environment import LOCAL_ENV, set_defaults  # noqa: E402

set_defaults()  # before Prefect is imported, as the command line does
LOCAL_SETTINGS = {k: os.environ[k] for k in LOCAL_ENV}  # what this run used (env wins)

from retrain.demo import append_drifted_month, write_workspace  # noqa: E402
from retrain.pipeline import run_pipeline, steps  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402

DEMO_ROWS_PER_MONTH, DEMO_DRIFTED_ROWS = 2500, 5000


# Where the time goes ---------------------------------------------------------------------

# The table's rows, in order; a step's own time (what its wrapped calls leave) goes to the row
# of its step name, other steps' to "other".
PARTS = ["load", "fit", "train (rest)", "serialize", "evaluate", "drift", "report", "deploy",
         "other"]
STEP_PARTS = {"load-new-data": "load", "retrain-models": "train (rest)",
              "evaluate-models": "evaluate", "check-drift": "drift", "deploy-models": "deploy"}
# (module, name, part): a function, wrapped in that module and in every retrain module that
# imported it by name; or Class.method, wrapped on the class.
HOOKS = [
    ("polars", "LazyFrame.collect", "load"),  # every read of the feature store ends in one
    ("retrain.data.store", "FeatureStore.scan", "load"),
    ("retrain.data.store", "FeatureStore.schema", "load"),
    ("retrain.data.validation", "validate_frame", "load"),
    ("retrain.training.data", "load_training_sets", "load"),
    ("retrain.modeling", "fit_model", "fit"),
    ("retrain.registry.artifacts", "serialize", "serialize"),  # packing the artifact
    ("retrain.registry.registry", "Registry.register_version", "serialize"),  # its write, its row
    ("retrain.reporting.evidently", "render_evidently", "report"),
    ("retrain.drift.report_files", "write_reports", "report"),  # the drift report files
    ("retrain.pipeline.report_files", "write_run_reports", "report"),  # the run's files
]
_PART_OF = [part for *_, part in HOOKS]


class Clock:
    """Seconds by part, each second counted once: for the innermost wrapped call it is in
    (per thread). ``steps``: the steps' own wall time (the library's work of a run)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.reset()

    def reset(self) -> None:
        self.parts: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()  # by hook or step name
        self.steps = 0.0
        self.step_runs: collections.Counter[str] = collections.Counter()  # by kind: flow, task

    def wrap(self, fn, part: str, label: str, step_kind: str | None = None):
        clock = self

        @functools.wraps(fn)  # keeps a step's mark (fn.step)
        def timed(*args, **kwargs):
            stack = clock._local.__dict__.setdefault("stack", [])
            frame = [0.0]  # seconds of wrapped calls inside this one
            stack.append(frame)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                stack.pop()
                clock.parts[part] += elapsed - frame[0]
                clock.calls[label] += 1
                if stack:
                    stack[-1][0] += elapsed
                if step_kind is not None:
                    clock.steps += elapsed
                    clock.step_runs[step_kind] += 1

        timed.__bench_wrapped__ = fn
        return timed

    def snapshot(self) -> dict:
        return {"parts": dict(self.parts), "steps": self.steps, "calls": dict(self.calls),
                "step_runs": dict(self.step_runs)}


clock = Clock()
found: list[str] = []  # the hooks wrapped, where
missing: list[str] = []  # the hooks not found


def _retrain_modules():
    return [m for name, m in list(sys.modules.items())
            if m is not None and (name == "retrain" or name.startswith(("retrain.", "retrain_prefect.")))]


def wrap_hooks() -> None:
    """Wrap each hook where it is looked up; say which were found."""
    for module_name, name, part in HOOKS:
        label = f"{module_name}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(f"{label} (no module)")
            continue
        if "." in name:  # Class.method
            owner_name, attribute = name.split(".", 1)
            owner = getattr(module, owner_name, None)
            original = getattr(owner, attribute, None) if owner is not None else None
            if original is None:
                missing.append(label)
                continue
            setattr(owner, attribute, clock.wrap(original, part, label))
            found.append(label)
            continue
        original = getattr(module, name, None)
        if not callable(original):
            missing.append(label)
            continue
        timed = clock.wrap(original, part, label)
        where = []
        for other in _retrain_modules() + [module]:
            if getattr(other, name, None) is original:
                setattr(other, name, timed)
                where.append(other.__name__)
        found.append(f"{label} (in {', '.join(sorted(set(where)))})")
    for name in list(vars(steps)):  # run.py looks each step up on the steps module
        fn = getattr(steps, name)
        info = getattr(fn, "step", None)
        if info is None or not hasattr(info, "name"):
            continue
        setattr(steps, name, clock.wrap(fn, STEP_PARTS.get(info.name, "other"), f"step {info.name}",
                                        step_kind=info.kind))
        found.append(f"step {info.name} ({info.kind}) -> {STEP_PARTS.get(info.name, 'other')}")


# Prefect's client retries ----------------------------------------------------------------

class RetryCounter(logging.Handler):
    """Counts the Prefect client's retries and the seconds it waited before them. A SQLite
    server often answers an insert with 503 ("database is locked"); the client then sleeps
    about two seconds, which moves the ratio by about 0.25 per retry: the bench says how many
    there were, so one unlucky round is not taken for orchestration cost."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.retries, self.waited = 0, 0.0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Another attempt will be made in" in message:
            self.retries += 1
            found = re.search(r"made in ([0-9.]+)s", message)
            self.waited += float(found.group(1)) if found else 0.0

    def take(self) -> tuple[int, float]:
        taken = (self.retries, self.waited)
        self.retries, self.waited = 0, 0.0
        return taken


retries = RetryCounter()


def instrument() -> None:
    import retrain_prefect.flows.pipeline  # noqa: F401  imports Prefect, which configures its loggers
    client_log = logging.getLogger("prefect.client")
    client_log.addHandler(retries)
    client_log.setLevel(logging.DEBUG)  # the retry message is a debug record...
    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        if handler.level < logging.INFO:  # ...which the console shows no more than before
            handler.setLevel(logging.INFO)
    wrap_hooks()


# The variants ----------------------------------------------------------------------------

def run_direct(config: Path, reason: str):
    return run_pipeline(Workspace.open(config), reason=reason)


def run_prefect(config: Path, reason: str):
    from retrain_prefect.ephemeral import temporary_server
    from retrain_prefect.flows.pipeline import retraining_pipeline
    with temporary_server():  # as `retrain run` does
        return retraining_pipeline(config=str(config), reason=reason)


def demo(run, directory: Path, scale: int) -> dict:
    """Wall time of the demo's two pipeline runs (not of writing its data), with where the
    steps' time went."""
    config = write_workspace(directory, rows_per_month=DEMO_ROWS_PER_MONTH * scale)
    clock.reset()
    started = time.perf_counter()
    first = run(config, "manual")
    elapsed = time.perf_counter() - started
    append_drifted_month(directory, rows=DEMO_DRIFTED_ROWS * scale)
    started = time.perf_counter()
    second = run(config, "schedule")
    elapsed += time.perf_counter() - started
    assert {m.decision for m in first.models.values()} == {"bootstrapped"}, first.models
    assert second.triggers.drift.detected, "the drifted month was not detected"
    return {"wall": elapsed, **clock.snapshot()}


@contextlib.contextmanager
def subflow_heartbeats():
    """Prefect's default: every flow and subflow sends (and joins) its own heartbeats, also
    against the temporary server."""
    import retrain_prefect.ephemeral
    import retrain_prefect.flows.drift_check
    import retrain_prefect.flows.pipeline
    original = retrain_prefect.flows.pipeline.step_settings
    original_server = retrain_prefect.ephemeral.temporary_server_settings
    retrain_prefect.flows.pipeline.step_settings = retrain_prefect.flows.drift_check.step_settings = contextlib.nullcontext
    retrain_prefect.ephemeral.temporary_server_settings = contextlib.nullcontext
    try:
        yield
    finally:
        retrain_prefect.flows.pipeline.step_settings = retrain_prefect.flows.drift_check.step_settings = original
        retrain_prefect.ephemeral.temporary_server_settings = original_server


def warm_up() -> float:
    """Start the local API and import everything once, outside the timings."""
    started = time.perf_counter()
    demo(run_prefect, TMP / "warm-prefect", 1)
    demo(run_direct, TMP / "warm-direct", 1)
    return time.perf_counter() - started


def uptime() -> str:
    try:
        return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"


# Printing --------------------------------------------------------------------------------

def median_of(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def median_part(results: list[dict], part: str) -> float:
    return statistics.median(r["parts"].get(part, 0.0) for r in results)


def print_parts(results: dict[tuple[int, str], list[dict]], scales: list[int],
                variants: list[str]) -> None:
    columns = [(s, v) for s in scales for v in variants if (s, v) in results]
    print("\nwhere the steps' time goes (seconds per demo = bootstrap run + drift run, median)")
    print(f"  {'part':<14}" + "".join(f"{f'{s}x {v}':>14}" for s, v in columns))
    for part in PARTS:
        print(f"  {part:<14}" + "".join(f"{median_part(results[c], part):13.2f}s" for c in columns))
    print(f"  {'steps':<14}" + "".join(f"{median_of(results[c], 'steps'):13.2f}s" for c in columns))
    print(f"  {'wall':<14}" + "".join(f"{median_of(results[c], 'wall'):13.2f}s" for c in columns))
    for c in columns:
        parts = statistics.median(sum(r["parts"].values()) for r in results[c])
        steps_total = median_of(results[c], "steps")
        if parts > steps_total * 1.02 + 0.05:
            print(f"  note ({c[0]}x {c[1]}): the parts add up to {parts:.2f}s, more than the "
                  f"steps' {steps_total:.2f}s: some of the work ran in parallel threads")
    fit_calls = sum(r["calls"].get("retrain.modeling.fit_model", 0)
                    for rs in results.values() for r in rs)
    if not fit_calls:
        print("  note: no fit_model call was seen (training ran elsewhere: another process, "
              "a Dask worker, or a name the bench does not wrap); fit is in 'train (rest)' or "
              "not counted")
    print("  load: the feature store's scans, reads (LazyFrame.collect) and validation, and the\n"
          "  load-new-data step; fit: fit_model; train (rest): the rest of retrain-models (holdout\n"
          "  scores, the reference profile); serialize: packing the artifact, writing it and its\n"
          "  version row; report: the Evidently page, the drift report files and the run's files;\n"
          "  other: the remaining steps (notifications, volume, skip); steps: the steps' wall time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scales", default="1,10",
                        help="demo sizes, comma-separated multiples of its rows (default 1,10)")
    parser.add_argument("--with-subflow-heartbeats", action="store_true")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    instrument()
    print("timed:\n  " + "\n  ".join(found), flush=True)
    if missing:
        print("NOT FOUND (their time stays in the step that calls them):\n  "
              + "\n  ".join(missing), flush=True)
    print("settings (LOCAL_ENV, or the environment where set): "
          + ", ".join(f"{k}={v}" for k, v in LOCAL_SETTINGS.items()), flush=True)

    variants = {"direct": lambda d, s: demo(run_direct, d, s),
                "prefect": lambda d, s: demo(run_prefect, d, s)}
    if args.with_subflow_heartbeats:
        def prefect_subflow_heartbeats(directory: Path, scale: int) -> dict:
            with subflow_heartbeats():
                return demo(run_prefect, directory, scale)
        variants["prefect+subflow heartbeats"] = prefect_subflow_heartbeats

    print(f"warm-up (local Prefect API, imports, one demo of each): {warm_up():.1f}s "
          f"({uptime()})", flush=True)
    results: dict[tuple[int, str], list[dict]] = collections.defaultdict(list)
    retries.take()
    for scale in scales:
        for i in range(args.rounds):
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for name in order:
                directory = TMP / f"x{scale}-round{i}-{name.replace(' ', '-').replace('+', '-')}"
                result = variants[name](directory, scale)
                result["retries"], result["waited"] = retries.take()
                results[scale, name].append(result)
            print(f"{scale}x round {i + 1} ({uptime()}): " + ", ".join(
                f"{n} {results[scale, n][-1]['wall']:.2f}s (steps {results[scale, n][-1]['steps']:.2f}s"
                + (f", {results[scale, n][-1]['retries']} API retries waiting "
                   f"{results[scale, n][-1]['waited']:.1f}s" if results[scale, n][-1]["retries"] else "")
                + ")" for n in variants), flush=True)

    print_parts(results, scales, list(variants))

    print(f"\nPrefect's cost (median of {args.rounds} rounds; a demo is 2 pipeline runs)")
    print(f"  {'scale':<6}{'variant':<28}{'wall':>8}{'ratio':>7}{'steps x':>8}{'orch.':>8}"
          f"{'added':>8}{'/run':>7}{'/subflow':>9}{'runs':>12}{'retries':>8}{'waited':>8}")
    for scale in scales:
        direct = results[scale, "direct"]
        direct_wall = median_of(direct, "wall")
        direct_orchestration = statistics.median(r["wall"] - r["steps"] for r in direct)
        for name in variants:
            rs = results[scale, name]
            wall = median_of(rs, "wall")
            orchestration = statistics.median(r["wall"] - r["steps"] for r in rs)
            steps_x = statistics.median(r["wall"] / r["steps"] for r in rs)
            added = orchestration - direct_orchestration
            runs = rs[0]["step_runs"]
            flows, tasks = runs.get("flow", 0), runs.get("task", 0)
            # Prefect objects per demo: the two parent flow runs, their subflows and tasks.
            objects = 2 + flows + tasks
            count = sum(r["retries"] for r in rs)
            waited = sum(r["waited"] for r in rs)
            shown = "-" if name == "direct" else f"{added:7.2f}s"
            per_run = "-" if name == "direct" else f"{added / 2:6.2f}s"
            per_object = "-" if name == "direct" else f"{added / objects:8.3f}s"
            what = "-" if name == "direct" else f"2+{flows}f+{tasks}t"
            print(f"  {f'{scale}x':<6}{name:<28}{wall:7.2f}s{wall / direct_wall:7.3f}{steps_x:8.3f}"
                  f"{orchestration:7.2f}s{shown:>8}{per_run:>7}{per_object:>9}{what:>12}"
                  f"{count:8d}{waited:7.1f}s")
    print("  ratio: wall / direct wall (target <= 1.10 at 10x); steps x: wall / library steps of\n"
          "  the same runs (noise in the steps cancels); orch.: wall - library steps; added: orch.\n"
          "  minus direct's orch. (what Prefect added), per pipeline run and per subflow (each\n"
          "  Prefect flow or task run: 2 parent flows + f subflows + t tasks per demo); retries,\n"
          "  waited: the Prefect client's retries over all rounds (mostly 503 'database is locked'\n"
          "  from the SQLite server) and the seconds it slept before them")
    print(f"({uptime()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
