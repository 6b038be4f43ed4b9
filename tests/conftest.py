"""Shared fixtures: small demo workspaces built from the demo's data generator, and the Prefect
test server. Tests are grouped by stage in folders; helpers are in ``support/``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

# Prefect must not phone home or lock the SQLite database from its telemetry thread.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The library's progress at INFO, as a user who configures logging sees it (and as the
# Prefect layer sets it): the log notification channel delivers only where INFO lines show.
logging.getLogger("retrain").setLevel(logging.INFO)

# Helpers the tests share (real servers, fixtures of one subject) live apart from the tests.
SUPPORT = Path(__file__).resolve().parent / "support"
sys.path.insert(0, str(SUPPORT))
pytest_plugins = ["abtest", "serving", "s3_server"]

from retrain.demo import append_drifted_month, write_workspace  # noqa: E402
from retrain.workspace import Workspace  # noqa: E402

SMALL = {"months": 4, "rows_per_month": 900, "trees": 40}


@pytest.fixture
def make_workspace(tmp_path: Path):
    """Factory: ``make_workspace(name="ws", **demo_options) -> Workspace`` in a temp folder."""

    def _make(name: str = "ws", drifted: bool = False, **options) -> Workspace:
        directory = tmp_path / name
        kwargs = {**SMALL, **options}
        write_workspace(directory, **kwargs)
        if drifted:
            append_drifted_month(directory, index=kwargs["months"], rows=2000)
        return Workspace.open(directory / "retrain.toml")

    return _make


@pytest.fixture
def workspace(make_workspace) -> Workspace:
    """A fresh workspace with four stable months and no models yet."""
    return make_workspace()


@pytest.fixture
def drift_month():
    """Append the drifted month to a workspace: ``drift_month(ws)``."""

    def _append(ws: Workspace, rows: int = 2000) -> Path:
        months = len(list((ws.settings.base_dir / "data").glob("*.parquet")))
        return append_drifted_month(ws.settings.base_dir, index=months, rows=rows)

    return _append


@pytest.fixture(scope="session")
def harness():
    """One Prefect test server for the whole session (it takes several seconds to start)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=120):
        # No crash-detection heartbeats: each synchronous flow call would wait up to a second
        # for its heartbeat thread, and a pipeline run is seven flows.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield PREFECT_API_URL.value()


@pytest.fixture
def client(harness):
    """A synchronous Prefect client of the session's test server (flow runs, events, artifacts)."""
    from prefect import get_client
    with get_client(sync_client=True) as c:
        yield c
