"""Bad input, table-driven: each case is one line on stderr naming the file, key or field and
what was expected, exit status 2, no traceback, and nothing registered.

Every case runs in a copy of one bootstrapped workspace (lightgbm-v1 in production, a drifted
month appended so that a run would retrain). The prediction service's cases (oversized,
non-UTF-8, deeply nested or huge-number bodies, long ids and categories, bad labels) are in
tests/serve/test_serve_guard.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import polars as pl
import pytest

from conftest import SMALL
from retrain.demo import append_drifted_month, write_workspace
from retrain.errors import ConfigError
from retrain.notify.outbox import Outbox
from retrain.pipeline import run_pipeline
from retrain.workspace import Workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bad") / "ws"
    config = write_workspace(directory, **SMALL)
    ws = Workspace.open(config)
    ws.settings.drift.save_reports = False
    run_pipeline(ws, ["lightgbm"])
    append_drifted_month(directory, index=SMALL["months"], rows=1000)
    ws.registry.dispose()
    return directory


@pytest.fixture
def workspace(template, tmp_path, monkeypatch) -> Path:
    for key in [k for k in os.environ if k.startswith("RETRAIN_") or k == "RETRAINING_SCHEDULE"]:
        monkeypatch.delenv(key)
    directory = tmp_path / "ws"
    shutil.copytree(template, directory)
    monkeypatch.chdir(directory)
    return directory


def config_key(section: str, line: str) -> Callable[[Path], None]:
    """``line`` (``key = value``) set in ``[section]`` of the workspace's retrain.toml."""
    def change(ws: Path) -> None:
        config = ws / "retrain.toml"
        text = config.read_text()
        header = f"[{section}]\n"
        key = line.split("=")[0].strip()
        if header not in text:
            config.write_text(f"{text}\n{header}{line}\n")
            return
        start = text.index(header) + len(header)
        end = text.find("\n[", start)
        end = len(text) if end < 0 else end + 1
        body = "".join(f"{row}\n" for row in text[start:end].splitlines()
                       if row.split("=")[0].strip() != key)
        config.write_text(text[:start] + f"{line}\n" + body + text[end:])
    return change


def lightgbm_section(lines: str) -> Callable[[Path], None]:
    """[models.lightgbm] with ``lines`` instead of its own."""
    def change(ws: Path) -> None:
        config = ws / "retrain.toml"
        text = config.read_text()
        start = text.index("[models.lightgbm]")
        end = text.index("\n[", start + 1)
        config.write_text(text[:start] + f'[models.lightgbm]\nkind = "lightgbm"\n{lines}\n'
                          + text[end:])
    return change


def data_file(name: str, content: bytes | Callable[[Path], bytes]) -> Callable[[Path], None]:
    def change(ws: Path) -> None:
        value = content(ws) if callable(content) else content
        (ws / "data" / name).write_bytes(value)
    return change


