"""Registry operations. Every change is one transaction together with its audit event.

Writers serialise per registry: on SQLite by ``BEGIN IMMEDIATE``, on PostgreSQL by locking the
registered model's row. The unique partial index ``uq_one_production_per_model`` is the last
line of defence: even a buggy writer cannot leave two production versions.

While a model has an active A/B test or rollout, its traffic goes to the experiment's two
versions, not to production: ``promote`` refuses (``ActiveExperimentError``) unless it is the
experiment's own promotion, and ``rollback`` (the emergency path) ends the experiment in the
same transaction, so the version it restores is what is served.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from retrain.estimators import DEFAULT_SOURCE, EstimatorSource
from retrain.errors import RegistryError
from retrain.failpoints import failpoint
from retrain.processes import owner_gone, process_owner
from retrain.modeling import TrainedModel
from retrain.registry import db
from retrain.registry.artifacts import model_from_bytes, profile_from_bytes, serialize
from retrain.storage import ObjectStore
from retrain.registry.rules import (ANY_PRODUCTION, CURRENT, default_actor, experiment_refusal,
                                    switch_refusal)
from retrain.registry.tables import (ACTIVE_EXPERIMENT_STATUSES, AuditEvent, Experiment,
                                     ModelVersion, RegisteredModel, utcnow)


# Unpacked artifacts a registry keeps (by sha256 and trust): a run's versions, not a zoo.
LOADED_MODELS = 8

class Registry:
    """SQLModel-backed registry at ``url`` with artifacts stored under ``artifacts``: a local
    folder or an fsspec URL (``s3://bucket/prefix``), reached with ``storage_options``."""

    def __init__(self, url: str, artifacts: str | Path,
                 sources: dict[str, EstimatorSource] | None = None,
                 storage_options: dict[str, Any] | None = None):
        self.url = url
        self.artifacts = ObjectStore(artifacts, storage_options)
        # The local folder of the artifacts; None when they are on object storage.
        self.artifacts_dir = None if self.artifacts.remote else Path(self.artifacts.root)
        # Per model: the types its artifacts may hold and where its own code is imported
        # from, as the configuration says (an artifact never vouches for itself).
        self.sources = dict(sources or {})
        self._models: dict[tuple, TrainedModel] = {}  # unpacked artifacts, see load()
        self._models_lock = threading.Lock()
        self._engine = db.make_engine(url)
        self._writer = db.make_engine(url, immediate=True) if url.startswith("sqlite") else self._engine
        db.upgrade(self._writer)

    @classmethod
    def from_settings(cls, settings) -> "Registry":
        return cls(settings.registry_url, settings.artifacts_location,
                   {name: EstimatorSource.of(settings, name) for name in settings.models},
                   settings.storage.options)

    def dispose(self) -> None:
        self._engine.dispose()
        self._writer.dispose()

    # Sessions ---------------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self, model_name: str | None = None) -> Iterator[Session]:
        """One write transaction; on PostgreSQL it holds the model's row lock until commit."""
        with Session(self._writer, expire_on_commit=False) as session:
            with session.begin():
                if model_name is not None and self._writer.dialect.name == "postgresql":
                    session.exec(select(RegisteredModel).where(RegisteredModel.name == model_name)
                                 .with_for_update()).first()
                yield session

    @staticmethod
    def _audit(session: Session, model_name: str, action: str, actor: str, reason: str = "",
               version_id: str | None = None, details: dict[str, Any] | None = None) -> None:
        session.add(AuditEvent(model_name=model_name, version_id=version_id, action=action,
                               actor=actor, reason=reason, details=details or {}))

    # Models and versions ----------------------------------------------------------------
    def ensure_model(self, name: str, kind: str) -> None:
        with self._read() as s:
            if s.get(RegisteredModel, name) is not None:
                return
        try:
            with self._write() as s:
                if s.get(RegisteredModel, name) is None:
                    s.add(RegisteredModel(name=name, kind=kind))
        except IntegrityError:
            pass  # created concurrently by another process

    def register_version(self, *, model_name: str, model: TrainedModel, train_start: datetime,
                         train_end: datetime, holdout_start: datetime | None, row_count: int,
                         holdout_rows: int, data_fingerprint: str, metrics: dict[str, float],
                         actor: str | None = None, reason: str = "",
                         reference_profile: bytes | None = None) -> ModelVersion:
        """Store the artifact (atomically) and the version row, as a candidate.

        ``reference_profile`` (``ReferenceProfile.to_bytes()``) is stored inside the artifact."""
        actor = actor or default_actor()
        self.ensure_model(model_name, model.kind)
        try:
            return self._register(model_name, model, actor, reason, train_start=train_start,
                                  train_end=train_end, holdout_start=holdout_start,
                                  row_count=row_count, holdout_rows=holdout_rows,
                                  data_fingerprint=data_fingerprint, metrics=metrics,
                                  reference_profile=reference_profile)
        except IntegrityError:  # the number was taken meanwhile (the row lock should prevent it)
            raise RegistryError(f"concurrent registration of {model_name!r} detected; nothing "
                                "was registered, retry") from None

    def _register(self, model_name: str, model: TrainedModel, actor: str, reason: str, *,
                  train_start: datetime, train_end: datetime, holdout_start: datetime | None,
                  row_count: int, holdout_rows: int, data_fingerprint: str,
                  metrics: dict[str, float], reference_profile: bytes | None = None) -> ModelVersion:
        with self._write(model_name) as s:
            last = s.exec(select(func.max(ModelVersion.number))
                          .where(ModelVersion.model_name == model_name)).one()
            number = (last or 0) + 1
            version_id = f"{model_name}-v{number}"
            key = f"{model_name}/{version_id}.zip"
            sha = self.artifacts.write(key, serialize(model, reference_profile))
            failpoint("register:after-artifact")
            version = ModelVersion(
                version_id=version_id, model_name=model_name, number=number, kind=model.kind,
                task=model.task, params=model.params, train_start=train_start, train_end=train_end,
                holdout_start=holdout_start, row_count=row_count, holdout_rows=holdout_rows,
                data_fingerprint=data_fingerprint,
                feature_schema=model.preprocessing.schema.as_dict(), metrics=metrics,
                artifact_path=key,
                artifact_sha256=sha, status="candidate")
            s.add(version)
            self._audit(s, model_name, "registered", actor, reason, version_id,
                        {"metrics": metrics, "row_count": row_count, "kind": model.kind,
                         "task": model.task,
                         "train_start": train_start.isoformat(), "train_end": train_end.isoformat(),
                         "owner": process_owner()})
            s.flush()
            failpoint("register:before-commit")
        return version

    def get_version(self, version_id: str) -> ModelVersion:
        with self._read() as s:
            version = s.get(ModelVersion, version_id)
        if version is None:
            raise RegistryError(f"no model version {version_id!r}")
        return version

    def resolve_version(self, model_name: str, ref: str | None) -> ModelVersion:
        """A version by id (``lightgbm-v3``), number (``3``/``v3``), or production if None."""
        if ref is None:
            version = self.production_version(model_name)
            if version is None:
                raise RegistryError(f"model {model_name!r} has no production version")
            return version
        ref = ref.strip()
        num = ref[1:] if ref.startswith("v") and ref[1:].isdigit() else ref
        version_id = f"{model_name}-v{num}" if num.isdigit() else ref
        version = self.get_version(version_id)
        if version.model_name != model_name:
            raise RegistryError(f"version {version_id!r} belongs to model {version.model_name!r}")
        return version

    def production_version(self, model_name: str) -> ModelVersion | None:
        with self._read() as s:
            return s.exec(select(ModelVersion).where(ModelVersion.model_name == model_name,
                                                     ModelVersion.status == "production")).first()

    def production_of(self, model_name: str, known: ModelVersion | None | object = CURRENT
                      ) -> ModelVersion | None:
        """``known`` (a run reads each production version once and passes it on), or the
        model's production version now when it is ``CURRENT``."""
        return self.production_version(model_name) if known is CURRENT else known

    def versions(self, model_name: str) -> list[ModelVersion]:
        with self._read() as s:
            return list(s.exec(select(ModelVersion).where(ModelVersion.model_name == model_name)
                               .order_by(ModelVersion.number)))

    def models(self) -> list[RegisteredModel]:
        with self._read() as s:
            return list(s.exec(select(RegisteredModel).order_by(RegisteredModel.name)))

    def history(self, model_name: str) -> list[AuditEvent]:
        """The model's audit events in the order they were written.

        Ordered by id, not by ``at``: ids are assigned inside the writer's lock, while ``at``
        comes from the writing machine's clock, which may differ between hosts sharing a
        PostgreSQL registry."""
        with self._read() as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.model_name == model_name)
                               .order_by(AuditEvent.id)))

    def load(self, version: ModelVersion) -> TrainedModel:
        """Load a version's model after verifying the artifact's sha256.

        The file is read and its sha256 checked at every call (a changed file is never
        served); what it holds is unpacked once per sha256 and trust (a run loads the same
        versions for drift, evaluation, the smoke check and more), a few models at most."""
        source = self.sources.get(version.model_name, DEFAULT_SOURCE)
        data = self.artifact_bytes(version)
        key = (version.artifact_sha256, source)
        with self._models_lock:
            model = self._models.pop(key, None)
            if model is not None:
                self._models[key] = model  # the most recently used is kept longest
                return model
        model = model_from_bytes(data, self.artifact_url(version), source)
        with self._models_lock:
            self._models[key] = model
            while len(self._models) > LOADED_MODELS:
                self._models.pop(next(iter(self._models)))
        return model

    def verify_artifact(self, version: ModelVersion) -> None:
        """Raise ``ArtifactIntegrityError`` unless the version's artifact is there and matches
        its sha256 (a switch checks this before anything is announced)."""
        self.artifact_bytes(version)

    def artifact_bytes(self, version: ModelVersion) -> bytes:
        """The version's artifact, its sha256 checked against the one registered."""
        path = Path(version.artifact_path)
        if path.is_absolute():  # written by an older retrain, which stored absolute paths
            return ObjectStore(path.parent).verified(path.name, version.artifact_sha256)
        return self.artifacts.verified(version.artifact_path, version.artifact_sha256)

    def load_profile_bytes(self, version: ModelVersion) -> bytes | None:
        """The version's drift reference profile as stored in its artifact (sha256 verified;
        ``retrain.drift.profile.ReferenceProfile.from_bytes`` reads it); None for versions
        stored without one."""
        return profile_from_bytes(self.artifact_bytes(version), self.artifact_url(version))

    def artifact_url(self, version: ModelVersion) -> str:
        """Where a version's artifact is: a local path or an object storage URL."""
        path = Path(version.artifact_path)
        return str(path) if path.is_absolute() else self.artifacts.url(version.artifact_path)

    def artifact_file(self, version: ModelVersion) -> Path:
        """A version's artifact file on the local disk. Paths are stored relative to the
        artifacts folder, so a workspace can be moved or copied; absolute paths are used as
        they are. Artifacts on object storage have no local file (``artifact_url``)."""
        path = Path(version.artifact_path)
        if path.is_absolute():
            return path
        if self.artifacts_dir is None:
            raise RegistryError(f"{version.version_id}'s artifact is on object storage "
                                f"({self.artifact_url(version)}), not in a local file")
        return self.artifacts_dir / path

    # Decisions --------------------------------------------------------------------------
    def record(self, model_name: str, action: str, *, version_id: str | None = None,
               reason: str = "", details: dict[str, Any] | None = None,
               actor: str | None = None) -> None:
        """Write one audit event on its own (e.g. an evaluation or a skip)."""
        with self._write() as s:
            self._audit(s, model_name, action, actor or default_actor(), reason, version_id, details)

    def promote(self, version_id: str, *, reason: str, actor: str | None = None,
                details: dict[str, Any] | None = None, allow_rejected: bool = False,
                expected_production: str | None | object = ANY_PRODUCTION,
                closing: str | None = None,
                within: Callable[[Session], None] | None = None) -> ModelVersion:
        """Make ``version_id`` production and archive the previous one, in one transaction.

        A rejected version is refused unless ``allow_rejected`` (``retrain promote --force``,
        an experiment's winner), which the audit event records as an override.

        ``expected_production`` (a version id, or None for "no production version yet") makes
        the switch conditional: if production is no longer the version a decision was based
        on (another run or a person changed it meanwhile), nothing changes and
        ``RegistryError`` says so.

        While the model has an active (running or paused) A/B test or rollout, its traffic is
        routed to the experiment's versions, so a new production version would not be served:
        ``ActiveExperimentError`` names the experiment and how to end it. The exception is
        the experiment's own promotion: ``closing`` is its id, and ``within(session)`` closes
        it in this transaction (before commit; raising ``RegistryError`` there, e.g. because
        the experiment was stopped meanwhile, rolls the promotion back too).
        """
        if closing is not None and within is None:
            raise ValueError("closing (the experiment's id) needs within (what closes it)")
        version, _ = self._switch(version_id, action="promoted", reason=reason, actor=actor,
                                  details=details, allow_rejected=allow_rejected,
                                  expected_production=expected_production, closing=closing,
                                  within=within)
        return version

    def _switch(self, version_id: str, *, action: str, reason: str, actor: str | None,
                details: dict[str, Any] | None, allow_rejected: bool,
                expected_production: str | None | object, closing: str | None = None,
                within: Callable[[Session], None] | None = None) -> tuple[ModelVersion, str | None]:
        """``promote`` (action ``promoted``) and ``rollback_to`` (``rolled-back``, which ends an
        active experiment in the transaction instead of refusing the switch). Returns the
        version and the id of the experiment it ended, if any."""
        actor = actor or default_actor()
        model_name = self.get_version(version_id).model_name
        ended = None
        details = dict(details or {})
        try:
            with self._write(model_name) as s:
                version = s.get(ModelVersion, version_id)
                previous = s.exec(select(ModelVersion).where(
                    ModelVersion.model_name == model_name,
                    ModelVersion.status == "production")).first()
                current_id = previous.version_id if previous is not None else None
                refusal = switch_refusal(version, current_id, action=action,
                                         allow_rejected=allow_rejected,
                                         expected_production=expected_production)
                if refusal is not None:
                    raise RegistryError(refusal)
                if version.status == "rejected":
                    details["override"] = True
                active = s.exec(select(Experiment).where(
                    Experiment.model_name == model_name,
                    Experiment.status.in_(ACTIVE_EXPERIMENT_STATUSES))).first()
                if active is not None and active.id != closing:
                    if action != "rolled-back":
                        raise experiment_refusal(version_id, active)
                    self._end_experiment(s, active, version_id, actor)
                    ended = active.id
                    s.info["ended_experiment"] = ended  # for within()
                now = utcnow()
                if previous is not None:
                    s.exec(update(ModelVersion).where(ModelVersion.version_id == previous.version_id)
                           .values(status="archived"))
                    self._audit(s, model_name, "archived", actor, f"replaced by {version_id}",
                                previous.version_id)
                failpoint("promote:after-archive")
                s.exec(update(ModelVersion).where(ModelVersion.version_id == version_id)
                       .values(status="production", promoted_at=now))
                self._audit(s, model_name, action, actor, reason, version_id,
                            {**details, "previous_version": previous.version_id if previous else None})
                if within is not None:
                    within(s)
                failpoint("promote:before-commit")
        except IntegrityError:
            raise RegistryError(f"concurrent promotion of {model_name!r} detected; "
                                "nothing was changed, retry") from None
        return self.get_version(version_id), ended

    def _end_experiment(self, s: Session, experiment: Experiment, version_id: str,
                        actor: str) -> None:
        """Stop an active experiment because a rollback restores ``version_id`` (all traffic
        back to production), with its audit event, in the caller's transaction."""
        reason = f"{experiment.id} ended by the rollback to {version_id}"
        table = Experiment.__table__
        now = utcnow()
        done = s.connection().execute(
            update(table).where(table.c.id == experiment.id,
                                table.c.status.in_(ACTIVE_EXPERIMENT_STATUSES))
            .values(status="stopped", traffic_b=0.0, ended_at=now, next_step_at=None,
                    result={**(experiment.result or {}), "status": "stopped", "reason": reason,
                            "ended_at": now.isoformat(), "ended_by_rollback_to": version_id}))
        if done.rowcount != 1:  # cannot happen under the model's write lock
            raise RegistryError(f"{experiment.id} changed while the rollback ended it; "
                                "nothing was changed, retry")
        action = "ab-test-ended" if experiment.kind == "ab_test" else "rollout-aborted"
        self._audit(s, experiment.model_name, action, actor, reason, experiment.version_b,
                    {"experiment_id": experiment.id, "status": "stopped",
                     "step": experiment.step, "ended_by_rollback_to": version_id})

    def reject(self, version_id: str, *, reason: str, actor: str | None = None,
               details: dict[str, Any] | None = None) -> ModelVersion:
        return self._set_rejected(version_id, "candidate", "rejected", reason, actor, details,
                                  "only a candidate can be rejected")

    def _set_rejected(self, version_id: str, required_status: str, action: str, reason: str,
                      actor: str | None, details: dict[str, Any] | None, refusal: str,
                      within: Callable[[Session], None] | None = None) -> ModelVersion:
        """Move a version from ``required_status`` to rejected, audited as ``action``
        (``within(session)``: more of the caller's writes in the same transaction)."""
        actor = actor or default_actor()
        model_name = self.get_version(version_id).model_name
        with self._write(model_name) as s:
            version = s.get(ModelVersion, version_id)
            if version.status != required_status:
                raise RegistryError(f"{version_id} is {version.status}, {refusal}")
            s.exec(update(ModelVersion).where(ModelVersion.version_id == version_id)
                   .values(status="rejected"))
            self._audit(s, model_name, action, actor, reason, version_id, details)
            if within is not None:
                within(s)
        return self.get_version(version_id)

    def rollback_target(self, model_name: str, to: str | None = None) -> ModelVersion:
        """The version a rollback restores: ``to`` (an id or number), or the last version that
        was production before the current one. Only a version that has been production before
        qualifies: a candidate that was never promoted, or a rejected one, goes through
        ``promote`` (with ``--force`` if rejected)."""
        current = self.production_version(model_name)
        current_id = current.version_id if current else None
        if to is None:
            archived = [v for v in self.versions(model_name) if v.status == "archived"
                        and v.promoted_at is not None]
            if not archived:
                raise RegistryError(f"model {model_name!r} has no earlier production version")
            return max(archived, key=lambda v: v.promoted_at)
        target = self.resolve_version(model_name, to)
        refusal = switch_refusal(target, current_id, action="rolled-back", allow_rejected=False,
                                 expected_production=ANY_PRODUCTION)
        if refusal is not None:
            raise RegistryError(refusal)
        return target

    def rollback_to(self, version_id: str, *, reason: str = "", actor: str | None = None,
                    details: dict[str, Any] | None = None,
                    expected_production: str | None | object = ANY_PRODUCTION,
                    within: Callable[[Session], None] | None = None
                    ) -> tuple[ModelVersion, str | None]:
        """Make ``version_id`` (an earlier production version) production again, audited as
        ``rolled-back``; returns it and the id of the experiment the rollback ended, if any
        (``within(session)``: more of the caller's writes in the same transaction; the ended
        experiment's id is in ``session.info["ended_experiment"]`` by then).

        The emergency path: unlike ``promote`` it works during an A/B test or rollout, and ends
        it in the same transaction (status stopped, no traffic to its version B, audited as
        ``ab-test-ended`` / ``rollout-aborted``), so the restored version is what is served.
        """
        model_name = self.get_version(version_id).model_name
        current = self.production_version(model_name)
        current_id = current.version_id if current else None
        return self._switch(version_id, action="rolled-back", allow_rejected=False, actor=actor,
                            reason=reason or f"rollback from {current_id or 'none'}",
                            details={"rolled_back_from": current_id, **(details or {})},
                            expected_production=expected_production, within=within)

    def rollback(self, model_name: str, *, to: str | None = None, reason: str = "",
                 actor: str | None = None) -> ModelVersion:
        """``rollback_to(rollback_target(model_name, to))``, on the condition that production
        is still what it was when the target was chosen (without notices or a smoke check:
        ``retrain.promotion.rollback_model`` is the announced path)."""
        target = self.rollback_target(model_name, to)
        current = self.production_version(model_name)
        version, _ = self.rollback_to(target.version_id, reason=reason, actor=actor,
                                      expected_production=current.version_id if current else None)
        return version

    def abandoned_candidates(self, model_name: str) -> list[ModelVersion]:
        """Candidates a process registered and died before deciding: no decision in their
        history after ``registered`` (and ``evaluated``), their process gone, and no active
        experiment using them."""
        now = utcnow()
        with self._read() as s:
            candidates = list(s.exec(select(ModelVersion).where(
                ModelVersion.model_name == model_name, ModelVersion.status == "candidate")))
            in_use = {v for e in s.exec(select(Experiment).where(
                Experiment.model_name == model_name,
                Experiment.status.in_(ACTIVE_EXPERIMENT_STATUSES)))
                for v in (e.version_a, e.version_b)}
            out = []
            for version in candidates:
                if version.version_id in in_use:
                    continue
                events = list(s.exec(select(AuditEvent).where(
                    AuditEvent.version_id == version.version_id).order_by(AuditEvent.id)))
                registered = next((e for e in events if e.action == "registered"), None)
                undecided = all(e.action in ("registered", "evaluated") for e in events)
                if registered is not None and undecided and "owner" in registered.details \
                        and owner_gone(registered.details["owner"], events[-1].at, now):
                    out.append(version)
        return out

    def abandon(self, version_id: str, *, reason: str, actor: str | None = None) -> ModelVersion:
        """A candidate nobody will decide any more: rejected, audited as ``abandoned``."""
        return self._set_rejected(version_id, "candidate", "abandoned", reason, actor, None,
                                  "only a candidate can be abandoned")

    def withdraw(self, version_id: str, *, reason: str, actor: str | None = None,
                 within: Callable[[Session], None] | None = None) -> ModelVersion:
        """Take a production version out of service with no replacement (status rejected).

        For a first version that fails its post-promotion check: there is nothing to roll
        back to, and serving it would be worse than serving nothing.
        """
        return self._set_rejected(version_id, "production", "withdrawn", reason, actor, None,
                                  "not production", within)

    @contextmanager
    def transaction(self, model_name: str | None = None) -> Iterator[Session]:
        """A write transaction for modules that keep their own tables in the registry
        (the notification outbox, experiments). With ``model_name`` it serialises with the
        model's other writers (on PostgreSQL by locking its row)."""
        with self._write(model_name) as s:
            yield s

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session on the registry database."""
        with self._read() as s:
            yield s
