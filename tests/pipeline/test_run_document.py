"""The run document: its JSON Schema is generated from the types and committed, and what a
real run prints validates against it (a key added, renamed or retyped in the code without a
new schema fails here)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from retrain.pipeline import run_pipeline
from retrain.pipeline.document import RunDocument, json_schema, json_schema_text

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "run-document.schema.json"


def test_the_committed_schema_is_the_one_the_types_give():
    assert SCHEMA_FILE.read_text() == json_schema_text(), (
        "docs/run-document.schema.json is out of date: "
        "python -m retrain.pipeline.document > docs/run-document.schema.json")


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    """Documents of a bootstrap, a drift run with the performance check, and a skip."""
    from conftest import SMALL
    from retrain.demo import append_drifted_month, write_workspace
    from retrain.workspace import Workspace

    directory = tmp_path_factory.mktemp("document") / "ws"
    ws = Workspace.open(write_workspace(directory, **SMALL))
    first = run_pipeline(ws)
    append_drifted_month(directory, index=SMALL["months"], rows=2000)
    second = run_pipeline(ws, reason="schedule", check_performance=True)
    third = run_pipeline(ws)
    return first, second, third


def test_every_document_validates_against_the_schema(documents):
    validator = jsonschema.Draft202012Validator(json_schema())
    for document in documents:
        data = json.loads(json.dumps(document.to_dict()))  # what `retrain run --json` prints
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
        assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_rejects_what_the_document_never_has(documents):
    validator = jsonschema.Draft202012Validator(json_schema())
    data = documents[0].to_dict()
    data["models"]["lightgbm"]["decision"] = "maybe"
    data["extra"] = 1
    messages = {e.message for e in validator.iter_errors(data)}
    assert any("'maybe' is not one of" in m for m in messages)
    assert any("'extra' was unexpected" in m for m in messages)


def test_the_keys_people_depend_on_stay(documents):
    first, second, third = (d.to_dict() for d in documents)
    assert set(first) == {"reason", "forced", "started_at", "finished_at", "triggers",
                          "retrained", "data", "datasets", "models", "success",
                          "abandoned_candidates"}
    assert "performance" not in first["triggers"] and "performance" in second["triggers"]
    entry = second["models"]["lightgbm"]
    assert {"production_version_before", "production_version_after", "candidate_version",
            "trigger", "decision", "reason", "metric", "metrics",
            "relative_improvement"} <= set(entry)
    drift = second["triggers"]["drift"]["models"]["lightgbm"]
    assert {"detected", "drifted_features", "share", "features", "table", "thresholds",
            "label_drift", "prediction_drift", "report"} <= set(drift)
    assert third["retrained"] is False and third["data"] is None
    # The document reads back into its type.
    assert RunDocument.from_dict(second) == documents[1]
