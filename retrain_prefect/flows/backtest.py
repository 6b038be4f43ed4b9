"""The ``backtest`` flow: replay the feature store under retraining policies and publish the
comparison (``retrain.backtest``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run as current_run

from retrain.backtest.replay import backtest as replay
from retrain.backtest.report import SUMMARY_HEADERS, backtest_markdown, summary_rows, write_html
from retrain.config import find_config_path, load_config
from retrain.storage import ReportStore


@flow(name="backtest", log_prints=True)
def backtest(config: str | None = None, start: str | None = None, end: str | None = None,
             every: str = "30d", policies: list[str] | None = None,
             overrides: dict[str, Any] | None = None,
             models: list[str] | None = None) -> dict[str, Any]:
    """Replay the workspace's feature store period by period under the policies (default: all
    four) against scratch registries, and publish the comparison table (``backtest-totals``,
    ``backtest-comparison``) and a link to its page (``backtest-page``). The workspace's
    registry is never opened."""
    settings = load_config(find_config_path(config))
    result = replay(settings, start=datetime.fromisoformat(start) if start else None,
                    end=datetime.fromisoformat(end) if end else None, every=every,
                    policies=policies, overrides=overrides, models=models)
    run_id = str(current_run.id or "local")
    reports = ReportStore.from_settings(settings)
    page = write_html(result, reports.root / "backtest" / f"backtest-{run_id}.html")
    create_table_artifact(key="backtest-totals", table=[dict(zip(SUMMARY_HEADERS, row))
                                                        for row in summary_rows(result)],
                          description="Each policy's totals over the replay")
    create_markdown_artifact(key="backtest-comparison", markdown=backtest_markdown(result),
                             description="Each policy, period by period")
    create_link_artifact(key="backtest-page", link=reports.link(page),
                         link_text="backtest page (plotly)")
    print(backtest_markdown(result))
    return result.to_dict()
