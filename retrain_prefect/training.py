"""The models of a run fitted as Prefect tasks, on the task runner ``[orchestration]`` names.

The ``retrain-models`` subflow runs with the task runner ``task_runner_for`` makes
(``retrain_prefect.runner``); inside it, ``PrefectModelPool`` submits one task per model,
``train · <model>``, whose work is the library's ``fit_candidate``. Its input (the frames,
the features, the reference profile) is the task's argument, handed to the task runner in
memory or pickled to its worker, never a flow parameter; its result is neither persisted nor
cached. What comes back is registered by the library in the subflow's own process.

    thread    ThreadPoolTaskRunner(max_workers)
    process   ProcessPoolTaskRunner(max_workers)   (worker processes, spawned)
    dask      DaskTaskRunner(address=dask_address), or a local cluster of dask_workers
              processes x dask_threads_per_worker threads started for the subflow
"""

from __future__ import annotations

from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from retrain.config import OrchestrationConfig
from retrain.training.pools import ModelPool, concurrency_of
from retrain_prefect.common import untagged


def _fit(model: str, fit: Callable[[Any], Any], job: Any) -> Any:
    """Fit one model (``model`` names the task run)."""
    return fit(job)


# The frames travel as the task's argument (in memory, or pickled to the worker): no result
# is persisted and no cache key is computed from them.
train_model = task(name="train", task_run_name="train · {model}", persist_result=False,
                   cache_policy=NO_CACHE, log_prints=True)(_fit)


def task_runner_for(settings: OrchestrationConfig) -> TaskRunner:
    """The task runner of the subflow that fits the models, as ``[orchestration]`` says."""
    if settings.task_runner == "process":
        return ProcessPoolTaskRunner(max_workers=settings.max_workers)
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner  # late: loads Dask, which only "dask" needs
        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": settings.dask_threads_per_worker,
            "processes": True, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=settings.max_workers)


class PrefectModelPool(ModelPool):
    """Each model's fit a task of the running flow, on its task runner."""

    def __init__(self, settings: OrchestrationConfig):
        self.concurrency = concurrency_of(settings)
        self.description = f"as Prefect tasks on the {settings.task_runner} task runner"

    def map(self, fn, jobs):
        # Untagged: a tagged task first takes a concurrency slot per tag (one API call each);
        # the subflow carries the run's tags.
        with untagged():
            futures = {name: train_model.submit(name, fn, job) for name, job in jobs.items()}
        for name, future in futures.items():
            try:
                yield name, future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. a worker that died
                yield name, exc
