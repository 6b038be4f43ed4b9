"""Configuration: ``retrain.toml`` validated by pydantic, with environment overrides.

Precedence, lowest first: defaults, the TOML file, the seed's setting names
(``DRIFT_THRESHOLD``, ``PSI_THRESHOLD``, ``MODEL_IMPROVEMENT_THRESHOLD``,
``RETRAINING_SCHEDULE``, ``PERFORMANCE_ALERT_EMAIL``), then ``RETRAIN_<SECTION>__<KEY>``.
Relative paths resolve against the folder that holds the TOML file.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retrain.errors import ConfigError
from retrain.storage import is_url, local_path

CONFIG_FILENAME = "retrain.toml"
ENV_CONFIG = "RETRAIN_CONFIG"
ENV_PREFIX = "RETRAIN_"

ModelKind = Literal["random_forest", "lightgbm", "logistic_regression", "xgboost", "sklearn"]
# Every task's metrics (retrain.stats.metrics.METRICS_BY_TASK, which a test compares).
Metric = Literal["roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier",
                 "macro_f1", "roc_auc_ovr", "rmse", "mae", "r2", "mape"]
Task = Literal["binary", "multiclass", "regression"]
METRICS_OF_TASK = {
    "binary": ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier"),
    "multiclass": ("accuracy", "macro_f1", "log_loss", "roc_auc_ovr"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
DEFAULT_METRIC_OF_TASK = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "rmse"}
# The per-request metrics of A/B tests, by task (retrain.experiments.store computes them).
AB_METRICS_OF_TASK = {
    "binary": ("accuracy", "brier", "log_loss", "reward"),
    "multiclass": ("accuracy", "log_loss", "reward"),
    "regression": ("squared_error", "absolute_error", "reward"),
}
MAX_DAYS = 36_500  # a hundred years: the longest window or margin a duration may name
OWN_DRIFT_METHODS = ("ks", "psi", "psi_quantile", "chi2_homogeneity", "domain_classifier")
# Evidently 0.7's registered stat tests (a test compares this list with Evidently's own), so
# the configuration is checked without importing Evidently.
EVIDENTLY_DRIFT_METHODS = (
    "TVD", "abs_text_content_drift", "anderson", "chisquare", "cramer_von_mises", "ed",
    "empirical_mmd", "es", "fisher_exact", "g_test", "hellinger", "jensenshannon", "kl_div",
    "mannw", "perc_text_content_drift", "t_test", "wasserstein", "z")


def check_cron(value: str) -> str:
    """A five-field cron expression, as Prefect's schedules take it."""
    from cronsim import CronSim, CronSimError  # late: only configurations with a schedule
    try:
        CronSim(value, datetime(2026, 1, 1))
    except (CronSimError, ValueError) as exc:
        raise ValueError(f"not a cron expression ({exc}), e.g. '0 3 1 * *'") from None
    return value


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}, e.g. 'UTC' or 'Europe/Amsterdam'") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    source: str
    target: str
    timestamp: str
    # binary | multiclass | regression; unset: inferred from the target when a model's first
    # version is trained, then the one stored with its versions.
    task: Task | None = None
    features: list[str] | None = None
    categorical: list[str] | None = None
    entity_id: str | None = None
    # Columns that appear in later files, when `features` is not set: "ignore" them (a model
    # keeps the features its production version was trained on), stop with an "error" that
    # names them, or "include" them in the next candidate (the run document and the notices
    # name them).
    new_columns: Literal["ignore", "error", "include"] = "ignore"
    # Rows stamped later than now plus this ("<N>d", "<N>h") are an error naming the file.
    max_future: str = "1d"
    # A file without the target column is an error, unless its rows are meant to be unlabeled.
    allow_unlabeled_files: bool = False
    # Rows without a timestamp are left out and counted; above this share of all rows, an error.
    max_null_timestamp_share: float = Field(default=0.01, ge=0, le=1)

    @field_validator("max_future")
    @classmethod
    def _duration_syntax(cls, value: str) -> str:
        match = re.fullmatch(r"([0-9]+)(d|h)", value)
        if not match or (match.group(2) == "d" and int(match.group(1)) > MAX_DAYS) \
                or (match.group(2) == "h" and int(match.group(1)) > 24 * MAX_DAYS):
            raise ValueError(f"expected '<N>d' or '<N>h' (at most {MAX_DAYS} days), e.g. '1d'")
        return value

    @property
    def max_future_delta(self) -> timedelta:
        number, unit = int(self.max_future[:-1]), self.max_future[-1]
        return timedelta(days=number) if unit == "d" else timedelta(hours=number)


