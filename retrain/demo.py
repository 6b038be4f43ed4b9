"""The demo: a synthetic loan-default feature store with a real drift, and its workspace.

Monthly batches of loan applications. From ``drift_month`` on, applicants change (lower
incomes, higher debt-to-income, more business loans) and so does the relation to default:
debt-to-income and business loans weigh much more, the credit score less. A model trained
before the change keeps ranking by the old rule; one trained on recent data learns the new.
"""

from __future__ import annotations

import math
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

HOME = ["RENT", "OWN", "MORTGAGE"]
PURPOSE = ["debt_consolidation", "car", "home_improvement", "education", "business"]

DEMO_TOML = """\
# retrain demo workspace: a loan-default model retrained when the applicants change.
# Relative paths resolve against this file's folder.

[data]
source = "data"                # every Parquet/CSV file under data/
target = "{target}"{task_line}
timestamp = "applied_at"
entity_id = "application_id"
categorical = ["home_ownership", "purpose"]

[registry]
url = "sqlite:///.retrain/registry.db"
artifacts = ".retrain/artifacts"

[models.random_forest]
kind = "random_forest"
params = {{ n_estimators = {trees}, min_samples_leaf = 10 }}

[models.lightgbm]
kind = "lightgbm"
params = {{ n_estimators = {trees}, learning_rate = 0.05, num_leaves = 15 }}

[triggers]
volume_threshold = 1000

[drift]
ks_pvalue_threshold = 0.05
psi_threshold = 0.2
drift_share = 0.3

[promotion]{metric_line}
min_relative_improvement = 0.05

[training]
holdout_fraction = 0.2
window = "{window}"
"""


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


# The target of each task: whether the loan defaulted; its risk grade (A best .. D worst);
# the amount lost on it.
TARGETS = {"binary": "defaulted", "multiclass": "risk_grade", "regression": "loss_amount"}
GRADES = ["A", "B", "C", "D"]


def generate_month(index: int, rows: int, *, drifted: bool, seed: int,
                   start: datetime = datetime(2026, 1, 1), task: str = "binary") -> pl.DataFrame:
    """One month of applications (month ``index`` after ``start``), with the target of
    ``task`` (``TARGETS``)."""
    rng = np.random.default_rng(seed + index)
    begin = _month_start(start.year, start.month + index)
    end = _month_start(start.year, start.month + index + 1)
    seconds = rng.uniform(0, (end - begin).total_seconds(), rows)
    applied_at = [begin + timedelta(seconds=float(s)) for s in np.sort(seconds)]
    return pl.DataFrame({"application_id": [f"a{index:02d}{i:06d}" for i in range(rows)],
                         "applied_at": applied_at, **_applications(rng, rows, drifted, task)})


def _applications(rng: np.random.Generator, rows: int, drifted: bool, task: str) -> dict:
    """The features and the target of ``rows`` applications, drawn from ``rng``."""
    income = rng.lognormal(mean=10.9 if not drifted else 10.6, sigma=0.45, size=rows)
    credit = np.clip(rng.normal(680 if not drifted else 650, 60, rows), 300, 850).round()
    age = np.clip(rng.normal(40, 11, rows), 18, 80).round()
    dti = np.clip(rng.beta(2.0, 5.0 if not drifted else 3.0, rows), 0, 1)
    months_employed = rng.poisson(60 if not drifted else 40, rows).astype(float)
    open_accounts = rng.poisson(5, rows).astype(float)
    loan = np.clip(income * rng.uniform(0.1, 0.6, rows), 1000, None).round(-2)
    rate = np.clip(4 + (850 - credit) / 40 + rng.normal(0, 1.5, rows) + (1.5 if drifted else 0), 2, 30)
    home = rng.choice(HOME, rows, p=[0.4, 0.2, 0.4] if not drifted else [0.55, 0.15, 0.3])
    purpose = rng.choice(PURPOSE, rows, p=[0.35, 0.2, 0.15, 0.2, 0.1] if not drifted
                         else [0.25, 0.15, 0.1, 0.15, 0.35])
    lti = loan / income
    if not drifted:
        logit = (-1.2 - 0.022 * (credit - 680) + 3.5 * (dti - 0.3) + 2.0 * (lti - 0.35)
                 - 0.006 * (months_employed - 60) + 0.6 * (home == "RENT"))
    else:
        # The relation changes: debt load and business loans dominate, credit score fades.
        logit = (-1.0 - 0.002 * (credit - 650) + 6.5 * (dti - 0.4) + 0.5 * (lti - 0.35)
                 + 1.6 * (purpose == "business") - 0.9 * (purpose == "car")
                 + 0.02 * (age - 40) - 0.5 * (home == "RENT"))
    risk = 1 / (1 + np.exp(-logit))
    default = rng.uniform(size=rows) < risk
    # A few missing values, as in real applications.
    months_employed[rng.uniform(size=rows) < 0.02] = math.nan
    if task == "multiclass":  # the grade of the risk, seen through noise
        noisy = logit + rng.normal(0, 0.6, rows)
        target = {"risk_grade": np.asarray(GRADES)[np.digitize(noisy, [-2.2, -1.2, -0.2])]}
    elif task == "regression":  # what the loan is expected to cost: part of it, by its risk
        share = np.clip(0.35 + 0.5 * risk + rng.normal(0, 0.05, rows), 0, 1)
        target = {"loss_amount": (loan * risk * share).round(2)}
    else:
        target = {"defaulted": default.astype(np.int8)}
    return {
        "income": income.round(2), "loan_amount": loan, "credit_score": credit, "age": age,
        "debt_to_income": dti.round(4), "months_employed": months_employed,
        "open_accounts": open_accounts, "interest_rate": rate.round(2),
        "home_ownership": home, "purpose": purpose, **target,
    }


