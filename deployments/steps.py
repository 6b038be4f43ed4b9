"""The build steps of ``prefect.yaml`` (``deployments.steps.retrain_settings``) and of
``prefect-git.yaml`` (``retrain_git_settings``): the schedule and the flow environment, read
from the workspace's retrain.toml (``retrain_prefect.build``), and this checkout as the folder
the worker runs the flows from, or the repository each run clones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retrain_prefect import build

PROJECT_DIR = Path(__file__).resolve().parent.parent


def retrain_settings(config: str | None = None) -> dict[str, Any]:
    return build.retrain_settings(config, project_dir=PROJECT_DIR)


def retrain_git_settings(config: str | None = None) -> dict[str, Any]:
    return build.git_settings(config, project_dir=PROJECT_DIR)
