"""The ``retrain`` console script: the library's command line with Prefect as its orchestrator.

``retrain run`` and ``retrain demo`` run the ``retraining-pipeline`` flow (on the server in
``PREFECT_API_URL``, or a temporary local one); ``retrain approve|reject`` resume a paused
promotion. Every other command is the library's alone: Prefect is imported only when a
command needs it, so ``retrain --help`` and ``retrain models`` start at once.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from retrain.cli.main import main as library_main
from retrain.cli.orchestrator import Orchestrator
from retrain_prefect.environment import set_defaults

if TYPE_CHECKING:
    from retrain.pipeline.document import RunDocument


def prefect_env() -> None:
    """Defaults for running flows from the command line (the user's own settings win)."""
    # The temporary server's first start creates its database, which on a busy 2-core machine
    # takes longer than Prefect's 20 s.
    set_defaults(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")


def run_pipeline(config: str | None, models: list[str] | None, force: bool,
                 reason: str) -> "RunDocument":
    prefect_env()
    # Late: importing Prefect takes seconds, and only these two commands need it.
    from retrain_prefect.common import quiet_user_error_tracebacks
    from retrain_prefect.ephemeral import temporary_server
    from retrain_prefect.flows.pipeline import retraining_pipeline
    if not logging.getLogger("retrain").isEnabledFor(logging.DEBUG):
        quiet_user_error_tracebacks()
    with temporary_server():  # when there is no PREFECT_API_URL
        return retraining_pipeline(models=models, force=force, reason=reason, config=config)


def answer_approval(run_id: str, approve: bool, actor: str, comment: str) -> str:
    prefect_env()
    from retrain_prefect.approval import answer  # late: see run_pipeline
    return str(answer(run_id, approve, actor, comment))


PREFECT = Orchestrator("prefect", run_pipeline=run_pipeline, answer_approval=answer_approval)


def main(argv: list[str] | None = None) -> int:
    return library_main(argv, orchestrator=PREFECT)


if __name__ == "__main__":
    sys.exit(main())
