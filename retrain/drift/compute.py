"""Drift of a current window against a reference: per-feature statistics and the decision.

``compute_drift(reference, current)`` takes polars or pandas frames (or a stored
:class:`~retrain.drift.profile.ReferenceProfile` as the reference) and returns a
:class:`DriftReport`: one row per feature and method (``.table()``) and the dataset-level
decision (``.drifted``).

Methods: ``ks`` (numeric) and ``psi`` give Evidently 0.7's numbers, computed here on sorted
arrays (see :mod:`retrain.stats.drift`); ``psi_quantile`` is PSI over reference deciles;
``chi2_homogeneity`` is a two-sample chi-square test for categorical columns; any other name
(``wasserstein``, ``jensenshannon``, ``chisquare``, ...) runs Evidently's own test.
``domain_classifier`` is dataset-level (:mod:`retrain.drift.domain`): a classifier that tells
current rows from reference rows sees changes in the joint distribution the per-feature tests
miss; its alarm (``report.domain``) makes the dataset drift whatever the features say.

Decision rules (``decision``):

* ``share`` (Evidently's): a feature drifts by its methods' thresholds (``feature_rule``
  combines them); the dataset drifts when the share of drifted features >= ``drift_share``.
* ``bh``: Benjamini-Hochberg at level ``alpha`` over one p-value per feature (KS for numeric,
  chi-square homogeneity for categorical); the dataset drifts when any feature is rejected.
  On stationary data this fires with probability <= ``alpha`` (Simes' test), however many
  features there are, yet a drift in a single feature can still fire it.
* ``bonferroni``: the same p-values against ``alpha / m``; valid under any dependence between
  features, less sensitive.

Whatever the rule, a feature drifts only when its effect (``effect``: the KS statistic of a
numeric feature, the total variation distance of a categorical one, both in [0, 1]) is at
least ``min_effect``; a feature the rule flagged below it is *held back* (``held_back``). On
large windows every p-value test finds the smallest shift; the gate keeps the alarm for
shifts of a size that matters.

With the production version's permutation importances (stored in its reference profile),
each feature carries its importance share and ``rank`` (by importance x effect); a drifted
feature whose share is below ``min_importance`` is reported (``drifted_features``) but not
counted in the dataset decision (``below_importance``).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from retrain.config import DriftConfig
from retrain.data import Schema, dtype_family
from retrain.drift.domain import DOMAIN_THRESHOLD, DomainDrift, domain_classifier
from retrain.drift.profile import ReferenceProfile, sample_rows
from retrain.errors import ConfigError, DataValidationError
from retrain.stats.drift import (CategoricalSample, NumericSample, categorical_sample,
                                 chi2_homogeneity_pvalue, effect_size, evidently_methods,
                                 evidently_supports, evidently_test, ks_pvalue, ks_statistic,
                                 numeric_sample, psi, psi_quantile, sample_to_pandas)

log = logging.getLogger(__name__)

OWN_METHODS = ("ks", "psi", "psi_quantile", "chi2_homogeneity", "domain_classifier")
DATASET_METHODS = ("domain_classifier",)  # one verdict for all features, not one per feature
DECISIONS = ("share", "bh", "bonferroni")
# The test whose p-value represents a feature under the bh / bonferroni rules.
PVALUE_TEST = {"numeric": "ks", "categorical": "chi2_homogeneity"}


@dataclass
class MethodResult:
    """One row of the table: a feature's value for one method and what it means."""

    feature: str
    kind: str  # numeric | categorical
    method: str
    value: float
    threshold: float
    drifted: bool
    # The feature's effect size, and whether this row's test fired but the effect was below
    # ``min_effect`` (then ``drifted`` is false).
    effect: float | None = None
    held_back: bool = False


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical
    psi: float | None
    ks_pvalue: float | None
    drifted: bool
    pvalue: float | None = None  # the p-value the bh / bonferroni rules use
    values: dict[str, float] = field(default_factory=dict)  # method -> value
    # What decided it: the method, its value and the cut-off it was held to.
    decided_by: str | None = None
    statistic: float | None = None
    cutoff: float | None = None
    effect: float | None = None  # KS statistic (numeric) or total variation (categorical)
    held_back: bool = False  # the rule flagged it, its effect was below min_effect
    # Its share of the model's permutation importance (None: unknown), importance x effect,
    # and its rank by that (by effect alone without importances), 1 first.
    importance: float | None = None
    impact: float | None = None
    rank: int | None = None
    below_importance: bool = False  # drifted, importance share below min_importance


