"""Replay a workspace's feature store period by period under several retraining policies.

At each period end the feature store is cut there (``FeatureStore.as_of``: later rows have not
arrived yet) and each policy runs the library's real pipeline (triggers, training, evaluation,
promotion rule, switch) against a registry of its own in a scratch folder; then the version
each policy serves is scored on the next period's labeled rows. The workspace's own registry,
artifacts and outbox are never opened, and no notification is sent.

Policies:

- ``configured``: the workspace's settings, with ``--set`` overrides;
- ``never``: the first model, bootstrapped at the first period end, frozen;
- ``always``: retrain at every period end and always promote the candidate;
- ``oracle``: retrain at every period end and serve whichever of candidate and production
  does better on the next period (an upper bound no real policy reaches).
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import polars as pl

from retrain.backtest.results import (BacktestResult, ModelTotals, Period, PeriodOutcome,
                                      PolicyResult)
from retrain.config import Settings
from retrain.data import FeatureStore
from retrain.errors import ConfigError, DataValidationError, RetrainError
from retrain.notify.service import NotificationService
from retrain.pipeline.context import RunContext
from retrain.pipeline.run import run_pipeline
from retrain.promotion.decisions import promote_by_hand
from retrain.registry import Registry
from retrain.reporting.tables import number_or_dash as _fmt
from retrain.stats.metrics import LOWER_IS_BETTER, compute_metrics
from retrain.tasks import encode_target
from retrain.workspace import Workspace

log = logging.getLogger("retrain")

POLICIES = {
    "configured": "the workspace's settings",
    "never": "the first model, never retrained",
    "always": "retrain every period and always promote",
    "oracle": "retrain every period, serve the better of candidate and production on the "
              "next period (an upper bound)",
}
ACTOR = "backtest"


class ReplayNotifier(NotificationService):
    """Writes notices to the scratch registry's outbox like any run, and delivers none."""

    def flush(self, now: bool = False) -> dict[str, int]:
        return {"sent": 0, "retry": 0, "failed": 0, "skipped": 0}


