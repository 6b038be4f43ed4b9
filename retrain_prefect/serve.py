"""Serve retrain's deployments from this process, without a work pool or worker.

    RETRAIN_CONFIG=/path/to/retrain.toml python -m deployments.serve

An alternative to ``prefect deploy`` + a worker for a single machine: the process registers
every deployment of ``retrain_prefect.deployments`` (the list prefect.yaml is generated from:
the same names, schedules from ``[schedule]`` and ``[rollout]``, triggers and concurrency),
each with the workspace's config as its ``config`` parameter, and runs their flow runs itself
until stopped. Use one way or the other. Apply the failure and crash automations with
``python -m deployments.automations``.
"""

from __future__ import annotations

from retrain_prefect.environment import set_defaults

set_defaults()  # before Prefect is imported: it configures its loggers when it is

from prefect import serve  # noqa: E402

from retrain.config import find_config_path, load_config  # noqa: E402
from retrain_prefect.deployments import runner_deployments  # noqa: E402


def main() -> None:
    config_path = str(find_config_path())
    serve(*runner_deployments(load_config(config_path), config_path))


if __name__ == "__main__":
    main()
