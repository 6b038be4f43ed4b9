"""Which features a model's next candidate trains on.

With ``[data] features`` set, those. Otherwise a model's first version takes every column of
the data (but the target, the timestamp and the entity id), and later versions the features
their production version was trained on: a column that appears in later files changes a
model's inputs only when ``[data] new_columns`` says so ("include"); "ignore" (the default)
leaves it out and says so, "error" stops the run naming it. Every client of the prediction
service keeps sending what production was trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from retrain.data import Schema
from retrain.errors import DataValidationError
from retrain.registry.tables import ModelVersion
from retrain.workspace import Workspace

log = logging.getLogger("retrain")


@dataclass(frozen=True)
class CandidateFeatures:
    schema: Schema
    added: tuple[str, ...] = ()  # new columns the candidate takes
    ignored: tuple[str, ...] = ()  # new columns it leaves out


def candidate_features(ws: Workspace, data_schema: Schema,
                       production: ModelVersion | None) -> CandidateFeatures:
    """The features of the next candidate of the model whose production version is
    ``production``, from the training window's ``data_schema``."""
    cfg = ws.settings.data
    if cfg.features is not None or production is None:
        return CandidateFeatures(data_schema)
    was = Schema.from_dict(production.feature_schema)
    new = tuple(f for f in data_schema.features if f not in was.features)
    if not new:
        return CandidateFeatures(was)
    names = ", ".join(map(repr, new))
    if cfg.new_columns == "error":
        raise DataValidationError(new[0], (
            f"new column(s) {names} in the data, not among the features {production.version_id} "
            "was trained on; list the features in [data] features, or set [data] new_columns "
            "to 'include' or 'ignore'"))
    if cfg.new_columns == "ignore":
        log.warning("%s: new column(s) %s left out ([data] new_columns = 'ignore')",
                    production.model_name, names)
        return CandidateFeatures(was, ignored=new)
    log.info("%s: new column(s) %s become features ([data] new_columns = 'include')",
             production.model_name, names)
    return CandidateFeatures(
        Schema(was.features + new, was.categorical + tuple(f for f in new
                                                           if f in data_schema.categorical)),
        added=new)
