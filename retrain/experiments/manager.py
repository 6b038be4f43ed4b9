"""ABTestingManager: the seed's A/B testing API on top of the registry.

Routing decisions are made in process from a cached copy of each model's routing state (see
``retrain.experiments.routing``); tests, rollouts, the prediction log and feedback live in the
registry database, so every process (the prediction service, the CLI, the Prefect flows) sees
the same experiments.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any, Mapping

from retrain.config import AB_METRICS_OF_TASK
from retrain.errors import ConfigError, RegistryError
from retrain.experiments import analysis, store
from retrain.experiments.rollout import RolloutStrategy, advance_rollouts, start_rollout
from retrain.experiments.rollout_control import (abort_rollout, pause_rollout, resume_rollout,
                                                 rollout_status)
from retrain.experiments.routing import Route, Router
from retrain.notify.service import NotificationService
from retrain.promotion.switch import ProductionChange, SwitchResult, change_production
from retrain.registry.tables import ACTIVE_EXPERIMENT_STATUSES, Experiment, Feedback, PredictionLog, utcnow
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


class ABTestingManager:
    """A/B tests and rollouts of model versions; routes requests and records outcomes.

    ``cache_seconds`` is how long a model's routing state is reused before the registry is
    read again (default ``[serve] refresh_seconds``).
    """

    def __init__(self, config=None, workspace: Workspace | None = None,
                 notifier: "NotificationService | None" = None,
                 cache_seconds: float | None = None):
        self.workspace = workspace or Workspace.open(config)
        self.settings = self.workspace.settings
        self.registry = self.workspace.registry
        self._notifier = notifier
        seconds = self.settings.serve.refresh_seconds if cache_seconds is None else cache_seconds
        self._router = Router(self.registry, seconds)

    @property
    def router(self) -> Router:
        """The routing state cache this manager decides with (the prediction service keeps
        it warm from its maintenance thread)."""
        return self._router

    @property
    def notifier(self) -> NotificationService:
        if self._notifier is None:
            self._notifier = NotificationService(workspace=self.workspace)
        return self._notifier

    # Routing ---------------------------------------------------------------------------------
    def route(self, model_name: str, key: str) -> Route:
        """The version and variant that answer ``key`` (a request or entity id) for the model.

        Sticky: the same key gets the same variant for as long as the experiment runs, in any
        process. Without an active experiment: the production version, variant "production";
        RegistryError when the model has none.
        """
        return self._router.route(model_name, key)

    def route_prediction(self, model_name: str, request_id: str) -> tuple[str, str]:
        """The seed's API: ``(version_id, variant)`` for a request."""
        route = self.route(model_name, request_id)
        return route.version_id, route.variant

    def refresh(self) -> None:
        """Drop the routing cache: the next decision reads the registry."""
        self._router.refresh()

    # Prediction log and feedback -------------------------------------------------------------
    def log_predictions(self, rows: list[Mapping[str, Any]]) -> None:
        """Store served predictions in one bulk insert. Keys: request_id, model_name,
        version_id, variant, experiment_id, prediction, probability, at (optional, UTC)."""
        store.insert_rows(self.registry, PredictionLog, store.prediction_rows(rows))

    def log_feedback(self, rows: list[Mapping[str, Any]]) -> None:
        """Store outcomes in one bulk insert. Keys: request_id, model_name (optional), label
        and/or reward, at (optional, UTC)."""
        store.insert_rows(self.registry, Feedback, store.feedback_rows(rows))

    def record_outcome(self, request_id: str, *, label: float | None = None,
                       reward: float | None = None, model_name: str | None = None) -> None:
        """The label and/or reward of one request."""
        self.log_feedback([{"request_id": request_id, "label": label, "reward": reward,
                            "model_name": model_name}])

    # A/B tests -------------------------------------------------------------------------------
    def create_ab_test(self, model_name: str, version_a: str | int | None = None,
                       version_b: str | int | None = None, traffic_split: float | None = None,
                       duration_days: float | None = None, metric: str | None = None, *,
                       actor: str | None = None, now: datetime | None = None) -> dict[str, Any]:
        """Start routing ``traffic_split`` of the model's traffic to ``version_b`` and the rest
        to ``version_a`` (default: production) for ``duration_days``."""
        cfg = self.settings.abtest
        split = cfg.traffic_split if traffic_split is None else traffic_split
        days = cfg.duration_days if duration_days is None else duration_days
        if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 < split < 1:
            raise ConfigError(f"traffic_split must be between 0 and 1 (exclusive), the share of "
                              f"traffic sent to version B; got {split!r}")
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not days > 0:
            raise ConfigError(f"duration_days must be a positive number of days; got {days!r}")
        if version_b is None:
            raise RegistryError("version_b (the challenger) is required")
        a = store.resolve_version(self.registry, model_name, version_a)
        b = store.resolve_version(self.registry, model_name, version_b)
        if metric is None:
            metric = cfg.metric_for(a.task)
        elif metric not in AB_METRICS_OF_TASK[a.task]:
            raise ConfigError(f"metric must be one of {', '.join(AB_METRICS_OF_TASK[a.task])} "
                              f"for a {a.task} model; got {metric!r}")
        for version in (a, b):  # a broken artifact would answer every request of its variant 503
            self.registry.verify_artifact(version)
        if a.version_id == b.version_id:
            raise RegistryError(f"version A and version B are both {a.version_id}; an A/B test "
                                "needs two different versions")
        production = self.registry.production_version(model_name)
        now = now or utcnow()
        fields = dict(kind="ab_test", model_name=model_name, version_a=a.version_id,
                      version_b=b.version_id, traffic_b=float(split), salt=secrets.token_hex(8),
                      status="running", metric=metric, started_at=now,
                      ends_at=now + timedelta(days=float(days)),
                      result={"production_at_start": production.version_id if production else None},
                      created_by=actor or store.default_actor())
        event = store.audit_event(model_name, "ab-test-created", version_id=b.version_id,
                                  actor=actor, reason=f"{a.version_id} vs {b.version_id}",
                                  details={"version_a": a.version_id, "version_b": b.version_id,
                                           "traffic_split": split, "duration_days": days,
                                           "metric": metric})
        experiment = store.create_experiment(self.registry, fields, event)
        self.refresh()
        log.info("A/B test %s started: %s vs %s, %.0f%% to B", experiment.id, a.version_id,
                 b.version_id, 100 * split)
        test = {"test_id": experiment.id, "model_name": model_name, "version_a": a.version_id,
                "version_b": b.version_id, "traffic_split": float(split),
                "duration_days": float(days), "metric": metric, "status": "running",
                "started_at": experiment.started_at, "ends_at": experiment.ends_at}
        self.notifier.send_ab_test_started(test, fields["created_by"])
        return test

    def list_tests(self, model_name: str | None = None, active_only: bool = False) -> list[Experiment]:
        return store.list_experiments(self.registry, model_name, "ab_test", active_only)

    def check_test_status(self, test_id: str, now: datetime | None = None) -> dict[str, Any]:
        """Status, winner, and per-variant numbers of a test (see ``retrain.experiments.analysis``
        for the status values). Each check of an active test stores the running p-value and a
        newly declared winner, monotonically (``store.record_look``): a slower, overlapping
        check never raises the stored p-value or erases a winner, and only the check that
        stored the winner audits and announces it."""
        experiment = store.get_experiment(self.registry, test_id)
        if experiment.kind == "rollout":
            return rollout_status(self.workspace, experiment.id, now=now)
        if experiment.status not in ACTIVE_EXPERIMENT_STATUSES:
            return {**_ended_basics(experiment), **experiment.result, "status": experiment.status}
        now = now or utcnow()
        cfg = self.settings.abtest
        look = analysis.take_look(self.registry, experiment, cfg)
        status, winner, best = analysis.ab_status(experiment, look, cfg, now)
        document = analysis.describe(experiment, look, status, cfg, best, winner)
        if best != experiment.best_p_value or (winner is not None and experiment.winner is None):
            audit = None
            if winner is not None:
                audit = store.audit_event(
                    experiment.model_name, "ab-test-winner", version_id=document["winner_version"],
                    reason=f"{winner} wins {experiment.id}: {_summary(document)}",
                    details=_audit_numbers(document))
            declared, stored_winner, stored_best = store.record_look(
                self.registry, experiment.id, best, winner, audit)
            if experiment.winner is None and stored_winner not in (None, winner) \
                    or stored_best != best:
                # An overlapping check stored more meanwhile: report what the registry holds.
                if experiment.winner is None and stored_winner is not None:
                    status, winner = "significant", stored_winner
                document = analysis.describe(experiment, look, status, cfg, stored_best, winner)
            if declared:
                self.notifier.send_ab_test_result(document)
        return document

    def end_test(self, test_id: str, promote_winner: bool = True, *, actor: str | None = None,
                 now: datetime | None = None) -> dict[str, Any]:
        """Stop the test (all traffic back to production). With ``promote_winner`` and a
        winner that is not production yet, promote it (notice before, notice after): the
        promotion and the end of the test are one registry transaction, so either both
        happen or neither (e.g. when the test was ended meanwhile)."""
        experiment = store.get_experiment(self.registry, test_id)
        if experiment.kind != "ab_test":
            raise RegistryError(f"{test_id} is a rollout; stop it with `retrain rollout abort "
                                f"{experiment.model_name}`")
        if experiment.status not in ACTIVE_EXPERIMENT_STATUSES:
            raise RegistryError(f"{test_id} has already ended ({experiment.status})")
        now = now or utcnow()
        document = self.check_test_status(test_id, now=now)
        winner = document["winner"]
        final = analysis.final_status(experiment, winner, now)
        target = document["winner_version"] if promote_winner and winner is not None else None
        production = self.registry.production_version(experiment.model_name)
        if target is not None and production is not None and production.version_id == target:
            target = None  # the winner is production already (e.g. it was version A)
        document = {**document, "status": final, "ended_at": now, "promoted": target}

        def close(session) -> None:
            store.change_in(
                session, test_id, ACTIVE_EXPERIMENT_STATUSES,
                {"status": final, "ended_at": now, "winner": winner,
                 "result": analysis.jsonable(document)},
                [store.audit_event(experiment.model_name, "ab-test-ended",
                                   version_id=document["winner_version"], actor=actor,
                                   reason=f"{test_id} ended {final}: {_summary(document)}"
                                          + (f"; promoted {target}" if target else ""),
                                   details={**_audit_numbers(document), "experiment_id": test_id,
                                            "status": final, "promoted": target})])

        if target is not None:
            switched = self._promote(experiment, document, actor, close)
            if switched.outcome == "undone":  # the smoke check failed: production is back
                document = {**document, "promoted": None, "promotion_undone": switched.reason}
                store.change_experiment(self.registry, test_id, (final,),
                                        {"result": analysis.jsonable(document)})
        else:
            with self.registry.transaction() as session:
                close(session)
        self.refresh()
        self.notifier.send_ab_test_result(document)
        production = self.registry.production_version(experiment.model_name)
        return {"test_id": test_id, "status": final, "winner": winner,
                "winner_version": document["winner_version"], "promoted": document["promoted"],
                "production_version": production.version_id if production else None,
                "summary": document}

    def _promote(self, experiment: Experiment, document: dict[str, Any], actor: str | None,
                 close) -> SwitchResult:
        """Promote the winner and end the test (``close``) in one registry transaction,
        with a notice before and a notice after."""
        target = document["winner_version"]
        expected = experiment.result.get("production_at_start", experiment.version_a)
        reason = f"won A/B test {experiment.id}: {_summary(document)}"
        candidate_metrics = {experiment.metric: document["variants"][document["winner"]]["metric"]}
        other = "A" if document["winner"] == "B" else "B"
        production_metrics = {experiment.metric: document["variants"][other]["metric"]}
        # A version rejected offline may still win live: the person who started the
        # experiment chose it, and the audit log records the override.
        change = ProductionChange(
            experiment.model_name, target, "promotion", reason, actor=actor,
            expected_production=expected, allow_rejected=True,
            candidate_metrics=candidate_metrics, production_metrics=production_metrics,
            improvement_percent=None if document["relative_lift"] is None else 100 * _gain(document),
            details={"experiment_id": experiment.id, **_audit_numbers(document)},
            closing=experiment.id, close=close)
        try:
            return change_production(self.workspace, change, self.notifier)
        except RegistryError as exc:
            current = store.get_experiment(self.registry, experiment.id)
            if current.status not in ACTIVE_EXPERIMENT_STATUSES:
                raise RegistryError(f"{experiment.id} was ended meanwhile ({current.status}); "
                                    f"{target} was not promoted") from None
            raise RegistryError(f"{exc}; {experiment.id} is still running (end it without "
                                f"promoting: `retrain ab end {experiment.id} --no-promote`)") from None

    # Rollouts --------------------------------------------------------------------------------
    def create_gradual_rollout(self, model_name: str, new_version: str | int,
                               strategy: RolloutStrategy | str | None = None,
                               initial_traffic: float | None = None, increment: float | None = None,
                               increment_interval_hours: float | None = None, *,
                               steps: int | None = None, actor: str | None = None,
                               now: datetime | None = None) -> dict[str, Any]:
        """Roll ``new_version`` out step by step (see ``retrain.experiments.rollout``); the
        result has ``rollout_id`` and ``schedule`` (``{step, traffic_percentage, delay_hours}``)."""
        result = start_rollout(self.workspace, model_name, new_version,
                               strategy=RolloutStrategy.CANARY if strategy is None else strategy,
                               initial_traffic=initial_traffic, increment=increment,
                               interval_hours=increment_interval_hours, steps=steps, actor=actor,
                               now=now, notifier=self.notifier)
        self.refresh()
        return result

    def rollout_status(self, model_or_id: str, now: datetime | None = None) -> dict[str, Any]:
        return rollout_status(self.workspace, model_or_id, now=now)

    def advance_rollouts(self, now: datetime | None = None) -> list[dict[str, Any]]:
        try:
            return advance_rollouts(self.workspace, now=now, notifier=self.notifier)
        finally:
            self.refresh()

    def pause_rollout(self, model_name: str, reason: str = "") -> dict[str, Any]:
        return pause_rollout(self.workspace, model_name, reason=reason)

    def resume_rollout(self, model_name: str, reason: str = "") -> dict[str, Any]:
        return resume_rollout(self.workspace, model_name, reason=reason)

    def abort_rollout(self, model_name: str, reason: str = "") -> dict[str, Any]:
        try:
            return abort_rollout(self.workspace, model_name, reason=reason, notifier=self.notifier)
        finally:
            self.refresh()


