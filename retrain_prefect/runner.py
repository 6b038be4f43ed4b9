"""The Prefect runner: each step of a library run becomes a subflow (or a task) of the
running flow, named as the step, with what the dashboard should show about it published from
inside it (``retrain_prefect.events``).

The library writes the sequence once (``retrain.pipeline.run``); this module only decides how
a step runs. A step's inputs (the run's context, typed values, data frames) are not Prefect
parameters: they travel in a context variable, and the subflow's parameters are the run's
models and reason, which the dashboard can show and filter on.

A step that fits models (``retrain-models``) runs as a subflow on the task runner
``[orchestration]`` names, and fits each model as a task of it, ``train · <model>``
(``retrain_prefect.training``); the step itself, and so every registration, stays in the
subflow's own process.
"""

from __future__ import annotations

import contextvars
from typing import Any, Callable, TypeVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from retrain.config import OrchestrationConfig
from retrain.pipeline.context import RunContext
from retrain.pipeline.runner import StepInfo, step_info
from retrain_prefect.common import untagged
from retrain_prefect.training import PrefectModelPool, task_runner_for

T = TypeVar("T")

# What each step publishes from inside its own run, by step name: ``publish(context,
# output, *inputs)`` (events, artifacts); see retrain_prefect.events.
Publisher = Callable[..., None]

_CALL: contextvars.ContextVar[tuple[Callable[..., Any], RunContext, tuple[Any, ...],
                                    Publisher | None]] = contextvars.ContextVar("retrain_step")
_wrapped: dict[tuple[str, str], Any] = {}
_with_runner: dict[tuple[str, str], Any] = {}  # (step, [orchestration] as JSON): the flow


def _body(models: list[str], reason: str) -> Any:
    """Run the step waiting in the context variable (``models`` and ``reason`` are there for
    the dashboard)."""
    fn, context, inputs, publish = _CALL.get()
    output = fn(context, *inputs)
    if publish is not None:
        publish(context, output, *inputs)
    return output


def _prefect_object(info: StepInfo):
    """One Prefect flow or task per step name, made on first use."""
    key = (info.kind, info.name)
    if key not in _wrapped:
        body = _named(info)
        if info.kind == "task":
            _wrapped[key] = task(name=info.name, description=info.summary, retries=info.retries,
                                 retry_delay_seconds=info.retry_delay_seconds,
                                 cache_policy=NO_CACHE, task_run_name=info.name)(body)
        else:
            _wrapped[key] = flow(name=info.name, description=info.summary, retries=info.retries,
                                 retry_delay_seconds=info.retry_delay_seconds,
                                 validate_parameters=False, log_prints=True,
                                 flow_run_name=_run_name(info.name))(body)
    return _wrapped[key]


def _on_task_runner(prefect_object, info: StepInfo, orchestration: OrchestrationConfig):
    """The step's flow with the task runner ``orchestration`` names, made once per settings
    (a copy of a flow costs tens of milliseconds; each run enters a duplicate of its task
    runner, never the flow's own)."""
    key = (info.name, orchestration.model_dump_json())
    if key not in _with_runner:
        _with_runner[key] = prefect_object.with_options(task_runner=task_runner_for(orchestration))
    return _with_runner[key]


def _run_name(step: str) -> Callable[[], str]:
    """A subflow run's name: its step and the run's models (``check-drift · lightgbm,
    random_forest``), not a random one."""
    def name() -> str:
        models = flow_run.parameters.get("models") or []
        return f"{step} · {', '.join(models)}" if models else step
    return name


def _named(info: StepInfo) -> Callable[[list[str], str], Any]:
    def step_body(models: list[str], reason: str) -> Any:
        return _body(models, reason)

    step_body.__name__ = step_body.__qualname__ = info.name.replace("-", "_")
    step_body.__doc__ = info.summary
    return step_body


class PrefectRunner:
    """Runs each step as a subflow or task of the current flow run; ``publishers`` (by step
    name) publish events and artifacts from inside the step's own run."""

    def __init__(self, publishers: dict[str, Publisher] | None = None):
        self.publishers = dict(publishers or {})

    def __call__(self, fn: Callable[..., T], context: RunContext, *inputs: Any) -> T:
        info = step_info(fn)
        prefect_object = _prefect_object(info)
        pool = context.model_pool
        if info.fits_models and info.kind == "flow":
            orchestration = context.workspace.settings.orchestration
            # This run's task runner (a Dask cluster started for the subflow, say), and a pool
            # whose fits are tasks on it.
            prefect_object = _on_task_runner(prefect_object, info, orchestration)
            context.model_pool = PrefectModelPool(orchestration)
        token = _CALL.set((fn, context, inputs, self.publishers.get(info.name)))
        try:
            if info.kind == "task":
                with untagged():
                    return prefect_object(context.models, context.reason)
            return prefect_object(context.models, context.reason)
        finally:
            _CALL.reset(token)
            context.model_pool = pool
