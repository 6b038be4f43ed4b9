"""Experiment rows, the prediction log and feedback in the registry database.

Every change to an experiment is one transaction together with its audit event. Statistics
are aggregated in SQL (count, sum, sum of squares per variant), so a status check stays fast
however many requests were logged.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from numbers import Real
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, case, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select as sm_select

from retrain.errors import DataValidationError, RegistryError
from retrain.registry import Registry
from retrain.registry.rules import default_actor
from retrain.registry.tables import (ACTIVE_EXPERIMENT_STATUSES, VARIANTS, AuditEvent,
                                     Experiment, Feedback, ModelVersion, PredictionLog, utcnow)

_PREDICTION_REQUIRED = ("request_id", "model_name", "version_id", "variant", "prediction")
_PREDICTION_KEYS = frozenset(_PREDICTION_REQUIRED + ("experiment_id", "probability",
                                                     "probabilities", "at"))
_FEEDBACK_KEYS = frozenset(("request_id", "model_name", "label", "reward", "at"))
_EPS = 1e-15  # log loss clips probabilities like retrain.stats.metrics does


# Validation of logged rows ------------------------------------------------------------------

def _text(row: Mapping, key: str, index: int, max_length: int, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise DataValidationError(key, f"row {index}: expected a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise DataValidationError(key, f"row {index}: longer than {max_length} characters")
    return value


def _number(row: Mapping, key: str, index: int, required: bool = True) -> float | None:
    value = row.get(key)
    if value is None and not required:
        return None
    if isinstance(value, str) or not isinstance(value, (Real, bool)) and not hasattr(value, "__float__"):
        raise DataValidationError(key, f"row {index}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise DataValidationError(key, f"row {index}: expected a finite number, got {value!r}")
    return number


def _timestamp(row: Mapping, index: int) -> datetime:
    value = row.get("at")
    if value is None:
        return utcnow()
    if not isinstance(value, datetime):
        raise DataValidationError("at", f"row {index}: expected a datetime, got {value!r}")
    if value.tzinfo is not None:  # the registry stores naive UTC
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _check_keys(row: Any, allowed: frozenset[str], index: int) -> None:
    if not isinstance(row, Mapping):
        raise DataValidationError(None, f"row {index}: expected a dict, got {type(row).__name__}")
    extra = sorted(set(row) - allowed)
    if extra:
        raise DataValidationError(extra[0], f"row {index}: unknown key; expected some of "
                                            f"{', '.join(sorted(allowed))}")


def prediction_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated ``prediction_log`` rows; DataValidationError names the first bad key."""
    out = []
    for i, row in enumerate(rows):
        _check_keys(row, _PREDICTION_KEYS, i)
        missing = [k for k in _PREDICTION_REQUIRED if row.get(k) is None]
        if missing:
            raise DataValidationError(missing[0], f"row {i}: required key is missing")
        variant = row["variant"]
        if variant not in VARIANTS:
            raise DataValidationError("variant", f"row {i}: expected one of {', '.join(VARIANTS)}, "
                                                 f"got {variant!r}")
        probability = _number(row, "probability", i, required=False)
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise DataValidationError("probability", f"row {i}: expected a value in [0, 1], "
                                                     f"got {probability}")
        out.append({"request_id": _text(row, "request_id", i, 200),
                    "model_name": _text(row, "model_name", i, 200),
                    "version_id": _text(row, "version_id", i, 250),
                    "variant": variant,
                    "experiment_id": _text(row, "experiment_id", i, 250, required=False),
                    "prediction": _number(row, "prediction", i),
                    "probability": probability, "probabilities": _probabilities(row, i),
                    "at": _timestamp(row, i)})
    return out


def _probabilities(row: Mapping[str, Any], i: int) -> list[float] | None:
    """A multiclass prediction's probability of each class, or None."""
    values = row.get("probabilities")
    if values is None:
        return None
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise DataValidationError("probabilities", f"row {i}: expected a list of numbers, got "
                                  f"{str(values)[:80]}") from None
    if not out or any(not 0.0 <= v <= 1.0 for v in out):
        raise DataValidationError("probabilities", f"row {i}: expected values in [0, 1]")
    return out


