"""The ``retrain`` command line, run in-process through ``retrain.cli.main`` (``--local``: the
library steps without Prefect) and, in slow tests, as the real console script."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from conftest import SMALL
from retrain.cli import main
from retrain.cli.pipeline import DEMO_MARKER
from retrain.demo import append_drifted_month, write_workspace
from retrain.workspace import Workspace

MODELS = ("random_forest", "lightgbm")
SEED_NAMES = ("DRIFT_THRESHOLD", "PSI_THRESHOLD", "MODEL_IMPROVEMENT_THRESHOLD",
              "RETRAINING_SCHEDULE", "PERFORMANCE_ALERT_EMAIL")
ACTOR = "cli-test"
RETRAIN_EXE = Path(sys.executable).with_name("retrain")


def _clean_env(mp: pytest.MonkeyPatch) -> None:
    """No config path or overrides from the caller's environment; a known actor."""
    for key in list(os.environ):
        if key.startswith("RETRAIN_") or key in SEED_NAMES:
            mp.delenv(key)
    mp.setenv("RETRAIN_CONFIG", "unset-below")  # recorded, so it is removed again afterwards
    mp.delenv("RETRAIN_CONFIG")
    mp.setenv("RETRAIN_ACTOR", ACTOR)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    _clean_env(monkeypatch)


def call(*argv: str) -> SimpleNamespace:
    """Run ``retrain ARGV`` in-process; return its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return SimpleNamespace(rc=rc, out=out.getvalue(), err=err.getvalue())


def call_json(*argv: str):
    result = call(*argv)
    assert result.rc == 0, result.err
    return json.loads(result.out)  # fails unless stdout is exactly one JSON document


def assert_one_line_error(result: SimpleNamespace, *needles: str) -> None:
    assert result.rc == 2
    assert result.out == ""
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.startswith("retrain: error:")]
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0]


def assert_run_document(doc: dict, models=MODELS) -> None:
    """The keys every ``retrain run --json`` document has."""
    assert {"reason", "triggers", "retrained", "models"} <= set(doc)
    assert isinstance(doc["triggers"]["drift"]["detected"], bool)
    assert isinstance(doc["triggers"]["drift"]["drifted_features"], list)
    assert isinstance(doc["triggers"]["volume"]["met"], bool)
    assert isinstance(doc["triggers"]["volume"]["new_rows"], int)
    assert isinstance(doc["retrained"], bool)
    assert set(doc["models"]) == set(models)
    for entry in doc["models"].values():
        assert {"production_version_before", "candidate_version", "decision", "reason",
                "metrics", "relative_improvement"} <= set(entry)
        assert entry["decision"] in {"bootstrapped", "promoted", "rejected", "skipped"}
        assert set(entry["metrics"]) >= {"candidate", "production"}
        assert entry["reason"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A small workspace after two CLI runs: the bootstrap, then a drifted month."""
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp)
        directory = tmp_path_factory.mktemp("cli") / "ws"
        config = write_workspace(directory, **SMALL)
        first = call_json("--config", config, "run", "--json", "--local")
        append_drifted_month(directory, index=SMALL["months"], rows=2000)
        second = call_json("--config", config, "run", "--json", "--local", "--reason", "schedule")
    return SimpleNamespace(dir=directory, config=config, first=first, second=second)


@pytest.fixture
def one_model(tmp_path):
    """A small workspace whose lightgbm model is bootstrapped (random_forest untouched)."""
    config = write_workspace(tmp_path / "ws", **SMALL)
    doc = call_json("--config", config, "run", "--json", "--local", "--model", "lightgbm")
    assert doc["models"]["lightgbm"]["decision"] == "bootstrapped"
    return config


# retrain run --json ------------------------------------------------------------------------

def test_run_json_bootstrap_document(ran):
    doc = ran.first
    assert_run_document(doc)
    assert doc["reason"] == "manual"
    assert doc["retrained"] is True
    assert "performance" not in doc["triggers"]  # not checked by default
    assert doc["triggers"]["drift"] | {"models": None} == {
        "detected": False, "drifted_features": [], "models": None}
    assert doc["triggers"]["volume"]["met"] is True
    assert doc["triggers"]["volume"]["new_rows"] == SMALL["months"] * SMALL["rows_per_month"]
    for name, entry in doc["models"].items():
        assert entry["production_version_before"] is None
        assert entry["candidate_version"] == f"{name}-v1"
        assert entry["decision"] == "bootstrapped"
        assert set(entry["metrics"]["candidate"]) >= {"roc_auc", "accuracy", "log_loss", "brier"}
        assert entry["metrics"]["production"] is None
        assert entry["relative_improvement"] is None


