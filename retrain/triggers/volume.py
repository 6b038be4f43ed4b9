"""The volume trigger: labeled rows newer than the production training window."""

from __future__ import annotations

import logging

from retrain.records import Record
from retrain.registry.rules import CURRENT
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class VolumeCheck(Record):
    """Labeled rows newer than the production training window against the threshold."""

    model: str
    met: bool
    new_rows: int
    threshold: int
    since: str | None = None  # end of the production training window (None: no production yet)

    def as_dict(self) -> dict:
        return self.to_dict()


def check_volume(ws: Workspace, model_name: str, production=CURRENT) -> VolumeCheck:
    """Labeled rows newer than the production training window vs ``volume_threshold``.
    ``production``: the model's production version as the run read it (default: now)."""
    ws = ws.for_model(model_name)
    threshold = ws.settings.triggers.volume_threshold
    production = ws.registry.production_of(model_name, production)
    since = production.train_end if production else None
    new_rows = ws.store.count_rows(ws.store.rows(after=since))
    check = VolumeCheck(model=model_name, met=new_rows >= threshold, new_rows=new_rows,
                        threshold=threshold, since=since.isoformat() if since else None)
    log.info("volume %s: %d new labeled rows (threshold %d) -> %s", model_name, new_rows,
             threshold, "met" if check.met else "not met")
    return check
