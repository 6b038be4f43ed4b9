"""The performance trigger: the production model's primary metric on newly labeled rows (the
feature store's, or the live traffic's) against its metric at promotion."""

from __future__ import annotations

import logging

import numpy as np

from retrain.data import validate_frame
from retrain.drift.check import load_profile
from retrain.modeling import encode_target
from retrain.records import Record
from retrain.registry.rules import CURRENT
from retrain.stats.bootstrap import drop_interval, relative_drop
from retrain.stats.metrics import compute_metrics
from retrain.triggers.live import live_outcomes
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


# Rows the bootstrap of the performance trigger resamples at most (more only narrows it).
BOOTSTRAP_MAX_ROWS = 200_000


class PerformanceCheck(Record):
    """The production model's primary metric on newly labeled rows against at promotion."""

    model: str
    triggered: bool
    metric: str
    at_promotion: float | None = None
    current: float | None = None
    relative_drop: float | None = None
    rows: int = 0
    note: str = ""
    # Bootstrap interval of the relative drop; the trigger needs its lower end above zero.
    drop_interval: list[float] | None = None
    confidence: float | None = None
    significant: bool | None = None
    threshold: float | None = None
    source: str = "feature store"  # or "live feedback" (served predictions and their labels)

    def as_dict(self) -> dict:
        return self.to_dict()


def check_performance(ws: Workspace, model_name: str, production=CURRENT) -> PerformanceCheck:
    """The production model's primary metric on new labeled rows vs its metric at promotion.

    The rows are the feature store's labeled rows newer than the training window, or, with
    ``[triggers] performance_source`` "live" (or "auto" once there are enough), the production
    version's served predictions that got a label through ``POST /feedback``.
    Triggers when the relative drop reaches ``performance_max_relative_drop`` and the
    bootstrap interval of the drop (``performance_confidence``) lies above zero, so a drop
    that small samples produce by chance does not retrain.
    """
    ws = ws.for_model(model_name)
    triggers = ws.settings.triggers
    production = ws.registry.production_of(model_name, production)
    metric = ws.settings.promotion.metric_for(production.task if production else
                                              ws.settings.data.task or "binary")

    def untriggered(note: str, **known) -> PerformanceCheck:
        return PerformanceCheck(model=model_name, triggered=False, metric=metric, note=note, **known)

    if production is None:
        return untriggered("no production version yet")
    outcomes = _live_outcomes(ws, production) if triggers.performance_source != "store" else None
    if outcomes is None or isinstance(outcomes, str):
        if triggers.performance_source == "live":
            return untriggered(outcomes or "", source="live feedback")
        outcomes = _store_outcomes(ws, production)
        if isinstance(outcomes, str):
            return untriggered(outcomes)
    y, proba, source = outcomes
    if production.task != "regression" and len(set(y.tolist())) < 2:
        return untriggered(f"the labeled rows ({source}) have one class", rows=len(y), source=source)
    current = compute_metrics(y, proba, task=production.task)[metric]
    baseline = production.metrics[metric]
    drop = float(relative_drop(metric, baseline, current))
    profile = load_profile(ws, production)
    holdout_y = holdout_p = None
    if profile is not None and profile.holdout_proba is not None:
        holdout_y, holdout_p = profile.holdout_labels, profile.holdout_proba
    if len(y) > BOOTSTRAP_MAX_ROWS:
        keep = np.random.default_rng(0).choice(len(y), BOOTSTRAP_MAX_ROWS, replace=False)
        y_boot, p_boot = y[keep], proba[keep]
    else:
        y_boot, p_boot = y, proba
    lo, hi = drop_interval(metric, baseline, y_boot, p_boot, holdout_y=holdout_y,
                           holdout_proba=holdout_p, resamples=triggers.performance_bootstrap,
                           confidence=triggers.performance_confidence)
    significant = lo > 0
    triggered = drop >= triggers.performance_max_relative_drop and significant
    log.info("performance %s: %s %.4f at promotion, %.4f on %d new rows of %s (drop %.1f%%, "
             "%.0f%% interval %.1f%% .. %.1f%%) -> %s", model_name, metric, baseline, current,
             len(y), source, 100 * drop, 100 * triggers.performance_confidence, 100 * lo, 100 * hi,
             "DEGRADED" if triggered else "ok")
    return PerformanceCheck(model=model_name, triggered=triggered, metric=metric,
                            at_promotion=baseline, current=current, relative_drop=drop, rows=len(y),
                            drop_interval=[lo, hi], confidence=triggers.performance_confidence,
                            significant=significant,
                            threshold=triggers.performance_max_relative_drop, source=source)


def _store_outcomes(ws: Workspace, production) -> tuple[np.ndarray, np.ndarray, str] | str:
    """Labels and the production model's probabilities on the feature store's labeled rows
    newer than its training window, or why there are none."""
    new = ws.store.rows(after=production.train_end).collect()
    if new.height == 0:
        return "no new labeled rows"
    model = ws.registry.load(production)
    target = ws.settings.data.target
    validate_frame(new, model.preprocessing.schema, target=target, what="performance",
                   task=model.task)
    y, _ = encode_target(new.get_column(target), model.classes, model.task)
    return y, model.predict_scores(new), "feature store"


def _live_outcomes(ws: Workspace, production) -> tuple[np.ndarray, np.ndarray, str] | str:
    """The production version's served predictions that have a label since its promotion,
    or why they are not enough (fewer than ``performance_min_live_outcomes``)."""
    needed = ws.settings.triggers.performance_min_live_outcomes
    y, proba = live_outcomes(ws.registry, production.model_name, production.version_id,
                             since=production.promoted_at, limit=BOOTSTRAP_MAX_ROWS,
                             task=production.task)
    if len(y) < needed:
        return (f"{len(y)} live outcomes of {production.version_id} since its promotion "
                f"(need {needed})")
    return y, proba, "live feedback"