def write_workspace(directory: Path, *, months: int = 6, rows_per_month: int = 2500,
                    seed: int = 7, window: str = "60d", trees: int = 150,
                    task: str = "binary") -> Path:
    """Create ``directory`` with retrain.toml and ``months`` months of stable data, whose
    target is the one of ``task`` (``TARGETS``).

    ``trees`` is the ensemble size of both models (smaller is faster, e.g. in tests).
    """
    if task not in TARGETS:
        raise ValueError(f"task must be one of {', '.join(TARGETS)}, got {task!r}")
    directory.mkdir(parents=True, exist_ok=True)
    data_dir = directory / "data"
    data_dir.mkdir(exist_ok=True)
    for i in range(months):
        generate_month(i, rows_per_month, drifted=False, seed=seed, task=task).write_parquet(
            data_dir / f"applications_{i + 1:02d}.parquet")
    binary = task == "binary"
    (directory / "retrain.toml").write_text(DEMO_TOML.format(
        window=window, trees=trees, target=TARGETS[task],
        task_line="" if binary else f"\ntask = \"{task}\"",
        metric_line='\nmetric = "roc_auc"' if binary else ""))
    return directory / "retrain.toml"


def workspace_task(directory: Path) -> str:
    """The task of a demo workspace, from its target."""
    with open(directory / "retrain.toml", "rb") as fh:
        target = tomllib.load(fh)["data"]["target"]
    return next((task for task, name in TARGETS.items() if name == target), "binary")


def append_drifted_month(directory: Path, *, index: int = 6, rows: int = 5000, seed: int = 7) -> Path:
    """Append one month in which the applicants and the default relation have changed."""
    path = directory / "data" / f"applications_{index + 1:02d}.parquet"
    generate_month(index, rows, drifted=True, seed=seed,
                   task=workspace_task(directory)).write_parquet(path)
    return path


def write_large_month(directory: Path, *, index: int, rows: int, seed: int = 7,
                      drifted: bool = True, start: datetime = datetime(2026, 1, 1),
                      chunk_rows: int = 500_000) -> Path:
    """Write month ``index`` of ``rows`` applications to the workspace's data folder, a
    chunk (and Parquet row group) of ``chunk_rows`` rows at a time, so a month larger than
    memory can be written (to try the drift check on one). The same distributions as
    ``generate_month``; the rows themselves differ."""
    import pyarrow.parquet as pq  # late: only this writer needs pyarrow's writer

    path = directory / "data" / f"applications_{index + 1:02d}.parquet"
    begin = _month_start(start.year, start.month + index)
    span_us = int((_month_start(start.year, start.month + index + 1) - begin).total_seconds() * 1e6)
    task = workspace_task(directory)
    writer = None
    try:
        for first in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - first)
            rng = np.random.default_rng([seed, index, first])
            # The chunk's slice of the month, its rows in time order.
            lo, hi = span_us * first // rows, span_us * (first + n) // rows
            offsets = np.sort(rng.integers(lo, hi, n))
            chunk = pl.DataFrame({
                "application_id": pl.int_range(first, first + n, eager=True),
                "applied_at": pl.Series(offsets).cast(pl.Duration("us")) + begin,
                **_applications(rng, n, drifted, task),
            }).with_columns(pl.format("a{}{}", pl.lit(f"{index:02d}"),
                                      pl.col("application_id").cast(pl.String).str.zfill(9))
                            .alias("application_id"))
            table = chunk.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=chunk_rows)
    finally:
        if writer is not None:
            writer.close()
    return path
