"""A backtest as records: per period, policy and model what would have been served and how
well it did on the next period; per policy and model the totals."""

from __future__ import annotations

from retrain.records import Record


class Period(Record):
    """One step of the replay: the run at ``end``, scored on the labeled rows of
    ``(end, next_end]``."""

    end: str
    next_end: str


class PeriodOutcome(Record):
    """What one policy did for one model at one period end, and how the model it served then
    did on the next period's labeled rows."""

    period_end: str
    served_version: str | None
    metric: str | None = None
    value: float | None = None  # the primary metric on the next period (None: no labels)
    next_rows: int = 0
    drift: bool = False
    volume: bool = False
    performance: bool = False
    retrained: bool = False
    decision: str | None = None  # bootstrapped | promoted | rejected | ... (None: no run)
    reason: str = ""
    seconds: float = 0.0  # the run's time at this period end (every model's training included)


class ModelTotals(Record):
    """One model under one policy over the replay (``seconds``: of the runs, which train every
    model of the run)."""

    mean_metric: float | None = None
    worst_metric: float | None = None  # the worst period's value, lower or higher as the metric
    retrains: int = 0
    promotions: int = 0
    rejections: int = 0
    seconds: float = 0.0


class PolicyResult(Record):
    """One policy over the whole replay: its totals (over models) and, per model, its totals
    and its periods."""

    policy: str
    description: str
    mean_metric: float | None = None
    retrains: int = 0
    promotions: int = 0
    seconds: float = 0.0
    totals: dict[str, ModelTotals] = {}
    periods: dict[str, list[PeriodOutcome]] = {}  # by model


class BacktestResult(Record):
    """The whole replay: its periods and each policy's result."""

    every: str
    periods: list[Period]
    policies: dict[str, PolicyResult]
    models: list[str]
    metrics: dict[str, str]  # the primary metric of each model
    overrides: dict[str, str] = {}  # --set KEY=VALUE of the configured policy