@dataclass
class DriftReport:
    """Per-feature results and the dataset-level decision of one drift computation."""

    detected: bool
    share: float
    drifted_features: list[str]
    features: list[FeatureDrift]
    reference_rows: int
    current_rows: int
    thresholds: dict[str, Any] = field(default_factory=dict)
    rows: list[MethodResult] = field(default_factory=list)
    methods: tuple[str, ...] = ("ks", "psi")
    decision: str = "share"
    # Drifted features whose importance share is below min_importance: reported, and left out
    # of the dataset decision.
    below_importance: list[str] = field(default_factory=list)
    domain: DomainDrift | None = None  # the domain classifier's verdict, when it ran

    @property
    def drifted(self) -> bool:
        """The dataset-level decision."""
        return self.detected

    def table(self) -> pl.DataFrame:
        """One row per feature and method: feature, method, value, threshold, drifted, and the
        feature's effect size with whether the effect gate held the row back."""
        return pl.DataFrame([{"feature": r.feature, "method": r.method, "value": r.value,
                              "threshold": r.threshold, "drifted": r.drifted,
                              "effect": r.effect, "held_back": r.held_back} for r in self.rows],
                            schema={"feature": pl.String, "method": pl.String, "value": pl.Float64,
                                    "threshold": pl.Float64, "drifted": pl.Boolean,
                                    "effect": pl.Float64, "held_back": pl.Boolean})

    def table_rows(self) -> list[dict[str, Any]]:
        """The table as JSON-ready dicts (with the feature's kind)."""
        return [asdict(r) for r in self.rows]

    def feature_rows(self) -> list[dict[str, Any]]:
        """One short row per feature (PSI rounded, KS p-value to 4 significant digits)."""
        return [{"feature": f.feature, "kind": f.kind,
                 "psi": None if f.psi is None else round(f.psi, 4),
                 "ks_pvalue": None if f.ks_pvalue is None else float(f"{f.ks_pvalue:.4g}"),
                 "decided_by": f.decided_by,
                 "statistic": None if f.statistic is None else float(f"{f.statistic:.4g}"),
                 "cutoff": None if f.cutoff is None else float(f"{f.cutoff:.4g}"),
                 "drifted": f.drifted,
                 "effect": _sig(f.effect), "held_back": f.held_back,
                 "importance": _sig(f.importance), "impact": _sig(f.impact), "rank": f.rank,
                 "below_importance": f.below_importance} for f in self.features]

    def drifted_values(self) -> list[dict[str, Any]]:
        """The drifted features with their values per method (for alerts and events), with
        their effect, importance share and rank (by importance x effect)."""
        return [{"feature": f.feature, "kind": f.kind, "values": dict(f.values),
                 "pvalue": f.pvalue, "effect": f.effect, "importance": f.importance,
                 "rank": f.rank, "below_importance": f.below_importance}
                for f in self.features if f.drifted]

    def as_dict(self) -> dict[str, Any]:
        return {"detected": self.detected, "share": self.share,
                "drifted_features": list(self.drifted_features),
                "features": self.feature_rows(), "table": self.table_rows(),
                "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "methods": list(self.methods), "decision": self.decision,
                "thresholds": dict(self.thresholds),
                "below_importance": list(self.below_importance),
                "domain_classifier": None if self.domain is None else self.domain.as_dict()}


def _sig(value: float | None) -> float | None:
    """4 significant digits (a short row's precision)."""
    return None if value is None else float(f"{value:.4g}")


DriftResult = DriftReport  # the name the first drift trigger used


# Inputs -----------------------------------------------------------------------------------

def _to_polars(frame: Any, what: str) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    try:
        import pandas as pd  # late: only for a caller who passes pandas frames
        if isinstance(frame, pd.DataFrame):
            return pl.from_pandas(frame)
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    raise TypeError(f"{what} must be a polars or pandas DataFrame, got {type(frame).__name__}")


