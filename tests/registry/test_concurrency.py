"""Concurrency: several processes open a new registry, register versions of one model and
promote them, each step at the same moment (a barrier), on SQLite and PostgreSQL.

Writers must queue, not fail: every process succeeds, numbers are distinct, and the
promotions form one chain in which each archived the one before it.
"""

from __future__ import annotations

import queue
import traceback
from datetime import datetime

import numpy as np
import pytest

from pg import BACKENDS, backend_urls, process_context
from retrain.data import Schema
from retrain.demo import generate_month
from retrain.errors import RegistryError
from retrain.modeling import fit_model
from retrain.registry import Registry, db

pytestmark = pytest.mark.slow

WORKERS = 4
MODEL = "churn"


def contend(url: str, artifacts: str, model, barrier, results, index: int) -> None:
    """One process: open, register, promote; each step released together with the others."""
    try:
        barrier.wait(timeout=60)
        registry = Registry(url, artifacts)  # the first open creates the schema
        barrier.wait(timeout=60)
        version = registry.register_version(
            model_name=MODEL, model=model, train_start=datetime(2026, 1, 1),
            train_end=datetime(2026, 2, 1), holdout_start=datetime(2026, 1, 25), row_count=300,
            holdout_rows=60, data_fingerprint=f"{index:064d}", metrics={"worker": index},
            actor=f"worker-{index}")
        barrier.wait(timeout=60)
        try:
            registry.promote(version.version_id, reason=f"worker {index}", actor=f"worker-{index}")
            outcome = "promoted"
        except RegistryError as exc:
            outcome = f"RegistryError: {exc}"
        registry.dispose()
        results.put((index, version.version_id, outcome))
    except BaseException:  # noqa: BLE001 - reported to the test, which fails on it
        results.put((index, None, traceback.format_exc()))


@pytest.fixture(scope="module")
def model():
    frame = generate_month(0, 300, drifted=False, seed=4)
    schema = Schema(("income", "credit_score", "purpose"), ("purpose",))
    return fit_model("random_forest", {"n_estimators": 3, "n_jobs": 1}, frame, schema,
                     "defaulted", seed=0), frame


@pytest.mark.parametrize("backend", BACKENDS)
def test_simultaneous_open_register_and_promote(backend, model, tmp_path):
    trained, frame = model
    ctx = process_context()
    with backend_urls(backend, tmp_path) as (url,):
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        processes = [ctx.Process(target=contend, name=f"contend-{i}",
                                 args=(url, str(tmp_path / "artifacts"), trained, barrier,
                                       results, i)) for i in range(WORKERS)]
        for p in processes:
            p.start()
        outcomes = {}
        try:
            for _ in processes:
                index, version_id, outcome = results.get(timeout=120)
                outcomes[index] = (version_id, outcome)
        except queue.Empty:
            pytest.fail(f"workers did not finish; results so far: {outcomes}")
        finally:
            for p in processes:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        assert all(p.exitcode == 0 for p in processes)

        failures = {i: o.strip().splitlines()[-1] for i, (v, o) in outcomes.items()
                    if o != "promoted"}
        assert not failures, f"writers must queue, not fail: {failures}"

        registry = Registry(url, tmp_path / "artifacts")
        try:
            versions = registry.versions(MODEL)
            # Distinct numbers 1..N, and each process got the row (and artifact) it wrote.
            assert sorted(v.number for v in versions) == list(range(1, WORKERS + 1))
            assert sorted(v for v, _ in outcomes.values()) == [v.version_id for v in versions]
            for index, (version_id, _) in outcomes.items():
                stored = registry.get_version(version_id)
                assert stored.metrics == {"worker": index}
                assert np.array_equal(registry.load(stored).predict_proba(frame),
                                      trained.predict_proba(frame))

            # Exactly one production version; the promotions form one chain.
            assert sorted(v.status for v in versions) == (
                ["archived"] * (WORKERS - 1) + ["production"])
            events = registry.history(MODEL)
            promoted = [e for e in events if e.action == "promoted"]
            assert len(promoted) == WORKERS
            chain = [None] + [e.version_id for e in promoted]
            assert [e.details["previous_version"] for e in promoted] == chain[:-1]
            assert registry.production_version(MODEL).version_id == chain[-1]
            assert sorted(e.version_id for e in events if e.action == "archived") == \
                sorted(chain[1:-1])
            assert [m.name for m in registry.models()] == [MODEL]
            engine = db.make_engine(url)
            assert db.current_revision(engine) == db.head_revision()
            engine.dispose()
        finally:
            registry.dispose()
