"""The production model's live outcomes: its served predictions joined with their feedback.

The prediction service (``retrain serve``) logs every answer with the version that gave it and
the probability of the positive class; ``POST /feedback`` later records the true label. The
performance trigger reads these pairs to judge the model on the traffic it really serves.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import and_, func, or_, select

from retrain.registry import Registry
from retrain.registry.tables import Feedback, PredictionLog


def live_outcomes(registry: Registry, model_name: str, version_id: str,
                  since: datetime | None = None, limit: int | None = None,
                  task: str = "binary") -> tuple[np.ndarray, np.ndarray]:
    """``(labels, scores)`` of ``version_id``'s predictions since ``since`` that have a
    labeled outcome, newest first up to ``limit``: binary, the positive class's probability;
    multiclass, each class's probability and the true class's position; regression, the
    predicted value and the true one.

    A request counts once, with the version's first prediction for its id (earliest ``at``,
    then first logged), even when the id was predicted again. Its label is its latest
    feedback sent at or after that prediction (a correction replaces the first answer;
    feedback sent earlier, e.g. for an older request that used the same id, is ignored), 1
    for the positive class (the model's second class) and 0 otherwise. Feedback naming
    another model and predictions without a probability are skipped. The same rule as the
    experiments' ``outcome_sums``."""
    p, f = PredictionLog.__table__, Feedback.__table__
    p2 = PredictionLog.__table__.alias("p2")
    f2 = Feedback.__table__.alias("f2")
    # The request id's predictions are found by its index: ``|| ''`` keeps the planner (SQLite
    # has no statistics unless ANALYZEd) from preferring the (model, version) index instead,
    # which would scan all of the version's predictions for each one of them.
    first = (select(p2.c.id)
             .where(p2.c.request_id == p.c.request_id,
                    p2.c.model_name.concat("") == p.c.model_name,
                    p2.c.version_id.concat("") == p.c.version_id)
             .order_by(p2.c.at, p2.c.id).limit(1)
             .scalar_subquery())
    latest = (select(func.max(f2.c.id))
              .where(f2.c.request_id == p.c.request_id, f2.c.at >= p.c.at,
                     f2.c.label.is_not(None),
                     or_(f2.c.model_name.is_(None), f2.c.model_name == p.c.model_name))
              .scalar_subquery())
    scored = {"regression": p.c.prediction, "multiclass": p.c.probabilities}.get(
        task, p.c.probability)
    query = (select(f.c.label, scored)
             .select_from(p.join(f, and_(f.c.request_id == p.c.request_id, f.c.id == latest)))
             .where(p.c.model_name == model_name, p.c.version_id == version_id,
                    scored.is_not(None), p.c.id == first)
             .order_by(p.c.at.desc(), p.c.id.desc()))
    if since is not None:
        query = query.where(p.c.at >= since)
    if limit is not None:
        query = query.limit(limit)
    with registry.reading() as s:
        rows = s.connection().execute(query).all()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if task == "multiclass":
        return (np.asarray([int(label) for label, _ in rows], dtype=np.int64),
                np.asarray([probabilities for _, probabilities in rows], dtype=np.float64))
    data = np.asarray(rows, dtype=np.float64)
    if task == "regression":
        return data[:, 0], data[:, 1]
    return (data[:, 0] == 1.0).astype(np.int64), data[:, 1]
