"""Real Prefect processes for end-to-end tests: a ``prefect server start`` on a free loopback
port with its own ``PREFECT_HOME``, process workers, and a loopback HTTP receiver.

Every process is started in its own session and stopped with its whole tree (the process
worker starts each flow run in a session of its own, so descendants are found through
``/proc`` by parent id, not by process group), also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import httpx

BIN = Path(sys.executable).parent
PROJECT_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Prefect or retrain settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "RETRAIN_"))}
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONUNBUFFERED="1", **extra)
    return env


# Process trees --------------------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_tree(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM ``proc`` and everything below it, wait up to ``grace`` s, then SIGKILL."""
    if proc.poll() is None:
        pids = [proc.pid, *descendants(proc.pid)]
    else:
        pids = descendants(proc.pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
        proc.poll()
    for pid in pids + descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def background(args: list[str], *, env: dict[str, str], log: Path, cwd: Path = PROJECT_DIR
               ) -> Iterator[subprocess.Popen]:
    """A background process (own session, output to ``log``), stopped with its tree at exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        stop_tree(proc)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# The server ------------------------------------------------------------------------------

@dataclass
class PrefectServer:
    url: str  # the API URL, .../api
    home: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # for clients and workers of this server

    def cli(self, *args: str, cwd: Path = PROJECT_DIR, timeout: float = 180,
            check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
        """Run ``prefect <args>`` against this server."""
        run = subprocess.run([str(BIN / "prefect"), *args], cwd=cwd, env={**self.env, **extra_env},
                             capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        if check and run.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} exited {run.returncode}\n"
                                 f"{run.stdout}\n{run.stderr}")
        return run


SERVER_SETTINGS = {
    # Quick loops, so a test waits seconds rather than a minute for the scheduler and for a
    # run queued behind a deployment's concurrency limit.
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


@contextmanager
def prefect_server(home: Path, *, database_url: str | None = None, timeout: float = 120,
                   **settings: str) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free loopback port with ``home`` as PREFECT_HOME
    (SQLite there, or ``database_url``); stopped, with everything it started, at exit."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = clean_env(PREFECT_HOME=str(home), **SERVER_SETTINGS, **settings)
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    log = home / "server.log"
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(args, env=env, log=log) as proc:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{tail(log)}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not answer within {timeout:.0f}s:\n{tail(log)}")
            time.sleep(0.5)
        client_env = clean_env(PREFECT_HOME=str(home), PREFECT_API_URL=url)
        yield PrefectServer(url=url, home=home, log=log, env=client_env)


@contextmanager
def process_worker(server: PrefectServer, pool: str, log: Path, cwd: Path = PROJECT_DIR,
                   **env: str) -> Iterator[subprocess.Popen]:
    """``prefect worker start --pool <pool>`` in ``cwd``, polling every second."""
    args = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"]
    worker_env = {**server.env, "PREFECT_WORKER_QUERY_SECONDS": "1",
                  "PREFECT_WORKER_PREFETCH_SECONDS": "1", **env}
    with background(args, env=worker_env, log=log, cwd=cwd) as proc:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}:\n{tail(log)}")
        yield proc


# Reading runs back -------------------------------------------------------------------------

def artifacts_of(client, run_id, subflows: bool = True) -> dict[str, object]:
    """The artifacts published by ``run_id`` (and its subflows), by key."""
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterParentFlowRunId)
    children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))) if subflows else []
    ids = [run_id, *(c.id for c in children)]
    found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
    return {a.key: a for a in found if a.key}


# A webhook receiver ------------------------------------------------------------------------

class WebhookReceiver:
    """An HTTP server on loopback that records every request body it receives."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self._received = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._received:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "body": body.decode(errors="replace")})
                    receiver._received.notify_all()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/retrain"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate, timeout: float) -> dict | None:
        """The first received JSON body for which ``predicate(body)`` holds, or None."""
        deadline = time.monotonic() + timeout
        with self._received:
            while True:
                for request in self.requests:
                    try:
                        body = json.loads(request["body"])
                    except ValueError:
                        continue
                    if predicate(body):
                        return body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._received.wait(remaining)