def test_run_json_after_drift_compares_with_production(ran):
    doc = ran.second
    assert_run_document(doc)
    assert doc["reason"] == "schedule"
    assert doc["retrained"] is True
    drift = doc["triggers"]["drift"]
    assert drift["detected"] is True
    features = set(Workspace.open(ran.config).store.schema().features)
    assert drift["drifted_features"] and set(drift["drifted_features"]) <= features
    assert doc["triggers"]["volume"] | {"models": None, "threshold": None} == {
        "met": True, "new_rows": 2000, "models": None, "threshold": None}
    for name, entry in doc["models"].items():
        assert entry["production_version_before"] == f"{name}-v1"
        assert entry["candidate_version"] == f"{name}-v2"
        cand = entry["metrics"]["candidate"]["roc_auc"]
        prod = entry["metrics"]["production"]["roc_auc"]
        # roc_auc is bounded by 1: the improvement is of its shortfall (improvement_basis)
        assert entry["improvement_basis"] == "error"
        assert entry["relative_improvement"] == pytest.approx((cand - prod) / (1 - prod))
        assert entry["metric_difference"] == pytest.approx(cand - prod)
        # The drifted month changes what predicts default: the seeded demo's challengers
        # close about half of production's shortfall, significantly, so retraining pays off.
        assert entry["relative_improvement"] > 0.2 and entry["decision"] == "promoted", entry
        assert entry["production_version_after"] == f"{name}-v2"


# retrain models / history --json -----------------------------------------------------------

def test_models_json(ran):
    doc = call_json("--config", ran.config, "models", "--json")
    assert set(doc) == {"models"}
    assert sorted(m["name"] for m in doc["models"]) == sorted(MODELS)
    for model in doc["models"]:
        versions = model["versions"]
        assert [v["version_id"] for v in versions] == [f"{model['name']}-v1", f"{model['name']}-v2"]
        for v in versions:
            assert {"version_id", "status", "kind", "metrics", "created_at"} <= set(v)
            assert v["kind"] == model["name"]  # the demo names each model after its kind
            assert 0.5 < v["metrics"]["roc_auc"] <= 1
            datetime.fromisoformat(v["created_at"])
        production = [v["version_id"] for v in versions if v["status"] == "production"]
        assert production == [model["production_version"]]
        assert ran.second["models"][model["name"]]["decision"] == "promoted"
        assert [v["status"] for v in versions] == ["archived", "production"]


def test_models_text_table(ran):
    result = call("--config", ran.config, "models")
    assert result.rc == 0
    assert result.out.count("PRODUCTION") == len(MODELS)
    for name in MODELS:
        assert f"{name}-v2" in result.out


def test_history_json(ran):
    for name in MODELS:
        doc = call_json("--config", ran.config, "history", name, "--json")
        assert doc["model"] == name
        events = doc["events"]
        for e in events:
            assert {"action", "version_id", "actor", "reason", "at"} <= set(e)
            assert e["actor"] == ACTOR
        times = [datetime.fromisoformat(e["at"]) for e in events]
        assert times == sorted(times)
        trail = [(e["action"], e["version_id"]) for e in events if e["action"] != "skipped"]
        v1, v2 = f"{name}-v1", f"{name}-v2"
        head = [("registered", v1), ("evaluated", v1), ("promoted", v1),
                ("registered", v2), ("evaluated", v2)]
        tail = {"promoted": [("archived", v1), ("promoted", v2)],
                "rejected": [("rejected", v2)]}[ran.second["models"][name]["decision"]]
        assert trail == head + tail
        by_action = {(e["action"], e["version_id"]): e for e in events}
        assert "vs production" in by_action[("evaluated", v2)]["reason"]
        assert by_action[("registered", v2)]["reason"] == "schedule"
        assert "first version becomes production" in by_action[("promoted", v1)]["reason"]


