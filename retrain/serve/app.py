"""The HTTP boundary of the prediction service (FastAPI): endpoints, auth, error mapping.

    POST /predict/{model}   {"request_id", "entity_id"?, "features": {...}} -> prediction
    POST /feedback          {"request_id", "label"?, "reward"?, "model"?}  -> 202
    GET  /models            production version and active experiment of each model
    GET  /health            registry reachable, loaded versions, log queue

Library errors become HTTP errors here and nowhere else: a payload that does not fit the
version's schema is a 422 naming each field, an unknown model a 404, a model that cannot
answer (broken artifact, no production version, registry unreachable) a 503 with the reason.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import math
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from retrain.errors import ConfigError, RetrainError
from retrain.serve.guard import Guard
from retrain.serve.models import VersionUnavailable
from retrain.serve.schemas import FeatureValidationError, FeedbackRequest, PredictRequest
from retrain.serve.service import NotServing, PredictionService, UnknownModel

log = logging.getLogger("retrain.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, token: str | None, token_env: str) -> None:
    """Refuse to serve beyond this machine without a token: anyone who can reach the port
    could write predictions and feedback that decide A/B tests."""
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without a bearer token: set the environment variable "
            f"{token_env} (named by [serve] token_env), or serve on 127.0.0.1")


def _feature_errors(exc: FeatureValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [
        {"loc": ["body", "features", name], "msg": msg, "type": kind}
        for name, msg, kind in exc.problems]})


def create_app(service: PredictionService, *, token: str | None = None,
               predict_in_threadpool: bool = False, freeze_gc: bool = False) -> FastAPI:
    """The app for ``service``; the service starts and stops with the app (lifespan), so the
    log queue is written out on shutdown. ``token``: bearer token for the POST endpoints,
    checked before their body is read (``retrain.serve.guard``). ``freeze_gc`` (for a server
    process): see the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.start)
        if freeze_gc:
            # The imports and loaded models are ~200k long-lived objects; a full collection
            # scans them all and stalled every request for 100-300 ms about twice a minute.
            # Frozen, they are never scanned again.
            gc.collect()
            gc.freeze()
        health = service.health()
        log.info("ready: %d model(s) registered, loaded %s", len(health["models"]),
                 ", ".join(health["loaded_versions"]) or "no version yet")
        try:
            yield
        finally:
            left = await run_in_threadpool(service.stop)
            log.info("stopped%s", f" ({left} log rows unwritten)" if left else
                     "; every prediction and feedback row is written")

    app = FastAPI(title="retrain prediction service", lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.add_middleware(Guard, token=token, max_body_bytes=service.config.max_body_bytes)

    @app.exception_handler(FeatureValidationError)
    async def _invalid_features(request: Request, exc: FeatureValidationError):
        return _feature_errors(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's own handler echoes each bad input in full (a 60 MB string came back), and
        # a NaN or infinity (which Python's JSON parser accepts) cannot be written back as
        # JSON: each input is quoted as a short prefix of its text.
        return JSONResponse(status_code=422, content={"detail": [
            _short(error) for error in jsonable_encoder(exc.errors())]})

    @app.exception_handler(UnknownModel)
    async def _unknown(request: Request, exc: UnknownModel):
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(VersionUnavailable)
    @app.exception_handler(NotServing)
    async def _unavailable(request: Request, exc: RetrainError):
        return JSONResponse(status_code=503, content={"detail": str(exc)},
                            headers={"Retry-After": "5"})

    @app.exception_handler(RetrainError)
    async def _other(request: Request, exc: RetrainError):
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=500, content={"detail": str(exc)})

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        # A bug, not the client's fault: the traceback goes to the log, the client gets JSON.
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error; see the "
                                                                "service's log"})

    def predict_sync(model: str, body: PredictRequest) -> JSONResponse:
        result = service.predict(model, body.request_id, body.features, body.entity_id)
        return JSONResponse(result.as_dict())

    if predict_in_threadpool:
        @app.post("/predict/{model}")
        def predict_endpoint(model: str, body: PredictRequest) -> JSONResponse:
            return predict_sync(model, body)
    else:
        # The default: routing (a dict lookup and a hash) and a one-row prediction take tens
        # of microseconds, less than a trip through the threadpool, whose GIL hand-offs
        # stretch the tail when the machine is busy (bench/serve.py --also-threadpool: at
        # 200 requests/s on a loaded 2-core machine, p99 about 20 ms here against 30-130 ms
        # there). Only a version that is not loaded yet is loaded in the pool, and the
        # routing cache's one registry read per model and refresh interval stays here.
        @app.post("/predict/{model}")
        async def predict_endpoint(model: str, body: PredictRequest) -> JSONResponse:
            route = service.route(model, body.request_id, body.entity_id)
            loaded = service.cache.peek(route.version_id)
            if loaded is None:
                loaded = await run_in_threadpool(service.cache.get, route.version_id)
            result = service.answer(route, loaded, body.request_id, body.features)
            return JSONResponse(result.as_dict())

    @app.post("/feedback", status_code=202)
    def feedback(body: FeedbackRequest) -> JSONResponse:
        problem = service.label_problem(body.model, body.label)
        if problem is not None:
            return JSONResponse(status_code=422, content={"detail": [
                {"loc": ["body", "label"], "msg": problem, "type": "value_error"}]})
        service.feedback(body.request_id, label=body.label, reward=body.reward,
                         model_name=body.model)
        return JSONResponse(status_code=202, content={"request_id": body.request_id,
                                                      "accepted": True})

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {"models": service.models()}

    @app.get("/health")
    async def health() -> JSONResponse:
        report = service.health()
        report["auth"] = "bearer token" if token else "none (loopback only)"
        return JSONResponse(status_code=503 if report["status"] == "unavailable" else 200,
                            content=_jsonable(report))

    return app


QUOTE_CHARS = 80  # how much of a bad value an error quotes


def quote(value: Any) -> str:
    """A bad value as an error quotes it: its JSON text (or text) cut to ``QUOTE_CHARS``."""
    if isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    else:
        try:
            text = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
        except (TypeError, ValueError):
            text = str(value)
    if len(text) > QUOTE_CHARS:
        return f"{text[:QUOTE_CHARS]}... ({len(text)} characters)"
    return text


def _short(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error with its input and context quoted short."""
    out = {k: v for k, v in error.items() if k not in ("input", "ctx", "url")}
    if "input" in error:
        out["input"] = quote(error["input"])
    if error.get("ctx"):
        out["ctx"] = {k: quote(v) for k, v in error["ctx"].items()}
    out["msg"] = str(out.get("msg", ""))[:300]
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
