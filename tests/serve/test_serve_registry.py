"""The prediction service follows the registry without a restart (in process, real registry
and artifacts): promotions, new models, experiments, broken artifacts, an unreachable
database."""

from __future__ import annotations

import time

from sqlalchemy import text

from retrain.data import Schema
from retrain.demo import generate_month, write_workspace
from retrain.experiments import ABTestingManager
from retrain.modeling import fit_model
from retrain.workspace import Workspace
from serving import client_for, features, locs, predict, register, train


def small_workspace(directory) -> Workspace:
    write_workspace(directory, months=1, rows_per_month=600, trees=10)
    return Workspace.open(directory / "retrain.toml")


def test_an_artifact_that_fails_its_sha256_is_a_503_and_other_models_keep_serving(tmp_path):
    ws = small_workspace(tmp_path)
    register(ws, "lightgbm", train(ws, "lightgbm"))
    version = register(ws, "tampered", train(ws, "lightgbm", seed=3))
    path = ws.registry.artifact_file(version)
    path.write_bytes(path.read_bytes() + b"\0")
    with client_for(ws) as c:
        r = predict(c, {"request_id": "t1", "features": features()}, model="tampered")
        assert r.status_code == 503
        assert "sha256" in r.json()["detail"] and "tampered-v1" in r.json()["detail"]
        assert predict(c, {"request_id": "t2", "features": features()}).status_code == 200
        health = c.get("/health").json()
        assert health["status"] == "degraded" and "tampered-v1" in health["broken_versions"]
        assert "tampered-v1" not in health["loaded_versions"]
    ws.registry.dispose()


def test_models_lists_production_versions_and_the_active_experiment(tmp_path):
    ws = small_workspace(tmp_path)
    register(ws, "lightgbm", train(ws, "lightgbm"))
    register(ws, "random_forest", train(ws, "random_forest"))
    v2 = register(ws, "lightgbm", train(ws, "lightgbm", seed=2), promote=False)
    manager = ABTestingManager(workspace=ws)
    test = manager.create_ab_test("lightgbm", "lightgbm-v1", v2.version_id, 0.3, 7)
    with client_for(ws) as c:
        models = {m["name"]: m for m in c.get("/models").json()["models"]}
        health = c.get("/health").json()
    lgb = models["lightgbm"]
    assert lgb["production_version"] == "lightgbm-v1"
    assert lgb["experiment"]["id"] == test["test_id"] and lgb["experiment"]["traffic_b"] == 0.3
    assert (lgb["experiment"]["version_a"], lgb["experiment"]["version_b"]) == ("lightgbm-v1", v2.version_id)
    assert models["random_forest"]["experiment"] is None
    # Both versions of the experiment are loaded before traffic reaches them.
    assert set(lgb["loaded_versions"]) == {"lightgbm-v1", v2.version_id}
    assert health["status"] == "ok" and health["registry"]["reachable"]
    ws.registry.dispose()


def test_a_promotion_is_picked_up_and_the_old_version_unloaded(tmp_path):
    ws = small_workspace(tmp_path)
    ws.settings.serve.refresh_seconds = 0.1
    register(ws, "lightgbm", train(ws, "lightgbm"))
    with client_for(ws) as c:
        assert predict(c, {"request_id": "p1", "features": features()}).json()["version"] == "lightgbm-v1"
        v2 = register(ws, "lightgbm", train(ws, "lightgbm", seed=2))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = predict(c, {"request_id": "p2", "features": features()}).json()
            loaded = c.get("/health").json()["loaded_versions"]
            if answer["version"] == v2.version_id and loaded == [v2.version_id]:
                break
            time.sleep(0.05)
        assert answer["version"] == v2.version_id
        assert loaded == [v2.version_id]
    ws.registry.dispose()


def test_a_new_model_is_served_without_a_restart(tmp_path):
    ws = small_workspace(tmp_path)
    ws.settings.serve.refresh_seconds = 0.1
    with client_for(ws) as c:
        assert predict(c, {"request_id": "n1", "features": features()}).status_code == 404
        register(ws, "lightgbm", train(ws, "lightgbm"))
        deadline = time.monotonic() + 10
        while predict(c, {"request_id": "n2", "features": features()}).status_code != 200:
            assert time.monotonic() < deadline, "the new model was not picked up"
            time.sleep(0.05)
    ws.registry.dispose()


def test_a_model_without_a_production_version_is_a_503(tmp_path):
    ws = small_workspace(tmp_path)
    register(ws, "lightgbm", train(ws, "lightgbm"), promote=False)
    with client_for(ws) as c:
        r = predict(c, {"request_id": "x", "features": features()})
    assert r.status_code == 503 and "no production version" in r.json()["detail"]
    ws.registry.dispose()


def test_features_come_from_the_version_that_answers(tmp_path):
    """A version trained on fewer features wants exactly those."""
    ws = small_workspace(tmp_path)
    frame = generate_month(0, 600, drifted=False, seed=1)
    schema = Schema(("income", "credit_score", "purpose"), ("purpose",))
    register(ws, "lightgbm", fit_model("lightgbm", {"n_estimators": 5}, frame, schema,
                                       "defaulted", 1))
    with client_for(ws) as c:
        small = {"income": 50_000.0, "credit_score": 700, "purpose": "car"}
        assert predict(c, {"request_id": "s1", "features": small}).status_code == 200
        r = predict(c, {"request_id": "s2", "features": features()})
    assert r.status_code == 422 and "body/features/age" in locs(r)
    ws.registry.dispose()


def test_an_unreachable_registry_keeps_predictions_served_and_the_service_recovers(tmp_path):
    ws = small_workspace(tmp_path)
    ws.settings.serve.refresh_seconds = 0.1
    register(ws, "lightgbm", train(ws, "lightgbm"))
    body = {"request_id": "u1", "features": features()}

    def wait_for(condition):
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.05)

    with client_for(ws) as c:
        before = predict(c, body)
        assert before.status_code == 200
        with ws.registry.transaction() as s:  # a real failure: the table disappears
            s.exec(text("ALTER TABLE model_version RENAME TO model_version_away"))
        try:
            wait_for(lambda: c.get("/health").status_code == 503)
            health = c.get("/health").json()
            assert health["status"] == "unavailable" and not health["registry"]["reachable"]
            assert "model_version" in health["registry"]["error"]
            # The loaded version keeps answering on the last routing state read.
            during = predict(c, body)
            assert during.status_code == 200, during.json()
            assert during.json()["version"] == before.json()["version"]
            assert c.get("/models").status_code == 503
        finally:
            with ws.registry.transaction() as s:
                s.exec(text("ALTER TABLE model_version_away RENAME TO model_version"))
        wait_for(lambda: c.get("/health").json()["status"] == "ok")
        assert predict(c, body).status_code == 200
    ws.registry.dispose()