def test_history_of_unknown_model_is_one_line(ran):
    assert_one_line_error(call("--config", ran.config, "history", "xgboost"), "'xgboost'")


# retrain predict ---------------------------------------------------------------------------

def _scoring_input(ran) -> pl.DataFrame:
    """The drifted month without its label, as a user would score it."""
    month = ran.dir / "data" / f"applications_{SMALL['months'] + 1:02d}.parquet"
    return pl.read_parquet(month).drop("defaulted")


def test_predict_writes_the_models_own_probabilities(ran, tmp_path):
    src = tmp_path / "batch.parquet"
    frame = _scoring_input(ran)
    frame.write_parquet(src)
    dest = tmp_path / "scored.parquet"
    result = call("--config", ran.config, "predict", "lightgbm", src, "--output", dest)
    assert result.rc == 0, result.err
    assert result.out.strip() == str(dest)
    scored = pl.read_parquet(dest)
    assert scored.columns == frame.columns + ["prediction", "probability"]
    assert scored.drop("prediction", "probability").equals(frame)
    registry = Workspace.open(ran.config).registry
    model = registry.load(registry.production_version("lightgbm"))
    expected = model.predict_proba(frame)
    np.testing.assert_array_equal(scored["probability"].to_numpy(), expected)
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), (expected >= 0.5).astype(int))
    assert 0 < scored["prediction"].sum() < scored.height


def test_predict_csv_with_an_earlier_version(ran, tmp_path):
    src = tmp_path / "batch.csv"
    frame = _scoring_input(ran).head(300)
    frame.write_csv(src)
    result = call("--config", ran.config, "predict", "random_forest", src, "--version", "1")
    assert result.rc == 0, result.err
    dest = tmp_path / "batch.predictions.csv"
    assert result.out.strip() == str(dest)
    scored = pl.read_csv(dest, try_parse_dates=True)
    registry = Workspace.open(ran.config).registry
    v1 = registry.load(registry.get_version("random_forest-v1"))
    v2 = registry.load(registry.get_version("random_forest-v2"))
    csv_frame = pl.read_csv(src, try_parse_dates=True)
    np.testing.assert_allclose(scored["probability"].to_numpy(), v1.predict_proba(csv_frame))
    assert not np.allclose(v1.predict_proba(csv_frame), v2.predict_proba(csv_frame))