def feedback_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated ``feedback`` rows: each needs a request id and a label and/or a reward."""
    out = []
    for i, row in enumerate(rows):
        _check_keys(row, _FEEDBACK_KEYS, i)
        label = _number(row, "label", i, required=False)
        reward = _number(row, "reward", i, required=False)
        if label is None and reward is None:
            raise DataValidationError("label", f"row {i}: give a label or a reward (or both)")
        out.append({"request_id": _text(row, "request_id", i, 200),
                    "model_name": _text(row, "model_name", i, 200, required=False),
                    "label": label, "reward": reward, "at": _timestamp(row, i)})
    return out


def insert_rows(registry: Registry, table, rows: list[dict[str, Any]]) -> None:
    """One bulk insert (a single executemany in one transaction)."""
    if rows:
        with registry.transaction() as s:
            s.connection().execute(insert(table.__table__), rows)


# Experiments --------------------------------------------------------------------------------

def audit_event(model_name: str, action: str, *, version_id: str | None = None, reason: str = "",
                details: dict[str, Any] | None = None, actor: str | None = None) -> AuditEvent:
    return AuditEvent(model_name=model_name, version_id=version_id, action=action,
                      actor=actor or default_actor(), reason=reason, details=details or {})


def resolve_version(registry: Registry, model_name: str, ref: str | int | None) -> ModelVersion:
    """A version of ``model_name`` from an id, a number (``3``, ``"v3"``) or ``"production"``."""
    if model_name not in {m.name for m in registry.models()}:
        raise RegistryError(f"no registered model {model_name!r}")
    if isinstance(ref, str) and ref.strip().lower() == "production":
        ref = None
    return registry.resolve_version(model_name, None if ref is None else str(ref))


def get_experiment(registry: Registry, experiment_id: str) -> Experiment:
    with registry.reading() as s:
        experiment = s.get(Experiment, experiment_id)
    if experiment is None:
        raise RegistryError(f"no experiment {experiment_id!r} (list them with `retrain ab list`)")
    return experiment


def active_experiment(registry: Registry, model_name: str, kind: str | None = None) -> Experiment | None:
    with registry.reading() as s:
        query = sm_select(Experiment).where(Experiment.model_name == model_name,
                                            Experiment.status.in_(ACTIVE_EXPERIMENT_STATUSES))
        experiment = s.exec(query).first()
    if experiment is not None and kind is not None and experiment.kind != kind:
        return None
    return experiment


def list_experiments(registry: Registry, model_name: str | None = None, kind: str | None = None,
                     active_only: bool = False) -> list[Experiment]:
    query = sm_select(Experiment)
    if model_name is not None:
        query = query.where(Experiment.model_name == model_name)
    if kind is not None:
        query = query.where(Experiment.kind == kind)
    if active_only:
        query = query.where(Experiment.status.in_(ACTIVE_EXPERIMENT_STATUSES))
    with registry.reading() as s:
        return list(s.exec(query.order_by(Experiment.started_at, Experiment.id)))


def _describe_active(experiment: Experiment) -> str:
    what = "A/B test" if experiment.kind == "ab_test" else "rollout"
    return (f"model {experiment.model_name!r} already has an active {what} {experiment.id} "
            f"({experiment.version_a} vs {experiment.version_b}, {experiment.status}); end it first")


def create_experiment(registry: Registry, fields: dict[str, Any], audit: AuditEvent) -> Experiment:
    """Insert a new experiment with its audit event; its id is ``<prefix>-<model>-<n>``."""
    model_name = fields["model_name"]
    prefix = "ab" if fields["kind"] == "ab_test" else "rollout"
    try:
        with registry.transaction(model_name) as s:
            current = s.exec(sm_select(Experiment).where(
                Experiment.model_name == model_name,
                Experiment.status.in_(ACTIVE_EXPERIMENT_STATUSES))).first()
            if current is not None:
                raise RegistryError(_describe_active(current))
            count = s.exec(sm_select(func.count()).select_from(Experiment).where(
                Experiment.model_name == model_name, Experiment.kind == fields["kind"])).one()
            experiment = Experiment(id=f"{prefix}-{model_name}-{count + 1}", **fields)
            s.add(experiment)
            audit.details = {**audit.details, "experiment_id": experiment.id}
            s.add(audit)
            s.flush()
    except IntegrityError:
        # The partial unique index: another process started one for this model meanwhile.
        current = active_experiment(registry, model_name)
        raise RegistryError(_describe_active(current) if current else
                            f"concurrent experiment creation for {model_name!r}; nothing was "
                            "created, retry") from None
    return experiment


def change_experiment(registry: Registry, experiment_id: str, expected_status: Iterable[str],
                      changes: dict[str, Any], audits: Iterable[AuditEvent] = (), *,
                      expected_step: int | None = None) -> Experiment:
    """Apply ``changes`` if the experiment's status is still one of ``expected_status`` (and
    its step ``expected_step``): a conditional update, so two writers never both act on one
    state. The audit events are written in the same transaction."""
    with registry.transaction() as s:
        change_in(s, experiment_id, expected_status, changes, audits, expected_step=expected_step)
    return get_experiment(registry, experiment_id)


def change_in(session, experiment_id: str, expected_status: Iterable[str],
              changes: dict[str, Any], audits: Iterable[AuditEvent] = (), *,
              expected_step: int | None = None) -> None:
    """``change_experiment`` inside the caller's transaction (e.g. ``Registry.promote``'s
    ``within``): RegistryError when the experiment is no longer in the expected state, so
    the caller's whole transaction is rolled back."""
    expected = tuple(expected_status)
    table = Experiment.__table__
    conditions = [table.c.id == experiment_id, table.c.status.in_(expected)]
    if expected_step is not None:
        conditions.append(table.c.step == expected_step)
    done = session.connection().execute(update(table).where(*conditions).values(**changes))
    if done.rowcount != 1:
        current = session.get(Experiment, experiment_id)
        if current is None:
            raise RegistryError(f"no experiment {experiment_id!r}")
        if current.status in expected:
            raise RegistryError(f"{experiment_id} moved to step {current.step} meanwhile; "
                                "nothing was changed")
        raise RegistryError(f"{experiment_id} is {current.status}, not "
                            f"{' or '.join(expected)}; nothing was changed")
    for event in audits:
        session.add(event)