class RegistryConfig(_Section):
    url: str = "sqlite:///.retrain/registry.db"
    artifacts: str = ".retrain/artifacts"


class ModelConfig(_Section):
    kind: ModelKind
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    require_approval: bool | None = None  # None: use [promotion] require_approval
    dataset: str | None = None  # a [datasets.<name>] section; None: the [data] section
    # kind = "sklearn": the estimator's class by import path, or a function of the user's
    # (the workspace folder is importable) that returns an unfitted estimator.
    estimator: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    factory: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    # Types the model's skops file may hold beyond scikit-learn's own (exact names).
    trusted_types: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _estimator_source(self) -> "ModelConfig":
        if self.kind == "sklearn":
            if (self.estimator is None) == (self.factory is None):
                raise ValueError('kind "sklearn" needs exactly one of estimator = '
                                 '"package.module.Class" or factory = "package.module:function"')
        elif self.estimator is not None or self.factory is not None:
            raise ValueError(f"estimator and factory are for kind \"sklearn\", not {self.kind!r}")
        return self


class TriggersConfig(_Section):
    volume_threshold: int = Field(default=1000, ge=1)
    check_performance: bool = False
    performance_max_relative_drop: float = Field(default=0.05, gt=0, lt=1)
    # The drop must also be real: the bootstrap interval of the relative drop (at this
    # confidence, over this many resamples) has to lie above zero.
    performance_confidence: float = Field(default=0.95, gt=0, lt=1)
    performance_bootstrap: int = Field(default=1000, ge=100)
    # Where the newly labeled rows come from: the feature store, or the production version's
    # served predictions with their feedback (`retrain serve`); "auto" takes the live feedback
    # once it has performance_min_live_outcomes outcomes since the promotion.
    performance_source: Literal["auto", "store", "live"] = "auto"
    performance_min_live_outcomes: int = Field(default=200, ge=1)
    # Labels come late: on the feature store's newest rows, take the realised metric where
    # labels exist and the estimate (CBPE, from the version's calibrated probabilities) where
    # they do not yet, weighted by rows, so a drop is seen before the labels come in.
    # Classifiers whose primary metric can be estimated (roc_auc, accuracy, precision,
    # recall, f1, macro_f1, roc_auc_ovr).
    performance_estimate: bool = False


