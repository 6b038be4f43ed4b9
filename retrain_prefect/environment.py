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
# Processes that start flows themselves (the command line, deployments.serve), and with them,
# when no PREFECT_API_URL is set, Prefect's temporary server on SQLite (it inherits these).
LOCAL_ENV = {
    **FLOW_ENV,
    # Its telemetry write can fail with "database is locked".
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The server's task run recorder writes each task run event in a transaction of its own
    # (batch size 1); on SQLite, a commit between the read and the insert of the API's own
    # create-task-run or create-flow-run call makes that call fail at once ("database is
    # locked": the busy timeout does not apply), and the client retries it after about 2 s.
    # Batched (written every 5 s, its flush interval, or per 100 events) there are fewer
    # such commits: bench/pipeline.py's retry counter saw 4 retries (8.4 s waited) over 6 demo
    # pipelines under Prefect before, 2 (3.5 s) over 8 after. Task runs reach the temporary
    # server's database up to 5 s later, which nothing reads during a run. The database and
    # client timeouts and retry settings do not help (README, "Performance"); the temporary
    # server runs such a refused call again itself, within milliseconds
    # (retrain_prefect.ephemeral).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
}


def set_defaults(**more: str) -> None:
    """``LOCAL_ENV`` and ``more`` into ``os.environ`` where not set already."""
    for key, value in {**LOCAL_ENV, **more}.items():
        os.environ.setdefault(key, value)
