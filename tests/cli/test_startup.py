"""Start-up: the commands that only read the registry, and ``--help``, load none of the heavy
libraries (scikit-learn, SciPy, LightGBM, Evidently, Prefect). Each runs in a fresh process
through the console script's entry point; the test lists what that process imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import SMALL
from retrain.demo import write_workspace
from retrain.pipeline import run_pipeline
from retrain.workspace import Workspace

HEAVY = {"sklearn", "scipy", "lightgbm", "evidently", "prefect", "skops", "pandas"}

# Runs the console script's main with the given arguments and writes the top-level names of
# every module the process imported to the file named first.
PROBE = """
import atexit, json, sys
out, argv = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted({m.split(".")[0] for m in sys.modules}))))
from retrain_prefect.cli import main
sys.exit(main(argv))
"""


def imported_by(tmp_path, *argv) -> tuple[set[str], subprocess.CompletedProcess]:
    listing = tmp_path / "modules.json"
    run = subprocess.run([sys.executable, "-c", PROBE, str(listing), *map(str, argv)],
                         capture_output=True, text=True, timeout=120)
    return set(json.loads(listing.read_text())), run


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    directory = tmp_path_factory.mktemp("startup") / "ws"
    path = write_workspace(directory, **SMALL)
    ws = Workspace.open(path)
    ws.settings.drift.save_reports = False
    run_pipeline(ws, ["lightgbm"])
    return path


@pytest.mark.parametrize("argv", [["--help"], ["models"], ["history", "lightgbm"],
                                  ["models", "--json"]])
def test_reading_commands_load_no_heavy_library(tmp_path, config, argv):
    if argv != ["--help"]:
        argv = ["--config", config, *argv]
    modules, run = imported_by(tmp_path, *argv)
    assert run.returncode == 0, run.stderr
    assert "lightgbm" in run.stdout or argv == ["--help"]
    assert modules & HEAVY == set(), f"{argv} imported {sorted(modules & HEAVY)}"
    assert "retrain" in modules and "polars" in modules or argv == ["--help"]


def test_the_probe_sees_a_heavy_import(tmp_path, config):
    """``retrain drift`` needs the drift engine (SciPy): the listing shows it."""
    modules, run = imported_by(tmp_path, "--config", config, "drift", "--model", "lightgbm")
    assert run.returncode in (0, 1), run.stderr
    assert "scipy" in modules
