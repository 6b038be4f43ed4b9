"""The ``backtest`` flow (deployment ``backtest/manual``) publishes the comparison table, the
period-by-period comparison and a link to its page as artifacts of its own run."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrain.demo import write_workspace
from retrain_prefect import deployments

pytestmark = pytest.mark.slow


def test_the_backtest_flow_publishes_the_comparison(harness, client, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from retrain_prefect.flows.backtest import backtest
    config = write_workspace(tmp_path / "ws", months=4, rows_per_month=900, trees=20)
    state = backtest(config=str(config), policies=["configured", "never"], models=["lightgbm"],
                     return_state=True)
    assert state.is_completed(), state
    document = state.result()
    assert set(document["policies"]) == {"configured", "never"}
    run_id = state.state_details.flow_run_id
    artifacts = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))}
    assert {"backtest-totals", "backtest-comparison", "backtest-page"} <= set(artifacts)
    assert artifacts["backtest-totals"].type == "table"
    assert "| configured | lightgbm |" in artifacts["backtest-comparison"].data
    page = Path(artifacts["backtest-page"].data.split("(file://", 1)[1].split(")", 1)[0])
    assert page.is_file() and "plotly" in page.read_text()[:200_000]
    assert not (tmp_path / "ws" / ".retrain" / "registry.db").exists()  # never opened
    assert deployments.by_name("backtest/manual").load_flow() is backtest
