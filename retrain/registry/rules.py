"""What the registry refuses and why, and who is acting: the rules every switch of production
checks, before announcing anything (``retrain.promotion.switch``) and again inside its
transaction (``Registry``)."""

from __future__ import annotations

import getpass
import os

from retrain.errors import RegistryError
from retrain.registry.tables import Experiment, ModelVersion


def default_actor() -> str:
    """Who is acting: ``RETRAIN_ACTOR`` if set, else the OS user."""
    env = os.environ.get("RETRAIN_ACTOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


ANY_PRODUCTION = object()  # promote(): switch whatever version is production now


CURRENT = object()  # production_of(): the production version as the registry has it now


class ActiveExperimentError(RegistryError):
    """Production cannot change: the model has an active A/B test or rollout routing its
    traffic. ``experiment_id`` names it."""

    def __init__(self, message: str, experiment_id: str):
        super().__init__(message)
        self.experiment_id = experiment_id


def _how_to_end(experiment: Experiment) -> str:
    if experiment.kind == "ab_test":
        return f"`retrain ab end {experiment.id}` (add --no-promote to keep production)"
    return f"`retrain rollout abort {experiment.model_name}`"


def _describe(experiment: Experiment) -> str:
    kind = "A/B test" if experiment.kind == "ab_test" else "rollout"
    return (f"{kind} {experiment.id} ({experiment.version_a} vs {experiment.version_b}, "
            f"{experiment.status})")


def experiment_refusal(version_id: str, experiment: Experiment) -> ActiveExperimentError:
    """Why ``version_id`` cannot become production while ``experiment`` routes the traffic."""
    return ActiveExperimentError(
        f"{version_id} was not promoted: model {experiment.model_name!r} has an active "
        f"{_describe(experiment)}, which routes its traffic, so a new production version would "
        f"not be served. End it first with {_how_to_end(experiment)}; in an emergency "
        f"`retrain rollback {experiment.model_name}` ends it and restores an earlier version",
        experiment.id)


def switch_refusal(version: ModelVersion, current_id: str | None, *, action: str,
                   allow_rejected: bool, expected_production: str | None | object) -> str | None:
    """Why ``version`` cannot become production now (``current_id`` is production) by
    ``action`` (``promoted`` or ``rolled-back``), or None. The switch asks before announcing
    anything; the registry asks again in its transaction."""
    if version.status == "production":
        return f"{version.version_id} is already production"
    if action == "rolled-back" and (version.status != "archived" or version.promoted_at is None):
        return (f"{version.version_id} is {version.status} and was never production, so there "
                f"is nothing to roll back to; use `retrain promote` to deploy it")
    if version.status == "rejected" and not allow_rejected:
        return (f"{version.version_id} was rejected; promote it explicitly with "
                "`retrain promote --force` to override")
    if expected_production is not ANY_PRODUCTION and current_id != expected_production:
        return (f"production of {version.model_name!r} is {current_id or 'none'}, not "
                f"{expected_production or 'none'} as expected (it changed meanwhile); "
                f"{version.version_id} was not promoted")
    return None