class DriftConfig(_Section):
    # ks and psi give Evidently's numbers; psi_quantile (reference deciles) and
    # chi2_homogeneity are ours; any other name runs Evidently's test of that name.
    # domain_classifier (dataset-level): LightGBM telling current rows from reference rows;
    # alarms when its cross-validated AUC's lower bound exceeds thresholds.domain_classifier
    # (default 0.55), which counts as feature drift.
    methods: list[str] = Field(default_factory=lambda: ["ks", "psi"], min_length=1)
    # share: Evidently's rule (drifted share >= drift_share); bh: Benjamini-Hochberg over the
    # per-feature p-values at alpha; bonferroni: each p-value against alpha / m.
    decision: Literal["share", "bh", "bonferroni"] = "bh"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    ks_pvalue_threshold: float = Field(default=0.05, gt=0, lt=1)
    psi_threshold: float = Field(default=0.2, gt=0)
    thresholds: dict[str, float] = Field(default_factory=dict)  # other methods' thresholds
    drift_share: float = Field(default=0.5, gt=0, le=1)
    # Under "share": a feature drifts when "any" of its tests says so, or only when "both" agree.
    feature_rule: Literal["any", "both", "ks", "psi"] = "any"
    # Effect-size gate: a feature drifts only when its test says so under the rule above
    # *and* its drift is at least this large, on a scale-free size in [0, 1]: the KS
    # statistic for a numeric feature (the largest difference between the two CDFs; about
    # 0.4 x a shift in standard deviations of a normal), the total variation distance for a
    # categorical one. A p-value measures evidence, not size: on 1M rows a shift of 0.02 sd
    # has p ~ 1e-27 but a KS statistic of 0.008; 0.05 is a shift of about 0.125 sd, or 5% of
    # the rows moved across some value. 0: no gate.
    min_effect: float = Field(default=0.05, ge=0, le=1)
    # A drifted feature whose share of the production version's permutation importance is
    # below this is reported but does not trigger retraining. 0: every drifted feature does.
    min_importance: float = Field(default=0.0, ge=0, le=1)
    # Columns whose values are segments: the check also runs per value (values with fewer
    # than segment_min_rows rows on either side are merged into "other"), under a two-level
    # false-discovery control (segments, then features within them; retrain.drift.segments).
    segments: list[str] = Field(default_factory=list)
    segment_min_rows: int = Field(default=500, ge=20)
    max_rows: int = Field(default=200_000, ge=100)
    # Label drift (target on newly labeled rows) and prediction drift (the production model's
    # predictions) are always reported; they trigger retraining only when listed here.
    trigger_on: list[Literal["features", "label", "prediction"]] = Field(
        default_factory=lambda: ["features"])
    save_reports: bool = True  # an Evidently HTML report and JSON snapshot per check
    report_rows: int = Field(default=5000, ge=100)  # rows per side in that report
    reports_dir: str = ".retrain/reports"

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        for method in value:
            if method not in OWN_DRIFT_METHODS + EVIDENTLY_DRIFT_METHODS:
                raise ValueError(f"unknown drift method {method!r}; expected one of "
                                 f"{', '.join(OWN_DRIFT_METHODS)} or an Evidently test: "
                                 f"{', '.join(EVIDENTLY_DRIFT_METHODS)}")
        return value