def record_look(registry: Registry, experiment_id: str, p_value: float | None,
                winner: str | None, winner_audit: AuditEvent | None = None
                ) -> tuple[bool, str | None, float | None]:
    """Store one status check of an active A/B test, monotonically: the running p-value only
    goes down (``min(stored, p_value)``) and a stored winner is never replaced or erased, so
    two overlapping checks cannot undo each other whatever order they write in.

    Returns ``(declared, winner, best_p_value)``: whether this call is the one that stored
    the winner (``winner_audit`` is written then, in the same transaction), and the stored
    values after it."""
    table = Experiment.__table__
    active = [table.c.id == experiment_id, table.c.status.in_(ACTIVE_EXPERIMENT_STATUSES)]
    declared = False
    with registry.transaction() as s:
        connection = s.connection()
        if p_value is not None:
            connection.execute(update(table).where(
                *active, or_(table.c.best_p_value.is_(None), table.c.best_p_value > p_value))
                .values(best_p_value=p_value))
        if winner is not None:
            done = connection.execute(update(table).where(*active, table.c.winner.is_(None))
                                      .values(winner=winner))
            declared = done.rowcount == 1
            if declared and winner_audit is not None:
                s.add(winner_audit)
        stored = connection.execute(select(table.c.winner, table.c.best_p_value)
                                    .where(table.c.id == experiment_id)).first()
    if stored is None:
        raise RegistryError(f"no experiment {experiment_id!r}")
    return declared, stored[0], stored[1]


# Aggregates ---------------------------------------------------------------------------------

def request_counts(registry: Registry, experiment_id: str, since: datetime | None = None
                   ) -> dict[str, int]:
    """Distinct requests logged per variant (A and B) for the experiment, optionally since a
    time. A request predicted again (a client's retry) counts once, as in the outcome sums, so
    retries on one variant do not look like a broken split."""
    p = PredictionLog.__table__
    query = (select(p.c.variant, func.count(func.distinct(p.c.request_id)))
             .where(p.c.experiment_id == experiment_id))
    if since is not None:
        query = query.where(p.c.at >= since)
    with registry.reading() as s:
        rows = s.connection().execute(query.group_by(p.c.variant)).all()
    counts = {"A": 0, "B": 0}
    counts.update({variant: int(n) for variant, n in rows})
    return counts


