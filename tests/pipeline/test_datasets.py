"""Several datasets in one workspace: each model's triggers, window, holdout, drift reference
and evaluation come from its own dataset, and one run reads each dataset once."""

from __future__ import annotations

import pytest

from conftest import SMALL
from retrain.data import FeatureStore
from retrain.demo import generate_month, write_workspace
from retrain.errors import ConfigError
from retrain.pipeline import run_pipeline
from retrain.workspace import Workspace

GRADES = '''
[datasets.grades]
source = "grades"
target = "risk_grade"
timestamp = "applied_at"
entity_id = "application_id"
categorical = ["home_ownership", "purpose"]

[models.grader]
kind = "lightgbm"
dataset = "grades"
params = { n_estimators = 40, learning_rate = 0.05, num_leaves = 15 }
'''


@pytest.fixture
def two_datasets(tmp_path):
    directory = tmp_path / "ws"
    write_workspace(directory, **SMALL)  # [data]: loan defaults, models random_forest, lightgbm
    (directory / "grades").mkdir()
    for i in range(SMALL["months"]):
        generate_month(i, 700, drifted=False, seed=11, task="multiclass").write_parquet(
            directory / "grades" / f"grades_{i + 1:02d}.parquet")
    toml = directory / "retrain.toml"
    # Without [promotion] metric each model is judged by its task's default.
    toml.write_text(toml.read_text().replace('metric = "roc_auc"\n', "") + GRADES)
    return directory


def add_drifted_months(directory) -> None:
    index = SMALL["months"]
    generate_month(index, 2000, drifted=True, seed=7).write_parquet(
        directory / "data" / f"applications_{index + 1:02d}.parquet")
    generate_month(index, 1500, drifted=True, seed=11, task="multiclass").write_parquet(
        directory / "grades" / f"grades_{index + 1:02d}.parquet")


def test_one_run_retrains_models_on_two_datasets_reading_each_once(two_datasets, monkeypatch):
    scans: list[str] = []
    original = FeatureStore._scan

    def counted(self, files):
        scans.append(self.config.source)
        return original(self, files)

    monkeypatch.setattr(FeatureStore, "_scan", counted)
    ws = Workspace.open(two_datasets / "retrain.toml")
    assert ws.settings.dataset_names == ["data", "grades"]
    first = run_pipeline(ws)
    assert {n: m.decision for n, m in first.models.items()} == {
        "random_forest": "bootstrapped", "lightgbm": "bootstrapped", "grader": "bootstrapped"}
    assert set(first.datasets) == {"data", "grades"}
    assert first.datasets["grades"].task == "multiclass" and first.data.task == "binary"
    assert sorted(scans) == ["data", "grades"]  # each dataset read once in the run

    add_drifted_months(two_datasets)
    scans.clear()
    second = run_pipeline(ws, reason="schedule")
    assert sorted(scans) == ["data", "grades"]
    drift = second.triggers.drift.models
    assert drift["grader"].detected and drift["lightgbm"].detected
    volume = second.triggers.volume.models
    assert volume["grader"].new_rows == 1500 and volume["lightgbm"].new_rows == 2000
    for name, outcome in second.models.items():
        assert outcome.decision == "promoted", (name, outcome.reason)
    assert second.models["grader"].metric == "roc_auc_ovr"
    assert second.models["lightgbm"].metric == "roc_auc"
    grader = ws.registry.production_version("grader")
    assert grader.task == "multiclass"
    # Its own window and holdout: the grades' rows, not the applications'.
    assert second.datasets["grades"].train_rows + second.datasets["grades"].holdout_rows == \
        grader.row_count
    assert grader.row_count != ws.registry.production_version("lightgbm").row_count
    ws.registry.dispose()


@pytest.mark.parametrize("section, needle", [
    ({"models": {"m": {"kind": "lightgbm", "dataset": "nope"}}},
     "[models.m] dataset: no [datasets.nope] section"),
    ({"models": {"m": {"kind": "lightgbm"}}}, "[models.m] names no dataset and there is no [data]"),
    ({"datasets": {"data": {"source": "x", "target": "y", "timestamp": "t"}},
      "models": {"m": {"kind": "lightgbm", "dataset": "data"}}}, "the name is the [data] section's"),
])
def test_dataset_sections_are_checked_when_loaded(tmp_path, section, needle):
    from retrain.config import settings_from_dict
    with pytest.raises(ConfigError) as refused:
        settings_from_dict({"datasets": {"d": {"source": "d", "target": "y", "timestamp": "t"}},
                            **section}, base_dir=tmp_path)
    assert needle in str(refused.value)


def test_a_workspace_of_named_datasets_needs_no_data_section(tmp_path):
    from retrain.config import settings_from_dict
    settings = settings_from_dict(
        {"datasets": {"d": {"source": "d", "target": "y", "timestamp": "t"}},
         "models": {"m": {"kind": "lightgbm", "dataset": "d"}}}, base_dir=tmp_path)
    ws = Workspace(settings, None, None)
    assert ws.for_model("m").settings.data.source == "d" and ws.for_model("m") is ws.for_dataset("d")
    with pytest.raises(ConfigError, match="there is no \\[data\\] section"):
        ws.for_dataset("data")
