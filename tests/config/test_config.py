"""Configuration: TOML, validation errors that name the key, env overrides, relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrain.config import load_config
from retrain.errors import ConfigError

MINIMAL = """
[data]
source = "data"
target = "y"
timestamp = "ts"

[models.rf]
kind = "random_forest"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "retrain.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path):
    s = load_config(write(tmp_path, MINIMAL), env={})
    assert s.triggers.volume_threshold == 1000
    assert s.promotion.metric is None and s.promotion.metric_for("binary") == "roc_auc"
    assert s.promotion.min_relative_improvement == 0.05
    assert s.training.window == "90d"
    assert s.registry_url == f"sqlite:///{tmp_path}/.retrain/registry.db"
    assert s.artifacts_dir == tmp_path / ".retrain/artifacts"


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_config(path, env={})
    assert s.data_source == str(tmp_path / "data")
    assert s.artifacts_dir == tmp_path / ".retrain/artifacts"


def test_retrain_config_env_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL)
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv("RETRAIN_CONFIG", str(path))
    assert load_config().data.target == "y"


@pytest.mark.parametrize("text, expected", [
    (MINIMAL + "\n[triggers]\nvolume_treshold = 5\n", "[triggers.volume_treshold]: unknown key"),
    (MINIMAL + "\n[triggers]\nvolume_threshold = 'many'\n", "[triggers.volume_threshold]"),
    (MINIMAL.replace('target = "y"\n', ""), "[data.target]: required key is missing"),
    (MINIMAL.replace("random_forest", "catboost"), "[models.rf.kind]"),
    (MINIMAL + "\n[training]\nwindow = 'last month'\n", "[training.window]"),
    (MINIMAL + "\n[promotion]\nmetric = 'auc'\n", "[promotion.metric]"),
    ("[data\nsource=1", "not valid TOML"),
])
def test_errors_name_the_key_in_one_line(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no configuration file"):
        load_config(tmp_path / "nope.toml", env={})


def test_prefixed_env_overrides(tmp_path):
    env = {"RETRAIN_PROMOTION__MIN_RELATIVE_IMPROVEMENT": "0.1",
           "RETRAIN_TRIGGERS__VOLUME_THRESHOLD": "250",
           "RETRAIN_DATA__CATEGORICAL": '["a", "b"]',
           "RETRAIN_MODELS__RF__PARAMS__N_ESTIMATORS": "7"}
    s = load_config(write(tmp_path, MINIMAL), env=env)
    assert s.promotion.min_relative_improvement == 0.1
    assert s.triggers.volume_threshold == 250
    assert s.data.categorical == ["a", "b"]
    assert s.models["rf"].params == {"n_estimators": 7}


def test_prefixed_env_with_a_bad_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"\[triggers.volume_threshold\]"):
        load_config(write(tmp_path, MINIMAL), env={"RETRAIN_TRIGGERS__VOLUME_THRESHOLD": "lots"})


def test_seed_setting_names(tmp_path):
    env = {"PSI_THRESHOLD": "0.3", "MODEL_IMPROVEMENT_THRESHOLD": "0.07",
           "RETRAINING_SCHEDULE": "monthly", "PERFORMANCE_ALERT_EMAIL": "ml@example.com, ops@example.com"}
    s = load_config(write(tmp_path, MINIMAL), env=env)
    assert s.drift.psi_threshold == 0.3
    assert s.promotion.min_relative_improvement == 0.07
    assert s.schedule.cron == "0 3 1 * *"
    assert s.notifications.email_recipients == ["ml@example.com", "ops@example.com"]
    assert load_config(write(tmp_path, MINIMAL), env={"DRIFT_THRESHOLD": "0.25"}).drift.psi_threshold == 0.25
    assert load_config(write(tmp_path, MINIMAL),
                       env={"RETRAINING_SCHEDULE": "0 5 * * 1"}).schedule.cron == "0 5 * * 1"


def test_prefixed_env_wins_over_seed_names(tmp_path):
    env = {"MODEL_IMPROVEMENT_THRESHOLD": "0.07", "RETRAIN_PROMOTION__MIN_RELATIVE_IMPROVEMENT": "0.02"}
    assert load_config(write(tmp_path, MINIMAL), env=env).promotion.min_relative_improvement == 0.02


def test_conflicting_seed_psi_names(tmp_path):
    with pytest.raises(ConfigError, match="DRIFT_THRESHOLD and PSI_THRESHOLD"):
        load_config(write(tmp_path, MINIMAL), env={"DRIFT_THRESHOLD": "0.1", "PSI_THRESHOLD": "0.2"})


def test_models_are_required(tmp_path):
    text = MINIMAL.split("[models.rf]")[0]
    with pytest.raises(ConfigError, match="models"):
        load_config(write(tmp_path, text), env={})


def test_a_bad_env_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL), env={"MODEL_IMPROVEMENT_THRESHOLD": "abc"})
    assert str(info.value).startswith("environment variable MODEL_IMPROVEMENT_THRESHOLD: "
                                      "[promotion.min_relative_improvement]")
    with pytest.raises(ConfigError, match="^environment variable RETRAIN_TRIGGERS__VOLUME_THRESHOLD"):
        load_config(write(tmp_path, MINIMAL), env={"RETRAIN_TRIGGERS__VOLUME_THRESHOLD": "lots"})
