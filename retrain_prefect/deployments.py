"""retrain's deployments, declared once.

``prefect.yaml`` is generated from this list (``python -m deployments.prefect_yaml``; a test
checks that the committed file is what the list gives), ``python -m deployments.serve`` serves
the same list, and ``retrain_prefect.automations`` takes the pipeline's triggers from it.

A deployment's schedule names which cron it runs on: ``pipeline`` (``[schedule] cron``),
``drift_check`` (02:00 in ``[schedule] timezone``, before the monthly run) or ``rollout``
(``[rollout] cron``, hourly).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import yaml
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.schedules import Cron

PIPELINE_FLOW = "retraining-pipeline"
PIPELINE_DEPLOYMENT = f"{PIPELINE_FLOW}/monthly"
DRIFT_CHECK_FLOW = "drift-check"
DRIFT_CHECK_DEPLOYMENT = f"{DRIFT_CHECK_FLOW}/daily"
FAILURE_ALERT_FLOW = "failure-alert"
FAILURE_ALERT_DEPLOYMENT = f"{FAILURE_ALERT_FLOW}/notify"
DRIFT_CHECK_CRON = "0 2 * * *"  # in [schedule] timezone: before the monthly run's 03:00
POOL = "retrain-pool"
TAGS = ("retrain",)

# The model named by the event's resource: its name label, else the id's suffix. Rendered by
# the server when the automation fires (a single expression keeps its JSON type).
MODEL_FROM_EVENT = "{{ (event.resource.name or event.resource.id | replace('retrain.model.', '')) }}"

Schedule = Literal["pipeline", "drift_check", "rollout"]


def model_event_trigger(event: str, reason: str) -> dict[str, Any]:
    """Run the pipeline deployment for the model of each ``event``, with ``reason``: the
    fields of a ``DeploymentEventTrigger``, as prefect.yaml writes them."""
    return {
        "name": f"retrain on {reason}",
        "description": f"{event} for retrain.model.<name> runs the pipeline for that model "
                       f"with reason {reason!r}.",
        "enabled": True,
        "expect": [event],
        "match": {"prefect.resource.id": "retrain.model.*"},
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
        "parameters": {"models": [MODEL_FROM_EVENT], "reason": reason},
    }


PIPELINE_TRIGGERS = (model_event_trigger("retrain.drift.detected", "drift"),
                     model_event_trigger("retrain.volume.threshold-met", "volume"))


@dataclass(frozen=True)
class Deployment:
    """One deployment of one of our flows (``retrain_prefect.flows.<module>.<function>``)."""

    flow: str  # the flow's name: deployments are called "<flow>/<name>"
    name: str
    module: str
    function: str
    description: str
    schedule: Schedule | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    concurrency: tuple[int, Literal["ENQUEUE", "CANCEL_NEW"]] | None = None
    triggers: tuple[dict[str, Any], ...] = ()
    comment: str = ""  # why it is set up so, written above it in prefect.yaml

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"

    @property
    def entrypoint(self) -> str:
        return f"flows/{self.module}.py:{self.function}"

    def load_flow(self):
        return getattr(importlib.import_module(f"retrain_prefect.flows.{self.module}"), self.function)


def _manual(flow: str, module: str, function: str, description: str) -> Deployment:
    return Deployment(flow, "manual", module, function, description)


DEPLOYMENTS: tuple[Deployment, ...] = (
    Deployment(
        PIPELINE_FLOW, "monthly", "pipeline", "retraining_pipeline",
        "Monthly retraining: checks drift and volume, retrains, evaluates and promotes. "
        "Also run by drift and volume events for the model they name.",
        schedule="pipeline", parameters={"reason": "schedule"}, concurrency=(1, "ENQUEUE"),
        triggers=PIPELINE_TRIGGERS,
        comment="One pipeline run at a time; a run that finds the slot taken waits for it "
                "(ENQUEUE) and then re-checks the triggers itself, so two events for one model "
                "never retrain twice at once and the later one is not lost (README, \"Prefect\")."),
    Deployment(
        DRIFT_CHECK_FLOW, "daily", "drift_check", "drift_check",
        "Daily drift and volume checks alone: emit retrain.drift.detected / "
        "retrain.volume.threshold-met for the models that need retraining; change nothing.",
        schedule="drift_check"),
    Deployment(
        FAILURE_ALERT_FLOW, "notify", "failure_alert", "failure_alert",
        "Failure alert: emails [notifications] email_recipients that a retrain flow run failed "
        "or crashed (flow, run, state, message), through the outbox. Run by the automation "
        "'retrain: email on failed or crashed run'.",
        comment="Not scheduled: the automation \"retrain: email on failed or crashed run\" "
                "(retrain_prefect.automations) runs it for each Failed or Crashed run of our flows."),
    Deployment(
        "rollout-advance", "hourly", "rollout", "rollout_advance",
        "Advances canary and gradual rollouts whose next step is due, after their guardrail "
        "check; rolls a breaching candidate back to 0%; promotes at 100%. Also refreshes the "
        "A/B tests' numbers on the dashboard.",
        schedule="rollout", concurrency=(1, "CANCEL_NEW"),
        comment="Rollouts and A/B tests (README, \"A/B tests and rollouts\"). Two checks at once "
                "would judge the same step twice; a late one is simply dropped."),
    _manual("rollback-model", "rollback", "rollback_model",
            "Roll a model back to its previous production version (or `to`) through the "
            "production switch: announced, smoke-checked, audited, event "
            "retrain.model.rolled-back."),
    _manual("start-ab-test", "experiments", "start_ab_test",
            "Start an A/B test: version_b gets traffic_split of the model's traffic, version_a "
            "(default: production) the rest."),
    _manual("ab-test-status", "experiments", "ab_test_status",
            "Check the active A/B tests (or one model's) and publish their numbers as artifacts."),
    _manual("end-ab-test", "experiments", "end_ab_test",
            "End an A/B test; with promote_winner, its significant winner becomes production "
            "(notice before, notice after)."),
    _manual("start-rollout", "experiments", "start_rollout",
            "Start a canary, gradual or immediate rollout of a version; rollout-advance/hourly "
            "moves it on."),
    _manual("control-rollout", "experiments", "control_rollout",
            "Pause, resume or abort a model's rollout (abort: the candidate goes back to 0%; "
            "production stays)."),
    _manual("backtest", "backtest", "backtest",
            "Replay the feature store period by period under the retraining policies "
            "(configured, never, always, oracle) against scratch registries and publish the "
            "comparison; the workspace's registry is never touched."),
)

# The flows people and schedules start (a failing subflow fails its parent too); a new entry
# flow belongs here. Never the failure alert: its failure would alert about itself.
ENTRY_FLOWS = [d.flow for d in DEPLOYMENTS if d.flow != FAILURE_ALERT_FLOW]


def by_name(full_name: str) -> Deployment:
    return next(d for d in DEPLOYMENTS if d.full_name == full_name)


def event_triggers(deployment: Deployment) -> list[DeploymentEventTrigger]:
    """A deployment's triggers as Prefect objects."""
    return [DeploymentEventTrigger(**{**t, "within": timedelta(seconds=t["within"])})
            for t in deployment.triggers]


