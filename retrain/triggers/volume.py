"""The volume trigger: labeled rows newer than the production training window."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from retrain.workspace import Workspace

log = logging.getLogger("retrain")


@dataclass
class VolumeCheck:
    model: str
    met: bool
    new_rows: int
    threshold: int
    since: str | None  # end of the production training window

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_volume(ws: Workspace, model_name: str) -> VolumeCheck:
    """Labeled rows newer than the production training window vs ``volume_threshold``."""
    threshold = ws.settings.triggers.volume_threshold
    production = ws.registry.production_version(model_name)
    since = production.train_end if production else None
    new_rows = ws.store.count_rows(ws.store.rows(after=since))
    check = VolumeCheck(model_name, new_rows >= threshold, new_rows, threshold,
                        since.isoformat() if since else None)
    log.info("volume %s: %d new labeled rows (threshold %d) -> %s", model_name, new_rows,
             threshold, "met" if check.met else "not met")
    return check
