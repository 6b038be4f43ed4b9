"""Serve the retraining pipeline from this process, on the schedule in ``retrain.toml``.

    RETRAIN_CONFIG=/path/to/retrain.toml python -m deployments.serve

An alternative to ``prefect deploy`` + a worker for a single machine: the process registers the
``retraining-pipeline/monthly`` deployment (cron and timezone from ``[schedule]``) and runs its
flow runs itself until stopped.
"""

from __future__ import annotations

import os

from prefect.schedules import Cron

from flows.pipeline import retraining_pipeline
from retrain.config import find_config_path, load_config


def main() -> None:
    config_path = str(find_config_path())
    settings = load_config(config_path)
    retraining_pipeline.serve(
        name="monthly",
        schedules=[Cron(settings.schedule.cron, timezone=settings.schedule.timezone)],
        parameters={"reason": "schedule", "config": config_path},
        tags=["retrain"],
    )


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    main()
