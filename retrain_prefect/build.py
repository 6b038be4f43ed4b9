"""Deploy-time values for ``prefect.yaml``, read from the workspace's ``retrain.toml``.

``prefect deploy`` runs :func:`retrain_settings` as a build step (``id: retrain``); the
deployments then use ``{{ retrain.cron }}``, ``{{ retrain.timezone }}``,
``{{ retrain.drift_check_cron }}``, ``{{ retrain.rollout_cron }}`` (``[rollout] cron``),
``{{ retrain.env }}`` and ``{{ retrain.project_dir }}`` (the checkout that holds prefect.yaml);
``prefect-git.yaml``'s build step (:func:`git_settings`) adds the repository each run clones. So the schedule has one home, ``[schedule]`` in
retrain.toml (or its environment overrides such as ``RETRAIN_SCHEDULE__TIMEZONE``), for
``prefect deploy`` and ``python -m deployments.serve`` alike.
"""

from __future__ import annotations

import os
import subprocess
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


GIT_REPOSITORY_ENV = "RETRAIN_GIT_REPOSITORY"
GIT_BRANCH_ENV = "RETRAIN_GIT_BRANCH"
GIT_TOKEN_SECRET_ENV = "RETRAIN_GIT_TOKEN_SECRET"


def _git(project_dir: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(project_dir), *args], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"git {' '.join(args)} in {project_dir} failed: {exc}") from None
    if out.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} in {project_dir}: {out.stderr.strip()}")
    return out.stdout.strip()


def git_settings(config: str | None = None, project_dir: str | Path | None = None
                 ) -> dict[str, Any]:
    """:func:`retrain_settings` for workers that clone the code: the repository and branch
    (``RETRAIN_GIT_REPOSITORY``, ``RETRAIN_GIT_BRANCH``; default: the checkout's ``origin``
    and its branch), the name of the Secret block holding the access token
    (``RETRAIN_GIT_TOKEN_SECRET``, empty for none), and ``RETRAIN_CONFIG`` as the workspace's
    path inside the repository, where the runs start."""
    project = Path(project_dir or Path.cwd()).resolve()
    out = retrain_settings(config, project_dir=project)
    repository = os.environ.get(GIT_REPOSITORY_ENV) or _git(project, "remote", "get-url", "origin")
    branch = os.environ.get(GIT_BRANCH_ENV) or _git(project, "symbolic-ref", "--short", "HEAD")
    env = dict(out["env"])
    if env.get(ENV_CONFIG):
        path = Path(env[ENV_CONFIG]).resolve()
        try:
            env[ENV_CONFIG] = path.relative_to(project).as_posix()
        except ValueError:
            # Not in the repository: the workers must have it at this path (or set their own
            # RETRAIN_CONFIG in the work pool's job variables).
            print(f"retrain: {path} is not in the repository {project}; the workers need "
                  "it at that path")
        else:
            tracked = _git(project, "ls-files", "--", env[ENV_CONFIG])
            if not tracked:
                print(f"retrain: {env[ENV_CONFIG]} is not committed: the workers' clones "
                      "will not have it")
    print(f"retrain: runs clone {repository} (branch {branch})")
    return {**out, "env": env, "config": env.get(ENV_CONFIG, ""), "repository": repository,
            "branch": branch, "access_token_secret": os.environ.get(GIT_TOKEN_SECRET_ENV, "")}
