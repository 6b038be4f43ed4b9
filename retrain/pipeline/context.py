"""What every step of one run shares: the workspace, the models and why, the production
version of each model when the run began (read once), and the services an orchestrator may
supply (the notifier with its secrets, the approver that pauses for a person, the pool the
models are fitted in)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from retrain.errors import ConfigError
from retrain.notify.service import NotificationService
from retrain.pipeline.reasons import REASONS
from retrain.workspace import Workspace

if TYPE_CHECKING:
    from retrain.promotion.approval import Approver
    from retrain.registry.tables import ModelVersion
    from retrain.training.pools import ModelPool

log = logging.getLogger("retrain")


def utc_now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(slots=True)
class RunContext:
    """One run's fixed inputs. A slotted class: an orchestrator that tries to serialise it as
    a parameter gives up at once instead of walking the workspace."""

    workspace: Workspace
    models: list[str]
    reason: str = "manual"
    force: bool = False
    check_performance: bool = False
    notifier: NotificationService | None = None
    approver: "Approver | None" = None
    # The checks' results are announced as triggers (the standalone drift check) rather than
    # acted on by this run (the pipeline).
    announce: bool = False
    run_id: str | None = None  # the orchestrator's id of this run, for links and file names
    started_at: str = field(default_factory=utc_now_text)
    production: dict[str, "ModelVersion | None"] = field(default_factory=dict)
    # Shared between the models of the run: drift results of equal reference windows.
    drift_cache: dict[tuple, Any] = field(default_factory=dict)
    # Models whose part of the run failed (e.g. a broken production artifact), and why; the
    # run goes on with the others.
    failed: dict[str, str] = field(default_factory=dict)
    # Candidates an earlier run left undecided, marked abandoned by this one.
    abandoned: list[str] = field(default_factory=list)
    # Where the models of a step that fits them are fitted (threads, processes, a Dask
    # cluster): supplied by the runner for the step's duration (``retrain.pipeline.runner``).
    model_pool: "ModelPool | None" = None

    @classmethod
    def open(cls, ws: Workspace, models: list[str] | str | None = None, *, reason: str = "manual",
             force: bool = False, check_performance: bool | None = None,
             notifier: NotificationService | None = None, approver: "Approver | None" = None,
             announce: bool = False, run_id: str | None = None) -> "RunContext":
        if reason not in REASONS:
            raise ConfigError(f"reason must be one of {', '.join(REASONS)}, got {reason!r}")
        names = ws.model_names(models)
        if check_performance is None:
            check_performance = ws.settings.triggers.check_performance
        production = {name: ws.registry.production_version(name) for name in names}
        return cls(ws, names, reason, force, check_performance, notifier, approver, announce,
                   run_id, production=production)

    @property
    def service(self) -> NotificationService:
        """The notifier (the workspace's own when the orchestrator supplied none)."""
        if self.notifier is None:
            self.notifier = NotificationService(workspace=self.workspace)
        return self.notifier

    def fail(self, name: str, reason: str) -> None:
        """``name``'s part of the run stops here (the first reason is kept, and audited)."""
        if name in self.failed:
            return
        log.error("%s: %s", name, reason)
        self.failed[name] = reason
        self.workspace.registry.record(name, "run-failed", reason=reason)

    @property
    def healthy(self) -> list[str]:
        """The models whose part of the run has not failed."""
        return [name for name in self.models if name not in self.failed]

    def production_id(self, name: str) -> str | None:
        version = self.production.get(name)
        return None if version is None else version.version_id
