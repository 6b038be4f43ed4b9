"""The temporary server's application runs a request the API refused (503, SQLite's "database is
locked") again itself, and the flows run against that server skip heartbeats and CSRF tokens.
No server is started here: the middleware is driven as an ASGI application."""

from __future__ import annotations

import asyncio

import pytest

from prefect.settings import (PREFECT_API_URL, PREFECT_CLIENT_CSRF_SUPPORT_ENABLED,
                              PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings,
                              temporary_settings)

from retrain_prefect.ephemeral import RetryRefusedRequests, temporary_server_settings


class Refusing:
    """An ASGI app that answers 503 and raises (as Prefect's error handler does) ``refusals``
    times, then 200 with the body it received; records the paths and bodies it saw."""

    def __init__(self, refusals: int):
        self.refusals = refusals
        self.seen: list[tuple[str, bytes]] = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        body = message["body"]
        self.seen.append((scope["path"], body))
        scope["path"] = "/changed-by-routing"  # routing edits the scope it is given
        if len(self.seen) <= self.refusals:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b'{"exception_message": "Service Unavailable"}'})
            raise RuntimeError("database is locked")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def call(app, body: bytes = b'{"name": "x"}', chunks: int = 2, sent: list | None = None):
    """POST ``body`` (in two parts, or one) to ``app``; the messages it sent back (also in
    ``sent``, when given)."""
    parts = [body[:len(body) // 2], body[len(body) // 2:]] if chunks == 2 else [body]
    incoming = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
                for i, p in enumerate(parts)]
    sent = [] if sent is None else sent

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/task_runs/"}
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_refused_request_runs_again_with_its_body_and_only_its_answer_is_sent():
    app = Refusing(refusals=2)
    sent = call(RetryRefusedRequests(app))
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [200]
    assert sent[-1]["body"] == b'{"name": "x"}'
    assert app.seen == [("/api/task_runs/", b'{"name": "x"}')] * 3


def test_after_its_last_attempt_the_refusal_goes_to_the_client():
    attempts = len(RetryRefusedRequests.DELAYS) + 1
    app = Refusing(refusals=attempts)
    sent: list = []
    with pytest.raises(RuntimeError, match="locked"):  # as it goes up without the middleware
        call(RetryRefusedRequests(app), sent=sent)
    assert len(app.seen) == attempts
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [503]


def test_other_answers_pass_through_at_once():
    app = Refusing(refusals=0)
    assert call(RetryRefusedRequests(app), chunks=1)[-1]["body"] == b'{"name": "x"}'
    assert len(app.seen) == 1


def test_flows_against_the_temporary_server_skip_heartbeats_and_csrf_tokens():
    # Heartbeats on, as Prefect's default has them (the suite's own fixtures may turn them off).
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30},
                            restore_defaults={PREFECT_API_URL}):
        assert get_current_settings().flows.heartbeat_frequency == 30
        with temporary_server_settings():
            assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
            assert PREFECT_CLIENT_CSRF_SUPPORT_ENABLED.value() is False
        assert get_current_settings().flows.heartbeat_frequency == 30


def test_a_server_of_the_users_keeps_prefects_settings():
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        before = get_current_settings()
        with temporary_server_settings():
            assert get_current_settings() is before
