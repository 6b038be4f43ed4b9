"""Several models fitted at once without Prefect (the direct runner: ``run_pipeline``,
``retrain run --local``): a pool of threads or worker processes, or a local Dask cluster, as
``[orchestration]`` says. The same seed gives the same models as one after the other, each fit
runs where the pool says, and one model's failure leaves the others registered."""

from __future__ import annotations

import os

import pytest

from many_models import many_models_workspace, model_names
from retrain.pipeline import run_pipeline
from retrain.pipeline.runner import DirectRunner, step_info
from retrain.training.fit import FitJob, FitResult, fit_candidate, threads_per_fit
from retrain.training.pools import DaskPool, ExecutorPool, SerialPool, local_pool
from retrain.workspace import Workspace

COUNT = 4  # two forests, a LightGBM, a logistic regression

PARALLEL = {"thread": 'task_runner = "thread"\nmax_workers = 2',
            "process": 'task_runner = "process"\nmax_workers = 2',
            "dask": 'task_runner = "dask"\ndask_workers = 2\ndask_threads_per_worker = 1'}


class RecordingRunner(DirectRunner):
    """The direct runner, keeping each step's output (the candidates, with where each was
    fitted) and the pool the fitting step was given."""

    def __init__(self):
        self.outputs, self.pools = {}, {}

    def __call__(self, fn, context, *inputs):
        name = step_info(fn).name
        original = fn

        def step(ctx, *args):
            self.pools[name] = ctx.model_pool
            return original(ctx, *args)

        step.step = fn.step
        self.outputs[name] = out = super().__call__(step, context, *inputs)
        return out


def run(config) -> tuple[Workspace, object, RecordingRunner]:
    ws = Workspace.open(config)
    runner = RecordingRunner()
    document = run_pipeline(ws, runner=runner)
    return ws, document, runner


def registered(ws: Workspace, names: list[str]) -> dict[str, tuple]:
    """Each model's registered version: its metrics, params and features."""
    out = {}
    for name in names:
        [version] = ws.registry.versions(name)
        out[name] = (version.metrics, version.params, version.feature_schema, version.status)
    return out


def test_the_pool_is_the_one_orchestration_asks_for(make_workspace):
    settings = make_workspace().settings.orchestration
    assert isinstance(local_pool(settings), SerialPool)  # the default: one after the other
    threads = local_pool(settings.model_copy(update={"max_workers": 3}))
    assert isinstance(threads, ExecutorPool) and (threads.kind, threads.concurrency) == ("thread", 3)
    processes = local_pool(settings.model_copy(update={"task_runner": "process"}))
    assert isinstance(processes, ExecutorPool) and processes.kind == "process"
    dask = local_pool(settings.model_copy(update={"task_runner": "dask", "dask_workers": 3,
                                                  "dask_threads_per_worker": 2}))
    assert isinstance(dask, DaskPool) and dask.address is None and dask.concurrency == 6
    remote = local_pool(settings.model_copy(update={"task_runner": "dask",
                                                    "dask_address": "tcp://scheduler:8786"}))
    assert remote.address == "tcp://scheduler:8786" and remote.concurrency is None


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_pool_of_two_registers_the_models_one_after_the_other_would(tmp_path, mode):
    names = model_names(COUNT)
    ws_serial, doc_serial, _ = run(many_models_workspace(tmp_path / "serial", COUNT))
    ws, document, runner = run(many_models_workspace(tmp_path / mode, COUNT, PARALLEL[mode]))

    assert {m.decision for m in document.models.values()} == {"bootstrapped"}, document.models
    # Same seed, same data: the same models, recorded with the same params (the threads a
    # forest was given in the pool are not part of it).
    assert registered(ws, names) == registered(ws_serial, names)
    assert all("n_jobs" not in registered(ws, names)[n][1] for n in names)
    pool = runner.pools["retrain-models"]
    assert isinstance(pool, ExecutorPool) and (pool.kind, pool.max_workers) == (mode, 2)
    fitted = {n: c.fitted_by for n, c in runner.outputs["retrain-models"].items()}
    if mode == "process":  # fitted in worker processes, registered here
        assert all(f.pid != os.getpid() for f in fitted.values()), fitted
    else:
        assert all(f.pid == os.getpid() for f in fitted.values()), fitted
    # Each fit takes its share of the cores: two at once on this machine.
    assert {f.threads for f in fitted.values()} == {threads_per_fit(2)}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["thread", "process", "dask"])
def test_one_model_that_fails_in_its_fit_leaves_the_others_registered(tmp_path, mode):
    config = many_models_workspace(tmp_path / "ws", 3, PARALLEL[mode], refusing=True)
    ws, document, runner = run(config)

    outcome = document.models["refuses"]
    assert outcome.decision == "failed" and "refuses to learn" in outcome.reason, outcome
    assert not document.success
    candidates = runner.outputs["retrain-models"]
    assert candidates["refuses"].candidate_version is None
    for name in model_names(3):
        assert document.models[name].decision == "bootstrapped", (name, document.models[name])
        assert ws.registry.production_version(name).version_id == f"{name}-v1"
    assert ws.registry.versions("refuses") == []
    if mode != "thread":
        assert {c.fitted_by.pid for c in candidates.values()} - {os.getpid()}, candidates
    if mode == "dask":
        assert all(c.fitted_by.worker.startswith("tcp://") for c in candidates.values())


def test_a_fit_failure_of_any_kind_is_its_models_result(make_workspace):
    """In a worker a fit's exception is the model's result (an error text), never the end
    of the worker's other fits; its own exception object may not even unpickle elsewhere."""
    ws = make_workspace()
    from retrain.training.candidates import fit_job
    from retrain.training.data import load_training_data
    job = fit_job(ws, "random_forest", load_training_data(ws))
    job.params = {"n_estimators": 5, "max_features": "no such option"}
    result = fit_candidate(job)
    assert isinstance(result, FitResult) and result.trained is None
    assert "InvalidParameterError" in result.error or "max_features" in result.error
    assert result.pid == os.getpid()


def test_a_job_and_its_result_survive_pickling(make_workspace):
    import pickle
    ws = make_workspace()
    from retrain.training.candidates import fit_job
    from retrain.training.data import load_training_data
    job = fit_job(ws, "lightgbm", load_training_data(ws))
    again = pickle.loads(pickle.dumps(job))
    assert isinstance(again, FitJob) and again.train.equals(job.train)
    result = pickle.loads(pickle.dumps(fit_candidate(again)))
    assert result.error is None and result.metrics == fit_candidate(job).metrics
    assert result.reference_profile  # the drift reference, with the holdout part added