def _ended_basics(experiment: Experiment) -> dict[str, Any]:
    """What every status document names, for an ended test whose stored result is partial
    (e.g. one a rollback ended)."""
    return {"test_id": experiment.id, "kind": experiment.kind, "model": experiment.model_name,
            "winner": experiment.winner,
            "winner_version": {"A": experiment.version_a, "B": experiment.version_b}.get(
                experiment.winner or ""),
            "version_a": experiment.version_a, "version_b": experiment.version_b,
            "metric": experiment.metric, "started_at": experiment.started_at,
            "ends_at": experiment.ends_at, "ended_at": experiment.ended_at}


def _gain(document: dict[str, Any]) -> float:
    """Relative improvement of the winner over the other variant (positive is better)."""
    lift = document["relative_lift"] or 0.0
    sign = 1 if document["higher_is_better"] else -1
    return sign * lift if document["winner"] == "B" else -sign * lift


def _summary(document: dict[str, Any]) -> str:
    variants = document["variants"]
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    p = document["p_value"]
    return (f"{document['metric']} A {fmt(variants['A']['metric'])} "
            f"({variants['A']['outcomes']} outcomes) vs B {fmt(variants['B']['metric'])} "
            f"({variants['B']['outcomes']} outcomes), always-valid p "
            f"{'-' if p is None else f'{p:.3g}'}")


def _audit_numbers(document: dict[str, Any]) -> dict[str, Any]:
    keys = ("metric", "lift", "ci_low", "ci_high", "p_value", "winner")
    return {**{k: document.get(k) for k in keys},
            "outcomes": {v: d["outcomes"] for v, d in document["variants"].items()},
            "requests": {v: d["requests"] for v, d in document["variants"].items()},
            "srm_mismatch": bool(document["srm"] and document["srm"]["mismatch"])}
