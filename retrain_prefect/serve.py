"""Serve retrain's two deployments from this process, without a work pool or worker.

    RETRAIN_CONFIG=/path/to/retrain.toml python -m deployments.serve

An alternative to ``prefect deploy`` + a worker for a single machine: the process registers
``retraining-pipeline/monthly`` (cron and timezone from ``[schedule]``, the drift and volume
triggers, one run at a time), ``drift-check/daily``, ``rollout-advance/hourly`` (cron from ``[rollout]``) and the
rollback, A/B-test and rollout flows for the dashboard (``<flow>/manual``), and
``failure-alert/notify``, and runs their flow runs
itself until stopped. The deployments have the same names as in prefect.yaml: use one way or the other.
Apply the failure and crash automations with ``python -m deployments.automations``.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "retrain")

from prefect import serve  # noqa: E402
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy  # noqa: E402
from prefect.schedules import Cron  # noqa: E402

from retrain_prefect.automations import pipeline_triggers  # noqa: E402
from retrain_prefect.build import DRIFT_CHECK_CRON  # noqa: E402
from retrain_prefect.flows.drift_check import drift_check  # noqa: E402
from retrain_prefect.flows.pipeline import retraining_pipeline  # noqa: E402
from retrain_prefect.flows.experiments import (ab_test_status, control_rollout, end_ab_test, start_ab_test,  # noqa: E402
                               start_rollout)
from retrain_prefect.flows.failure_alert import failure_alert  # noqa: E402
from retrain_prefect.flows.rollback import rollback_model  # noqa: E402
from retrain_prefect.flows.rollout import rollout_advance  # noqa: E402
from retrain.config import find_config_path, load_config  # noqa: E402


def main() -> None:
    config_path = str(find_config_path())
    settings = load_config(config_path)
    schedule = settings.schedule
    serve(
        retraining_pipeline.to_deployment(
            name="monthly",
            schedules=[Cron(schedule.cron, timezone=schedule.timezone)],
            parameters={"reason": "schedule", "config": config_path},
            triggers=pipeline_triggers(),
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
            tags=["retrain"],
        ),
        drift_check.to_deployment(
            name="daily",
            schedules=[Cron(DRIFT_CHECK_CRON, timezone=schedule.timezone)],
            parameters={"config": config_path},
            tags=["retrain"],
        ),
        rollout_advance.to_deployment(
            name="hourly",
            schedules=[Cron(settings.rollout.cron, timezone=schedule.timezone)],
            parameters={"config": config_path},
            # One check at a time: two would judge the same step twice.
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
            tags=["retrain"],
        ),
        # Run by the automation "retrain: email on failed or crashed run".
        failure_alert.to_deployment(name="notify", parameters={"config": config_path},
                                    tags=["retrain"]),
        *[manual.to_deployment(name="manual", parameters={"config": config_path}, tags=["retrain"])
          for manual in (rollback_model, start_ab_test, ab_test_status, end_ab_test,
                         start_rollout, control_rollout)],
    )


if __name__ == "__main__":
    main()