def parse_every(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([dhw])", text.strip())
    if not match or int(match.group(1)) < 1:
        raise ConfigError(f"--every: expected a period such as 30d, 12h or 2w, got {text!r}")
    n, unit = int(match.group(1)), match.group(2)
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "w": timedelta(weeks=n)}[unit]


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``promotion.improvement_basis=metric``): values are JSON when they
    parse as JSON, else text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not re.fullmatch(r"[a-z_]+(\.[A-Za-z0-9_.-]+)+", key.strip()):
            raise ConfigError(f"--set: expected SECTION.KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """``settings`` with dotted ``overrides`` applied and checked like the file's values."""
    raw = settings.model_dump(mode="python", exclude={"base_dir"})
    for key, value in overrides.items():
        node = raw
        *path, last = key.split(".")
        for part in path:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {key}: no [{'.'.join(path)}] section to set it in")
            node = node[part]
        node[last] = value
    try:
        return Settings.model_validate({**raw, "base_dir": settings.base_dir})
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, named below
        first = str(exc).splitlines()
        raise ConfigError(f"--set: {first[1] if len(first) > 1 else first[0]}".strip()) from None


def scratch_settings(settings: Settings, folder: Path, policy: str) -> Settings:
    """The policy's settings: its own registry and artifacts in ``folder``, no drift report
    files, no notification channels, no approvals, the performance trigger on the store."""
    s = settings.model_copy(deep=True)
    s.registry.url = f"sqlite:///{folder / 'registry.db'}"
    s.registry.artifacts = str(folder / "artifacts")
    s.drift.save_reports = False
    s.drift.reports_dir = str(folder / "reports")
    s.notifications.email_recipients = []
    s.notifications.smtp_host = None
    s.notifications.webhook_url = None
    s.triggers.performance_source = "store"
    s.promotion.require_approval = False
    for model in s.models.values():
        model.require_approval = False
    if policy == "always":
        s.promotion.min_relative_improvement = 0.0
        s.promotion.require_significance = False
        s.promotion.guardrails = {}
    elif policy == "oracle":  # the rule never promotes: the next period decides (below)
        s.promotion.min_relative_improvement = 1e9
    return s


class _Replay:
    def __init__(self, settings: Settings, folder: Path, policies: list[str], models: list[str]):
        self.models = models
        self.workspaces: dict[str, Workspace] = {}
        for policy in policies:
            policy_settings = scratch_settings(settings, folder / policy, policy)
            (folder / policy).mkdir(parents=True)
            store = FeatureStore(policy_settings) if policy_settings.data is not None else None
            ws = Workspace(policy_settings, store, Registry.from_settings(policy_settings))
            for dataset in policy_settings.dataset_names:
                ws.for_dataset(dataset)  # every store exists, so each can be cut
            self.workspaces[policy] = ws
        self.reader = Workspace(settings, FeatureStore(settings) if settings.data else None, None)

    def cut(self, at: datetime | None) -> None:
        for ws in [*self.workspaces.values(), self.reader]:
            for dataset in ws.settings.dataset_names:
                ws.for_dataset(dataset).store.as_of = at

    def close(self) -> None:
        for ws in self.workspaces.values():
            ws.registry.dispose()


def _time_range(reader: Workspace) -> tuple[datetime, datetime]:
    starts, ends = [], []
    for dataset in reader.settings.dataset_names:
        window = reader.for_dataset(dataset).store.time_range()
        if window is not None:
            starts.append(window.start)
            ends.append(window.end)
    if not starts:
        raise DataValidationError(None, "the feature store has no rows to replay")
    return min(starts), max(ends)


def backtest(settings: Settings, *, start: datetime | None = None, end: datetime | None = None,
             every: str = "30d", policies: list[str] | None = None,
             overrides: dict[str, Any] | None = None, models: list[str] | None = None,
             scratch: Path | None = None) -> BacktestResult:
    """Replay the feature store of ``settings`` (see the module's docstring)."""
    policies = list(policies or POLICIES)
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ConfigError(f"--policy: unknown policy {unknown[0]!r}; expected one of "
                          f"{', '.join(POLICIES)}")
    step = parse_every(every)
    overrides = dict(overrides or {})
    settings = with_overrides(settings, overrides)
    names = list(models or settings.model_names)
    missing = [n for n in names if n not in settings.models]
    if missing:
        raise ConfigError(f"unknown model {missing[0]!r}; configured models: "
                          f"{', '.join(settings.model_names)}")
    with tempfile.TemporaryDirectory(prefix="retrain-backtest-", dir=scratch) as tmp:
        replay = _Replay(settings, Path(tmp), policies, names)
        try:
            return _run(replay, settings, policies, names, step, every, start, end, overrides)
        finally:
            replay.close()


def _run(replay: _Replay, settings: Settings, policies: list[str], names: list[str],
         step: timedelta, every: str, start: datetime | None, end: datetime | None,
         overrides: dict[str, Any]) -> BacktestResult:
    replay.cut(None)
    first, last = _time_range(replay.reader)
    start = start or first + step
    end = min(end or last, last)
    # Periods end a whole step apart, counted back from the end, so every period is scored on
    # a whole next period of rows; the first one ends at ``start`` or after.
    ends = []
    t = end - step
    while t >= start:
        ends.append(t)
        t -= step
    ends.reverse()
    if not ends:
        raise DataValidationError(None, f"nothing to replay: the first period would end "
                                  f"{start:%Y-%m-%d}, less than one period ({every}) before the "
                                  f"data ends {end:%Y-%m-%d} (earlier --from or shorter --every)")
    periods = [Period(end=e.isoformat(), next_end=(e + step).isoformat()) for e in ends]
    outcomes: dict[str, dict[str, list[PeriodOutcome]]] = {p: {n: [] for n in names} for p in policies}
    metrics: dict[str, str] = {}
    for k, period_end in enumerate(ends):
        next_end = period_end + step
        replay.cut(period_end)
        runs = {}
        for policy in policies:
            if policy == "never" and k > 0:
                continue
            started = time.perf_counter()
            ws = replay.workspaces[policy]
            force = policy in ("always", "oracle") and k > 0
            try:
                runs[policy] = (run_pipeline(ws, names, reason="schedule", force=force,
                                             context=RunContext.open(
                                                 ws, names, reason="schedule", force=force,
                                                 notifier=ReplayNotifier(workspace=ws))),
                                time.perf_counter() - started)
            except RetrainError as exc:  # e.g. a window too small to train on yet
                log.warning("backtest %s at %s: %s", policy, period_end, exc)
                runs[policy] = (None, time.perf_counter() - started, str(exc))
        replay.cut(next_end)
        upcoming = _next_rows(replay.reader, names, period_end, next_end)
        for policy in policies:
            ws = replay.workspaces[policy]
            if policy == "always" and policy in runs:
                _promote_rejected(ws, runs[policy][0])
            if policy == "oracle" and policy in runs:
                _serve_the_better(ws, runs[policy][0], upcoming)
            for name in names:
                outcome = _outcome(ws, name, period_end, runs.get(policy), upcoming[name])
                outcomes[policy][name].append(outcome)
                if outcome.metric:
                    metrics[name] = outcome.metric
        log.info("backtest: period %d/%d ending %s: %s", k + 1, len(ends), f"{period_end:%Y-%m-%d}",
                 "; ".join(f"{p} {_fmt(outcomes[p][names[0]][-1].value)}" for p in policies))
    return BacktestResult(
        every=every, periods=periods, models=names, metrics=metrics,
        overrides={k: json.dumps(v) if not isinstance(v, str) else v for k, v in overrides.items()},
        policies={p: _totals(p, outcomes[p], metrics) for p in policies})


def _next_rows(reader: Workspace, names: list[str], after: datetime, until: datetime
               ) -> dict[str, pl.DataFrame]:
    """Each model's next-period labeled rows (read once per dataset)."""
    by_dataset: dict[str, pl.DataFrame] = {}
    out = {}
    for name in names:
        dataset = reader.settings.dataset_of(name)
        if dataset not in by_dataset:
            view = reader.for_dataset(dataset)
            by_dataset[dataset] = view.store.rows(after=after).filter(
                pl.col(view.settings.data.timestamp) <= until).collect()
        out[name] = by_dataset[dataset]
    return out


def _score(ws: Workspace, version, rows: pl.DataFrame) -> tuple[str, float | None]:
    """The version's primary metric on ``rows`` (None when they cannot give one)."""
    model = ws.registry.load(version)
    metric = ws.settings.promotion.metric_for(model.task)
    if rows.height == 0:
        return metric, None
    target = ws.for_model(version.model_name).settings.data.target
    y, _ = encode_target(rows.get_column(target), model.classes, model.task)
    try:
        return metric, compute_metrics(y, model.predict_scores(rows), task=model.task)[metric]
    except (RetrainError, ValueError):  # e.g. one class only in the period
        return metric, None


def _promote_rejected(ws: Workspace, document) -> None:
    """The ``always`` policy: a candidate the rule rejected is promoted anyway."""
    if document is None:
        return
    for name, outcome in document.models.items():
        if outcome.decision == "rejected" and outcome.candidate_version:
            promote_by_hand(ws, outcome.candidate_version, force=True, actor=ACTOR,
                            reason="backtest: the always policy promotes every candidate",
                            notifier=ReplayNotifier(workspace=ws))


def _serve_the_better(ws: Workspace, document, upcoming: dict[str, pl.DataFrame]) -> None:
    """The ``oracle`` policy: the candidate replaces production when it does better on the
    next period (which no real policy can know)."""
    if document is None:
        return
    for name, outcome in document.models.items():
        if outcome.decision != "rejected" or not outcome.candidate_version:
            continue
        production = ws.registry.production_version(name)
        candidate = ws.registry.get_version(outcome.candidate_version)
        metric, ours = _score(ws, candidate, upcoming[name])
        _, theirs = _score(ws, production, upcoming[name])
        if ours is not None and theirs is not None and _better(metric, ours, theirs):
            promote_by_hand(ws, candidate.version_id, force=True, actor=ACTOR,
                            reason="backtest: the oracle serves the better model of the next period",
                            notifier=ReplayNotifier(workspace=ws))


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if metric in LOWER_IS_BETTER else a > b


def _outcome(ws: Workspace, name: str, period_end: datetime, run, rows: pl.DataFrame
             ) -> PeriodOutcome:
    served = ws.registry.production_version(name)
    metric, value = _score(ws, served, rows) if served is not None else (None, None)
    outcome = PeriodOutcome(period_end=period_end.isoformat(),
                            served_version=served.version_id if served else None,
                            metric=metric, value=value, next_rows=rows.height)
    if run is None:
        return outcome
    document, seconds = run[0], run[1]
    outcome.seconds = round(seconds, 3)
    if document is None:
        outcome.reason = run[2]
        return outcome
    model = document.models[name]
    triggers = document.triggers
    drift = triggers.drift.models.get(name)
    volume = triggers.volume.models.get(name)
    performance = triggers.performance.models.get(name) if triggers.performance else None
    outcome.drift = bool(drift and drift.detected)
    outcome.volume = bool(volume and volume.met)
    outcome.performance = bool(performance and performance.triggered)
    outcome.retrained = model.candidate_version is not None
    outcome.decision = model.decision
    outcome.reason = model.reason
    if model.decision == "rejected" and served is not None and \
            served.version_id == model.candidate_version:
        outcome.decision = "promoted"  # by the always or oracle policy, after the rule
    return outcome


def _totals(policy: str, by_model: dict[str, list[PeriodOutcome]], metrics: dict[str, str]
            ) -> PolicyResult:
    totals = {}
    for name, periods in by_model.items():
        values = [p.value for p in periods if p.value is not None and math.isfinite(p.value)]
        lower = metrics.get(name) in LOWER_IS_BETTER
        totals[name] = ModelTotals(
            mean_metric=float(np.mean(values)) if values else None,
            worst_metric=(max(values) if lower else min(values)) if values else None,
            retrains=sum(p.retrained for p in periods),
            promotions=sum(p.decision in ("promoted", "bootstrapped") for p in periods),
            rejections=sum(p.decision == "rejected" for p in periods),
            seconds=round(sum(p.seconds for p in periods), 3))
    means = [t.mean_metric for t in totals.values() if t.mean_metric is not None]
    return PolicyResult(
        policy=policy, description=POLICIES[policy],
        mean_metric=float(np.mean(means)) if means else None,
        retrains=sum(t.retrains for t in totals.values()),
        promotions=sum(t.promotions for t in totals.values()),
        # A run trains every model at once: its time counts once for the policy.
        seconds=round(sum(p.seconds for p in next(iter(by_model.values()), [])), 3),
        totals=totals, periods=by_model)

