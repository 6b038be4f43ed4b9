"""Artifacts, reports and the feature store on object storage, against an S3 emulator (moto's
server mode on loopback, ``tests/support/s3_server.py``): writes verified, tampering and
missing objects refused by name, a write killed half-way leaving nothing registered, and a
whole run whose report links open over HTTP."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from retrain.config import load_config
from retrain.demo import append_drifted_month, write_workspace
from retrain.errors import ArtifactIntegrityError
from retrain.pipeline import run_pipeline
from retrain.storage import ObjectStore
from retrain.workspace import Workspace


def s3_workspace(tmp_path: Path, bucket, *, drifted: bool = True, data_on_s3: bool = True,
                 **options) -> Workspace:
    """The demo workspace with artifacts, reports (and the feature store) in the bucket."""
    directory = tmp_path / "ws"
    write_workspace(directory, **{"months": 4, "rows_per_month": 900, "trees": 30, **options})
    if drifted:
        append_drifted_month(directory, index=4, rows=2000)
    env = {"RETRAIN_REGISTRY__ARTIFACTS": bucket.url("artifacts"),
           "RETRAIN_DRIFT__REPORTS_DIR": bucket.url("reports")}
    if data_on_s3:
        fs = bucket.fs
        for f in sorted((directory / "data").glob("*.parquet")):
            fs.put_file(str(f), f"{bucket.name}/features/{f.name}")
        for f in (directory / "data").glob("*.parquet"):
            f.unlink()
        env["RETRAIN_DATA__SOURCE"] = bucket.url("features") + "/"
    return Workspace.open(load_config(directory / "retrain.toml", env={**os.environ, **env}))


def test_object_round_trip_and_refusals(s3):
    store = ObjectStore(s3.url("things"))
    data = os.urandom(3 << 20)
    sha = store.write("a/b.bin", data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert s3.keys("things") == ["things/a/b.bin"]
    assert store.verified("a/b.bin", sha) == data
    assert store.keys("a") == ["a/b.bin"]
    # Changed behind the registry's back: refused, naming the object.
    s3.fs.pipe_file(f"{s3.name}/things/a/b.bin", b"tampered")
    with pytest.raises(ArtifactIntegrityError, match=rf"s3://{s3.name}/things/a/b.bin has sha256"):
        store.verified("a/b.bin", sha)
    with pytest.raises(ArtifactIntegrityError, match=rf"s3://{s3.name}/things/missing.zip is missing"):
        store.read("missing.zip")
    link = store.link("a/b.bin")
    assert link.startswith(s3.server.endpoint) and "Signature=" in link
    assert httpx.get(link).content == b"tampered"


def test_run_with_artifacts_reports_and_data_in_the_bucket(tmp_path, s3):
    ws = s3_workspace(tmp_path, s3, drifted=False)
    document = run_pipeline(ws, reason="manual")  # bootstraps both models
    for name, entry in document.models.items():
        assert entry.candidate_version, name
        version = ws.registry.get_version(entry.candidate_version)
        assert version.artifact_path == f"{name}/{version.version_id}.zip"
        key = f"artifacts/{version.artifact_path}"
        assert key in s3.keys("artifacts")
        stored = s3.fs.cat_file(f"{s3.name}/{key}")
        assert hashlib.sha256(stored).hexdigest() == version.artifact_sha256
        assert ws.registry.artifact_url(version) == s3.url(key)
        model = ws.registry.load(version)  # read back from the bucket, sha256 checked
        assert model.kind == ws.settings.models[name].kind
    # A drifted month arrives in the bucket: the next run checks drift and links its reports.
    new = append_drifted_month(ws.settings.base_dir, index=4, rows=2000)
    s3.fs.put_file(str(new), f"{s3.name}/features/{new.name}")
    new.unlink()
    document = run_pipeline(ws, reason="schedule")
    assert document.triggers.drift.detected
    # Nothing of the artifacts on the local disk; the reports went to the bucket.
    assert not (ws.settings.base_dir / ".retrain" / "artifacts").exists()
    report_keys = s3.keys("reports")
    for name in document.models:
        assert any(k.startswith(f"reports/{name}/runs/") and k.endswith(".md") for k in report_keys)
        assert f"reports/{name}/history.html" in report_keys
    # The links in the run's report are presigned URLs that open over HTTP and give the files.
    md_key = next(k for k in report_keys if k.endswith("-schedule.md"))
    markdown = s3.fs.cat_file(f"{s3.name}/{md_key}").decode()
    links = [line.split("](", 1)[1].rstrip(")") for line in markdown.splitlines()
             if line.startswith("- [")]
    assert links and all(link.startswith(s3.server.endpoint) for link in links), markdown
    for link in links:
        response = httpx.get(link)
        assert response.status_code == 200, link
    html_link = next(link for link in links if "report.html" in link)
    assert "<html" in httpx.get(html_link).text.lower()
    # The drift alert links each drifted model's report, by a URL its reader can open.
    from retrain.notify.outbox import Outbox
    [alert] = [n for n in Outbox(ws.registry, ws.settings.notifications).messages()
               if n.kind == "drift_alert"]
    urls = [line.split(": ", 1)[1] for line in alert.body_text.splitlines()
            if " drift report: " in line]
    assert len(urls) == 2 and all(httpx.get(u).status_code == 200 for u in urls), alert.body_text


def test_public_links(tmp_path, s3, monkeypatch):
    monkeypatch.setenv("RETRAIN_STORAGE__LINKS", "public")
    monkeypatch.setenv("RETRAIN_STORAGE__PUBLIC_BASE_URL", "https://reports.example.com/retrain")
    ws = s3_workspace(tmp_path, s3, data_on_s3=False)
    path = ws.reports.root / "lightgbm" / "note.md"
    path.parent.mkdir(parents=True)
    path.write_text("hello")
    assert ws.reports.link(path) == "https://reports.example.com/retrain/lightgbm/note.md"
    assert s3.fs.cat_file(f"{s3.name}/reports/lightgbm/note.md") == b"hello"


def _register_in_child(config: str, env: dict[str, str]) -> None:
    os.environ.update(env)
    from retrain.training import load_training_data, train_candidate
    ws = Workspace.open(config)
    train_candidate(ws, "lightgbm", load_training_data(ws), reason="interrupted upload")


@pytest.mark.slow
def test_upload_killed_half_way_registers_nothing(tmp_path, s3):
    ws = s3_workspace(tmp_path, s3, drifted=False, data_on_s3=False)
    config = str(ws.settings.base_dir / "retrain.toml")
    marker = tmp_path / "reached"
    env = {**s3.server.env, "RETRAIN_REGISTRY__ARTIFACTS": s3.url("artifacts"),
           "RETRAIN_DRIFT__REPORTS_DIR": s3.url("reports"),
           "RETRAIN_FAILPOINT": "artifact:half-uploaded", "RETRAIN_FAILPOINT_FILE": str(marker)}
    child = multiprocessing.get_context("spawn").Process(target=_register_in_child,
                                                         args=(config, env))
    child.start()
    deadline = time.monotonic() + 120
    while not marker.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the half-written upload"
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    # Nothing registered, and no object (whole or partial) under the artifacts' prefix.
    assert ws.registry.versions("lightgbm") == []
    assert s3.keys("artifacts") == []
    # The next registration works and is complete.
    from retrain.training import load_training_data, train_candidate
    version = train_candidate(ws, "lightgbm", load_training_data(ws), reason="after the kill")
    assert version.version_id == "lightgbm-v1"
    ws.registry.verify_artifact(version)


def test_file_urls_are_local_folders_and_unknown_stores_are_named(tmp_path, monkeypatch):
    from retrain.errors import ConfigError
    directory = tmp_path / "ws"
    write_workspace(directory, months=1, rows_per_month=50, trees=5)
    settings = load_config(directory / "retrain.toml", env={
        "RETRAIN_REGISTRY__ARTIFACTS": (tmp_path / "models").as_uri(),
        "RETRAIN_DRIFT__REPORTS_DIR": (tmp_path / "pages").as_uri()})
    ws = Workspace.open(settings)
    assert ws.registry.artifacts_dir == tmp_path / "models"
    assert ws.reports.root == tmp_path / "pages" and not ws.reports.remote
    ws.registry.artifacts.write("m/one.bin", b"1")
    assert (tmp_path / "models" / "m" / "one.bin").read_bytes() == b"1"
    with pytest.raises(ConfigError, match="nosuchstore://bucket/x: cannot open this storage URL"):
        ObjectStore("nosuchstore://bucket/x").read("k")
