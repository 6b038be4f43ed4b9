"""A worker anywhere: a process worker started in an empty folder (not this checkout) runs
the deployments of ``prefect-git.yaml``, whose pull step clones the code from a bare git
repository (a ``file://`` URL), with the registry on PostgreSQL and the artifacts, the reports
and the feature store in a bucket of the S3 emulator (``tests/support/s3_server.py``). A drift
event triggers the pipeline for one model; the run completes, and the report links on its
dashboard page open over HTTP.

The workspace (retrain.toml) is committed in the repository; the secrets are the worker's
environment (registry URL, object store keys), never the deployments' stored values.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from pg import temporary_database
from prefect_server import PROJECT_DIR, artifacts_of, prefect_server, process_worker, tail
from retrain.demo import write_workspace

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

POOL = "retrain-pool"
PIPELINE = "retraining-pipeline/monthly"
MODEL = "lightgbm"
RUN_TIMEOUT = 300


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                         env={"GIT_AUTHOR_NAME": "retrain", "GIT_AUTHOR_EMAIL": "ci@example.com",
                              "GIT_COMMITTER_NAME": "retrain", "GIT_COMMITTER_EMAIL": "ci@example.com",
                              "PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    return out.stdout


def project_repository(tmp: Path, bucket) -> Path:
    """A checkout of this project's files (as they are now) with a committed workspace whose
    data, artifacts and reports are in ``bucket``; returns the checkout."""
    src = tmp / "src"
    files = git("ls-files", "--cached", "--others", "--exclude-standard", cwd=PROJECT_DIR).split("\n")
    for name in filter(None, files):
        path = PROJECT_DIR / name
        if path.is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    workspace = src / "workspace"
    config = write_workspace(workspace, months=4, rows_per_month=900, trees=30)
    fs = bucket.fs
    for f in sorted((workspace / "data").glob("*.parquet")):
        fs.put_file(str(f), f"{bucket.name}/features/{f.name}")
    shutil.rmtree(workspace / "data")
    text = config.read_text()
    text = re.sub(r'(?m)^source = .*$', f'source = "{bucket.url("features")}/"', text)
    # The registry's URL is the worker's (RETRAIN_REGISTRY__URL), not the file's.
    text = re.sub(r'(?m)^artifacts = .*$', f'artifacts = "{bucket.url("artifacts")}"', text)
    text = text.replace("[drift]\n", f'[drift]\nreports_dir = "{bucket.url("reports")}"\n')
    config.write_text(text)
    git("init", "-q", "-b", "main", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-q", "-m", "retrain with a workspace on object storage", cwd=src)
    return src


def test_worker_in_an_empty_folder_clones_the_code_and_runs_an_event_triggered_run(tmp_path, s3):
    from prefect.client.orchestration import SyncPrefectClient

    src = project_repository(tmp_path, s3)
    bare = tmp_path / "models.git"
    git("clone", "-q", "--bare", str(src), str(bare), cwd=tmp_path)
    worker_home = tmp_path / "worker"
    worker_home.mkdir()
    with temporary_database("retrain_remote") as registry_url, \
            prefect_server(tmp_path / "prefect-home") as server, \
            SyncPrefectClient(server.url) as client:
        server.cli("work-pool", "create", POOL, "--type", "process")
        server.cli("deploy", "--all", "--prefect-file", "prefect-git.yaml", cwd=src,
                   RETRAIN_CONFIG="workspace/retrain.toml",
                   RETRAIN_GIT_REPOSITORY=bare.as_uri(), RETRAIN_GIT_BRANCH="main")
        deployment = client.read_deployment_by_name(PIPELINE)
        stored = repr(deployment.pull_steps) + repr(deployment.job_variables)
        assert bare.as_uri() in stored and "workspace/retrain.toml" in stored
        assert registry_url not in stored and "emulator-secret" not in stored
        # The worker: an empty folder, the secrets in its environment.
        worker_log = tmp_path / "worker.log"
        with process_worker(server, POOL, worker_log, cwd=worker_home,
                            RETRAIN_REGISTRY__URL=registry_url, **s3.server.env):
            server.cli("event", "emit", "retrain.drift.detected",
                       "--resource-id", f"retrain.model.{MODEL}",
                       "--resource", f"prefect.resource.name={MODEL}",
                       "--payload", '{"detected": true, "source": "test"}')
            run = wait_for_run(client, worker_log)
        note = f"\n--- worker log ---\n{tail(worker_log, 80)}"
        assert run.state_type.value == "COMPLETED", f"{run.name}: {run.state_name}{note}"
        assert run.parameters["models"] == [MODEL] and run.parameters["reason"] == "drift"
        # The code came from the clone: the run's pull step cloned it (into the temporary
        # folder the process worker gives each run) and the run found its workspace there, by
        # the path inside the repository; nothing was written beside the worker.
        log = worker_log.read_text()
        assert "Executing deployment step: git_clone" in log and \
            "Deployment step 'git_clone' completed successfully" in log, note
        assert list(worker_home.iterdir()) == [], note
        # The registry is on PostgreSQL, the artifact in the bucket, verified by its sha256.
        from retrain.registry import Registry
        registry = Registry(registry_url, s3.url("artifacts"))
        try:
            production = registry.production_version(MODEL)
            assert production is not None, note
            stored_bytes = s3.fs.cat_file(f"{s3.name}/artifacts/{production.artifact_path}")
            assert hashlib.sha256(stored_bytes).hexdigest() == production.artifact_sha256
        finally:
            registry.dispose()
        # The run's page links its report; the link opens over HTTP and is the report.
        artifacts = artifacts_of(client, run.id)
        report = artifacts[f"retrain-report-{MODEL}"].data  # a link: "[text](url)"
        url = re.fullmatch(r"\[.*\]\((.+)\)", report).group(1)
        assert url.startswith(s3.server.endpoint), report
        response = httpx.get(url)
        assert response.status_code == 200 and f"# {MODEL}" in response.text
        summary = artifacts[f"retrain-summary-{MODEL}"].data
        links = re.findall(r"\]\((http[^)]+)\)", summary)
        assert any("history.html" in link for link in links), summary
        for link in links:
            if link.startswith(s3.server.endpoint):
                assert httpx.get(link).status_code == 200, link


def wait_for_run(client, worker_log: Path):
    """The pipeline run the event started, once it is final."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    dep = client.read_deployment_by_name(PIPELINE)
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[dep.id])), limit=10)
        final = [r for r in runs if r.state is not None and r.state.is_final()]
        if final:
            return final[0]
        assert time.monotonic() < deadline, (
            f"no finished pipeline run within {RUN_TIMEOUT}s: "
            f"{[(r.name, r.state_name) for r in runs]}\n{tail(worker_log, 80)}")
        time.sleep(1)
