"""`retrain ab` and `retrain rollout` from the command line: tables for people, --json for
scripts, one-line errors with exit status 2."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from retrain.cli import main
from retrain.experiments import ABTestingManager
from abtest import MODEL, set_salt, simulate


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    monkeypatch.setenv("RETRAIN_ACTOR", "cli-test")


@pytest.fixture
def config(ab_workspace) -> str:
    return str(ab_workspace.settings.base_dir / "retrain.toml")


def call(*argv) -> SimpleNamespace:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return SimpleNamespace(rc=rc, out=out.getvalue(), err=err.getvalue())


def call_json(*argv):
    result = call(*argv, "--json")
    assert result.rc == 0, result.err
    return json.loads(result.out)


def one_line_error(result, *needles) -> None:
    assert result.rc == 2 and result.out == "" and "Traceback" not in result.err
    [line] = [x for x in result.err.splitlines() if x.startswith("retrain: error:")]
    for needle in needles:
        assert needle in line


def test_a_complete_ab_test_from_the_command_line(ab_workspace, config):
    created = call("ab", "create", MODEL, "--b", "2", "--split", "0.5", "--days", "7",
                   "--config", config)
    assert created.rc == 0 and "started A/B test ab-lightgbm-1" in created.out
    manager = ABTestingManager(workspace=ab_workspace, cache_seconds=0)
    set_salt(ab_workspace, "ab-lightgbm-1", "cli")
    simulate(manager, {"A": 0.7, "B": 0.82}, 3000, np.random.default_rng(11))

    table = call("ab", "status", "ab-lightgbm-1", "--config", config)
    assert table.rc == 0
    assert "ab-lightgbm-1 (lightgbm): SIGNIFICANT, winner B (lightgbm-v2)" in table.out
    assert "traffic split check (SRM): ok" in table.out
    document = call_json("ab", "status", "ab-lightgbm-1", "--config", config)
    assert (document["status"], document["winner"]) == ("significant", "B")
    assert sum(v["requests"] for v in document["variants"].values()) == 3000
    every = call_json("ab", "status", "--config", config)
    assert [t["test_id"] for t in every["tests"]] == ["ab-lightgbm-1"]

    ended = call("ab", "end", "ab-lightgbm-1", "--config", config)
    assert ended.rc == 0 and "promoted lightgbm-v2" in ended.out
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v2"
    listed = call("ab", "list", "--config", config)
    assert "ab-lightgbm-1" in listed.out and "significant" in listed.out
    assert call_json("ab", "list", "--config", config)["experiments"][0]["winner"] == "B"


def test_ending_without_promotion_keeps_production(ab_workspace, config):
    call("ab", "create", MODEL, "--a", "production", "--b", "lightgbm-v3", "--config", config)
    result = call_json("ab", "end", "ab-lightgbm-1", "--no-promote", "--config", config)
    assert (result["status"], result["promoted"], result["production_version"]) == (
        "stopped", None, "lightgbm-v1")


def test_a_canary_rollout_from_the_command_line(ab_workspace, config):
    started = call("rollout", "start", MODEL, "2", "--strategy", "canary", "--initial", "0.1",
                   "--increment", "0.45", "--interval-hours", "12", "--config", config)
    assert started.rc == 0, started.err
    assert "10% of lightgbm's traffic to lightgbm-v2" in started.out
    assert [line.split()[:2] for line in started.out.splitlines()[3:]] == [
        ["1", "10%"], ["2", "55%"], ["3", "100%"]]
    manager = ABTestingManager(workspace=ab_workspace, cache_seconds=0)
    set_salt(ab_workspace, "rollout-lightgbm-1", "cli-rollout")
    simulate(manager, {"A": 0.8, "B": 0.8}, 3000, np.random.default_rng(12))
    status = call("rollout", "status", MODEL, "--config", config)
    assert "step 1 of 3: 10% to lightgbm-v2" in status.out and "guardrail (tolerance 0.02): ok" in status.out
    start = manager.rollout_status(MODEL)["started_at"]
    held = call_json("rollout", "advance", "--now", (start + timedelta(hours=1)).isoformat(),
                     "--config", config)
    assert held["rollouts"][0]["action"] == "held"
    assert call("rollout", "pause", MODEL, "--reason", "weekend", "--config", config).rc == 0
    paused = call("rollout", "advance", "--now", (start + timedelta(hours=13)).isoformat(),
                  "--config", config)
    assert "PAUSED" in paused.out
    assert call("rollout", "resume", MODEL, "--config", config).rc == 0
    advanced = call_json("rollout", "advance", "--now", (start + timedelta(days=2)).isoformat(),
                         "--config", config)
    assert advanced["rollouts"][0]["action"] == "advanced"
    assert advanced["rollouts"][0]["traffic_percentage"] == 55
    aborted = call("rollout", "abort", MODEL, "--config", config)
    assert aborted.rc == 0 and "stopped: 0%" in aborted.out
    assert ab_workspace.registry.production_version(MODEL).version_id == "lightgbm-v1"
    assert call_json("rollout", "status", MODEL, "--config", config)["status"] == "stopped"


@pytest.mark.parametrize("argv, needles", [
    (("ab", "create", MODEL, "--b", "1"), ("two different versions",)),
    (("ab", "create", MODEL, "--b", "2", "--split", "1.2"), ("traffic_split", "1.2")),
    (("ab", "create", "nope", "--b", "2"), ("no registered model 'nope'",)),
    (("ab", "status", "ab-nope-1"), ("no experiment 'ab-nope-1'",)),
    (("ab", "end", "ab-nope-1"), ("no experiment 'ab-nope-1'",)),
    (("rollout", "start", MODEL, "lightgbm-v7"), ("lightgbm-v7",)),
    (("rollout", "start", MODEL, "2", "--strategy", "gradual", "--increment", "0.3"),
     ("apply to canary",)),
    (("rollout", "pause", MODEL), ("has no active rollout",)),
    (("rollout", "status", "nope"), ("no registered model or rollout 'nope'",)),
    (("rollout", "advance", "--now", "yesterday"), ("--now 'yesterday'",)),
])
def test_mistakes_are_one_line_errors(config, argv, needles):
    one_line_error(call(*argv, "--config", config), *needles)


def test_a_second_test_is_refused_on_the_command_line(config):
    assert call("ab", "create", MODEL, "--b", "2", "--config", config).rc == 0
    one_line_error(call("rollout", "start", MODEL, "3", "--config", config),
                   "already has an active A/B test ab-lightgbm-1")