def pipeline_triggers() -> list[DeploymentEventTrigger]:
    """The triggers of ``retraining-pipeline/monthly``."""
    return event_triggers(by_name(PIPELINE_DEPLOYMENT))


# prefect.yaml ------------------------------------------------------------------------------

# The work pool and the flows' environment, the same in both files.
_DEFINITIONS = f"""\
definitions:
  work_pool: &retrain_pool
    name: {POOL}
    job_variables:
      env: "{{{{ retrain.env }}}}"

deployments:
"""

PREFECT_YAML_HEADER = f"""\
# Prefect deployments of retrain. GENERATED from retrain_prefect/deployments.py by
# `python -m deployments.prefect_yaml`: change the list there, then run it again.
#
# From this folder, with a Prefect server in PREFECT_API_URL:
#
#   prefect work-pool create {POOL} --type process
#   RETRAIN_CONFIG=/abs/path/to/retrain.toml prefect deploy --all
#   python -m deployments.automations --webhook-url https://...   # failure email (+ webhook)
#   prefect worker start --pool {POOL}
#
# The schedule comes from [schedule] in that retrain.toml (default: 03:00 UTC on the 1st), so
# `prefect deploy` and `python -m deployments.serve` agree; see README, "Prefect".
# Workers on other machines: prefect-git.yaml (README, "Scaling out").
name: retrain
prefect-version: 3.9.1

# Reads retrain.toml: {{{{ retrain.cron }}}}, {{{{ retrain.timezone }}}}, {{{{ retrain.drift_check_cron }}}}
# (02:00), {{{{ retrain.rollout_cron }}}} ([rollout] cron, hourly), {{{{ retrain.env }}}} (the flow
# processes' RETRAIN_CONFIG) and {{{{ retrain.project_dir }}}} (this checkout).
build:
  - deployments.steps.retrain_settings:
      id: retrain

push: null

# The worker runs the flows from this checkout.
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{{{ retrain.project_dir }}}}"

"""

