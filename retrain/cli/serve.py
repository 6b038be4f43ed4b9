"""`retrain serve`: the prediction service."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("retrain")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from retrain.serve import build_app, check_exposure, serve_token
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    cfg = ws.settings.serve
    host = args.host or cfg.host
    port = cfg.port if args.port is None else args.port
    token = serve_token(cfg)
    check_exposure(host, token, cfg.token_env)
    _check_port(host, port)
    workers = cfg.workers if args.workers is None else args.workers
    if workers < 1:
        from retrain.errors import ConfigError
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    auth = (f"POST endpoints need 'Authorization: Bearer <${cfg.token_env}>'" if token else
            f"NO AUTH (${cfg.token_env} is not set): anyone on this machine can predict and "
            "send feedback")
    from sqlalchemy.engine import make_url
    registry = make_url(ws.settings.registry_url).render_as_string(hide_password=True)
    log.info("starting the prediction service for %s on http://%s:%d (%d process%s); %s; "
             "registry re-read every %gs", registry, host, port, workers,
             "" if workers == 1 else "es", auth, cfg.refresh_seconds)
    # No access log: one line per request costs more than the prediction itself.
    options = dict(host=host, port=port, log_level=args.uvicorn_log_level, access_log=False,
                   timeout_graceful_shutdown=10)
    if workers == 1:
        uvicorn.run(build_app(ws, token, predict_in_threadpool=args.predict_in_threadpool,
                              freeze_gc=True), **options)
        return 0
    import os

    from retrain.config import ENV_CONFIG, find_config_path
    from retrain.serve.process import ENV_THREADPOOL
    ws.registry.dispose()  # each worker process opens its own connections
    os.environ[ENV_CONFIG] = str(find_config_path(args.config))
    os.environ[ENV_THREADPOOL] = "1" if args.predict_in_threadpool else "0"
    uvicorn.run("retrain.serve.process:worker_app", factory=True, workers=workers, **options)
    return 0


def _check_port(host: str, port: int) -> None:
    """A taken port is the user's to fix: one line before any model is loaded, rather than
    uvicorn's error after start-up."""
    import socket

    from retrain.errors import ConfigError
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add the `serve` command to the `retrain` parser."""
    p = sub.add_parser("serve", parents=[workspace_options],
                       help="serve predictions over HTTP (routes A/B tests and rollouts)")
    p.add_argument("--host", help="interface to listen on (default: [serve] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: [serve] port, 8000)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="server processes sharing the port (default: [serve] workers, 1)")
    p.add_argument("--uvicorn-log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="log level of the HTTP server itself (default: warning)")
    p.add_argument("--predict-in-threadpool", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)
