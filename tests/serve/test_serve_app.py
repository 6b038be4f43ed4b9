"""The prediction service's HTTP API in process (FastAPI TestClient, real registry and
artifacts): payload validation, unknown models, auth, broken artifacts, the one-row
prediction path, and following the registry without a restart."""

from __future__ import annotations

import math
from datetime import datetime

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from retrain import cli
from retrain.demo import generate_month, write_workspace
from retrain.errors import ConfigError
from retrain.experiments import ABTestingManager
from retrain.modeling import fit_model
from retrain.registry.tables import Feedback, PredictionLog
from retrain.serve import build_app, check_exposure, serve_token
from retrain.serve.models import OnePredictor
from retrain.serve.schemas import FeatureEncoder, FeatureValidationError
from retrain.workspace import Workspace
from serving import AUTH, TOKEN, client_for, features, locs, predict, register, train


# Predictions ---------------------------------------------------------------------------------

def test_predict_answers_with_the_production_version(api, served):
    r = predict(api, {"request_id": "q1", "features": features()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == "q1" and body["model"] == "lightgbm"
    assert body["version"] == "lightgbm-v1" and body["variant"] == "production"
    model = served.registry.load(served.registry.get_version("lightgbm-v1"))
    frame = pl.DataFrame([features()], schema_overrides={"months_employed": pl.Float64})
    labels, proba = model.predict(frame)
    assert body["prediction"] == labels[0] and body["probability"] == pytest.approx(proba[0], abs=0)


@pytest.mark.parametrize("kind", ["lightgbm", "random_forest", "logistic_regression"])
def test_the_one_row_path_predicts_exactly_as_batch_scoring(served, kind):
    model = train(served, kind, seed=5)
    frame = generate_month(2, 300, drifted=True, seed=9)
    # Unknown categories and missing values, which the batch path turns into NaN.
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(pl.lit("yacht"))
                               .otherwise(pl.col("purpose")).alias("purpose"),
                               pl.when(pl.int_range(pl.len()) % 5 == 0).then(None)
                               .otherwise(pl.col("income")).alias("income"))
    labels, proba = model.predict(frame)
    encoder, predictor = FeatureEncoder(model.preprocessing, "missing"), OnePredictor(model)
    rows = frame.select(model.preprocessing.schema.features).to_dicts()
    served_rows = [predictor.predict(encoder.encode(r))[:2] for r in rows]
    if kind == "logistic_regression":
        # A matrix product sums in a different order for one row than for many.
        assert [p for _, p in served_rows] == pytest.approx(proba.tolist(), rel=1e-12, abs=0)
    else:
        assert [p for _, p in served_rows] == proba.tolist()  # trees: to the bit
    assert [label for label, _ in served_rows] == labels.tolist()


def test_null_is_a_missing_value(api):
    body = {"request_id": "q2", "features": {**features(), "months_employed": None, "purpose": None}}
    assert predict(api, body).status_code == 200


def test_entity_id_is_the_routing_key_when_given(api):
    r = predict(api, {"request_id": "q3", "entity_id": 42, "features": features()})
    assert r.status_code == 200 and r.json()["request_id"] == "q3"


# Validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field, message", [
    (lambda f: f.pop("income"), "income", "missing feature"),
    (lambda f: f.update(incme=50_000.0), "incme", "unexpected feature"),
    (lambda f: f.update(credit_score="high"), "credit_score", "expected a number, got a string"),
    (lambda f: f.update(age=[40]), "age", "expected a number, got an array"),
    (lambda f: f.update(purpose="yacht"), "purpose", "unknown category 'yacht'"),
    (lambda f: f.update(home_ownership=True), "home_ownership", "unknown category 'true'"),
    (lambda f: f.update(home_ownership={"a": 1}), "home_ownership", "expected a category"),
])
def test_a_row_that_does_not_fit_the_schema_is_a_422_naming_the_feature(api, change, field,
                                                                         message):
    row = features()
    change(row)
    r = predict(api, {"request_id": "bad", "features": row})
    assert r.status_code == 422
    problems = locs(r)
    assert list(problems) == [f"body/features/{field}"]
    assert message in problems[f"body/features/{field}"]


def test_every_problem_of_a_row_is_reported_at_once(api):
    row = features()
    row.pop("age")
    row.update(ages=41, income="a lot")
    r = predict(api, {"request_id": "bad", "features": row})
    assert r.status_code == 422
    assert set(locs(r)) == {"body/features/age", "body/features/ages", "body/features/income"}


@pytest.mark.parametrize("body, field", [
    ({"features": {}}, "body/request_id"),
    ({"request_id": "", "features": {}}, "body/request_id"),
    ({"request_id": "x"}, "body/features"),
    ({"request_id": "x", "features": [1, 2]}, "body/features"),
    ({"request_id": "x", "features": {}, "feature": {}}, "body/feature"),
])
def test_a_malformed_body_is_a_422_naming_the_field(api, body, field):
    r = predict(api, body)
    assert r.status_code == 422
    assert field in locs(r)