def _infer_schema(reference: pl.DataFrame, features: Sequence[str] | None,
                  categorical: Sequence[str] | None) -> Schema:
    names = list(features) if features is not None else list(reference.columns)
    declared = set(categorical or ())
    kinds = []
    for col in names:
        if col not in reference.columns:
            raise DataValidationError(col, "feature column is missing from the reference")
        family = dtype_family(reference.schema[col])
        if family == "other" and col not in declared:
            raise DataValidationError(col, f"unsupported feature type {reference.schema[col]}")
        kinds.append(col in declared or family == "categorical")
    return Schema(tuple(names), tuple(c for c, cat in zip(names, kinds) if cat))


def _check_methods(methods: Iterable[str]) -> tuple[str, ...]:
    methods = tuple(dict.fromkeys(methods))
    if not methods:
        raise ConfigError("[drift] methods: at least one method is required")
    for m in methods:
        if m in OWN_METHODS:
            continue
        known = evidently_methods()
        if m not in known:
            raise ConfigError(f"[drift] methods: unknown drift method {m!r}; expected one of "
                              f"{', '.join(OWN_METHODS)} or an Evidently test: {', '.join(known)}")
    return methods


# Per feature ------------------------------------------------------------------------------

def _method_result(name: str, kind: str, method: str, ref, cur,
                   thresholds: dict[str, float], ks: float | None = None) -> MethodResult | None:
    categorical = kind == "categorical"
    if method == "ks":
        if categorical:
            return None
        value, threshold = ks_pvalue(ref, cur, ks), thresholds["ks"]
        return MethodResult(name, kind, method, value, threshold, value <= threshold)
    if method in ("psi", "psi_quantile"):
        value = psi(ref, cur) if method == "psi" else psi_quantile(ref, cur)
        threshold = thresholds[method]
        return MethodResult(name, kind, method, value, threshold, value >= threshold)
    if method == "chi2_homogeneity":
        if not categorical:
            return None
        value, threshold = chi2_homogeneity_pvalue(ref, cur), thresholds[method]
        return MethodResult(name, kind, method, value, threshold, value <= threshold)
    if not evidently_supports(method, categorical):
        return None
    value, drifted, threshold = evidently_test(method, sample_to_pandas(ref), sample_to_pandas(cur),
                                               categorical, thresholds.get(method))
    return MethodResult(name, kind, method, value, threshold, drifted)


def _feature_results(name: str, kind: str, ref, cur, methods: tuple[str, ...],
                     thresholds: dict[str, float]) -> list[MethodResult]:
    """The feature's row for each method that applies to it, each with its effect size."""
    if ref.n == 0 or cur.n == 0:
        side = "reference" if ref.n == 0 else "current"
        raise DataValidationError(name, f"all values are null in the drift {side} window")
    # The KS statistic is both the numeric effect and what the KS p-value is computed from.
    ks = ks_statistic(ref, cur) if kind == "numeric" else None
    effect = effect_size(ref, cur, ks)
    rows = []
    for method in methods:
        if method in DATASET_METHODS:
            continue
        row = _method_result(name, kind, method, ref, cur, thresholds, ks)
        if row is not None:
            row.effect = effect
            rows.append(row)
    return rows


# Decisions --------------------------------------------------------------------------------

def benjamini_hochberg_cutoff(pvalues: Sequence[float], alpha: float) -> float:
    """The largest ``k/m * alpha`` with ``p_(k) <= k/m * alpha``; every p-value at or below it
    is rejected. With no rejection, ``alpha / m`` (what the smallest p-value had to reach)."""
    p = np.sort(np.asarray(pvalues, dtype=np.float64))
    m = p.shape[0]
    critical = alpha * np.arange(1, m + 1) / m
    passing = np.flatnonzero(p <= critical)
    return float(critical[passing[-1]]) if passing.size else alpha / m


