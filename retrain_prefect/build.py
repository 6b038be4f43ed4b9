"""Deploy-time values for ``prefect.yaml``, read from the workspace's ``retrain.toml``.

``prefect deploy`` runs :func:`retrain_settings` as a build step (``id: retrain``); the
deployments then use ``{{ retrain.cron }}``, ``{{ retrain.timezone }}``,
``{{ retrain.drift_check_cron }}``, ``{{ retrain.rollout_cron }}`` (``[rollout] cron``),
``{{ retrain.env }}`` and ``{{ retrain.project_dir }}`` (the checkout that holds prefect.yaml). So the schedule has one home, ``[schedule]`` in
retrain.toml (or its environment overrides such as ``RETRAIN_SCHEDULE__TIMEZONE``), for
``prefect deploy`` and ``python -m deployments.serve`` alike.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from retrain.config import ENV_CONFIG, RolloutConfig, ScheduleConfig, find_config_path, load_config
from retrain.errors import ConfigError
from retrain_prefect.deployments import DRIFT_CHECK_CRON
from retrain_prefect.environment import FLOW_ENV


def retrain_settings(config: str | None = None, project_dir: str | Path | None = None
                     ) -> dict[str, Any]:
    """The schedule and the flow environment for the deployments.

    ``config`` defaults to ``RETRAIN_CONFIG`` or ``./retrain.toml``. When there is none, the
    deployments get the default schedule (03:00 UTC on the 1st) and no ``RETRAIN_CONFIG``:
    the worker's own environment (or ``./retrain.toml`` in this project) must then name the
    workspace.
    """
    env = dict(FLOW_ENV)
    try:
        path = find_config_path(config)
    except ConfigError:
        if config is not None or os.environ.get(ENV_CONFIG):
            raise
        schedule, where = ScheduleConfig(), "no retrain.toml found: default schedule"
        rollout = RolloutConfig()
    else:
        settings = load_config(path)
        schedule, rollout = settings.schedule, settings.rollout
        env[ENV_CONFIG] = str(path)
        where = f"workspace {path}"
    print(f"retrain: {where}; cron {schedule.cron!r} in {schedule.timezone}")
    return {"cron": schedule.cron, "timezone": schedule.timezone, "drift_check_cron": DRIFT_CHECK_CRON,
            "rollout_cron": rollout.cron,
            "env": env,
            "config": env.get(ENV_CONFIG, ""), "project_dir": str(Path(project_dir or Path.cwd()).resolve())}
