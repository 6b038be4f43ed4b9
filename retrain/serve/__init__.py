"""The prediction service (`retrain serve`): live predictions routed by the registry's A/B
tests and rollouts, with every prediction and outcome logged for their analysis."""

from __future__ import annotations

import os
from typing import Any

from retrain.config import ServeConfig
from retrain.experiments.manager import ABTestingManager
from retrain.serve.app import check_exposure, create_app, is_loopback
from retrain.serve.service import PredictionService
from retrain.serve.writer import LogWriter

__all__ = ["LogWriter", "PredictionService", "build_app", "check_exposure", "create_app",
           "is_loopback", "serve_token"]


def serve_token(config: ServeConfig, env: dict[str, str] | None = None) -> str | None:
    """The bearer token from the environment variable named by ``[serve] token_env``; None
    when it is unset or empty."""
    value = (os.environ if env is None else env).get(config.token_env, "").strip()
    return value or None


def build_app(workspace: Any, token: str | None, manager: Any = None, **options: Any):
    """The FastAPI app serving ``workspace``'s registry (routing through an
    ``ABTestingManager`` whose cache lasts ``[serve] refresh_seconds``)."""
    if manager is None:
        manager = ABTestingManager(workspace=workspace,
                                   cache_seconds=workspace.settings.serve.refresh_seconds)
    service = PredictionService(workspace.registry, manager, workspace.settings.serve)
    return create_app(service, token=token, **options)
