"""What the promotion stage decided for a candidate, as a record."""

from __future__ import annotations

from typing import Literal

from retrain.records import Record

DecisionName = Literal["bootstrapped", "promoted", "rejected", "skipped", "awaiting-approval",
                       "awaiting-experiment", "rolled-back", "failed"]


class Decision(Record):
    """The decision about one candidate and why.

    ``bootstrapped`` and ``promoted`` changed production; ``rolled-back`` means the smoke check
    after the switch failed and production is as before; the others left production alone."""

    model: str
    version_id: str | None
    decision: DecisionName
    reason: str
    production_version_before: str | None = None
    relative_improvement: float | None = None
    approved_by: str | None = None
    notice_delivered: bool | None = None
    experiment_id: str | None = None
