"""The smoke sample: holdout rows with the candidate's predictions, recorded at evaluation and
re-scored right after a switch, to prove the deployed artifact predicts what was evaluated."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
from sqlmodel import select

from retrain.errors import RetrainError
from retrain.evaluation.results import SmokeSample
from retrain.registry import Registry
from retrain.registry.tables import AuditEvent, ModelVersion
from retrain.workspace import Workspace


def smoke_check(ws: Workspace, version_id: str, smoke: SmokeSample | None) -> str | None:
    """Load the deployed artifact (sha256 verified), score the smoke sample recorded at
    evaluation and compare; ``None`` when it predicts exactly as evaluated (or there is no
    sample), else the problem."""
    if smoke is None:
        return None
    registry = ws.registry
    try:
        model = registry.load(registry.get_version(version_id))
        data = registry.artifacts.read(smoke.path)
        if hashlib.sha256(data).hexdigest() != smoke.sha256:
            return f"smoke sample {registry.artifacts.url(smoke.path)} was changed since the evaluation"
        sample = pl.read_parquet(io.BytesIO(data))
        features = set(model.preprocessing.schema.features)
        expected_columns = [c for c in sample.columns if c not in features]
        expected = sample.select(expected_columns).to_numpy()
        actual = model.predict_scores(sample.drop(expected_columns)).reshape(len(sample), -1)
    except (RetrainError, OSError) as exc:
        return f"the deployed artifact cannot be used: {exc}"
    if actual.shape != expected.shape:
        return (f"the deployed artifact gives {actual.shape[1]} scores per row, the evaluated "
                f"model gave {expected.shape[1]}")
    if not np.array_equal(actual, expected):
        worst = float(np.max(np.abs(actual - expected)))
        return (f"the deployed artifact predicts differently from the evaluated model on "
                f"{int(np.sum((actual != expected).any(axis=1)))} of {len(expected)} smoke rows "
                f"(largest difference {worst:.3g})")
    return None


def write_smoke_sample(ws: Workspace, candidate: ModelVersion, features: list[str],
                       holdout: pl.DataFrame, proba: np.ndarray) -> SmokeSample:
    """Up to ``[promotion] smoke_rows`` holdout rows (seeded) with the candidate's scores,
    written beside its artifact."""
    n = min(ws.settings.promotion.smoke_rows, holdout.height)
    idx = np.random.default_rng(0).choice(holdout.height, size=n, replace=False)
    idx.sort()
    scores = np.asarray(proba)[idx]
    # Besides the features, the evaluated model's scores: the positive class's probability,
    # the predicted value, or one column per class.
    if scores.ndim == 1:
        name = "expected_value" if candidate.task == "regression" else "expected_probability"
        expected = [pl.Series(name, scores)]
    else:
        expected = [pl.Series(f"expected_probability_{j}", scores[:, j])
                    for j in range(scores.shape[1])]
    sample = holdout[idx].select(features).with_columns(expected)
    buf = io.BytesIO()
    sample.write_parquet(buf)
    data = buf.getvalue()
    key = f"{candidate.model_name}/{candidate.version_id}.smoke.parquet"
    return SmokeSample(path=key, sha256=ws.registry.artifacts.write(key, data), rows=n)


def recorded_smoke_sample(registry: Registry, version_id: str) -> SmokeSample | None:
    """The smoke sample recorded when ``version_id`` was last evaluated against production
    (its audit event ``evaluated``), or None for a version never evaluated."""
    with registry.reading() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.version_id == version_id,
                                                AuditEvent.action == "evaluated")
                       .order_by(AuditEvent.id.desc())).first()
    sample = (event.details or {}).get("smoke_sample") if event is not None else None
    return None if not sample else SmokeSample.from_dict(sample)
