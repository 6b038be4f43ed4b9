"""What the live numbers of an experiment say: per-variant requests, outcomes and metric, the
lift with its always-valid interval and p-value (mSPRT), and the sample-ratio-mismatch check.

Status of an A/B test (``check_test_status``), precisely:

- ``running``: active, before its end date, no winner declared.
- ``significant``: a winner is declared. That happens at the first look where both variants
  have at least ``[abtest] min_outcomes`` outcomes, the split passes the SRM check, and the
  running minimum of the always-valid p-value is at most ``[abtest] alpha``. The winner is
  then kept (the mSPRT allows stopping at the first crossing); an ended test that had a winner
  stays ``significant``.
- ``expired``: active, its end date has passed and no winner was declared. Traffic is still
  split until someone ends it (``end_test``), so nobody is surprised by a silent switch.
- ``inconclusive``: ended at or after its end date without a winner.
- ``stopped``: ended before its end date without a winner (stopped early by a person).

A sample-ratio mismatch never produces a winner: while the split is broken the status stays
``running`` (or ``expired``) with ``srm.mismatch`` set and a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retrain.config import ABTestConfig
from retrain.experiments import store
from retrain.registry import Registry
from retrain.registry.tables import ACTIVE_EXPERIMENT_STATUSES, Experiment
from retrain.stats.sequential import ArmSummary, msprt, running_p_value, srm_check, winner

LOWER_IS_BETTER = frozenset({"brier", "log_loss", "squared_error", "absolute_error"})


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an unbounded interval end is reported as None."""
    return value if value is not None and math.isfinite(value) else None


@dataclass
class Look:
    """One look at an experiment's data."""

    requests: dict[str, int]
    outcomes: dict[str, int]
    means: dict[str, float | None]
    result: Any  # retrain.stats.sequential.SequentialResult
    srm: Any  # retrain.stats.sequential.SrmResult, or None when there is nothing to check
    srm_share_b: float | None
    enough: bool  # both variants have min_outcomes outcomes

    @property
    def srm_mismatch(self) -> bool:
        return self.srm is not None and self.srm.mismatch

    def winner(self) -> str | None:
        if not self.enough or self.srm_mismatch:
            return None
        return winner(self.result)


def take_look(registry: Registry, experiment: Experiment, config: ABTestConfig,
              srm_since: datetime | None = None) -> Look:
    """Aggregate the experiment's prediction log and feedback, and test B against A.

    The SRM check compares the requests since ``srm_since`` (a rollout's current step; the
    whole test by default) with the experiment's current split.
    """
    requests = store.request_counts(registry, experiment.id)
    task = registry.get_version(experiment.version_a).task
    sums = store.outcome_sums(registry, experiment.id, experiment.metric, task)
    arms = {v: ArmSummary.from_sums(*sums[v]) for v in ("A", "B")}
    result = msprt(arms["A"], arms["B"], alpha=config.alpha,
                   mixture_variance=config.mixture_variance,
                   higher_is_better=higher_is_better(experiment.metric))
    share = experiment.traffic_b
    srm = None
    if 0.0 < share < 1.0:
        counted = requests if srm_since is None else store.request_counts(
            registry, experiment.id, since=srm_since)
        srm = srm_check([counted["A"], counted["B"]], [1.0 - share, share], alpha=config.srm_alpha)
    return Look(requests=requests, outcomes={v: arms[v].n for v in arms},
                means={v: arms[v].mean if arms[v].n else None for v in arms},
                result=result, srm=srm, srm_share_b=share if srm is not None else None,
                enough=min(arms["A"].n, arms["B"].n) >= config.min_outcomes)


def describe(experiment: Experiment, look: Look, status: str, config: ABTestConfig,
             p_value: float | None, winner: str | None) -> dict[str, Any]:
    """The status document of an experiment (what `retrain ab status --json` prints)."""
    result = look.result
    warnings = []
    if look.srm_mismatch:
        warnings.append(
            f"sample ratio mismatch: {look.srm.observed[1]} of {sum(look.srm.observed)} requests "
            f"went to B, expected {look.srm_share_b:.1%} (chi-square p = {look.srm.p_value:.2g} < "
            f"{config.srm_alpha}); the split is broken, no winner can be declared")
    if not look.enough:
        warnings.append(f"fewer than {config.min_outcomes} outcomes in a variant "
                        f"(A {look.outcomes['A']}, B {look.outcomes['B']}): no winner yet")
    versions = {"A": experiment.version_a, "B": experiment.version_b}
    shares = {"A": 1.0 - experiment.traffic_b, "B": experiment.traffic_b}
    return {
        "test_id": experiment.id, "kind": experiment.kind, "model": experiment.model_name,
        "status": status, "winner": winner,
        "winner_version": versions[winner] if winner else None,
        "version_a": experiment.version_a, "version_b": experiment.version_b,
        "traffic_b": experiment.traffic_b, "metric": experiment.metric,
        "higher_is_better": higher_is_better(experiment.metric),
        "started_at": experiment.started_at, "ends_at": experiment.ends_at,
        "ended_at": experiment.ended_at,
        "variants": {v: {"version_id": versions[v], "traffic_share": shares[v],
                         "requests": look.requests[v], "outcomes": look.outcomes[v],
                         "metric": look.means[v]} for v in ("A", "B")},
        "lift": result.lift if look.outcomes["A"] and look.outcomes["B"] else None,
        "relative_lift": result.relative_lift,
        "ci_low": _finite(result.ci_low), "ci_high": _finite(result.ci_high),
        "p_value": p_value, "p_value_this_look": result.p_value,
        "alpha": config.alpha, "min_outcomes": config.min_outcomes,
        "srm": None if look.srm is None else {
            "mismatch": look.srm.mismatch, "p_value": look.srm.p_value,
            "chi2": _finite(look.srm.chi2), "observed": list(look.srm.observed),
            "expected_share_b": look.srm_share_b, "alpha": config.srm_alpha},
        "warnings": warnings,
    }


def ab_status(experiment: Experiment, look: Look, config: ABTestConfig, now: datetime
              ) -> tuple[str, str | None, float | None]:
    """``(status, winner, running p-value)`` of an active A/B test at this look.

    The running minimum of the p-value only takes looks that could declare a winner (enough
    outcomes, split fine): looks at a handful of outcomes rest on a normal approximation that
    does not hold yet.
    """
    assert experiment.status in ACTIVE_EXPERIMENT_STATUSES
    best = experiment.best_p_value
    if look.enough and not look.srm_mismatch:
        best = running_p_value(best, look.result.p_value)
    if look.srm_mismatch:
        winner = None
    elif experiment.winner is not None:
        winner = experiment.winner
    else:
        winner = look.winner() if best is not None and best <= config.alpha else None
    if winner is not None:
        return "significant", winner, best
    expired = experiment.ends_at is not None and now >= experiment.ends_at
    return ("expired" if expired else "running"), None, best


def final_status(experiment: Experiment, winner: str | None, now: datetime) -> str:
    """The status an A/B test ends with (see the module docstring)."""
    if winner is not None:
        return "significant"
    if experiment.ends_at is not None and now >= experiment.ends_at:
        return "inconclusive"
    return "stopped"


def jsonable(value: Any) -> Any:
    """Datetimes as ISO strings and non-finite numbers as None (JSON has no infinity: an
    interval is unbounded before any outcome), so a document can be stored in a JSON column
    or sent as an event payload."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
