"""The whole run as library calls: bootstrap, drift -> promote, reject, skip, bad data."""

from __future__ import annotations

import polars as pl
import pytest

from retrain.errors import DataValidationError
from retrain.pipeline import run_pipeline
from retrain.triggers import check_performance, check_volume
from retrain.workspace import Workspace


def production(ws: Workspace) -> dict[str, str | None]:
    return {n: (v.version_id if (v := ws.registry.production_version(n)) else None)
            for n in ws.settings.model_names}


def actions(ws: Workspace, model: str) -> list[str]:
    return [e.action for e in ws.registry.history(model)]


def test_bootstrap_then_drift_promotes(workspace, drift_month):
    doc = run_pipeline(workspace)
    assert {m.decision for m in doc.models.values()} == {"bootstrapped"}
    assert production(workspace) == {"random_forest": "random_forest-v1", "lightgbm": "lightgbm-v1"}
    assert actions(workspace, "lightgbm") == ["registered", "evaluated", "promoted"]
    promoted = workspace.registry.history("lightgbm")[-1]
    assert promoted.actor and "no production version" in promoted.reason

    drift_month(workspace)
    doc = run_pipeline(workspace, reason="schedule")
    assert doc.reason == "schedule"
    assert doc.triggers.drift.detected is True
    assert "debt_to_income" in doc.triggers.drift.drifted_features
    assert doc.triggers.volume.met is True and doc.triggers.volume.new_rows == 2000
    # The drifted month changes what predicts default: the seeded demo's challengers are far
    # better (about half of production's ROC AUC shortfall) and significantly so, so both
    # are promoted.
    assert set(doc.models) == {"random_forest", "lightgbm"}
    for name, m in doc.models.items():
        assert m.production_version_before == f"{name}-v1"
        assert m.candidate_version == f"{name}-v2"
        assert m.relative_improvement > 0.2, (name, m.relative_improvement)
        assert m.decision == "promoted", (name, m.reason)
        assert "significant" in m.reason and "needs +5.00%" in m.reason
        assert m.production_version_after == f"{name}-v2"
        # Exactly one production version per model, the old one archived and kept.
        assert [v.status for v in workspace.registry.versions(name)] == ["archived", "production"]
        assert workspace.registry.load(workspace.registry.get_version(f"{name}-v1"))
        assert actions(workspace, name)[-4:] == ["registered", "evaluated", "archived", "promoted"]


def test_no_new_data_skips_and_records_why(workspace):
    run_pipeline(workspace)
    doc = run_pipeline(workspace)
    assert doc.retrained is False
    assert set(doc.models) == {"random_forest", "lightgbm"}
    for name, m in doc.models.items():
        assert m.decision == "skipped"
        assert "no trigger fired" in m.reason and "0 new rows < 1000" in m.reason
        assert actions(workspace, name)[-1] == "skipped"
    assert production(workspace) == {"random_forest": "random_forest-v1", "lightgbm": "lightgbm-v1"}


def test_forced_retrain_on_the_same_data_is_rejected(workspace):
    run_pipeline(workspace)
    doc = run_pipeline(workspace, force=True, models=["lightgbm"])
    m = doc.models["lightgbm"]
    assert list(doc.models) == ["lightgbm"]
    assert m.trigger == "forced"
    # Same data and seed: the same model, so no improvement at all.
    assert m.relative_improvement == pytest.approx(0.0)
    assert m.decision == "rejected" and "needs +5.00%" in m.reason
    assert workspace.registry.production_version("lightgbm").version_id == "lightgbm-v1"
    assert workspace.registry.get_version("lightgbm-v2").status == "rejected"
    assert actions(workspace, "lightgbm")[-1] == "rejected"


def test_threshold_zero_promotes_an_equal_model_only_without_significance(make_workspace):
    ws = make_workspace()
    run_pipeline(ws, models=["lightgbm"])
    ws.settings.promotion.min_relative_improvement = 0.0
    doc = run_pipeline(ws, force=True, models=["lightgbm"])
    m = doc.models["lightgbm"]
    # An identical model: the interval of the difference is [0, 0], not above zero.
    assert m.decision == "rejected" and "not significant" in m.reason
    ws.settings.promotion.require_significance = False
    doc = run_pipeline(ws, force=True, models=["lightgbm"])
    assert doc.models["lightgbm"].decision == "promoted"


def test_lower_is_better_metric(make_workspace, drift_month):
    ws = make_workspace()
    ws.settings.promotion.metric = "log_loss"
    run_pipeline(ws, models=["lightgbm"])
    drift_month(ws)
    m = run_pipeline(ws, models=["lightgbm"]).models["lightgbm"]
    cand, prod = m.metrics.candidate["log_loss"], m.metrics.production["log_loss"]
    # Lower is better: the improvement is the relative reduction, and here it is large (the
    # seeded demo: log loss about 0.54 against 0.70).
    assert cand < prod
    assert m.relative_improvement == pytest.approx((prod - cand) / prod)
    assert m.relative_improvement > 0.15
    assert m.metric == "log_loss" and m.decision == "promoted", m.reason
    assert m.reason.startswith(f"log_loss {cand:.4f} vs {prod:.4f} in production")


