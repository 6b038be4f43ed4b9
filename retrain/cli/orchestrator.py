"""What the command line needs from an orchestrator, supplied by the layer above the library.

The library runs a pipeline without one (``--local``); the console script ``retrain``
(``retrain_prefect.cli``) passes Prefect's, which runs the same steps as flows. The library
never imports that layer: it is handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from retrain.errors import RetrainError

if TYPE_CHECKING:
    from retrain.pipeline.document import RunDocument


@dataclass(frozen=True)
class Orchestrator:
    """``run_pipeline(config, models, force, reason) -> RunDocument`` and
    ``answer_approval(run_id, approve, actor, comment) -> resumed run id``."""

    name: str
    run_pipeline: Callable[[str | None, list[str] | None, bool, str], "RunDocument"]
    answer_approval: Callable[[str, bool, str, str], str]


def require(orchestrator: Orchestrator | None, what: str) -> Orchestrator:
    if orchestrator is None:
        raise RetrainError(f"{what} needs the Prefect layer: run the `retrain` console script "
                           "(pip install retrain), or pass --local to run without Prefect")
    return orchestrator