GIT_YAML_HEADER = f"""\
# Prefect deployments of retrain for workers on any machine: each flow run clones this
# repository first. GENERATED from retrain_prefect/deployments.py by
# `python -m deployments.prefect_yaml`, like prefect.yaml (same deployments, other pull step).
#
# From a checkout whose workspace (retrain.toml) is committed in the repository:
#
#   prefect work-pool create {POOL} --type process
#   RETRAIN_CONFIG=workspace/retrain.toml prefect deploy --all --prefect-file prefect-git.yaml
#   prefect worker start --pool {POOL}       # on any machine with retrain installed
#
# The repository and branch are RETRAIN_GIT_REPOSITORY and RETRAIN_GIT_BRANCH at deploy time
# (default: this checkout's origin and branch). A private repository's access token is read
# on the worker, when a run starts, from the Prefect Secret block named by
# RETRAIN_GIT_TOKEN_SECRET: only the block's name is stored with the deployments. Secrets of
# the workspace (registry URL with a password, SMTP password, object store keys) come from the
# worker's environment (RETRAIN_REGISTRY__URL, RETRAIN_SMTP_PASSWORD, AWS_ACCESS_KEY_ID, ...)
# or Prefect blocks, never from the deployments. See README, "Scaling out".
name: retrain
prefect-version: 3.9.1

# {{{{ retrain.* }}}} as in prefect.yaml, plus {{{{ retrain.repository }}}}, {{{{ retrain.branch }}}}
# and {{{{ retrain.access_token_secret }}}}; {{{{ retrain.env }}}} names the workspace by its path
# inside the repository, which the flow runs start in.
build:
  - deployments.steps.retrain_git_settings:
      id: retrain

push: null

# Prefect's git_clone, on the worker, into its working folder; the run starts in the clone.
pull:
  - retrain_prefect.steps.git_clone:
      id: clone
      repository: "{{{{ retrain.repository }}}}"
      branch: "{{{{ retrain.branch }}}}"
      access_token_secret: "{{{{ retrain.access_token_secret }}}}"

"""

_CRON = {"pipeline": "{{ retrain.cron }}", "drift_check": "{{ retrain.drift_check_cron }}",
         "rollout": "{{ retrain.rollout_cron }}"}
_POOL_MARK = "__retrain_pool__"


def prefect_yaml_entry(deployment: Deployment) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": deployment.name, "description": deployment.description,
                             "entrypoint": deployment.entrypoint}
    if deployment.parameters:
        entry["parameters"] = dict(deployment.parameters)
    entry["tags"] = list(TAGS)
    if deployment.schedule:
        entry["schedules"] = [{"cron": _CRON[deployment.schedule],
                               "timezone": "{{ retrain.timezone }}"}]
    if deployment.concurrency:
        limit, strategy = deployment.concurrency
        entry["concurrency_limit"] = {"limit": limit, "collision_strategy": strategy}
    entry["work_pool"] = _POOL_MARK
    if deployment.triggers:
        entry["triggers"] = [dict(t) for t in deployment.triggers]
    return entry


def prefect_yaml(git: bool = False) -> str:
    """The text of prefect.yaml, or of prefect-git.yaml (``git``: the code cloned by each run)."""
    parts = [(GIT_YAML_HEADER if git else PREFECT_YAML_HEADER) + _DEFINITIONS]
    for deployment in DEPLOYMENTS:
        if deployment.comment:
            parts.append("".join(f"  # {line}\n" for line in _wrap(deployment.comment)))
        text = yaml.safe_dump([prefect_yaml_entry(deployment)], sort_keys=False, width=96,
                              allow_unicode=True)
        text = text.replace(f"work_pool: {_POOL_MARK}", "work_pool: *retrain_pool")
        parts.append("".join(f"  {line}\n" for line in text.splitlines()) + "\n")
    return "".join(parts).rstrip("\n") + "\n"


def _wrap(text: str, width: int = 92) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


# Serving from one process -------------------------------------------------------------------

def runner_deployments(settings, config_path: str) -> list:
    """Every deployment as ``Flow.to_deployment`` gives it, for ``prefect.serve``: the same
    names, schedules, parameters, concurrency and triggers as prefect.yaml."""
    crons = {"pipeline": settings.schedule.cron, "drift_check": DRIFT_CHECK_CRON,
             "rollout": settings.rollout.cron}
    out = []
    for d in DEPLOYMENTS:
        kwargs: dict[str, Any] = {"name": d.name, "tags": list(TAGS), "description": d.description,
                                  "parameters": {**d.parameters, "config": config_path}}
        if d.schedule:
            kwargs["schedules"] = [Cron(crons[d.schedule], timezone=settings.schedule.timezone)]
        if d.concurrency:
            limit, strategy = d.concurrency
            kwargs["concurrency_limit"] = ConcurrencyLimitConfig(
                limit=limit, collision_strategy=ConcurrencyLimitStrategy(strategy))
        if d.triggers:
            kwargs["triggers"] = event_triggers(d)
        out.append(d.load_flow().to_deployment(**kwargs))
    return out