def truncated_parquet(ws: Path) -> bytes:
    whole = sorted((ws / "data").glob("*.parquet"))[-1].read_bytes()
    return whole[: len(whole) // 2]


def csv_with(header: str) -> Callable[[Path], bytes]:
    def make(ws: Path) -> bytes:
        frame = pl.read_parquet(sorted((ws / "data").glob("*.parquet"))[0]).head(5)
        text = frame.write_csv()
        return (header + "\n" + "\n".join(text.splitlines()[1:]) + "\n").encode()
    return make


def scoring_input_with_inf(ws: Path) -> None:
    frame = pl.read_parquet(sorted((ws / "data").glob("*.parquet"))[0]).head(5)
    frame.with_columns(pl.lit(float("inf")).alias("income")).write_parquet(ws / "score.parquet")


def pg_env(_: Path) -> dict[str, str]:
    return {"RETRAIN_REGISTRY__URL": "postgresql+psycopg://nobody@127.0.0.1:5999/none"}


CASES = {
    # Unreadable data, wherever it is read.
    "corrupt parquet under run": (data_file("broken.parquet", b"PAR1 this is not parquet"),
                                  ["run", "--local"], ["broken.parquet", "not a readable Parquet file"]),
    "empty parquet under drift": (data_file("empty.parquet", b""), ["drift"],
                                  ["empty.parquet", "not a readable Parquet file"]),
    "truncated parquet under run": (data_file("cut.parquet", truncated_parquet), ["run", "--local"],
                                    ["cut.parquet", "not a readable Parquet file"]),
    "missing input to predict": (lambda ws: None, ["predict", "lightgbm", "nothing.parquet"],
                                 ["nothing.parquet", "does not exist"]),
    "truncated parquet to predict": (data_file("../score.parquet", truncated_parquet),
                                     ["predict", "lightgbm", "score.parquet"],
                                     ["score.parquet", "not a readable Parquet file"]),
    "CSV with duplicate column names": (data_file("dup.csv", csv_with("a,a,b")), ["run", "--local"],
                                        ["dup.csv", "'a' more than once"]),
    "CSV with the wrong delimiter": (data_file("semi.csv", b"applied_at;income\n2026-01-01;1\n"),
                                     ["run", "--local"], ["semi.csv", "timestamp column is missing",
                                                          "separated by something else"]),
    "predict with inf": (scoring_input_with_inf, ["predict", "lightgbm", "score.parquet"],
                         ["'income'", "non-finite values (inf) in score.parquet"]),
    # Model parameters, checked against the estimator before any training.
    "seed -1": (lightgbm_section("seed = -1"), ["run", "--local"],
                ["[models.lightgbm.seed]", "greater than or equal to 0"]),
    "n_estimators -5": (lightgbm_section("params = { n_estimators = -5 }"), ["run", "--local"],
                        ["[models.lightgbm] params", "n_estimators must be at least 1, got -5"]),
    "num_leaves many": (lightgbm_section('params = { num_leaves = "many" }'), ["run", "--local"],
                        ["[models.lightgbm] params", "num_leaves should be of type int"]),
    # The configuration, checked when it is loaded.
    "window overflow": (config_key("training", 'window = "99999999999d"'), ["models"],
                        ["[training.window]", "at most 36500 days"]),
    "binary retrain.toml": (lambda ws: (ws / "retrain.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff"),
                            ["models"], ["retrain.toml", "not a TOML text file"]),
    "schedule cron": (config_key("schedule", 'cron = "every day"'), ["models"],
                      ["[schedule.cron]", "not a cron expression"]),
    "schedule timezone": (config_key("schedule", 'timezone = "Mars/Olympus"'), ["models"],
                          ["[schedule.timezone]", "unknown time zone 'Mars/Olympus'"]),
    "RETRAINING_SCHEDULE": (lambda ws: {"RETRAINING_SCHEDULE": "61 * * * *"}, ["models"],
                            ["RETRAINING_SCHEDULE", "not a cron expression"]),
    "smtp_port": (config_key("notifications", "smtp_port = 99999999"), ["models"],
                  ["[notifications.smtp_port]", "65535"]),
    "drift methods": (config_key("drift", 'methods = ["bogus"]'), ["models"],
                      ["[drift.methods]", "unknown drift method 'bogus'"]),
    "unreachable PostgreSQL": (pg_env, ["models"], ["cannot open the registry",
                                                    "127.0.0.1", "5999", "Connection refused"]),
}


def run_cli(argv: list[str], env: dict[str, str]) -> SimpleNamespace:
    """The console script's entry point in a process of its own: native libraries' output
    and the process's exit status are what a user sees."""
    run = subprocess.run([sys.executable, "-m", "retrain.cli", *argv], capture_output=True,
                         text=True, timeout=300, env={**os.environ, **env})
    return SimpleNamespace(rc=run.returncode, out=run.stdout, err=run.stderr)


def registered(ws: Path) -> dict[str, object]:
    """What a refused command must leave as it was: each version and its status, each model's
    audit history, and the outbox."""
    workspace = Workspace.open(ws / "retrain.toml")
    registry = workspace.registry
    models = ("lightgbm", "random_forest")
    out = {"versions": [(v.version_id, v.status) for name in models for v in registry.versions(name)],
           "history": {name: len(registry.history(name)) for name in models},
           "outbox": [(n.id, n.status) for n in Outbox(registry, workspace.settings.notifications)
                      .messages(limit=10_000)]}
    registry.dispose()
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_naming_it(workspace, case):
    change, argv, needles = CASES[case]
    before = registered(workspace)
    env = change(workspace)
    result = run_cli(argv, env if isinstance(env, dict) else {})
    assert result.rc == 2, (result.rc, result.err)
    assert result.out == "" and "Traceback" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if line.strip()
             and not line[:8].replace(":", "").isdigit()]  # progress lines start with a time
    assert len(lines) == 1 and lines[0].startswith("retrain: error:"), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    try:
        after = registered(workspace)
    except ConfigError:
        return  # the configuration itself is the bad input: nothing can have run
    assert after == before  # nothing registered, changed, audited or queued


def test_notify_limit_must_be_positive(workspace):
    result = run_cli(["notify", "--limit", "-5"], {})
    assert result.rc == 2 and "--limit: expected a whole number of at least 1, got '-5'" in result.err


def test_the_evidently_methods_the_config_knows_are_evidentlys():
    from retrain.config import EVIDENTLY_DRIFT_METHODS, OWN_DRIFT_METHODS
    from retrain.stats.drift import evidently_methods
    assert set(EVIDENTLY_DRIFT_METHODS) | set(OWN_DRIFT_METHODS) >= set(evidently_methods())
    assert set(EVIDENTLY_DRIFT_METHODS) <= set(evidently_methods())
