"""What every flow module shares: the run's workspace, its notifier, run tags, the settings
under which a step runs as a subflow, and quiet tracebacks for errors in the user's input
(events are in ``retrain_prefect.events``)."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterable, Iterator

from prefect.blocks.system import Secret
from prefect.context import (AsyncClientContext, FlowRunContext, SettingsContext, TagsContext,
                             get_run_context, get_settings_context)
from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings
from prefect.utilities.asyncutils import run_coro_as_sync

from retrain.config import find_config_path
from retrain.errors import RetrainError
from retrain.notify.service import NotificationService
from retrain.workspace import Workspace

_SEED_SETTING_NAMES = ("DRIFT_THRESHOLD", "PSI_THRESHOLD", "MODEL_IMPROVEMENT_THRESHOLD",
                       "RETRAINING_SCHEDULE", "PERFORMANCE_ALERT_EMAIL")


def workspace(config: str | None) -> Workspace:
    """The workspace of ``config`` (default: RETRAIN_CONFIG or ./retrain.toml).

    Opened once per run and reused by its subflows; a changed file or environment override
    (a long-lived process that serves many runs) opens it afresh.
    """
    library_logs_in_runs()  # again: a command line may have replaced the logger's handlers
    path = find_config_path(config)
    overrides = tuple(sorted((k, v) for k, v in os.environ.items()
                             if (k.startswith("RETRAIN_") and "__" in k) or k in _SEED_SETTING_NAMES))
    return _open_workspace(str(path), path.stat().st_mtime_ns, overrides)


@lru_cache(maxsize=8)
def _open_workspace(config_path: str, mtime_ns: int = 0,
                    overrides: tuple[tuple[str, str], ...] = ()) -> Workspace:
    return Workspace.open(config_path)


def run_tags(models: Iterable[str], reason: str) -> list[str]:
    return [f"model:{m}" for m in models] + [f"reason:{reason}"]


def tag_current_run(tags: list[str]) -> None:
    """Add ``tags`` to the running flow run itself (``prefect.tags`` only reaches the runs
    started inside it), so the dashboard can filter parent runs by model and reason."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    run = context.flow_run
    missing = [t for t in tags if t not in run.tags]
    if missing:
        context.client.update_flow_run(run.id, tags=[*run.tags, *missing])
        run.tags = [*run.tags, *missing]  # events emitted from now on carry them too


@contextmanager
def step_settings() -> Iterator[None]:
    """Settings for the subflows of a parent flow: no heartbeats of their own, and one API
    client for the runs that record them (``shared_async_client``).

    A synchronous flow joins its heartbeat thread when it ends, which costs up to a second
    per flow. Subflows run in the parent's process, so the parent's heartbeats already show
    whether that process is alive: crash detection (retrain_prefect.automations) loses nothing.
    """
    context = get_settings_context()
    with shared_async_client():
        if context.settings.flows.heartbeat_frequency is None:  # the parent sends none either
            yield
            return
        with SettingsContext(profile=context.profile,
                             settings=_without_heartbeats(context.settings)):
            yield


@contextmanager
def shared_async_client() -> Iterator[None]:
    """One asynchronous API client for what Prefect does asynchronously inside (a subflow's
    run in its parent is recorded as a task run, through ``get_client()``), instead of a new
    one each time: each loads the TLS certificates (about 20 ms, even for an http:// API) and
    opens a connection of its own.

    The client is started on the event loop where Prefect runs asynchronous calls for
    synchronous code (``run_coro_as_sync``) and made the current ``AsyncClientContext``;
    ``get_client()`` returns it on that loop (and to synchronous code, which runs its calls
    there), and makes a client of its own on any other loop, as before."""
    if AsyncClientContext.get() is not None:
        yield  # one is there already
        return
    shared = AsyncClientContext()  # its client is not started yet

    async def start() -> None:
        await shared.client.__aenter__()

    async def stop() -> None:
        await shared.client.__aexit__(None, None, None)

    run_coro_as_sync(start())
    try:
        with shared:  # the context variable, in this thread (and what it starts, copied)
            yield
    finally:
        run_coro_as_sync(stop())


_derived: tuple[Settings, Settings] | None = None  # (settings, the same without heartbeats)


def _without_heartbeats(settings: Settings) -> Settings:
    # Deriving settings validates the whole model (a tenth of a second or more): once per
    # settings object (a profile, a test harness) is enough.
    global _derived
    if _derived is None or _derived[0] is not settings:
        _derived = (settings, settings.copy_with_update(
            updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
    return _derived[1]


@contextmanager
def untagged() -> Iterator[None]:
    """Run tasks without the ``prefect.tags`` of the surrounding block.

    A tagged task run first acquires a concurrency slot for each tag: one more API call, and
    on a SQLite-backed server it is often answered 503 (database busy) and retried after
    two seconds. Our tasks run inside a parent flow run that carries the tags.
    """
    with TagsContext(current_tags=set()):
        yield


class _UserErrorTracebacks(logging.Filter):
    """Drop console records that carry a RetrainError: the CLI prints it as one line, and a
    user's mistake must not look like a crash. The dashboard (API log handler) keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, RetrainError)


def quiet_user_error_tracebacks() -> None:
    """Install the filter on Prefect's console handlers (configured when prefect is imported)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, _UserErrorTracebacks) for f in handler.filters):
            handler.addFilter(_UserErrorTracebacks())


class _InARun(logging.Filter):
    """Pass only records logged inside a flow or task run (the API has nowhere else to put
    them; outside a run they stay on the console)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return get_run_context_or_none() is not None


def get_run_context_or_none():
    try:
        return get_run_context()
    except MissingContextError:
        return None


def library_logs_in_runs() -> None:
    """The library's INFO lines (triggers with their numbers, each candidate, each decision and
    why) in the logs of the run they happen in, wherever the run is (a worker, serve, the
    temporary server): the ``retrain`` logger at INFO at least, and Prefect's API handler on
    it unless ``PREFECT_LOGGING_EXTRA_LOGGERS`` put one there already. Its console output is
    left as it is (the root logger's, or the command line's own handler)."""
    logger = logging.getLogger("retrain")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):
        handler = APILogHandler()
        handler.addFilter(_InARun())
        logger.addHandler(handler)


library_logs_in_runs()


def notifier(ws: Workspace) -> NotificationService:
    """The workspace's NotificationService, with the SMTP password from the Prefect Secret
    block named by ``[notifications] smtp_password_block`` when one is configured (otherwise
    the library reads the environment variable ``smtp_password_env``)."""
    block = ws.settings.notifications.smtp_password_block
    password = None
    if block:
        password = Secret.load(block).get()
    return NotificationService(workspace=ws, smtp_password=password)
