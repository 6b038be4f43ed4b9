"""The performance trigger: the production model's primary metric on newly labeled rows (the
feature store's, or the live traffic's) against its metric at promotion."""

from __future__ import annotations

import logging

import numpy as np
import polars as pl

from retrain.data import validate_frame
from retrain.drift.check import load_profile
from retrain.modeling import encode_target
from retrain.records import Record
from retrain.registry.rules import CURRENT
from retrain.stats.bootstrap import bootstrap_metric, drop_interval, relative_drop
from retrain.stats.cbpe import ESTIMATED_METRICS, expected_and_drawn
from retrain.stats.metrics import compute_metrics
from retrain.triggers.estimate import calibration_of
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
    # With [triggers] performance_estimate: ``current`` combines the realised metric on the
    # labeled rows and the estimate on the rows whose labels have not come yet (by rows).
    labeled_rows: int | None = None
    realised: float | None = None
    estimated_rows: int | None = None
    estimated: float | None = None
    estimated_interval: list[float] | None = None

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
    if triggers.performance_estimate and metric in ESTIMATED_METRICS.get(production.task, ()):
        return _with_estimate(ws, model_name, production, metric)
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
    holdout_y, holdout_p = _holdout(ws, production)
    y_boot, p_boot = _bounded(y, proba, np.random.default_rng(0))
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


def _holdout(ws: Workspace, production) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The production version's holdout labels and scores from its profile (the baseline's
    bootstrap resamples them), or (None, None)."""
    profile = load_profile(ws, production)
    if profile is None or profile.holdout_proba is None:
        return None, None
    return profile.holdout_labels, profile.holdout_proba


def _bounded(y: np.ndarray, scores: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``BOOTSTRAP_MAX_ROWS`` rows of (y, scores), drawn without replacement."""
    if len(y) <= BOOTSTRAP_MAX_ROWS:
        return y, scores
    keep = rng.choice(len(y), BOOTSTRAP_MAX_ROWS, replace=False)
    return y[keep], scores[keep]


def _with_estimate(ws: Workspace, model_name: str, production, metric: str) -> PerformanceCheck:
    """The trigger on the feature store's newest rows, labeled or not: the realised metric on
    those with a label, CBPE's estimate on the others, weighted by rows; its interval draws
    both parts (a bootstrap of the labeled rows, label sets drawn from the calibrated
    probabilities of the unlabeled ones) and the holdout's."""
    triggers = ws.settings.triggers
    target = ws.settings.data.target
    new = ws.store.rows(after=production.train_end, labeled=False).collect()
    if new.height == 0:
        return PerformanceCheck(model=model_name, triggered=False, metric=metric,
                                note="no new rows", source="feature store")
    model = ws.registry.load(production)
    validate_frame(new, model.preprocessing.schema, target=None, what="performance")
    has_label = new.get_column(target).is_not_null().to_numpy()
    labeled, unlabeled = new.filter(pl.Series(has_label)), new.filter(pl.Series(~has_label))
    resamples = triggers.performance_bootstrap
    rng = np.random.default_rng(0)
    parts, draws, weights = [], [], []
    realised = None
    if labeled.height:
        y, _ = encode_target(labeled.get_column(target), model.classes, model.task)
        scores = model.predict_scores(labeled)
        if len(set(y.tolist())) >= 2:
            realised = compute_metrics(y, scores, task=model.task)[metric]
            parts.append(realised)
            draws.append(bootstrap_metric(metric, *_bounded(y, scores, rng), resamples, rng))
            weights.append(labeled.height)
    estimated = interval = None
    if unlabeled.height:
        expected, drawn = expected_and_drawn(model.predict_scores(unlabeled),
                                             calibration_of(ws, production), draws=resamples)
        values = drawn[metric][np.isfinite(drawn[metric])]
        estimated = float(expected[metric])
        tail = (1 - triggers.performance_confidence) / 2
        interval = [float(v) for v in np.quantile(values, [tail, 1 - tail])]
        parts.append(estimated)
        draws.append(rng.choice(values, resamples, replace=True))
        weights.append(unlabeled.height)
    if not parts:
        return PerformanceCheck(model=model_name, triggered=False, metric=metric,
                                note="the labeled rows have one class and none is unlabeled",
                                rows=new.height, labeled_rows=labeled.height, estimated_rows=0)
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    current = float(np.dot(w, parts))
    combined = sum(wi * d for wi, d in zip(w, draws))
    baseline = production.metrics[metric]
    holdout_y, holdout_p = _holdout(ws, production)
    lo, hi = drop_interval(metric, baseline, None, None, holdout_y=holdout_y,
                           holdout_proba=holdout_p, resamples=resamples,
                           confidence=triggers.performance_confidence, current=combined)
    drop = float(relative_drop(metric, baseline, current))
    significant = lo > 0
    triggered = drop >= triggers.performance_max_relative_drop and significant
    n_real = labeled.height if realised is not None else 0
    log.info("performance %s: %s %.4f at promotion, %.4f on %d new rows (realised on %d "
             "labeled%s, estimated on %d unlabeled%s; drop %.1f%%, interval %.1f%% .. %.1f%%) "
             "-> %s", model_name, metric, baseline, current, new.height, n_real,
             f" {realised:.4f}" if realised is not None else "", unlabeled.height,
             f" {estimated:.4f}" if estimated is not None else "", 100 * drop, 100 * lo,
             100 * hi, "DEGRADED" if triggered else "ok")
    return PerformanceCheck(
        model=model_name, triggered=triggered, metric=metric, at_promotion=baseline,
        current=current, relative_drop=drop, rows=n_real + unlabeled.height,
        drop_interval=[lo, hi], confidence=triggers.performance_confidence,
        significant=significant, threshold=triggers.performance_max_relative_drop,
        source="feature store, estimated where unlabeled", labeled_rows=n_real,
        realised=realised, estimated_rows=unlabeled.height, estimated=estimated,
        estimated_interval=interval)


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
