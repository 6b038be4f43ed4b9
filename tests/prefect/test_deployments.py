"""The deployments are declared once (``retrain_prefect.deployments``): prefect.yaml is
generated from the list, and the serve-based alternative builds the same deployments,
triggers included."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.flows import load_flow_from_entrypoint

from retrain.config import load_config
from retrain_prefect import deployments
from retrain_prefect.build import retrain_settings

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_is_generated_from_the_list():
    assert (ROOT / "prefect.yaml").read_text() == deployments.prefect_yaml(), (
        "prefect.yaml is out of date: python -m deployments.prefect_yaml")
    assert (ROOT / "prefect-git.yaml").read_text() == deployments.prefect_yaml(git=True), (
        "prefect-git.yaml is out of date: python -m deployments.prefect_yaml")


def test_the_git_file_has_the_same_deployments_and_clones_the_code():
    local = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    git = yaml.safe_load((ROOT / "prefect-git.yaml").read_text())
    assert git["deployments"] == local["deployments"]
    assert [next(iter(step)) for step in git["pull"]] == ["retrain_prefect.steps.git_clone"]
    assert "set_working_directory" not in (ROOT / "prefect-git.yaml").read_text()


def test_git_settings_name_the_workspace_inside_the_repository(tmp_path, monkeypatch):
    import subprocess
    from retrain.demo import write_workspace
    from retrain_prefect.build import git_settings
    repo = tmp_path / "repo"
    config = write_workspace(repo / "workspace", months=1, rows_per_month=50, trees=5)
    subprocess.run(["git", "init", "-q", "-b", "release", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin",
                    "https://git.example.com/team/models.git"], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "workspace/retrain.toml"], check=True)
    monkeypatch.delenv("RETRAIN_GIT_REPOSITORY", raising=False)
    monkeypatch.delenv("RETRAIN_GIT_BRANCH", raising=False)
    monkeypatch.setenv("RETRAIN_GIT_TOKEN_SECRET", "models-repo-token")
    out = git_settings(str(config), project_dir=repo)
    assert out["repository"] == "https://git.example.com/team/models.git"
    assert out["branch"] == "release"
    assert out["env"]["RETRAIN_CONFIG"] == "workspace/retrain.toml"
    assert out["access_token_secret"] == "models-repo-token"
    # Only the block's name travels; nothing of the workspace's secrets is in the values.
    assert not any(k.startswith(("AWS_", "RETRAIN_REGISTRY", "RETRAIN_SMTP")) for k in out["env"])
    monkeypatch.setenv("RETRAIN_GIT_REPOSITORY", "file:///srv/git/models.git")
    assert git_settings(str(config), project_dir=repo)["repository"] == "file:///srv/git/models.git"


def test_prefect_yaml_names_every_declared_deployment_and_its_entrypoint():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    declared = [(d.name, d.entrypoint) for d in deployments.DEPLOYMENTS]
    assert [(d["name"], d["entrypoint"]) for d in spec["deployments"]] == declared
    for d in deployments.DEPLOYMENTS:  # each entrypoint loads, as Prefect loads it, its flow
        flow = load_flow_from_entrypoint(str(ROOT / d.entrypoint))
        assert flow.name == d.flow and flow is d.load_flow()


def test_serve_builds_the_same_deployments_as_prefect_yaml(tmp_path):
    (tmp_path / "retrain.toml").write_text(
        '[data]\nsource = "data"\ntarget = "y"\ntimestamp = "t"\n'
        '[models.m]\nkind = "lightgbm"\n'
        '[schedule]\ncron = "30 4 2 * *"\ntimezone = "Asia/Tokyo"\n'
        '[rollout]\ncron = "15 */2 * * *"\n')
    settings = load_config(tmp_path / "retrain.toml")
    served = deployments.runner_deployments(settings, str(tmp_path / "retrain.toml"))
    # What prefect.yaml's build step resolves its {{ retrain.* }} templates to for this workspace
    built = retrain_settings(str(tmp_path / "retrain.toml"), project_dir=tmp_path)
    spec = {d["name"] + ":" + d["entrypoint"]: d
            for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert len(served) == len(spec) == len(deployments.DEPLOYMENTS)
    for runner, declared in zip(served, deployments.DEPLOYMENTS):
        entry = spec[f"{declared.name}:{declared.entrypoint}"]
        assert (runner.name, runner.flow_name) == (declared.name, declared.flow)
        assert runner.parameters == {**entry.get("parameters", {}),
                                     "config": str(tmp_path / "retrain.toml")}
        schedules = [(s.schedule.cron, s.schedule.timezone) for s in runner.schedules or []]
        assert schedules == [(_render(s["cron"], built), _render(s["timezone"], built))
                             for s in entry.get("schedules", [])]
        if entry.get("concurrency_limit"):
            assert (runner.concurrency_limit, runner.concurrency_options.collision_strategy.value) == (
                entry["concurrency_limit"]["limit"], entry["concurrency_limit"]["collision_strategy"])
        else:
            assert runner.concurrency_limit is None
        comparable = [t.model_dump(mode="json", exclude={"id"}) for t in runner.triggers]
        expected = [DeploymentEventTrigger(**t).model_dump(mode="json", exclude={"id"})
                    for t in entry.get("triggers", [])]
        assert comparable == expected
    by_schedule = {d.schedule: [(s.schedule.cron, s.schedule.timezone) for s in r.schedules]
                   for r, d in zip(served, deployments.DEPLOYMENTS) if d.schedule}
    assert by_schedule == {"pipeline": [("30 4 2 * *", "Asia/Tokyo")],
                           "drift_check": [(deployments.DRIFT_CHECK_CRON, "Asia/Tokyo")],
                           "rollout": [("15 */2 * * *", "Asia/Tokyo")]}


def _render(template: str, built: dict[str, object]) -> str:
    match = re.fullmatch(r"\{\{ retrain\.(\w+) \}\}", template)
    assert match, f"a schedule that is not one of the build step's outputs: {template}"
    return str(built[match.group(1)])