def pvalue_cutoff(pvalues: Sequence[float], decision: str, alpha: float) -> float:
    """The threshold each p-value is held to under ``decision`` (``bh`` or ``bonferroni``):
    a feature drifts when its p-value is at or below it, the dataset when any feature does."""
    if decision == "bh":
        return benjamini_hochberg_cutoff(pvalues, alpha)
    if decision == "bonferroni":
        return alpha / len(pvalues)
    raise ValueError(f"not a p-value rule: {decision!r}")


def _feature_rule_drifted(rule: str, rows: list[MethodResult]) -> bool:
    if not rows:
        return False
    by_method = {r.method: r.drifted for r in rows}
    if rule in ("ks", "psi") and rule in by_method:
        return by_method[rule]
    if rule == "both":
        return all(by_method.values())
    return any(by_method.values())  # "any", or the named test does not apply (categorical KS)


def _decisive_row(rows: list[MethodResult], kind: str, decision: str, feature_rule: str,
                  drifted: bool) -> MethodResult | None:
    """The test whose verdict the feature's drift is: the p-value test under bh and
    bonferroni, the rule's own test (or the first that fired) under share."""
    if not rows:
        return None
    if decision != "share":
        return next((r for r in rows if r.method == PVALUE_TEST[kind]), rows[0])
    named = next((r for r in rows if r.method == feature_rule), None)
    if named is not None:
        return named
    agreeing = [r for r in rows if r.drifted == drifted]
    return agreeing[0] if agreeing else rows[0]


def _decide(rows_by_feature: dict[str, list[MethodResult]], decision: str, alpha: float,
            feature_rule: str, min_effect: float = 0.0) -> tuple[dict[str, bool], dict[str, bool]]:
    """Each feature's drift under ``decision``, gated by ``min_effect``, and whether the
    gate held it back (its rule fired, its effect was too small)."""
    if decision == "share":
        flagged = {f: _feature_rule_drifted(feature_rule, rows)
                   for f, rows in rows_by_feature.items()}
    else:
        tests = {f: next(r for r in rows if r.method == PVALUE_TEST[r.kind])
                 for f, rows in rows_by_feature.items()}
        cutoff = pvalue_cutoff([t.value for t in tests.values()], decision, alpha)
        for t in tests.values():  # the row shows the corrected threshold it was held to
            t.threshold, t.drifted = cutoff, t.value <= cutoff
        flagged = {f: t.drifted for f, t in tests.items()}
    held_back = {}
    for f, rows in rows_by_feature.items():
        effect = rows[0].effect if rows else None
        held_back[f] = bool(flagged[f] and effect is not None and effect < min_effect)
        for r in rows:  # a test that fired on a too-small effect does not count as drift
            if r.drifted and r.effect is not None and r.effect < min_effect:
                r.drifted, r.held_back = False, True
    return {f: flagged[f] and not held_back[f] for f in rows_by_feature}, held_back


def importance_shares(importance: Mapping[str, float] | None,
                      features: Sequence[str]) -> dict[str, float] | None:
    """Each feature's share of the total (negative importances, a permutation that helped by
    chance, count as 0); None when unknown, or when no feature mattered to the model."""
    if not importance:
        return None
    raw = {f: max(0.0, float(importance.get(f, 0.0))) for f in features}
    total = sum(raw.values())
    if not total > 0:
        return None
    return {f: v / total for f, v in raw.items()}


# The API ----------------------------------------------------------------------------------

