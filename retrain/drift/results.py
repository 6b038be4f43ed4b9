"""A drift check's result as a record: what the run document, the events and ``retrain drift
--json`` carry for one model (``DriftCheck.summary()`` makes it)."""

from __future__ import annotations

from typing import Any, Literal

from retrain.records import Record


class FeatureRow(Record):
    """One feature's short row: PSI rounded to 4 places, KS p-value to 4 significant digits,
    and the test that decided it (under bh, a categorical's chi-square p-value, say) with its
    value and the cut-off it was held to; its effect size (KS statistic, or total variation
    for a categorical) and whether ``[drift] min_effect`` held it back; its share of the
    model's permutation importance (None: unknown), importance x effect and its rank by that;
    and whether, drifted, it was below ``[drift] min_importance`` (reported, not triggering)."""

    feature: str
    kind: Literal["numeric", "categorical"]
    psi: float | None
    ks_pvalue: float | None
    decided_by: str | None = None
    statistic: float | None = None
    cutoff: float | None = None
    drifted: bool
    effect: float | None = None
    held_back: bool = False
    importance: float | None = None
    impact: float | None = None
    rank: int | None = None
    below_importance: bool = False


class MethodRow(Record):
    """One feature's value for one method and what it means, with the feature's effect size
    and whether the test fired but ``[drift] min_effect`` held it back (then not drifted)."""

    feature: str
    kind: Literal["numeric", "categorical"]
    method: str
    value: float
    threshold: float
    drifted: bool
    effect: float | None = None
    held_back: bool = False


class DriftedFeature(Record):
    """A drifted feature with its value per method, the p-value its decision used, its effect
    size, importance share and rank, and whether it was below ``min_importance``."""

    feature: str
    kind: Literal["numeric", "categorical"]
    values: dict[str, float]
    pvalue: float | None
    effect: float | None = None
    importance: float | None = None
    rank: int | None = None
    below_importance: bool = False


class DriftPart(Record):
    """Label or prediction drift: reported beside feature drift, triggering only when
    ``[drift] trigger_on`` names it."""

    detected: bool
    note: str = ""
    table: list[MethodRow] = []
    drifted: list[DriftedFeature] = []
    reference_rows: int | None = None
    current_rows: int | None = None
    decision: str | None = None


class DomainFeature(Record):
    """A feature the domain classifier relied on, with its share of the classifier's gain."""

    feature: str
    importance: float


class DomainClassifier(Record):
    """The domain classifier's verdict on the whole dataset: the cross-validated ROC AUC of
    telling current rows from reference rows, its interval, and whether the interval's lower
    bound exceeds ``threshold`` (then the features count as drifted)."""

    auc: float
    lower: float
    upper: float
    threshold: float
    detected: bool
    confidence: float
    folds: int
    reference_rows: int
    current_rows: int
    top_features: list[DomainFeature] = []


class ReportFiles(Record):
    """Where the check's report files are: ``drift.json`` (our numbers), Evidently's HTML
    report and JSON snapshot (None when Evidently could not render them)."""

    directory: str
    result: str
    html: str | None = None
    snapshot: str | None = None


class SegmentRow(Record):
    """One segment's check: a value of the segment column (or "other", the values with too
    few rows, which ``merged`` lists)."""

    segment: str
    value: str
    detected: bool
    pvalue: float
    drifted_features: list[str] = []
    reference_rows: int = 0
    current_rows: int = 0
    merged: list[str] = []


class SegmentCheck(Record):
    """The checks of one segment column ([drift] segments) and their two-level decision."""

    segment: str
    detected: bool
    alpha: float
    note: str = ""
    segments: list[SegmentRow] = []


class ModelDrift(Record):
    """One model's drift check. Without rows to compare (no production version yet, no new
    rows) only the first six fields are set and ``note`` says why."""

    model: str
    detected: bool
    drifted_features: list[str] = []
    share: float = 0.0
    note: str = ""
    triggered_by: list[Literal["features", "label", "prediction"]] = []
    features: list[FeatureRow] | None = None
    table: list[MethodRow] | None = None
    drifted: list[DriftedFeature] | None = None
    reference_rows: int | None = None
    current_rows: int | None = None
    thresholds: dict[str, Any] | None = None
    methods: list[str] | None = None
    decision: str | None = None
    reference: Literal["profile", "window"] | None = None
    # Drifted features below [drift] min_importance: reported, not triggering.
    below_importance: list[str] = []
    # [drift] methods with domain_classifier: its dataset-level verdict.
    domain_classifier: DomainClassifier | None = None
    # [drift] segments: the check per segment value.
    segments: list[SegmentCheck] = []
    label_drift: DriftPart | None = None
    prediction_drift: DriftPart | None = None
    report: ReportFiles | None = None

    def rule(self) -> str:
        """The dataset-level drift rule, in words."""
        thresholds = self.thresholds or {}
        rule = self.decision or "share"
        if rule == "share" and "drift_share" in thresholds:
            rule = f"share of drifted features >= {thresholds['drift_share']}"
        elif rule in ("bh", "bonferroni") and "alpha" in thresholds:
            name = "Benjamini-Hochberg" if rule == "bh" else "Bonferroni"
            rule = f"{name} at alpha {thresholds['alpha']}"
        if thresholds.get("min_effect"):
            rule += f", effect >= {thresholds['min_effect']}"
        if self.domain_classifier is not None:
            rule += (f"; or domain classifier AUC lower bound > "
                     f"{self.domain_classifier.threshold}")
        if thresholds.get("min_importance"):
            rule += f", importance share >= {thresholds['min_importance']}"
        return rule

    def parts_tables(self) -> list[tuple[str, MethodRow]]:
        """Every method row with its part (features, label, prediction)."""
        rows = [("features", r) for r in self.table or []]
        for part, result in (("label", self.label_drift), ("prediction", self.prediction_drift)):
            rows += [(part, r) for r in (result.table if result else [])]
        return rows