def _metric_value(metric: str, p, f):
    """The per-request metric as a SQL expression, and the feedback field it needs."""
    if metric == "reward":
        return f.c.reward, [f.c.reward.is_not(None)], []
    needs_label = [f.c.label.is_not(None)]
    if metric == "accuracy":
        return case((p.c.prediction == f.c.label, literal(1.0)), else_=literal(0.0)), needs_label, []
    if metric == "squared_error":  # a regression's predicted value against the true one
        return (p.c.prediction - f.c.label) * (p.c.prediction - f.c.label), needs_label, []
    if metric == "absolute_error":
        return func.abs(p.c.prediction - f.c.label), needs_label, []
    has_probability = [p.c.probability.is_not(None)]
    if metric == "brier":
        return (p.c.probability - f.c.label) * (p.c.probability - f.c.label), needs_label, has_probability
    if metric == "log_loss":
        q = case((p.c.probability < _EPS, literal(_EPS)),
                 (p.c.probability > 1 - _EPS, literal(1 - _EPS)), else_=p.c.probability)
        return (-(f.c.label * func.ln(q) + (1 - f.c.label) * func.ln(1 - q)),
                needs_label, has_probability)
    raise ValueError(f"unknown metric {metric!r}")


def _log_loss_sums(rows) -> dict[str, tuple[int, float, float]]:
    """Per variant ``(outcomes, sum, sum of squares)`` of -log(probability of the true class)."""
    sums = {"A": [0, 0.0, 0.0], "B": [0, 0.0, 0.0]}
    for variant, label, probabilities in rows:
        code = int(label)
        p = probabilities[code] if 0 <= code < len(probabilities) else 0.0
        loss = -math.log(min(max(p, _EPS), 1 - _EPS))
        entry = sums.setdefault(variant, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += loss
        entry[2] += loss * loss
    return {v: (n, total, total_sq) for v, (n, total, total_sq) in sums.items()}


def outcome_sums(registry: Registry, experiment_id: str, metric: str, task: str = "binary"
                 ) -> dict[str, tuple[int, float, float]]:
    """Per variant: ``(outcomes, sum, sum of squares)`` of the per-request metric.

    A request counts once, in the variant of its first prediction in the experiment (earliest
    ``at``, then first logged), even when its id was predicted again. Its outcome is its
    latest feedback row sent at or after that prediction that carries what the metric needs
    (a corrected label replaces the first one). Feedback sent before the prediction (e.g.
    during an earlier experiment that used the same request id) and feedback naming another
    model are ignored. A multiclass model's log loss is the probability its prediction gave
    the class that was fed back (its position in the model's classes).
    """
    logged = PredictionLog.__table__
    f = Feedback.__table__
    f2 = Feedback.__table__.alias("f2")
    # Each request's predictions in this experiment, numbered: 1 is the first.
    p = (select(logged.c.request_id, logged.c.model_name, logged.c.variant, logged.c.prediction,
                logged.c.probability, logged.c.probabilities, logged.c.at,
                func.row_number().over(partition_by=logged.c.request_id,
                                       order_by=(logged.c.at, logged.c.id)).label("nth"))
         .where(logged.c.experiment_id == experiment_id)
         .subquery("p"))
    multiclass_loss = task == "multiclass" and metric == "log_loss"
    if multiclass_loss:  # the class's probability is picked in Python: any database's JSON
        value, needs, prediction_needs = None, [f.c.label.is_not(None)], [
            p.c.probabilities.is_not(None)]
    else:
        value, needs, prediction_needs = _metric_value(metric, p, f)
    needs_latest = (f2.c.reward if metric == "reward" else f2.c.label).is_not(None)
    latest = (select(func.max(f2.c.id))
              .where(f2.c.request_id == p.c.request_id, f2.c.at >= p.c.at,
                     or_(f2.c.model_name.is_(None), f2.c.model_name == p.c.model_name),
                     needs_latest)
              .scalar_subquery())
    joined = p.join(f, and_(f.c.request_id == p.c.request_id, f.c.id == latest))
    if multiclass_loss:
        query = (select(p.c.variant, f.c.label, p.c.probabilities).select_from(joined)
                 .where(p.c.nth == 1, *needs, *prediction_needs))
        with registry.reading() as s:
            return _log_loss_sums(s.connection().execute(query).all())
    query = (select(p.c.variant, func.count(), func.coalesce(func.sum(value), 0.0),
                    func.coalesce(func.sum(value * value), 0.0))
             .select_from(joined)
             .where(p.c.nth == 1, *needs, *prediction_needs)
             .group_by(p.c.variant))
    with registry.reading() as s:
        rows = s.connection().execute(query).all()
    sums = {"A": (0, 0.0, 0.0), "B": (0, 0.0, 0.0)}
    sums.update({variant: (int(n), float(total), float(total_sq)) for variant, n, total, total_sq in rows})
    return sums