def compute_drift(reference: Any, current: Any, *, methods: Sequence[str] | None = None,
                  features: Sequence[str] | None = None, categorical: Sequence[str] | None = None,
                  decision: str | None = None, alpha: float | None = None,
                  thresholds: dict[str, float] | None = None, drift_share: float | None = None,
                  feature_rule: str | None = None, max_rows: int | None = None,
                  config: DriftConfig | None = None, n_jobs: int | None = None,
                  min_effect: float | None = None, min_importance: float | None = None,
                  importance: Mapping[str, float] | None = None) -> DriftReport:
    """Per-feature drift of ``current`` against ``reference`` and the dataset decision.

    ``reference``: a polars/pandas DataFrame or a :class:`ReferenceProfile`; ``current``: a
    polars/pandas DataFrame, or a profile of the current window (statistics computed in a
    stream, such as the class counts of a window too large to collect; not sampled again).
    Features default to the reference's columns (or the profile's schema); string/categorical
    columns are categorical, plus those named in ``categorical``.
    Settings not given come from ``config`` (default: ``DriftConfig()``). ``max_rows``
    samples each frame to at most that many rows (seeded); by default nothing is sampled.
    Missing values (null, NaN, +-inf) are dropped per column, as Evidently does.
    ``importance``: the model's importance of each feature (default: the one a profile
    ``reference`` stores, if any), for ``rank`` and the ``min_importance`` rule.
    """
    cfg = config or DriftConfig()
    methods = _check_methods(methods if methods is not None else cfg.methods)
    decision = decision or cfg.decision
    if decision not in DECISIONS:
        raise ConfigError(f"[drift] decision: expected one of {', '.join(DECISIONS)}, got {decision!r}")
    alpha = cfg.alpha if alpha is None else alpha
    drift_share = cfg.drift_share if drift_share is None else drift_share
    feature_rule = feature_rule or cfg.feature_rule
    min_effect = cfg.min_effect if min_effect is None else min_effect
    min_importance = cfg.min_importance if min_importance is None else min_importance
    if importance is None and isinstance(reference, ReferenceProfile):
        importance = reference.importance
    limits = {"ks": cfg.ks_pvalue_threshold, "psi": cfg.psi_threshold,
              "psi_quantile": cfg.psi_threshold, "chi2_homogeneity": alpha,
              **cfg.thresholds, **(thresholds or {})}
    if decision != "share":  # every feature needs its p-value test
        methods = tuple(dict.fromkeys([*methods, "ks", "chi2_homogeneity"]))

    if isinstance(current, ReferenceProfile):
        cur_samples, current_rows = current.features, current.rows
        current_columns = current.features
    else:
        current = _to_polars(current, "current")
        cur_samples, current_rows, current_columns = None, current.height, current.columns
    if isinstance(reference, ReferenceProfile):
        schema = reference.schema if features is None else Schema(
            tuple(features), tuple(f for f in features if f in reference.schema.categorical))
        absent = [f for f in schema.features if f not in reference.features]
        if absent:
            raise DataValidationError(absent[0], "feature is not in the reference profile")
        ref_samples, reference_rows = reference.features, reference.rows
    else:
        reference = _to_polars(reference, "reference")
        schema = _infer_schema(reference, features, categorical)
        if reference.height == 0:
            raise DataValidationError(None, "the drift reference window is empty")
        reference = sample_rows(reference.select(schema.features), max_rows)
        ref_samples, reference_rows = None, reference.height
    if current_rows == 0:
        raise DataValidationError(None, "no rows newer than the production training window")
    missing = [c for c in schema.features if c not in current_columns]
    if missing:
        raise DataValidationError(missing[0], "feature column is missing from the current window")
    if cur_samples is None:
        current = sample_rows(current.select(schema.features), max_rows)
        current_rows = current.height

    # Each thread sorts its numeric columns into the same two buffers, one column after the
    # other: no fresh array, and none of its page faults, per column. A column's samples view
    # them only while its results are computed.
    local = threading.local()

    def sample(frame: pl.DataFrame, col: str, side: int,
               kind: str) -> NumericSample | CategoricalSample:
        if kind == "categorical":
            return categorical_sample(frame.get_column(col))
        buffers = getattr(local, "buffers", None)
        if buffers is None:
            buffers = local.buffers = [None, None]
        if buffers[side] is None:
            buffers[side] = np.empty(frame.height, dtype=np.float64)
        return numeric_sample(frame.get_column(col), out=buffers[side])

    def one(col: str) -> list[MethodResult]:
        kind = "categorical" if col in schema.categorical else "numeric"
        ref = ref_samples[col] if ref_samples is not None else sample(reference, col, 0, kind)
        cur = cur_samples[col] if cur_samples is not None else sample(current, col, 1, kind)
        if isinstance(ref, NumericSample) != isinstance(cur, NumericSample):
            raise DataValidationError(col, "numeric on one side and categorical on the other")
        return _feature_results(col, kind, ref, cur, methods, limits)

    workers = max(1, min(n_jobs or os.cpu_count() or 1, len(schema.features)))
    if workers == 1:
        results = [one(col) for col in schema.features]
    else:  # numpy's sort and searchsorted release the GIL: columns run in parallel
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, schema.features))
    rows_by_feature = dict(zip(schema.features, results))
    drifted_by_feature, held_back = _decide(rows_by_feature, decision, alpha, feature_rule,
                                            min_effect)
    shares = importance_shares(importance, schema.features)

    feature_list = []
    for col, rows in rows_by_feature.items():
        values = {r.method: r.value for r in rows}
        kind = "categorical" if col in schema.categorical else "numeric"
        decisive = _decisive_row(rows, kind, decision, feature_rule, drifted_by_feature[col])
        feature_list.append(FeatureDrift(
            col, kind, values.get("psi"), values.get("ks"), drifted_by_feature[col],
            values.get(PVALUE_TEST[kind]), values,
            decided_by=None if decisive is None else decisive.method,
            statistic=None if decisive is None else decisive.value,
            cutoff=None if decisive is None else decisive.threshold,
            effect=rows[0].effect if rows else None, held_back=held_back[col],
            importance=None if shares is None else shares[col]))
    _rank(feature_list)
    for f in feature_list:
        f.below_importance = bool(f.drifted and f.importance is not None
                                  and f.importance < min_importance)
    drifted = [f.feature for f in feature_list if f.drifted]
    below = [f.feature for f in feature_list if f.below_importance]
    share = len(drifted) / len(feature_list) if feature_list else 0.0
    counted = len(drifted) - len(below)  # the drifted features the decision counts
    detected = (counted / len(feature_list) >= drift_share if decision == "share" and feature_list
                else decision != "share" and counted > 0)
    domain = None
    if "domain_classifier" in methods:
        domain_reference = (reference.report_sample if isinstance(reference, ReferenceProfile)
                            else reference)
        # Only rows show how features go together: not a current profile, nor one column.
        if (domain_reference is not None and cur_samples is None
                and len(schema.features) >= 2):
            domain = domain_classifier(domain_reference, current, schema,
                                       threshold=limits.get("domain_classifier",
                                                            DOMAIN_THRESHOLD))
        detected = detected or (domain is not None and domain.detected)
    report_thresholds: dict[str, Any] = {
        "ks_pvalue": limits["ks"], "psi": limits["psi"], "decision": decision,
        "drift_share": drift_share, "feature_rule": feature_rule, "alpha": alpha,
        "min_effect": min_effect, "min_importance": min_importance}
    if domain is not None:
        report_thresholds["domain_classifier"] = domain.threshold
    if decision != "share":
        report_thresholds["pvalue_cutoff"] = next(
            (r.threshold for rows in results for r in rows if r.method in PVALUE_TEST.values()), None)
    return DriftReport(detected=detected, share=share, drifted_features=drifted,
                       features=feature_list, reference_rows=reference_rows,
                       current_rows=current_rows, thresholds=report_thresholds,
                       rows=[r for rows in results for r in rows], methods=methods,
                       decision=decision, below_importance=below, domain=domain)


def _rank(features: list[FeatureDrift]) -> None:
    """Rank features by importance x effect (by effect when importances are unknown)."""
    for f in features:
        if f.importance is not None and f.effect is not None:
            f.impact = f.importance * f.effect
    order = sorted(features, key=lambda f: -(f.impact if f.impact is not None
                                             else f.effect if f.effect is not None else 0.0))
    for i, f in enumerate(order, start=1):
        f.rank = i


def detect_drift(reference: pl.DataFrame | ReferenceProfile, current: pl.DataFrame,
                 schema: Schema, config: DriftConfig) -> DriftReport:
    """Feature drift of ``current`` against ``reference`` with the settings of ``[drift]``,
    each side sampled to ``max_rows``."""
    return compute_drift(reference, current, features=schema.features,
                         categorical=schema.categorical, config=config, max_rows=config.max_rows)


__all__ = ["compute_drift", "detect_drift", "DriftReport", "DriftResult", "FeatureDrift",
           "MethodResult", "benjamini_hochberg_cutoff", "pvalue_cutoff", "CategoricalSample",
           "NumericSample"]
