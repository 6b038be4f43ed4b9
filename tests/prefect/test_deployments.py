"""The deployments are declared once (``retrain_prefect.deployments``): prefect.yaml is
generated from the list, and the serve-based alternative builds the same deployments,
triggers included."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.flows import load_flow_from_entrypoint

from retrain.config import settings_from_dict
from retrain_prefect import deployments

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_is_generated_from_the_list():
    assert (ROOT / "prefect.yaml").read_text() == deployments.prefect_yaml(), (
        "prefect.yaml is out of date: python -m deployments.prefect_yaml")


def test_prefect_yaml_names_every_declared_deployment_and_its_entrypoint():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    declared = [(d.name, d.entrypoint) for d in deployments.DEPLOYMENTS]
    assert [(d["name"], d["entrypoint"]) for d in spec["deployments"]] == declared
    for d in deployments.DEPLOYMENTS:  # each entrypoint loads, as Prefect loads it, its flow
        flow = load_flow_from_entrypoint(str(ROOT / d.entrypoint))
        assert flow.name == d.flow and flow is d.load_flow()


def test_serve_builds_the_same_deployments_as_prefect_yaml(tmp_path):
    settings = settings_from_dict({"data": {"source": "data", "target": "y", "timestamp": "t"},
                                   "models": {"m": {"kind": "lightgbm"}},
                                   "schedule": {"cron": "30 4 2 * *", "timezone": "Asia/Tokyo"}},
                                  base_dir=tmp_path)
    served = deployments.runner_deployments(settings, str(tmp_path / "retrain.toml"))
    spec = {d["name"] + ":" + d["entrypoint"]: d
            for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert len(served) == len(spec) == len(deployments.DEPLOYMENTS)
    for runner, declared in zip(served, deployments.DEPLOYMENTS):
        entry = spec[f"{declared.name}:{declared.entrypoint}"]
        assert (runner.name, runner.flow_name) == (declared.name, declared.flow)
        assert runner.parameters == {**entry.get("parameters", {}),
                                     "config": str(tmp_path / "retrain.toml")}
        crons = [s.schedule.cron for s in runner.schedules or []]
        assert bool(crons) == bool(entry.get("schedules"))
        if entry.get("concurrency_limit"):
            assert (runner.concurrency_limit, runner.concurrency_options.collision_strategy.value) == (
                entry["concurrency_limit"]["limit"], entry["concurrency_limit"]["collision_strategy"])
        else:
            assert runner.concurrency_limit is None
        comparable = [t.model_dump(mode="json", exclude={"id"}) for t in runner.triggers]
        expected = [DeploymentEventTrigger(**t).model_dump(mode="json", exclude={"id"})
                    for t in entry.get("triggers", [])]
        assert comparable == expected
    monthly = served[0]
    assert [s.schedule.cron for s in monthly.schedules] == ["30 4 2 * *"]
    assert monthly.schedules[0].schedule.timezone == "Asia/Tokyo"
