"""The seed's Python examples run as written, with only the import path changed.

The three examples below are copied verbatim from the seed's "Usage" section (the design
notes' "Python API"); ``ml_pipeline.retraining`` becomes ``retrain``. They run from inside a
workspace folder, so the constructors with no arguments find ``./retrain.toml``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from retrain.workspace import Workspace

SEED_MODULE = "ml_pipeline.retraining"
SEED_FILE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "000_45d97c775ea4cee1.txt"

MANUAL_RETRAINING = '''\
from ml_pipeline.retraining import AutomatedRetrainingPipeline

# Initialize pipeline
pipeline = AutomatedRetrainingPipeline()

# Retrain all models
results = pipeline.retrain_all_models()

# Evaluate new models
evaluation = pipeline.evaluate_new_models(results)

print(f"Retraining completed: {results['success']}")
print(f"Models evaluated: {evaluation['summary']['models_evaluated']}")
'''

CHECKING_TRIGGERS = '''\
from ml_pipeline.retraining import RetrainingTriggers

# Initialize triggers
triggers = RetrainingTriggers()

# Check if retraining should be triggered
should_retrain, trigger_info = triggers.should_retrain(
    check_drift=True,
    check_volume=True,
    check_performance=False
)

if should_retrain:
    print(f"Retraining triggered: {trigger_info['trigger_reason']}")
else:
    print("No retraining needed")
'''

MODEL_PROMOTION = '''\
from ml_pipeline.retraining import ModelPromoter

# Initialize promoter
promoter = ModelPromoter(improvement_threshold=0.05)  # 5% improvement

# Promote models if they meet criteria
promotion_results = promoter.promote_if_better(evaluation_results)

print(f"Models promoted: {promotion_results['summary']['models_promoted']}")
'''


def _ours(example: str) -> str:
    """The seed's example with our import path (the only change the design allows)."""
    assert SEED_MODULE in example
    return example.replace(SEED_MODULE, "retrain")


def _run(example: str, namespace: dict) -> dict:
    exec(compile(_ours(example), "<seed example>", "exec"), namespace)
    return namespace


@pytest.fixture
def in_workspace(make_workspace, monkeypatch):
    """A small workspace as the working directory, with no config path in the environment."""
    monkeypatch.setenv("RETRAIN_CONFIG", "unused")
    monkeypatch.delenv("RETRAIN_CONFIG")
    ws = make_workspace()
    monkeypatch.chdir(ws.settings.base_dir)
    return ws


def test_examples_are_the_seed_text():
    """The examples above are the seed's own code blocks, character for character."""
    if not SEED_FILE.is_file():
        pytest.skip(f"seed text not found at {SEED_FILE} (it lives outside the repository)")
    blocks = re.findall(r"```python\n(.*?)```", SEED_FILE.read_text(), flags=re.S)
    for example in (MANUAL_RETRAINING, CHECKING_TRIGGERS, MODEL_PROMOTION):
        assert example in blocks


def test_seed_examples_bootstrap_a_fresh_workspace(in_workspace, capsys):
    ws = in_workspace
    ns = _run(MANUAL_RETRAINING, {})
    results, evaluation = ns["results"], ns["evaluation"]
    assert results["success"] is True
    assert set(results["models"]) == {"random_forest", "lightgbm"}
    assert evaluation["summary"]["models_evaluated"] == 2
    for name, ev in evaluation["models"].items():
        assert ev["candidate_version"] == f"{name}-v1"
        assert ev["production_version"] is None and ev["relative_improvement"] is None

    ns = _run(CHECKING_TRIGGERS, ns)
    assert ns["should_retrain"] is True
    # No production version yet, so every labeled row (4 months x 900) is new.
    assert ns["trigger_info"]["trigger_reason"] == "bootstrap, volume"
    assert ns["trigger_info"]["models_to_retrain"] == ["random_forest", "lightgbm"]

    ns["evaluation_results"] = evaluation  # the seed's name for the evaluation above
    ns = _run(MODEL_PROMOTION, ns)
    summary = ns["promotion_results"]["summary"]
    assert summary["models_promoted"] == 2
    assert summary["models_rejected"] == 0

    out = capsys.readouterr().out.splitlines()
    assert out == ["Retraining completed: True", "Models evaluated: 2",
                   "Retraining triggered: bootstrap, volume", "Models promoted: 2"]
    registry = Workspace.open(ws.settings.base_dir / "retrain.toml").registry
    for name in ("random_forest", "lightgbm"):
        assert [v.version_id for v in registry.versions(name) if v.status == "production"] \
            == [f"{name}-v1"]


def test_seed_examples_after_drift(in_workspace, drift_month, capsys):
    """With production models and a drifted month: the triggers fire for drift and volume,
    candidates are compared with production, and the promoter follows the 5% rule."""
    ws = in_workspace
    ns = _run(MANUAL_RETRAINING, {})
    ns["evaluation_results"] = ns["evaluation"]
    _run(MODEL_PROMOTION, ns)
    capsys.readouterr()

    ns = _run(CHECKING_TRIGGERS, {})
    assert ns["should_retrain"] is False
    assert ns["trigger_info"]["trigger_reason"] is None
    assert capsys.readouterr().out == "No retraining needed\n"

    drift_month(ws)
    ns = _run(CHECKING_TRIGGERS, {})
    assert ns["should_retrain"] is True
    assert ns["trigger_info"]["trigger_reason"] == "drift, volume"
    for entry in ns["trigger_info"]["models"].values():
        assert entry["drift"]["detected"] and entry["drift"]["drifted_features"]
        assert entry["volume"]["met"] and entry["volume"]["new_rows"] == 2000

    ns = _run(MANUAL_RETRAINING, {})
    evaluation = ns["evaluation"]
    assert ns["results"]["success"] is True
    assert evaluation["summary"]["models_evaluated"] == 2
    for name, ev in evaluation["models"].items():
        assert ev["candidate_version"] == f"{name}-v2"
        assert ev["production_version"] == f"{name}-v1"
        metric = ev["metric"]
        cand, prod = ev["metrics"]["candidate"][metric], ev["metrics"]["production"][metric]
        # "5% better" of roc_auc is of its shortfall from 1 (improvement_basis = "error")
        assert ev["improvement_basis"] == "error" and metric == "roc_auc"
        assert ev["relative_improvement"] == pytest.approx((cand - prod) / (1 - prod))
        assert ev["metric_difference"] == pytest.approx(cand - prod)

    ns["evaluation_results"] = evaluation
    ns = _run(MODEL_PROMOTION, ns)
    promotion = ns["promotion_results"]
    expected = sorted(n for n, ev in evaluation["models"].items()
                      if ev["relative_improvement"] >= 0.05)
    assert sorted(promotion["summary"]["promoted"]) == expected
    assert promotion["summary"]["models_promoted"] == len(expected)
    assert promotion["summary"]["models_promoted"] >= 1  # the drift is strong enough
    registry = Workspace.open(ws.settings.base_dir / "retrain.toml").registry
    for name, result in promotion["models"].items():
        production = registry.production_version(name)
        if result["decision"] == "promoted":
            assert production.version_id == f"{name}-v2"
            assert registry.get_version(f"{name}-v1").status == "archived"
        else:
            assert result["decision"] == "rejected"
            assert production.version_id == f"{name}-v1"
            assert registry.get_version(f"{name}-v2").status == "rejected"
