"""Real column types as categoricals: integer codes, booleans, polars Categorical, Arrow
dictionary columns and text, each declared in ``[data] categorical``, through two consecutive
pipeline runs (the bootstrap, then a later drifted month whose files store some of them
differently), then through ``retrain predict`` and the prediction service."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timezone

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import SMALL
from retrain.data.schema import as_category, category_text
from retrain.demo import append_drifted_month, write_workspace
from retrain.errors import DataValidationError
from retrain.pipeline import run_pipeline
from retrain.workspace import Workspace
from serving import AUTH, client_for

EXTRA = ["elevel", "region", "is_member", "zip3", "plan"]


def with_extra_columns(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = frame.height
    return frame.with_columns(
        pl.Series("elevel", rng.integers(0, 5, n), dtype=pl.Int64),          # integer codes
        pl.Series("region", rng.choice(["north", "south", "east"], n)).cast(pl.Categorical),
        pl.Series("is_member", rng.random(n) < 0.4, dtype=pl.Boolean),
        pl.Series("zip3", rng.integers(100, 104, n), dtype=pl.Int64),
        pl.Series("plan", rng.choice(["basic", "plus"], n)),               # text
    )


@pytest.fixture(scope="module")
def typed_workspace(tmp_path_factory):
    directory = tmp_path_factory.mktemp("types") / "ws"
    write_workspace(directory, **SMALL)
    for i, path in enumerate(sorted((directory / "data").glob("*.parquet"))):
        with_extra_columns(pl.read_parquet(path), seed=i).write_parquet(path)
    toml = directory / "retrain.toml"
    toml.write_text(toml.read_text().replace(
        'categorical = ["home_ownership", "purpose"]',
        f'categorical = ["home_ownership", "purpose", {", ".join(map(json.dumps, EXTRA))}]'))
    return directory


def test_declared_categoricals_survive_a_second_run_whatever_their_storage(typed_workspace):
    ws = Workspace.open(typed_workspace / "retrain.toml")
    first = run_pipeline(ws)
    assert {m.decision for m in first.models.values()} == {"bootstrapped"}
    production = ws.registry.production_version("lightgbm")
    assert set(EXTRA) <= set(production.feature_schema["categorical"])

    # The drifted month stores the codes as floats with a gap (what a CSV with an empty cell
    # gives), the region as an Arrow dictionary column and the zip prefix as text.
    path = append_drifted_month(typed_workspace, index=SMALL["months"], rows=2000)
    later = with_extra_columns(pl.read_parquet(path), seed=99).with_columns(
        pl.when(pl.int_range(pl.len()) % 50 == 0).then(None)
        .otherwise(pl.col("elevel")).cast(pl.Float64).alias("elevel"),
        pl.col("zip3").cast(pl.String))
    table = later.with_columns(pl.col("region").cast(pl.String)).to_arrow()
    index = table.schema.get_field_index("region")
    table = table.set_column(index, "region", table.column("region").dictionary_encode())
    pq.write_table(table, path)
    assert pa.types.is_dictionary(pq.read_schema(path).field("region").type)

    second = run_pipeline(ws, force=True)
    assert set(second.models) == {"lightgbm", "random_forest"}
    assert second.success
    for name, outcome in second.models.items():
        assert outcome.candidate_version == f"{name}-v2", (name, outcome.reason)
    candidate = ws.registry.versions("lightgbm")[-1]
    model = ws.registry.load(candidate)
    # Codes read as the same categories from Int64, Float64 and text: never "3.0"
    assert model.preprocessing.categories["elevel"] == ["0", "1", "2", "3", "4"]
    assert model.preprocessing.categories["zip3"] == ["100", "101", "102", "103"]
    assert model.preprocessing.categories["is_member"] == ["false", "true"]
    as_ints = later.head(200)
    as_floats = as_ints.with_columns(pl.col("elevel").cast(pl.Float64),
                                     pl.col("zip3").cast(pl.Int64).cast(pl.Float64))
    assert np.array_equal(model.predict_proba(as_ints), model.predict_proba(as_floats))
    ws.registry.dispose()


def test_retrain_predict_and_the_service_take_each_type(typed_workspace, tmp_path):
    ws = Workspace.open(typed_workspace / "retrain.toml")
    rows = with_extra_columns(pl.read_parquet(sorted((typed_workspace / "data")
                                                     .glob("*.parquet"))[0]).head(20), seed=5)
    scoring = tmp_path / "score.parquet"
    rows.drop("defaulted").write_parquet(scoring)
    out = tmp_path / "scored.csv"
    run = subprocess.run([sys.executable, "-m", "retrain.cli", "predict", "lightgbm", str(scoring),
                          "--output", str(out),
                          "--config", str(typed_workspace / "retrain.toml")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    scored = pl.read_csv(out)
    model = ws.registry.load(ws.registry.production_version("lightgbm"))
    assert np.allclose(scored["probability"].to_numpy(), model.predict_proba(rows), atol=1e-12)

    row = rows.row(0, named=True)
    features = {k: v for k, v in row.items()
                if k not in ("application_id", "applied_at", "defaulted")}
    features["elevel"] = float(features["elevel"])  # a JSON 3.0 is category "3"
    with client_for(ws) as api:
        r = api.post("/predict/lightgbm", json={"request_id": "t1", "features": features},
                     headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["probability"] == pytest.approx(float(model.predict_proba(rows.head(1))[0]),
                                                    abs=1e-12)
    ws.registry.dispose()


@pytest.mark.parametrize("values, dtype, expected", [
    ([3, None, 0], pl.Int64, ["3", None, "0"]),
    ([3.0, None, float("nan"), 2.5], pl.Float64, ["3", None, None, "2.5"]),
    ([True, False], pl.Boolean, ["true", "false"]),
    (["a", None], pl.Categorical, ["a", None]),
])
def test_the_category_text_is_the_same_in_frames_and_requests(values, dtype, expected):
    frame = pl.DataFrame({"c": values}, schema={"c": dtype}, strict=False)
    assert frame.select(as_category("c", dtype)).to_series().to_list() == expected
    assert [category_text(v) for v in values] == expected


def _restamp(directory, zone_of_file) -> None:
    for i, path in enumerate(sorted((directory / "data").glob("*.parquet"))):
        frame = pl.read_parquet(path)
        zone = zone_of_file(i)
        if zone is not None:
            frame = frame.with_columns(pl.col("applied_at").dt.replace_time_zone(zone))
        frame.write_parquet(path)


def test_timestamps_with_a_time_zone_are_read_as_utc(tmp_path):
    write_workspace(tmp_path / "ws", **SMALL)
    _restamp(tmp_path / "ws", lambda i: "Asia/Tokyo")
    ws = Workspace.open(tmp_path / "ws" / "retrain.toml")
    first = run_pipeline(ws)
    assert {m.decision for m in first.models.values()} == {"bootstrapped"}
    window = ws.store.time_range()
    # Tokyo wall time nine hours ahead of UTC: the window starts at the UTC instant
    raw = pl.concat([pl.read_parquet(p) for p in (tmp_path / "ws" / "data").glob("*.parquet")])
    earliest = raw["applied_at"].min()
    assert window.start == earliest.astimezone(timezone.utc).replace(tzinfo=None)
    append_drifted_month(tmp_path / "ws", index=SMALL["months"], rows=2000)
    _restamp(tmp_path / "ws", lambda i: "Asia/Tokyo" if i == SMALL["months"] else None)
    second = run_pipeline(ws)
    assert second.retrained and second.success
    ws.registry.dispose()


def test_files_in_different_time_zones_are_one_clear_error(tmp_path):
    write_workspace(tmp_path / "ws", **SMALL)
    _restamp(tmp_path / "ws", lambda i: "UTC" if i == 0 else None)
    ws = Workspace.open(tmp_path / "ws" / "retrain.toml")
    with pytest.raises(DataValidationError) as refused:
        ws.store.time_range()
    message = str(refused.value)
    assert "different time zones" in message and "UTC in" in message
    assert "no time zone in" in message and "applications_02.parquet" in message
    ws.registry.dispose()
