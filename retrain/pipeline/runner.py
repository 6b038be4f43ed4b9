"""How a run's steps are run: the library marks each step; a runner calls it.

``DirectRunner`` calls each step as a plain function (``run_pipeline`` without an
orchestrator, ``retrain run --local``). The Prefect layer's runner
(``retrain_prefect.runner``) wraps each step as a subflow or task named ``step.name``, so the
dashboard shows the run's shape; the sequence itself is written once, in
``retrain.pipeline.run``.

A step marked ``fits_models`` fits the run's models with ``context.model_pool``, which the
runner supplies for the step: the direct runner the pool ``[orchestration]`` asks for
(``retrain.training.pools``: one after the other, threads, worker processes or a Dask
cluster), the Prefect runner one whose fits are tasks on the step's task runner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, TypeVar

from retrain.training.pools import local_pool

log = logging.getLogger("retrain")

T = TypeVar("T")


@dataclass(frozen=True)
class StepInfo:
    """What a runner needs to know of a step besides its function."""

    name: str  # as the dashboard shows it: check-drift, deploy-models, ...
    kind: Literal["flow", "task"]  # a subflow, or a task of the parent run (small I/O steps)
    summary: str  # the first line of the function's docstring
    retries: int = 0  # for steps whose only work is I/O that can fail for a moment
    retry_delay_seconds: float = 0.0
    fits_models: bool = False  # fits the models with context.model_pool, which the runner supplies


def step(name: str, *, kind: Literal["flow", "task"] = "flow", retries: int = 0,
         retry_delay_seconds: float = 0.0, fits_models: bool = False
         ) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Mark a function ``fn(context, *inputs) -> output`` as a step of a run."""

    def mark(fn: Callable[..., T]) -> Callable[..., T]:
        summary = (fn.__doc__ or name).strip().splitlines()[0]
        fn.step = StepInfo(name, kind, summary, retries, retry_delay_seconds,  # type: ignore[attr-defined]
                           fits_models)
        return fn

    return mark


def step_info(fn: Callable[..., Any]) -> StepInfo:
    info = getattr(fn, "step", None)
    if not isinstance(info, StepInfo):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} is not a step (mark it with @step)")
    return info


class Runner(Protocol):
    """Runs one step: ``runner(step_function, context, *inputs) -> output``."""

    def __call__(self, fn: Callable[..., T], context: Any, *inputs: Any) -> T: ...


class DirectRunner:
    """Each step is a plain call, its start logged; a step that fits models fits them in the
    pool ``[orchestration]`` asks for, unless the context carries one already."""

    def __call__(self, fn: Callable[..., T], context: Any, *inputs: Any) -> T:
        info = step_info(fn)
        log.info("%s: %s", info.name, info.summary[:1].lower() + info.summary[1:].rstrip("."))
        if not info.fits_models or context.model_pool is not None:
            return fn(context, *inputs)
        context.model_pool = local_pool(context.workspace.settings.orchestration)
        try:
            return fn(context, *inputs)
        finally:
            context.model_pool = None
