"""Making a smoke check fail on purpose: recorded predictions that differ from what the
artifact predicts, with a matching checksum, so only the smoke check's comparison can catch it
(as a deployed artifact that does not predict what was evaluated would)."""

from __future__ import annotations

import hashlib
import io

import polars as pl

from retrain.evaluation.results import Evaluation
from retrain.workspace import Workspace


def tamper_smoke_sample(ws: Workspace, evaluation: Evaluation) -> Evaluation:
    """Halve the recorded smoke predictions of ``evaluation``'s candidate; returns the
    evaluation with the new file's sha256."""
    smoke = ws.registry.artifacts_dir / evaluation.smoke_sample.path
    tampered = pl.read_parquet(smoke).with_columns(pl.col("expected_probability") * 0.5)
    buf = io.BytesIO()
    tampered.write_parquet(buf)
    smoke.write_bytes(buf.getvalue())
    return evaluation.model_copy(update={"smoke_sample": evaluation.smoke_sample.model_copy(
        update={"sha256": hashlib.sha256(buf.getvalue()).hexdigest()})})
