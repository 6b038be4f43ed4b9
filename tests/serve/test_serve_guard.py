"""The service's door: the token before the body, a size limit, short error bodies, length
limits, feedback checked against the models' classes, and JSON Python cannot hold answered
with a 422 that says why. The last test sends oversized unauthenticated bodies to a real
`retrain serve` process while authenticated predictions go on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from retrain.serve.guard import MAX_JSON_DEPTH, Guard
from serving import AUTH, TOKEN, client_for, features, locs, predict

ROOT = Path(__file__).resolve().parents[2]


def post_bytes(api, path: str, body: bytes, headers=AUTH):
    return api.post(path, content=body, headers={**headers, "Content-Type": "application/json"})


def test_without_a_token_a_malformed_body_is_a_401(api):
    r = post_bytes(api, "/predict/lightgbm", b"{not json", headers={})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    assert post_bytes(api, "/feedback", b"[", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_a_body_over_the_limit_is_a_413(api, served):
    limit = served.settings.serve.max_body_bytes
    big = json.dumps({"request_id": "r", "features": {"x": "a" * limit}}).encode()
    r = post_bytes(api, "/predict/lightgbm", big)
    assert r.status_code == 413 and str(limit) in r.json()["detail"]
    assert post_bytes(api, "/predict/lightgbm", big, headers={}).status_code == 401  # token first


def test_a_body_without_a_length_is_read_only_up_to_the_limit():
    """Chunked: the guard stops reading at the limit and answers 413; the app never runs."""
    chunks = [b"x" * 600, b"x" * 600, b"x" * 600]
    received, sent, called = [], [], []

    async def receive():
        chunk = chunks.pop(0)
        received.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        called.append(scope)

    scope = {"type": "http", "method": "POST", "path": "/feedback",
             "headers": [(b"authorization", f"Bearer {TOKEN}".encode())]}
    asyncio.run(Guard(app, token=TOKEN, max_body_bytes=1024)(scope, receive, send))
    assert sent[0]["status"] == 413 and called == []
    assert len(received) == 2  # the third chunk was never read


def test_an_error_quotes_only_a_short_prefix_of_a_bad_value(api):
    long_id = "i" * 100_000
    r = predict(api, {"request_id": long_id, "features": features()})
    assert r.status_code == 422
    assert len(r.content) < 2000, len(r.content)
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "request_id"]
    assert error["input"].startswith("iiii") and "(100000 characters)" in error["input"]


@pytest.mark.parametrize("field, value, message", [
    ("entity_id", "e" * 201, "1 to 200 characters, got 201"),
    ("request_id", "", "at least 1 character"),
])
def test_ids_have_length_limits(api, field, value, message):
    body = {"request_id": "r-1", "features": features(), field: value}
    r = predict(api, body)
    assert r.status_code == 422 and message in locs(r)[f"body/{field}"]


def test_a_category_longer_than_the_limit_is_a_422_naming_the_feature(api):
    r = predict(api, {"request_id": "r", "features": {**features(), "purpose": "p" * 5000}})
    assert r.status_code == 422
    assert "a category of 5000 characters" in locs(r)["body/features/purpose"]


@pytest.mark.parametrize("label", [7, 0.5, -1])
def test_feedback_is_checked_against_the_classes(api, label):
    r = api.post("/feedback", json={"request_id": "r", "label": label}, headers=AUTH)
    assert r.status_code == 422 and "must be 0 or 1" in locs(r)["body/label"]
    assert api.post("/feedback", json={"request_id": "r", "label": 1}, headers=AUTH).status_code == 202


@pytest.mark.parametrize("body, message", [
    (b'{"request_id": "r", "features": {"income": ' + b"9" * 5000 + b"}}", "more than 4300 digits"),
    (b'{"request_id": "r\xff\xfe", "features": {}}', "not UTF-8"),
    (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), f"at most {MAX_JSON_DEPTH}"),
    (b'{"request_id": "r", "features": {', "not valid JSON"),
])
def test_json_python_cannot_hold_is_a_422_that_says_why(api, body, message):
    r = post_bytes(api, "/predict/lightgbm", body)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body"] and message in error["msg"]


def test_brackets_inside_strings_do_not_count_as_nesting(api):
    request_id = "[{" * 70 + '\\"[' * 5
    r = predict(api, {"request_id": request_id, "features": features()})
    assert r.status_code == 200, r.text
    assert r.json()["request_id"] == request_id


def test_reading_endpoints_stay_open_and_unguarded(served):
    with client_for(served) as api:
        assert api.get("/health").status_code == 200 and api.get("/models").status_code == 200


# A real process under unauthenticated oversized bodies ------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _headers_only(port: int, length: int, token: str | None) -> tuple[int, float]:
    """Send a POST's headers announcing ``length`` bytes, and nothing of the body; return the
    status the server answers with and how long that took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        sock.sendall((f"POST /predict/lightgbm HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: "
                      f"application/json\r\nContent-Length: {length}\r\n\r\n").encode())
        reply = sock.recv(4096).decode("latin-1")
    return int(reply.split()[1]), time.monotonic() - started


@pytest.mark.slow
def test_oversized_unauthenticated_bodies_are_refused_before_they_are_read(served, tmp_path):
    port = _free_port()
    env = {**os.environ, "RETRAIN_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "retrain.cli", "serve", "--config",
                                 str(served.settings.base_dir / "retrain.toml"), "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # The server answers from the headers alone: 150 MB is announced and never sent.
        assert _headers_only(port, 150_000_000, None)[0] == 401
        assert _headers_only(port, 150_000_000, "wrong")[0] == 403
        assert _headers_only(port, 150_000_000, TOKEN)[0] == 413

        stop = threading.Event()
        hostile_answers: list[int] = []

        def hostile():
            while not stop.is_set():
                hostile_answers.append(_headers_only(port, 150_000_000, None)[0])

        attackers = [threading.Thread(target=hostile, daemon=True) for _ in range(4)]
        for thread in attackers:
            thread.start()
        with httpx.Client(base_url=base, headers=AUTH, timeout=10) as client:
            answers = [client.post("/predict/lightgbm", json={"request_id": f"ok-{i}",
                                                              "features": features(i)})
                       for i in range(50)]
        stop.set()
        for thread in attackers:
            thread.join(timeout=15)
        assert [a.status_code for a in answers] == [200] * 50
        assert hostile_answers and set(hostile_answers) == {401}
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
