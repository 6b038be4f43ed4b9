"""Prefect's temporary server (``retrain run`` without ``PREFECT_API_URL``): it stops with the
process that started it, however that process ends; it answers a request that SQLite refused
("database is locked") after running it again itself, not after the client's two-second
back-off; and the flows this process runs against it skip what only a long-lived server uses.

Prefect starts the temporary server as a child process and stops it at exit; a process that is
SIGKILLed never gets to, and the server would keep running, holding its port and its SQLite
database. Here each temporary server gets a watchdog: a small process of its own that waits
for its parent (the ``retrain`` process) to go and then stops the server (SIGTERM, then SIGKILL
after 5 s). It leaves by itself when the server stops first.

On SQLite, an API call that reads and then writes in one transaction (creating a task run
reads its flow run's labels first) fails at once when another connection commits in between
(the busy timeout does not apply: its snapshot is stale); the server answers 503 and Prefect's
client tries again after ``2 ** attempt`` seconds (about 2 s; the server sends no
``Retry-After``, and no client setting shortens it). The temporary server runs Prefect's own
application behind ``RetryRefusedRequests``, which runs such a request again after a few
milliseconds, up to five times, before the 503 goes to the client; the transaction was rolled
back, so this is the client's own retry, sooner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from prefect.context import SettingsContext, get_settings_context
from prefect.server.api.server import SubprocessASGIServer
from prefect.server.api.server import create_app as prefect_app
from prefect.settings import (PREFECT_API_URL, PREFECT_CLIENT_CSRF_SUPPORT_ENABLED,
                              PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings, get_current_settings)

WATCHDOG = """
import os, signal, sys, time
parent, server = int(sys.argv[1]), int(sys.argv[2])

def running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

while os.getppid() == parent:
    if not running(server):
        sys.exit(0)
    time.sleep(0.25)
if running(server):
    os.kill(server, signal.SIGTERM)
    for _ in range(50):
        time.sleep(0.1)
        if not running(server):
            sys.exit(0)
    os.kill(server, signal.SIGKILL)
"""

# The application the temporary server runs (``create_app`` below), importable from the
# directory that holds this package.
APP = f"{__name__}:create_app"
_PACKAGE_PARENT = Path(__file__).resolve().parents[1]


class _WatchedServer(SubprocessASGIServer):
    """Prefect's temporary server, running ``create_app``, with a watchdog started beside it."""

    def _run_uvicorn_command(self) -> subprocess.Popen:
        # Prefect's own command (prefect.server.api.server.SubprocessASGIServer), with this
        # module's application.
        process = subprocess.Popen(
            args=[sys.executable, "-m", "uvicorn", "--app-dir", str(_PACKAGE_PARENT),
                  "--factory", APP, "--host", "127.0.0.1", "--port", str(self.port),
                  "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1",
                 **get_current_settings().to_environment_variables(exclude_unset=True)})
        subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(process.pid)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        return process


def uses_temporary_server() -> bool:
    """Whether flows run here talk to a temporary server this process starts (no API URL)."""
    return not PREFECT_API_URL.value()


def temporary_server_dies_with_this_process() -> None:
    """Make the temporary server Prefect starts in this process (if it starts one) a watched
    one. Prefect keeps one instance per port and asks for port None; the instance registered
    here is the one it then gets (Prefect's own test harness registers its server the same
    way)."""
    if not uses_temporary_server() or None in SubprocessASGIServer._instances:
        return  # a server of the user's, or a temporary one that exists already
    _WatchedServer(None)  # registers itself under port None (SubprocessASGIServer.__new__)


@contextmanager
def temporary_server_settings() -> Iterator[None]:
    """Settings for the flows run inside against the temporary server (none otherwise).

    - No heartbeats: they are for a server that outlives the run (the crash automation,
      ``retrain_prefect.automations``); the temporary one stops with this process. A
      synchronous flow joins its heartbeat thread when it ends, up to a second per run.
    - No CSRF token requests, one per new API client (each subflow makes one), unless the
      server's own CSRF protection is turned on (``PREFECT_SERVER_CSRF_PROTECTION_ENABLED``;
      off by default, when the server answers each of them 422).
    """
    if not uses_temporary_server():
        yield
        return
    context = get_settings_context()
    with SettingsContext(profile=context.profile, settings=_for_temporary_server(context.settings)):
        yield


_derived: tuple[Settings, Settings] | None = None  # (settings, the same for the temporary server)


def _for_temporary_server(settings: Settings) -> Settings:
    # Deriving settings validates the whole model: once per settings object.
    global _derived
    if _derived is None or _derived[0] is not settings:
        updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        if not settings.server.api.csrf_protection_enabled:
            updates[PREFECT_CLIENT_CSRF_SUPPORT_ENABLED] = False
        _derived = (settings, settings.copy_with_update(updates=updates))
    return _derived[1]


@contextmanager
def temporary_server() -> Iterator[None]:
    """Where flows run in this process: ``temporary_server_dies_with_this_process`` and
    ``temporary_server_settings`` (the command line's ``retrain run``, bench/pipeline.py)."""
    temporary_server_dies_with_this_process()
    with temporary_server_settings():
        yield


# The temporary server's application ---------------------------------------------------------

logger = logging.getLogger("prefect.server.retrain")


class RetryRefusedRequests:
    """ASGI middleware: a request the API answers 503 (a retryable database error: on SQLite,
    "database is locked") runs again after ``DELAYS[i]`` seconds; after the last, its 503
    goes to the client, which backs off as before. The request's body is kept to be sent
    again; nothing of a refused attempt's response reaches the client."""

    DELAYS = (0.005, 0.02, 0.05, 0.1, 0.25)

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan, websockets (events, logs)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        for attempt, delay in enumerate((*self.DELAYS, None)):
            refused = await self._attempt(scope, body, receive, send, retry=delay is not None)
            if not refused:
                return
            logger.debug("%s %s answered 503; attempt %d again in %.3fs", scope["method"],
                         scope["path"], attempt + 2, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, scope: dict, body: bytes, receive: Any, send: Any,
                       retry: bool) -> bool:
        """Run the request once; whether it was refused (and nothing sent) to be run again."""
        state = {"sent_body": False, "refused": False}

        async def replay() -> dict:
            if not state["sent_body"]:
                state["sent_body"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def forward(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["refused"] = retry and message["status"] == 503
            if not state["refused"]:
                await send(message)

        try:
            await self.app(dict(scope), replay, forward)  # routing changes the scope it gets
        except Exception:
            # Starlette raises the error again after its handler sent the 503.
            if not state["refused"]:
                raise
        return state["refused"]


def create_app() -> Any:
    """Prefect's application (``prefect.server.api.server.create_app``, as the temporary
    server runs it) behind ``RetryRefusedRequests``."""
    return RetryRefusedRequests(prefect_app())
