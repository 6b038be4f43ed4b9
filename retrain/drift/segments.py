"""Drift inside segments: the check run again for each value of a segment column
(``[drift] segments = ["region"]``), with a false-discovery control that many segments do not
inflate.

* **Segments.** Each value of the column with at least ``min_rows`` rows on both sides is a
  segment; the values with fewer are merged into one segment, ``"other"`` (which says which
  values it holds), itself checked when it has ``min_rows`` rows on both sides.
* **Two-level control** (Benjamini and Bogomolov's selective inference over families): each
  segment's feature p-values are combined by Simes' method into one p-value of "nothing
  drifted in this segment"; Benjamini-Hochberg over those at ``alpha`` selects the segments
  that drifted (R of S); within each selected segment, Benjamini-Hochberg over its features
  at ``alpha * R / S`` names the drifted features. The chance of an alarm on data that did not
  change stays about ``alpha`` however many segments there are, and the features named
  control the false discoveries averaged over the segments selected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from retrain.config import DriftConfig
from retrain.data import Schema
from retrain.drift.compute import DriftReport, benjamini_hochberg_cutoff, compute_drift
from retrain.errors import DataValidationError

OTHER = "other"


@dataclass
class SegmentDrift:
    """One segment's check."""

    column: str
    value: str  # the segment's value, or "other"
    reference_rows: int
    current_rows: int
    report: DriftReport
    pvalue: float  # Simes' combination of its features' p-values
    selected: bool = False  # drifted: selected by the first level
    drifted_features: list[str] = field(default_factory=list)  # named by the second level
    merged: list[str] = field(default_factory=list)  # for "other": the values it holds

    @property
    def detected(self) -> bool:
        return self.selected and bool(self.drifted_features)

    def as_dict(self) -> dict[str, Any]:
        return {"segment": self.column, "value": self.value, "detected": self.detected,
                "pvalue": self.pvalue, "drifted_features": list(self.drifted_features),
                "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "merged": list(self.merged)}


@dataclass
class SegmentedDrift:
    """The checks of one segment column and their two-level decision."""

    column: str
    segments: list[SegmentDrift]
    alpha: float
    note: str = ""  # values left out (too few rows even merged), or why nothing was checked

    @property
    def detected(self) -> bool:
        return any(s.detected for s in self.segments)

    @property
    def drifted(self) -> list[SegmentDrift]:
        return [s for s in self.segments if s.detected]

    def as_dict(self) -> dict[str, Any]:
        return {"segment": self.column, "detected": self.detected, "alpha": self.alpha,
                "note": self.note, "segments": [s.as_dict() for s in self.segments]}


def simes(pvalues: list[float] | np.ndarray) -> float:
    """Simes' p-value of the hypothesis that none of ``pvalues`` is a discovery:
    min over i of p_(i) * m / i (valid under independence and positive dependence)."""
    p = np.sort(np.asarray([v for v in pvalues if v is not None and np.isfinite(v)],
                           dtype=np.float64))
    if p.size == 0:
        return 1.0
    return float(min(1.0, np.min(p * p.size / np.arange(1, p.size + 1))))


def two_level_decision(pvalues: list[list[float]], alpha: float
                       ) -> tuple[list[bool], list[float]]:
    """For each family (segment) of p-values: whether it is selected, and the p-value cutoff
    of its members (0 for a family not selected)."""
    pvalues = [[v for v in p if v is not None and np.isfinite(v)] for p in pvalues]
    family = [simes(p) for p in pvalues]
    if not family:
        return [], []
    cutoff = benjamini_hochberg_cutoff(family, alpha)
    selected = [p <= cutoff for p in family]
    share = sum(selected) / len(family)
    cutoffs = [benjamini_hochberg_cutoff(p, alpha * share) if chosen and p else 0.0
               for p, chosen in zip(pvalues, selected)]
    return selected, cutoffs


def _text(series: pl.Series) -> pl.Series:
    return series.cast(pl.String).fill_null("(missing)")


def segment_groups(reference: pl.Series, current: pl.Series, min_rows: int
                   ) -> tuple[dict[str, list[str]], list[str]]:
    """The segments: each value with ``min_rows`` rows on both sides is its own (``{value:
    [value]}``), the others together ``"other"`` when that has ``min_rows`` on both sides;
    and the values left out (too few rows even merged)."""
    ref = _text(reference).value_counts()
    cur = _text(current).value_counts()
    counts: dict[str, list[int]] = {}
    for frame, side in ((ref, 0), (cur, 1)):
        name = frame.columns[0]
        for value, count in frame.iter_rows():
            counts.setdefault(value, [0, 0])[side] = count
    groups: dict[str, list[str]] = {}
    small = []
    for value in sorted(counts):
        r, c = counts[value]
        if r >= min_rows and c >= min_rows and value != OTHER:
            groups[value] = [value]
        else:
            small.append(value)
    if small:
        r = sum(counts[v][0] for v in small)
        c = sum(counts[v][1] for v in small)
        if r >= min_rows and c >= min_rows:
            groups[OTHER] = small
            small = []
    return groups, small


def segment_drift(reference: pl.DataFrame, current: pl.DataFrame, column: str, schema: Schema,
                  config: DriftConfig, min_rows: int) -> SegmentedDrift:
    """The drift of each segment of ``column`` (rows of ``reference`` against ``current``,
    both holding the features and the column) and their two-level decision at
    ``config.alpha``."""
    for side, frame in (("reference", reference), ("current", current)):
        if column not in frame.columns:
            raise DataValidationError(column, f"[drift] segments: the {side} window has no "
                                              f"column {column!r}")
    groups, left_out = segment_groups(reference.get_column(column), current.get_column(column),
                                      min_rows)
    ref_text, cur_text = _text(reference.get_column(column)), _text(current.get_column(column))
    checks = []
    for value, members in groups.items():
        ref_rows = reference.filter(ref_text.is_in(members))
        cur_rows = current.filter(cur_text.is_in(members))
        report = compute_drift(ref_rows.select(schema.features), cur_rows.select(schema.features),
                               features=list(schema.features),
                               categorical=list(schema.categorical), config=config,
                               decision="bh" if config.decision == "share" else config.decision)
        pvalues = [f.pvalue for f in report.features]
        checks.append(SegmentDrift(column, value, ref_rows.height, cur_rows.height, report,
                                   simes(pvalues), merged=members if value == OTHER else []))
    selected, cutoffs = two_level_decision([[f.pvalue for f in c.report.features] for c in checks],
                                           config.alpha)
    for check, chosen, cutoff in zip(checks, selected, cutoffs):
        check.selected = chosen
        # The same effect-size gate as the whole window's ([drift] min_effect).
        check.drifted_features = [f.feature for f in check.report.features
                                  if chosen and f.pvalue is not None and f.pvalue <= cutoff
                                  and (f.effect is None or f.effect >= config.min_effect)]
    notes = []
    if left_out:
        notes.append(f"{len(left_out)} value(s) with fewer than {min_rows} rows on a side even "
                     f"merged, not checked: {', '.join(left_out[:10])}")
    if not checks:
        notes.append(f"no value of {column} has {min_rows} rows on both sides")
    return SegmentedDrift(column, checks, config.alpha, "; ".join(notes))
