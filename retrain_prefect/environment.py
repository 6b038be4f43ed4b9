"""The Prefect settings retrain's flow processes run under, by default (a user's own
environment wins). Imports nothing from Prefect: they must be set before it is imported,
since Prefect configures its loggers then."""

from __future__ import annotations

import os

# Every flow process: the library's progress reaches the run's logs on the dashboard; its
# lines outside a flow run (the command line between runs) stay on the console, without
# Prefect warning about each.
FLOW_ENV = {"PREFECT_LOGGING_EXTRA_LOGGERS": "retrain",
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore"}
# Processes that start flows themselves (the command line, deployments.serve).
LOCAL_ENV = {**FLOW_ENV, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def set_defaults(**more: str) -> None:
    """``LOCAL_ENV`` and ``more`` into ``os.environ`` where not set already."""
    for key, value in {**LOCAL_ENV, **more}.items():
        os.environ.setdefault(key, value)
