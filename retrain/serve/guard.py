"""The door of the prediction service, in front of FastAPI (a pure ASGI middleware).

For the endpoints that change state (``POST /predict/...``, ``POST /feedback``), in this
order, and before the application sees the request:

1. the bearer token is checked from the headers alone (401 without one, 403 for a wrong
   one): nothing of an unauthenticated body is read;
2. a ``Content-Length`` above ``[serve] max_body_bytes`` is answered 413 at once, and a body
   sent without one is read only up to that size (413 beyond it);
3. the body must be JSON that Python can hold: UTF-8, nested at most ``MAX_JSON_DEPTH``
   deep, integers of at most ``MAX_INT_DIGITS`` digits; anything else is a 422 that says
   which, never a bare 400.

The body read here is handed to the application as it came.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 4300  # Python's own limit for turning digits into an int
GUARDED = re.compile(r"^/(predict/[^/]+|feedback)/?$")
_BRACKETS = re.compile(rb"[\[{\]}]")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class BodyTooLarge(Exception):
    pass


async def _respond(send: Send, status: int, detail: Any, headers: list[tuple[bytes, bytes]] = ()
                   ) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not JSON the service can take, or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8 (byte {exc.start} cannot be decoded)"
    depth = max_depth(body)
    if depth > MAX_JSON_DEPTH:
        return f"the body is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
    try:
        json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and too many digits for an int
        if "digits" in str(exc):
            return f"a number in the body has more than {MAX_INT_DIGITS} digits"
        return f"the body is not valid JSON ({str(exc)[:120]})"
    return None


def max_depth(body: bytes) -> int:
    """How deep ``body`` nests arrays and objects; brackets inside strings do not count."""
    depth = deepest = 0
    for token in _BRACKETS.finditer(_STRINGS.sub(b'""', body)):
        if token.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
        else:
            depth -= 1
    return deepest


class Guard:
    """Wraps the ASGI ``app``; ``token`` is the expected bearer token (None: no check)."""

    def __init__(self, app: Callable, *, token: str | None, max_body_bytes: int):
        self.app = app
        self.expected = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" \
                or not GUARDED.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        refusal = self._refuse_token(scope)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await _respond(send, 413, f"the body is larger than [serve] max_body_bytes "
                                      f"({self.max_body_bytes} bytes)")
            return
        try:
            body = await self._read(receive)
        except BodyTooLarge:
            await _respond(send, 413, f"the body is larger than [serve] max_body_bytes "
                                      f"({self.max_body_bytes} bytes)")
            return
        problem = json_problem(body) if body else None
        if problem is not None:
            await _respond(send, 422, [{"loc": ["body"], "msg": problem, "type": "json_invalid"}])
            return
        await self.app(scope, _replay(body), send)

    def _refuse_token(self, scope: Scope) -> tuple[int, str, list] | None:
        if self.expected is None:
            return None
        authorization = _header(scope, b"authorization")
        if not authorization:
            return (401, "this endpoint needs an 'Authorization: Bearer <token>' header",
                    [(b"www-authenticate", b"Bearer")])
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self.expected):
            return 403, "invalid bearer token", []
        return None

    async def _read(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