def test_a_body_that_is_not_json_is_a_422(api):
    r = api.post("/predict/lightgbm", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422


def test_an_unknown_model_is_a_404(api):
    r = predict(api, {"request_id": "q", "features": features()}, model="xgboost")
    assert r.status_code == 404
    assert "xgboost" in r.json()["detail"] and "lightgbm" in r.json()["detail"]


def test_unknown_categories_can_be_predicted_as_missing(served):
    settings = served.settings.model_copy(deep=True)
    settings.serve.unknown_categories = "missing"
    ws = Workspace(settings, served.store, served.registry)
    with client_for(ws) as c:
        r = predict(c, {"request_id": "q", "features": {**features(), "purpose": "yacht"}})
    assert r.status_code == 200


def test_feature_validation_error_is_a_retrain_error():
    from retrain.errors import DataValidationError
    exc = FeatureValidationError([("income", "missing feature", "missing")])
    assert isinstance(exc, DataValidationError) and exc.column == "income"


# Feedback ------------------------------------------------------------------------------------

def test_feedback_is_accepted_and_stored(served):
    with client_for(served) as c:
        assert predict(c, {"request_id": "fb-1", "features": features()}).status_code == 200
        r = c.post("/feedback", json={"request_id": "fb-1", "label": 1}, headers=AUTH)
        assert r.status_code == 202 and r.json() == {"request_id": "fb-1", "accepted": True}
        r = c.post("/feedback", json={"request_id": "fb-2", "reward": 2.5, "model": "lightgbm"},
                   headers=AUTH)
        assert r.status_code == 202
    # Leaving the client ran the lifespan shutdown, which writes the queue out.
    with served.registry.reading() as s:
        outcomes = {f.request_id: (f.label, f.reward, f.model_name)
                    for f in s.exec(select(Feedback).where(Feedback.request_id.like("fb-%")))}
        logged = list(s.exec(select(PredictionLog).where(PredictionLog.request_id == "fb-1")))
    assert outcomes == {"fb-1": (1.0, None, None), "fb-2": (None, 2.5, "lightgbm")}
    assert [(p.version_id, p.variant) for p in logged] == [("lightgbm-v1", "production")]


@pytest.mark.parametrize("body, field", [
    ({"request_id": "x"}, "body"),
    ({"label": 1}, "body/request_id"),
    ({"request_id": "x", "label": "yes"}, "body/label"),
    ({"request_id": "x", "reward": 1, "extra": 1}, "body/extra"),
])
def test_malformed_feedback_is_a_422(api, body, field):
    r = api.post("/feedback", json=body, headers=AUTH)
    assert r.status_code == 422 and field in locs(r)


def test_feedback_for_an_unknown_model_is_a_404(api):
    r = api.post("/feedback", json={"request_id": "x", "label": 1, "model": "nope"}, headers=AUTH)
    assert r.status_code == 404


# Auth ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("/predict/lightgbm", {"request_id": "a", "features": {}}),
    ("/feedback", {"request_id": "a", "label": 1}),
])
def test_state_changing_endpoints_need_the_bearer_token(api, path, body):
    missing = api.post(path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    for header in (f"Bearer wrong-{TOKEN}", f"Basic {TOKEN}", "Bearer", TOKEN):
        r = api.post(path, json=body, headers={"Authorization": header})
        assert r.status_code == 403, header


def test_reading_endpoints_are_open(api):
    assert api.get("/health").status_code == 200
    assert api.get("/models").status_code == 200


def test_without_a_token_the_service_is_open_on_loopback_only(served):
    with client_for(served, token=None) as c:
        assert predict(c, {"request_id": "open", "features": features()}, headers={}).status_code == 200
        assert c.get("/health").json()["auth"].startswith("none")
    check_exposure("127.0.0.1", None, "RETRAIN_SERVE_TOKEN")
    check_exposure("::1", None, "RETRAIN_SERVE_TOKEN")
    check_exposure("0.0.0.0", "t", "RETRAIN_SERVE_TOKEN")
    for host in ("0.0.0.0", "192.168.1.5", "example.com"):
        with pytest.raises(ConfigError, match="RETRAIN_SERVE_TOKEN"):
            check_exposure(host, None, "RETRAIN_SERVE_TOKEN")


def test_the_cli_refuses_a_public_host_without_a_token(served, monkeypatch, capsys):
    monkeypatch.delenv("RETRAIN_SERVE_TOKEN", raising=False)
    config = str(served.settings.base_dir / "retrain.toml")
    assert cli.main(["serve", "--config", config, "--host", "0.0.0.0", "--port", "9"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0 without a bearer token" in err and "Traceback" not in err


def test_the_cli_says_when_the_port_is_taken(served, capsys):
    import socket
    config = str(served.settings.base_dir / "retrain.toml")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--config", config, "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_token_comes_from_the_variable_named_in_config(served):
    cfg = served.settings.serve.model_copy(update={"token_env": "MY_TOKEN"})
    assert serve_token(cfg, {"MY_TOKEN": " abc "}) == "abc"
    assert serve_token(cfg, {"MY_TOKEN": ""}) is None
    assert serve_token(cfg, {"RETRAIN_SERVE_TOKEN": "abc"}) is None


def test_the_threadpool_endpoint_answers_the_same(served):
    manager = ABTestingManager(workspace=served)
    body = {"request_id": "same", "features": features(3)}
    answers = []
    for threadpool in (False, True):
        app = build_app(served, TOKEN, manager=manager, predict_in_threadpool=threadpool)
        with TestClient(app) as c:
            answers.append(predict(c, body).json())
            assert predict(c, {"request_id": "x", "features": {}}).status_code == 422
    assert answers[0] == answers[1]