def test_predict_never_writes_into_the_feature_store(ran, tmp_path):
    data_dir = ran.dir / "data"
    before = sorted(p.name for p in data_dir.iterdir())
    src = data_dir / "applications_01.parquet"
    result = call("--config", ran.config, "predict", "lightgbm", src)
    assert result.rc == 0, result.err
    dest = Path(result.out.strip())
    assert dest.is_file() and not dest.is_relative_to(data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == before
    explicit = call("--config", ran.config, "predict", "lightgbm", src,
                    "--output", data_dir / "scored.parquet")
    assert_one_line_error(explicit, "feature store")
    assert sorted(p.name for p in data_dir.iterdir()) == before


def test_predict_missing_feature_column_is_one_line(ran, tmp_path):
    src = tmp_path / "no_income.parquet"
    _scoring_input(ran).drop("income").write_parquet(src)
    dest = tmp_path / "out.parquet"
    result = call("--config", ran.config, "predict", "lightgbm", src, "--output", dest)
    assert_one_line_error(result, "'income'", "missing")
    assert not dest.exists()


@pytest.mark.parametrize("case", ["no such file", "wrong suffix", "unknown model",
                                  "unknown version", "unwritable output"])
def test_predict_user_mistakes_are_one_line(ran, tmp_path, case):
    src = tmp_path / "batch.parquet"
    _scoring_input(ran).head(20).write_parquet(src)
    argv, needle = {
        "no such file": (["lightgbm", tmp_path / "nope.parquet"], "does not exist"),
        "wrong suffix": (["lightgbm", src, "--output", tmp_path / "out.json"], ".json"),
        "unknown model": (["xgboost", src], "'xgboost'"),
        "unknown version": (["lightgbm", src, "--version", "9"], "lightgbm-v9"),
        "unwritable output": (["lightgbm", src, "--output", tmp_path / "no" / "o.parquet"],
                              "o.parquet"),
    }[case]
    assert_one_line_error(call("--config", ran.config, "predict", *argv), needle)


def test_predict_empty_input_gives_empty_output(ran, tmp_path):
    src = tmp_path / "empty.parquet"
    _scoring_input(ran).head(0).write_parquet(src)
    for name in MODELS:
        dest = tmp_path / f"{name}.parquet"
        result = call("--config", ran.config, "predict", name, src, "--output", dest)
        assert result.rc == 0, result.err
        scored = pl.read_parquet(dest)
        assert scored.height == 0 and scored.columns[-2:] == ["prediction", "probability"]


# Configuration -----------------------------------------------------------------------------

GOOD_TOML = """\
[data]
source = "data"
target = "defaulted"
timestamp = "applied_at"

[models.lightgbm]
kind = "lightgbm"

[triggers]
volume_threshold = 1000
"""


@pytest.mark.parametrize("edit, needles", [
    (lambda t: t.replace('timestamp = "applied_at"', 'timestamp = "applied_at"\ntypo_key = 1'),
     ["data.typo_key", "unknown key"]),
    (lambda t: t.replace("volume_threshold = 1000", 'volume_threshold = "lots"'),
     ["triggers.volume_threshold", "integer", "'lots'"]),
    (lambda t: t.replace('target = "defaulted"\n', ""), ["data.target", "missing"]),
    (lambda t: t.replace('kind = "lightgbm"', 'kind = "catboost"'), ["models.lightgbm.kind"]),
    (lambda t: t.replace("[triggers]", "[triggers"), ["not valid TOML"]),
], ids=["unknown key", "wrong type", "missing target", "unknown kind", "bad TOML"])
@pytest.mark.parametrize("command", [["models", "--json"], ["run", "--json", "--local"],
                                     ["run", "--json"]], ids=["models", "run-local", "run-prefect"])
def test_config_errors_are_one_line(tmp_path, edit, needles, command):
    config = tmp_path / "retrain.toml"
    config.write_text(edit(GOOD_TOML))
    assert_one_line_error(call("--config", config, *command), str(config), *needles)


def test_missing_config_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(call("models"), "no configuration file", str(tmp_path / "retrain.toml"))
    assert_one_line_error(call("--config", "elsewhere/retrain.toml", "run", "--local"),
                          "no configuration file", "elsewhere")
    monkeypatch.setenv("RETRAIN_CONFIG", str(tmp_path / "from-env.toml"))
    assert_one_line_error(call("drift"), "from-env.toml")


def test_env_override_of_wrong_type_is_one_line(tmp_path, monkeypatch):
    config = tmp_path / "retrain.toml"
    config.write_text(GOOD_TOML)
    monkeypatch.setenv("RETRAIN_TRIGGERS__VOLUME_THRESHOLD", "lots")
    assert_one_line_error(call("--config", config, "models"), "triggers.volume_threshold")


def test_config_from_another_working_directory(ran, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = os.path.relpath(ran.config, elsewhere)
    models = call_json("--config", relative, "models", "--json")
    assert {m["name"]: m["production_version"] for m in models["models"]} == {
        n: ran.second["models"][n]["production_version_after"] for n in MODELS}
    # [data] source = "data" resolves against the file's folder: the drift check reads it.
    checked = call("--config", relative, "drift", "--json")
    drift = json.loads(checked.out)
    # Exit status 1 means drift was found, 0 none.
    assert checked.rc == (1 if any(d["detected"] for d in drift["models"].values()) else 0)
    assert set(drift["models"]) == set(MODELS)
    for name, d in drift["models"].items():
        if ran.second["models"][name]["decision"] == "promoted":  # trained on the newest rows
            assert d["note"] == "no rows newer than the production training window"
        else:  # v1 is still production: the drifted month is newer than its window
            assert d["detected"] and d["current_rows"] == 2000
    assert call_json("models", "--json", "--config", relative) == models  # after the command too
    monkeypatch.setenv("RETRAIN_CONFIG", str(ran.config))
    assert call_json("models", "--json") == models
    assert list(elsewhere.iterdir()) == []  # no registry or artifacts made here


def test_main_leaves_the_process_as_it_found_it(ran):
    """main() is called in-process by tests and scripts: no leaked config path, and the
    "retrain" logger still propagates (so pytest's caplog and the caller's handlers see it)."""
    logger = logging.getLogger("retrain")
    before = (logger.handlers[:], logger.level, logger.propagate)
    assert call("--config", ran.config, "-v", "models").rc == 0
    assert "RETRAIN_CONFIG" not in os.environ
    assert (logger.handlers, logger.level, logger.propagate) == before


# Environment overrides, promote and rollback ----------------------------------------------

def test_env_overrides_reach_the_run(one_model, monkeypatch):
    """A forced retrain on unchanged data gives the same model: relative improvement 0.
    So the threshold alone decides, and it must come from the environment."""
    force = ("--config", one_model, "run", "--json", "--local", "--model", "lightgbm", "--force")
    monkeypatch.setenv("MODEL_IMPROVEMENT_THRESHOLD", "0")  # the seed's name
    # An identical model is never significantly better: let the threshold alone decide.
    monkeypatch.setenv("RETRAIN_PROMOTION__REQUIRE_SIGNIFICANCE", "false")
    monkeypatch.setenv("RETRAIN_TRIGGERS__CHECK_PERFORMANCE", "true")
    doc = call_json(*force)
    entry = doc["models"]["lightgbm"]
    assert doc["forced"] is True
    assert doc["triggers"]["performance"]["triggered"] is False  # checked: no newer labels
    assert entry["relative_improvement"] == 0.0
    assert (entry["candidate_version"], entry["decision"]) == ("lightgbm-v2", "promoted")
    assert "needs +0.00%" in entry["reason"]

    monkeypatch.setenv("RETRAIN_PROMOTION__MIN_RELATIVE_IMPROVEMENT", "0.5")  # wins over the seed's
    doc = call_json(*force)
    entry = doc["models"]["lightgbm"]
    assert (entry["candidate_version"], entry["decision"]) == ("lightgbm-v3", "rejected")
    assert entry["relative_improvement"] == 0.0
    assert "needs +50.00%" in entry["reason"]
    assert entry["production_version_after"] == "lightgbm-v2"


def _statuses(config) -> dict[str, str]:
    doc = call_json("--config", config, "models", "--json")
    return {v["version_id"]: v["status"] for m in doc["models"] for v in m["versions"]}


def test_promote_and_rollback(one_model, monkeypatch):
    monkeypatch.setenv("RETRAIN_PROMOTION__MIN_RELATIVE_IMPROVEMENT", "0.5")
    run = call("--config", one_model, "run", "--local", "--model", "lightgbm", "--force")
    assert run.rc == 0, run.err
    assert "REJECTED" in run.out and "lightgbm-v2" in run.out  # the text summary
    assert _statuses(one_model) == {"lightgbm-v1": "production", "lightgbm-v2": "rejected"}

    assert_one_line_error(call("--config", one_model, "promote", "lightgbm-v2"), "rejected", "--force")
    assert _statuses(one_model)["lightgbm-v2"] == "rejected"

    ok = call("--config", one_model, "promote", "lightgbm-v2", "--force", "--reason", "hand-picked")
    assert ok.rc == 0, ok.err
    assert ok.out.strip() == "lightgbm-v2 is now production for lightgbm"
    assert _statuses(one_model) == {"lightgbm-v1": "archived", "lightgbm-v2": "production"}
    last = call_json("--config", one_model, "history", "lightgbm", "--json")["events"][-1]
    assert (last["action"], last["version_id"], last["actor"], last["reason"]) == (
        "promoted", "lightgbm-v2", ACTOR, "hand-picked")
    assert_one_line_error(call("--config", one_model, "promote", "lightgbm-v2"), "already production")

    back = call("--config", one_model, "rollback", "lightgbm")
    assert back.rc == 0, back.err
    assert back.out.strip() == "lightgbm-v1 is production again for lightgbm (was lightgbm-v2)"
    assert _statuses(one_model) == {"lightgbm-v1": "production", "lightgbm-v2": "archived"}
    last = call_json("--config", one_model, "history", "lightgbm", "--json")["events"][-1]
    assert (last["action"], last["version_id"]) == ("rolled-back", "lightgbm-v1")
    assert last["reason"] == "rollback from lightgbm-v2"
    assert last["details"]["rolled_back_from"] == "lightgbm-v2"

    forward = call("--config", one_model, "rollback", "lightgbm", "--to", "2", "--reason", "undo")
    assert forward.rc == 0, forward.err
    assert _statuses(one_model) == {"lightgbm-v1": "archived", "lightgbm-v2": "production"}

    # Every one of these changes was announced before and after, in that order.
    notices = [(n["kind"], n["subject"]) for n in reversed(
        call_json("--config", one_model, "notify", "--json", "--limit", "100")["notifications"])]
    changes = [n for n in notices if n[0] in ("pending_promotion", "promotion", "rollback")]
    assert changes[-6:] == [
        ("pending_promotion", "[retrain] lightgbm: lightgbm-v2 will replace lightgbm-v1 in production"),
        ("promotion", "[retrain] lightgbm: lightgbm-v2 promoted to production"),
        ("pending_promotion", "[retrain] lightgbm: lightgbm-v1 will replace lightgbm-v2 in production"),
        ("rollback", "[retrain] lightgbm: rolled back to lightgbm-v1"),
        ("pending_promotion", "[retrain] lightgbm: lightgbm-v2 will replace lightgbm-v1 in production"),
        ("rollback", "[retrain] lightgbm: rolled back to lightgbm-v2")]

    assert_one_line_error(call("--config", one_model, "rollback", "lightgbm", "--to", "7"), "lightgbm-v7")
    assert_one_line_error(call("--config", one_model, "rollback", "xgboost"), "'xgboost'")
    assert_one_line_error(call("--config", one_model, "promote", "xgboost-v1"), "'xgboost-v1'")
    assert_one_line_error(call("--config", one_model, "rollback", "random_forest"), "random_forest")
    assert _statuses(one_model) == {"lightgbm-v1": "archived", "lightgbm-v2": "production"}


# retrain demo ------------------------------------------------------------------------------

def test_demo_refuses_to_overwrite_a_folder_it_did_not_make(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert_one_line_error(call("demo", "--workspace", folder, "--local"), str(folder),
                          "not a demo workspace")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "keep me"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert_one_line_error(call("demo", "--workspace", a_file, "--local"), str(a_file))
    assert a_file.read_text() == "x"


@pytest.mark.slow
def test_demo_local_then_every_command_works_there(tmp_path, monkeypatch):
    folder = tmp_path / "demo"
    result = call("demo", "--workspace", folder, "--local")
    assert result.rc == 0, result.err
    assert "== Run 1: bootstrap ==" in result.out and "== Run 2: after the drift ==" in result.out
    assert "drift:  DETECTED" in result.out
    assert "PROMOTED" in result.out
    assert (folder / DEMO_MARKER).is_file() and (folder / "retrain.toml").is_file()
    monkeypatch.chdir(folder)
    models = call_json("models", "--json")["models"]
    assert sorted(m["name"] for m in models) == sorted(MODELS)
    for m in models:
        assert [v["status"] for v in m["versions"]].count("production") == 1
    assert any(m["production_version"].endswith("-v2") for m in models)
    assert call_json("history", "lightgbm", "--json")["events"]


# The real console script --------------------------------------------------------------------

def _subprocess_env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "RETRAIN_")) and k not in SEED_NAMES}
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               RETRAIN_ACTOR=ACTOR)
    return env


@pytest.mark.slow
def test_console_script_run_json_through_prefect(make_workspace, tmp_path):
    """`retrain run --json` with Prefect in local ephemeral mode (no server started, no
    PREFECT_API_URL): stdout is exactly one JSON document, Prefect's logs go to stderr.
    (tests/test_flows.py runs the console script against a server, including a failing run.)"""
    assert RETRAIN_EXE.is_file(), f"console script not installed at {RETRAIN_EXE}"
    ws = make_workspace()
    env = _subprocess_env(tmp_path / "prefect-home")
    run = subprocess.run([RETRAIN_EXE, "run", "--json"], cwd=ws.settings.base_dir, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert_run_document(doc)
    assert {m["decision"] for m in doc["models"].values()} == {"bootstrapped"}
    assert "retraining-pipeline" in run.stderr  # the Prefect engine ran the flow
    assert "Starting temporary server" in run.stderr  # in local ephemeral mode

