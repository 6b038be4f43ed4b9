"""Where a run's models are fitted: one after the other in the run's process, several at once
in threads or worker processes, or on a Dask cluster (``[orchestration]``).

A pool maps a function over the run's models and yields each model's result, in the order
of the models, as it comes back; an exception raised while fitting one model (a worker that
died, say) is yielded as that model's result, so the others go on. The Prefect layer has its
own pool, whose fits are tasks on the task runner of the ``retrain-models`` subflow
(``retrain_prefect.training``); this module's are what a run without Prefect uses.
"""

from __future__ import annotations

import logging
import multiprocessing
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from typing import Callable, Iterator, Mapping, TypeVar

from retrain.config import OrchestrationConfig

log = logging.getLogger("retrain")

J = TypeVar("J")
R = TypeVar("R")


class ModelPool:
    """Fits the run's models; ``concurrency``: how many fits share one machine's cores at
    most (None: each Dask worker's thread count), so that each fit takes its share."""

    concurrency: int | None = 1
    description = "one after the other"  # for the run's log

    def map(self, fn: Callable[[J], R], jobs: Mapping[str, J]
            ) -> Iterator[tuple[str, R | Exception]]:
        """``(model, fn(job))`` for each model of ``jobs``, in their order."""
        raise NotImplementedError


class SerialPool(ModelPool):
    """One model after the other, in the calling thread (the default)."""

    def map(self, fn, jobs):
        for name, job in jobs.items():
            try:
                yield name, fn(job)
            except Exception as exc:  # noqa: BLE001 - yielded as the model's result
                yield name, exc


class ExecutorPool(ModelPool):
    """A ``concurrent.futures`` pool of ``max_workers`` threads or worker processes, started
    for one map and shut down after it. Worker processes are spawned, not forked: the run's
    process has threads (polars, the registry's connections) that a fork would copy
    mid-step."""

    def __init__(self, kind: str, max_workers: int):
        if kind not in ("thread", "process"):
            raise ValueError(f"kind must be 'thread' or 'process', got {kind!r}")
        self.kind, self.max_workers, self.concurrency = kind, max_workers, max_workers
        self.description = (f"{max_workers} at once in "
                            f"{'threads' if kind == 'thread' else 'worker processes'}")

    def _executor(self, jobs: int) -> Executor:
        workers = max(1, min(self.max_workers, jobs))
        if self.kind == "thread":
            return ThreadPoolExecutor(workers, thread_name_prefix="retrain-fit")
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn, jobs):
        if not jobs:
            return
        executor = self._executor(len(jobs))
        try:
            futures = {name: executor.submit(fn, job) for name, job in jobs.items()}
            for name, future in futures.items():
                try:
                    yield name, future.result()
                except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool
                    yield name, exc
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


class DaskPool(ModelPool):
    """A Dask cluster: the one at ``address``, or a local cluster of ``workers`` processes
    with ``threads_per_worker`` threads each, started for one map and closed after it.
    Workers of a cluster at ``address`` must be able to import ``retrain`` (and a
    ``sklearn`` model's own code)."""

    def __init__(self, address: str | None = None, workers: int = 2, threads_per_worker: int = 1):
        self.address, self.workers, self.threads_per_worker = address, workers, threads_per_worker
        self.concurrency = None if address else workers * threads_per_worker
        self.description = (f"on the Dask cluster at {address}" if address else
                            f"on a local Dask cluster of {workers} worker process(es) x "
                            f"{threads_per_worker} thread(s)")

    def map(self, fn, jobs):
        if not jobs:
            return
        from distributed import Client, LocalCluster  # late: only a "dask" run needs Dask
        with ExitStack() as stack:
            if self.address:
                client = stack.enter_context(Client(self.address))
            else:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=self.workers, threads_per_worker=self.threads_per_worker,
                    processes=True, dashboard_address=None))
                client = stack.enter_context(Client(cluster))
            log.info("fitting %d model(s) on the Dask cluster at %s", len(jobs),
                     client.scheduler.address)
            run = uuid.uuid4().hex[:8]
            futures = {name: client.submit(fn, job, key=f"fit-{name}-{run}", pure=False)
                       for name, job in jobs.items()}
            for name, future in futures.items():
                try:
                    yield name, future.result()
                except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker
                    yield name, exc


def concurrency_of(settings: OrchestrationConfig) -> int | None:
    """How many fits share one machine's cores under ``settings`` (None: a cluster of its
    own, where each worker's thread count says)."""
    if settings.task_runner == "dask":
        return None if settings.dask_address else \
            settings.dask_workers * settings.dask_threads_per_worker
    return settings.max_workers


def local_pool(settings: OrchestrationConfig) -> ModelPool:
    """The pool ``[orchestration]`` asks for, without an orchestrator: the default (threads,
    ``max_workers = 1``) fits one model after the other in the run's own thread."""
    if settings.task_runner == "dask":
        return DaskPool(settings.dask_address, settings.dask_workers,
                        settings.dask_threads_per_worker)
    if settings.max_workers == 1 and settings.task_runner == "thread":
        return SerialPool()
    return ExecutorPool(settings.task_runner, settings.max_workers)


__all__ = ["DaskPool", "ExecutorPool", "ModelPool", "SerialPool", "concurrency_of",
           "local_pool"]