def test_bad_data_fails_the_run_and_leaves_the_registry_intact(workspace, drift_month):
    run_pipeline(workspace)
    before = {n: [(v.version_id, v.status) for v in workspace.registry.versions(n)]
              for n in workspace.settings.model_names}
    path = drift_month(workspace)
    df = pl.read_parquet(path).with_columns(pl.col("credit_score").cast(pl.String))
    df.write_parquet(path)
    with pytest.raises(DataValidationError, match="column 'credit_score': type changed"):
        run_pipeline(workspace, reason="schedule")
    after = {n: [(v.version_id, v.status) for v in workspace.registry.versions(n)]
             for n in workspace.settings.model_names}
    assert after == before


def test_volume_and_performance_triggers(workspace, drift_month):
    run_pipeline(workspace)
    assert check_volume(workspace, "lightgbm").new_rows == 0
    drift_month(workspace, rows=500)
    volume = check_volume(workspace, "lightgbm")
    assert volume.new_rows == 500 and not volume.met and volume.threshold == 1000
    perf = check_performance(workspace, "lightgbm")
    assert perf.rows == 500
    assert perf.current < perf.at_promotion
    assert perf.triggered and perf.relative_drop >= 0.05


def test_performance_trigger_in_a_run(workspace, drift_month):
    run_pipeline(workspace)
    drift_month(workspace, rows=500)
    workspace.settings.drift.drift_share = 1.0  # only the performance trigger can fire
    doc = run_pipeline(workspace, check_performance=True)
    assert doc.triggers.performance.triggered is True
    assert set(doc.models) == {"random_forest", "lightgbm"}
    assert all("performance" in m.trigger for m in doc.models.values())


def test_production_changed_since_evaluation_is_not_overwritten(workspace, drift_month):
    """A run does not replace a production version its candidate was never compared with."""
    from retrain.evaluation.evaluate import evaluate_candidates
    from retrain.promotion.decisions import decide_all
    from retrain.training import load_training_data
    from retrain.training.candidates import train_candidates

    run_pipeline(workspace, models=["lightgbm"])
    drift_month(workspace)
    data = load_training_data(workspace)
    evaluations = evaluate_candidates(
        workspace, train_candidates(workspace, ["lightgbm"], data, "drift"), data)
    # Meanwhile another run registers and promotes its own candidate.
    other = train_candidates(workspace, ["lightgbm"], data, "manual")["lightgbm"].candidate_version
    workspace.registry.promote(other, reason="another run")
    decision = decide_all(workspace, evaluations)["lightgbm"]
    assert decision.decision == "failed" and "changed meanwhile" in decision.reason
    assert workspace.registry.production_version("lightgbm").version_id == other


def test_one_models_broken_artifact_fails_only_that_model(workspace, drift_month):
    """A tampered production artifact of random_forest: its part of the run fails with the
    reason, lightgbm is decided as usual, and nothing of random_forest changes."""
    run_pipeline(workspace)
    broken = workspace.registry.artifact_file(workspace.registry.get_version("random_forest-v1"))
    broken.write_bytes(broken.read_bytes()[:-20])
    drift_month(workspace)
    doc = run_pipeline(workspace, reason="schedule")
    assert doc.success is False
    failed = doc.models["random_forest"]
    assert failed.decision == "failed" and "sha256" in failed.reason
    assert failed.candidate_version is None and failed.production_version_after == "random_forest-v1"
    assert doc.models["lightgbm"].decision == "promoted"
    assert [v.version_id for v in workspace.registry.versions("random_forest")] == ["random_forest-v1"]
    assert actions(workspace, "random_forest")[-1] == "run-failed"


def test_a_candidate_left_by_a_process_that_died_is_abandoned_by_the_next_run(workspace, drift_month):
    """A process registers a candidate and ends before deciding it (as a killed run would):
    the next run rejects it, audited as abandoned, and says so in its document."""
    import subprocess
    import sys

    run_pipeline(workspace, models=["lightgbm"])
    drift_month(workspace)
    config = workspace.settings.base_dir / "retrain.toml"
    script = ("import sys\nfrom retrain.workspace import Workspace\n"
              "from retrain.training import load_training_data, train_candidate\n"
              "ws = Workspace.open(sys.argv[1])\n"
              "train_candidate(ws, 'lightgbm', load_training_data(ws), reason='killed')\n")
    done = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert workspace.registry.get_version("lightgbm-v2").status == "candidate"
    doc = run_pipeline(workspace, models=["lightgbm"], reason="schedule")
    assert doc.abandoned_candidates == ["lightgbm-v2"]
    assert workspace.registry.get_version("lightgbm-v2").status == "rejected"
    event = next(e for e in workspace.registry.history("lightgbm") if e.action == "abandoned")
    assert event.version_id == "lightgbm-v2" and "stopped before deciding it" in event.reason
    # The run itself went on: its own candidate is v3, decided as usual.
    assert doc.models["lightgbm"].candidate_version == "lightgbm-v3"
    assert doc.models["lightgbm"].decision == "promoted"