class PromotionConfig(_Section):
    # The primary metric; unset: the task's default (roc_auc, roc_auc_ovr, rmse).
    metric: Metric | None = None
    min_relative_improvement: float = Field(default=0.05, ge=0)
    # What "5% better" is relative to for a metric bounded by 1 (roc_auc, accuracy, f1, r2,
    # ...): "error", its shortfall from 1 (so a good model can still be beaten); "metric", the
    # metric itself. Lower-is-better metrics are a relative reduction either way.
    improvement_basis: Literal["error", "metric"] = "error"
    # Also require the paired interval of (challenger - champion) to lie above zero.
    require_significance: bool = True
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    interval_method: Literal["auto", "delong", "bootstrap"] = "auto"
    bootstrap_samples: int = Field(default=1000, ge=100)
    # metric -> tolerated relative worsening vs production, e.g. {log_loss = 0.02}.
    guardrails: dict[Metric, float] = Field(default_factory=dict)
    require_approval: bool = False
    approval_timeout_hours: float = Field(default=24.0, gt=0)
    # Rows of the holdout re-scored after a promotion to check the deployed artifact.
    smoke_rows: int = Field(default=200, ge=1)

    def metric_for(self, task: str) -> str:
        """The primary metric for a target of ``task``; ``ConfigError`` if the configured
        one is another task's."""
        if self.metric is None:
            return DEFAULT_METRIC_OF_TASK[task]
        _check_metric_of(self.metric, task, "[promotion] metric")
        return self.metric

    def guardrails_for(self, task: str) -> dict[str, float]:
        for metric in self.guardrails:
            _check_metric_of(metric, task, "[promotion] guardrails")
        return dict(self.guardrails)

    @field_validator("guardrails")
    @classmethod
    def _tolerances(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, tolerance in value.items():
            if tolerance < 0:
                raise ValueError(f"tolerance for {metric} must be >= 0 (a relative worsening)")
        return value


def _check_metric_of(metric: str, task: str, key: str) -> None:
    if metric not in METRICS_OF_TASK[task]:
        raise ConfigError(f"{key}: {metric} is not a metric of a {task} target; it takes "
                          f"{', '.join(METRICS_OF_TASK[task])}")


class TrainingConfig(_Section):
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    # "all", "<N>d" (last N days of the store) or "<N>rows" (newest N rows).
    window: str = "90d"

    @field_validator("window")
    @classmethod
    def _window_syntax(cls, value: str) -> str:
        match = re.fullmatch(r"([1-9][0-9]*)(d|rows)", value)
        if value != "all" and not match:
            raise ValueError("expected 'all', '<N>d' (days) or '<N>rows', e.g. '90d'")
        if match and match.group(2) == "d" and int(match.group(1)) > MAX_DAYS:
            raise ValueError(f"at most {MAX_DAYS} days ('all' takes every row), got {value!r}")
        return value


class ScheduleConfig(_Section):
    cron: str = "0 3 1 * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)


class NotificationsConfig(_Section):
    email_recipients: list[str] = Field(default_factory=list)
    sender: str = "retrain@localhost"
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_username: str | None = None
    # The password is never in the file: the name of an environment variable holding it, or
    # of a Prefect Secret block (resolved by the flows).
    smtp_password_env: str = "RETRAIN_SMTP_PASSWORD"
    smtp_password_block: str | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # The server's certificate is always verified (chain and host name). Against the system's
    # CA certificates, or, when set, only against the ones in this PEM file (e.g. a company CA
    # that signs the mail relay's certificate). Relative to the config file's folder.
    smtp_ca_file: str | None = None
    webhook_url: str | None = None
    max_attempts: int = Field(default=8, ge=1)
    retry_backoff_seconds: float = Field(default=30.0, ge=0)


class ABTestConfig(_Section):
    """Defaults for A/B tests and the live comparison of two versions."""

    traffic_split: float = Field(default=0.5, gt=0, lt=1)  # share of traffic to version B
    duration_days: float = Field(default=14.0, gt=0)
    # Per-request metric compared between variants, from the label fed back for a request:
    # accuracy, brier or log_loss (binary), accuracy (multiclass), squared_error or
    # absolute_error (regression); or a numeric reward recorded for it (higher is better).
    # Unset: accuracy for a classification, squared_error for a regression.
    metric: Literal["accuracy", "brier", "log_loss", "squared_error", "absolute_error",
                    "reward"] | None = None

    def metric_for(self, task: str) -> str:
        """The per-request metric for a model of ``task``; ``ConfigError`` if it is not one."""
        metric = self.metric or ("squared_error" if task == "regression" else "accuracy")
        if metric not in AB_METRICS_OF_TASK[task]:
            raise ConfigError(f"[abtest] metric: {metric} is not a per-request metric of a "
                              f"{task} model; it takes {', '.join(AB_METRICS_OF_TASK[task])}")
        return metric
    alpha: float = Field(default=0.05, gt=0, lt=1)  # always-valid (sequential) test level
    # Prior variance of the effect in the mixture SPRT; about the squared size of an effect
    # worth detecting.
    mixture_variance: float = Field(default=0.0025, gt=0)
    srm_alpha: float = Field(default=0.001, gt=0, lt=1)  # sample-ratio-mismatch check level
    min_outcomes: int = Field(default=100, ge=1)  # per variant before a winner can be declared


class RolloutConfig(_Section):
    """Defaults for canary and gradual rollouts (advanced by the rollout-advance deployment)."""

    strategy: Literal["immediate", "canary", "gradual"] = "canary"
    initial_traffic: float = Field(default=0.1, gt=0, le=1)
    increment: float = Field(default=0.2, gt=0, le=1)
    increment_interval_hours: float = Field(default=24.0, gt=0)
    steps: int = Field(default=4, ge=1)  # gradual: equal steps up to 100%
    # A step advances only while the candidate is not worse than production by more than this
    # (absolute, on [abtest] metric) and the split passes the sample-ratio-mismatch check.
    guardrail_tolerance: float = Field(default=0.02, ge=0)
    # A step also waits for [abtest] min_outcomes outcomes per variant, so the guardrail has
    # data to judge; set true for models whose outcomes never come back (steps then go by time).
    advance_without_outcomes: bool = False
    cron: str = "0 * * * *"  # the rollout-advance deployment's schedule

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


class ServeConfig(_Section):
    """The prediction service (`retrain serve`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Server processes sharing the port (`retrain serve --workers N`): each loads the models,
    # follows the registry and writes its own batches of the prediction log.
    workers: int = Field(default=1, ge=1, le=64)
    # Bearer token for endpoints that change state; read from this environment variable.
    token_env: str = "RETRAIN_SERVE_TOKEN"
    refresh_seconds: float = Field(default=1.0, gt=0)  # how often the registry is re-read
    log_batch_size: int = Field(default=500, ge=1)  # predictions and feedback written per batch
    log_flush_seconds: float = Field(default=0.5, gt=0)
    # Rows waiting for the database at most (per kind); beyond it new rows are refused and
    # counted in /health rather than blocking requests or filling memory.
    log_queue_size: int = Field(default=100_000, ge=1)
    # A category the version never saw in training: "reject" answers 422 naming the feature;
    # "missing" predicts with it treated as missing, as batch scoring does.
    unknown_categories: Literal["reject", "missing"] = "reject"
    # A POST body larger than this is answered 413 without being read further.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)


class OrchestrationConfig(_Section):
    """Where a run's candidates are trained: one model at a time in the run's own process
    (the default), several at once in threads or processes, or on a Dask cluster."""

    # thread: a pool of threads in the run's process; process: a pool of worker processes;
    # dask: the cluster at dask_address (unset: a local cluster of dask_workers processes
    # started for the run), through prefect-dask's DaskTaskRunner under Prefect and
    # distributed.Client without it.
    task_runner: Literal["thread", "process", "dask"] = "thread"
    # Models fitted at once by "thread" and "process"; 1 fits them one after the other (with
    # "process", in one worker process), each with every core (random forests use them all).
    max_workers: int = Field(default=1, ge=1, le=256)
    dask_address: str | None = None  # e.g. "tcp://scheduler:8786"
    dask_workers: int = Field(default=2, ge=1, le=256)
    dask_threads_per_worker: int = Field(default=1, ge=1, le=256)


class StorageConfig(_Section):
    """Object storage: how ``[registry] artifacts``, ``[drift] reports_dir`` and data sources
    given as fsspec URLs (``s3://bucket/prefix``, ``gs://``, ``az://``, ``file://``) are
    reached, and how people are linked to the reports stored there."""

    # Passed to fsspec (and to polars for data sources) for every URL, e.g.
    # {endpoint_url = "http://127.0.0.1:9000"} for an S3-compatible server. Credentials are
    # better left to the usual environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    # AWS_ENDPOINT_URL, ...) or the worker's role than written here.
    options: dict[str, Any] = Field(default_factory=dict)
    # Report links in artifacts and notices: "presigned" URLs that expire after
    # presign_expires_hours, or "public": public_base_url followed by the object's key below
    # the reports URL (a bucket served by a CDN or a web server).
    links: Literal["presigned", "public"] = "presigned"
    public_base_url: str | None = None
    presign_expires_hours: float = Field(default=168.0, gt=0, le=168.0)

    @model_validator(mode="after")
    def _public_needs_base(self) -> "StorageConfig":
        if self.links == "public" and not self.public_base_url:
            raise ValueError('links = "public" needs public_base_url, e.g. '
                             '"https://reports.example.com/retrain"')
        return self


DEFAULT_DATASET = "data"  # the [data] section's name, as a dataset


class Settings(_Section):
    # The dataset of every model that names none; optional when each model names one of
    # `datasets`.
    data: DataConfig | None = None
    # More datasets, [datasets.<name>], each with the keys of [data]; a model takes one with
    # [models.<m>] dataset = "<name>".
    datasets: dict[str, DataConfig] = Field(default_factory=dict)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    models: dict[str, ModelConfig]
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    abtest: ABTestConfig = Field(default_factory=ABTestConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    # Folder of the TOML file; relative paths resolve against it.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _need_models(self) -> "Settings":
        if not self.models:
            raise ValueError("at least one [models.<name>] section is required")
        for name in self.models:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
                raise ValueError(f"model name {name!r} may use only letters, digits, '_', '-', '.'")
        if DEFAULT_DATASET in self.datasets:
            raise ValueError(f"[datasets.{DEFAULT_DATASET}]: the name is the [data] section's; "
                             "choose another")
        for name in self.datasets:
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
                raise ValueError(f"dataset name {name!r} may use only letters, digits, '_', '-', '.'")
        for name, model in self.models.items():
            if model.dataset is None and self.data is None:
                raise ValueError(f"[models.{name}] names no dataset and there is no [data] "
                                 "section: add one, or set dataset = \"<name>\" of a "
                                 "[datasets.<name>] section")
            if model.dataset is not None and model.dataset not in self.datasets:
                known = ", ".join(self.datasets) or "none"
                raise ValueError(f"[models.{name}] dataset: no [datasets.{model.dataset}] "
                                 f"section (datasets: {known})")
        # Mail may be sent from a worker whose working directory is elsewhere: like every other
        # path in the file, the CA file is taken relative to the file's folder.
        ca_file = self.notifications.smtp_ca_file
        if ca_file and not Path(ca_file).expanduser().is_absolute():
            self.notifications.smtp_ca_file = str(self.resolve(ca_file))
        return self

    # Resolved paths and URLs -------------------------------------------------------------
    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def artifacts_location(self) -> str:
        """``[registry] artifacts``: an fsspec URL as it is, a path made absolute."""
        location = self.registry.artifacts
        return location if is_url(location) else str(self.resolve(local_path(location)))

    @property
    def artifacts_dir(self) -> Path:
        """The artifacts' local folder; a ``ConfigError`` when they are on object storage."""
        location = self.artifacts_location
        if is_url(location):
            raise ConfigError(f"[registry] artifacts is {location}, not a local folder")
        return Path(location)

    @property
    def registry_url(self) -> str:
        """The registry URL with a relative SQLite path made absolute."""
        url = self.registry.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:":
            path = url[len(prefix):]
            if not path.startswith("/"):
                return prefix + str(self.resolve(path))
        return url

    @property
    def data_source(self) -> str:
        src = self.data.source
        if src.startswith("file://"):
            src = src[len("file://"):]
        return src if "://" in src else str(self.resolve(src))

    @property
    def data_sources(self) -> list[str]:
        """Where every dataset's files are."""
        return [self.for_dataset(name).data_source for name in self.dataset_names]

    # Datasets ------------------------------------------------------------------------------
    @property
    def dataset_names(self) -> list[str]:
        """The datasets the models use, ``[data]``'s first."""
        used = {self.dataset_of(m) for m in self.models}
        return [d for d in [DEFAULT_DATASET, *self.datasets] if d in used]

    def dataset_of(self, model_name: str) -> str:
        return self.models[model_name].dataset or DEFAULT_DATASET

    def for_dataset(self, name: str) -> "Settings":
        """These settings with ``[data]`` being the dataset ``name``."""
        if name == DEFAULT_DATASET:
            return self
        return self.model_copy(update={"data": self.datasets[name]})

    @property
    def model_names(self) -> list[str]:
        return list(self.models)


_SCHEDULE_ALIASES = {
    "monthly": "0 3 1 * *",
    "weekly": "0 3 * * 1",
    "daily": "0 3 * * *",
}


def _seed_overrides(env: dict[str, str], origin: dict[tuple[str, ...], str] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Map the seed's flat setting names onto sections; ``origin`` learns which variable set
    which key, so an error can name the variable."""
    out: dict[str, dict[str, Any]] = {}
    origin = {} if origin is None else origin
    psi = {k: env[k] for k in ("DRIFT_THRESHOLD", "PSI_THRESHOLD") if env.get(k)}
    if len(psi) == 2 and float(psi["DRIFT_THRESHOLD"]) != float(psi["PSI_THRESHOLD"]):
        raise ConfigError(
            "DRIFT_THRESHOLD and PSI_THRESHOLD are both set and differ: both name the PSI "
            "threshold, set one"
        )
    if psi:
        out.setdefault("drift", {})["psi_threshold"] = next(iter(psi.values()))
        origin[("drift", "psi_threshold")] = " / ".join(psi)
    if env.get("MODEL_IMPROVEMENT_THRESHOLD"):
        out.setdefault("promotion", {})["min_relative_improvement"] = env["MODEL_IMPROVEMENT_THRESHOLD"]
        origin[("promotion", "min_relative_improvement")] = "MODEL_IMPROVEMENT_THRESHOLD"
    if env.get("RETRAINING_SCHEDULE"):
        value = env["RETRAINING_SCHEDULE"].strip()
        out.setdefault("schedule", {})["cron"] = _SCHEDULE_ALIASES.get(value.lower(), value)
        origin[("schedule", "cron")] = "RETRAINING_SCHEDULE"
    if env.get("PERFORMANCE_ALERT_EMAIL"):
        emails = [e.strip() for e in env["PERFORMANCE_ALERT_EMAIL"].split(",") if e.strip()]
        out.setdefault("notifications", {})["email_recipients"] = emails
        origin[("notifications", "email_recipients")] = "PERFORMANCE_ALERT_EMAIL"
    return out


def _parse_env_value(raw: str) -> Any:
    """Env values are JSON when they parse as JSON (numbers, lists, booleans), else strings."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _prefixed_overrides(env: dict[str, str], origin: dict[tuple[str, ...], str] | None = None
                        ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    origin = {} if origin is None else origin
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key or key == ENV_CONFIG:
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_env_value(raw)
        origin[tuple(parts)] = key
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _format_error(err: ValidationError, source: str,
                  origin: dict[tuple[str, ...], str] | None = None) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    path = tuple(str(p) for p in first["loc"])
    for n in range(len(path), 0, -1):  # a value from the environment: name the variable
        if origin and path[:n] in origin:
            source = f"environment variable {origin[path[:n]]}"
            break
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif "input" in first and first["type"] not in ("value_error",):
        msg = f"{msg} (got {first['input']!r})"
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    where = f"[{loc}]" if loc else "config"
    return f"{source}: {where}: {msg}{more}"


def find_config_path(path: str | Path | None = None) -> Path:
    if path is None:
        path = os.environ.get(ENV_CONFIG) or CONFIG_FILENAME
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        hint = "" if os.environ.get(ENV_CONFIG) else " (run `retrain demo` to make an example workspace)"
        raise ConfigError(f"no configuration file at {p}{hint}")
    return p


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration; raise ConfigError with one clear line."""
    cfg_path = find_config_path(path)
    env = dict(os.environ) if env is None else env
    try:
        raw = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{cfg_path}: not a TOML text file (byte {exc.start} is not UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from None
    origin: dict[tuple[str, ...], str] = {}
    _merge(raw, _seed_overrides(env, origin))
    _merge(raw, _prefixed_overrides(env, origin))
    raw["base_dir"] = cfg_path.parent
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, str(cfg_path), origin)) from None


def settings_from_dict(raw: dict[str, Any], base_dir: Path | None = None) -> Settings:
    """Build settings from a mapping (used by tests and the demo)."""
    data = dict(raw)
    data["base_dir"] = base_dir or Path.cwd()
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, "config")) from None
