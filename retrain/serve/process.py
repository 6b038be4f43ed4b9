"""``retrain serve --workers N``: N server processes on one port.

uvicorn's supervisor binds the socket once and starts N worker processes that accept on it;
each builds its own app with :func:`worker_app` from the environment the command set (the
workspace's ``RETRAIN_CONFIG``, the token's variable): its own registry connections, model
cache and log writer. Nothing is shared in memory, so nothing needs a lock between them:
routing is a keyed hash of the request (the same answer in every process), feedback is joined
to its prediction in the database (it may reach another process than its prediction did),
and each process writes its own batches of the prediction log, which the registry's writers
serialise (``BEGIN IMMEDIATE`` on SQLite, row locks on PostgreSQL). ``/health`` describes the
process that answers it.
"""

from __future__ import annotations

import os

from retrain.config import ENV_CONFIG
from retrain.serve import build_app, serve_token
from retrain.workspace import Workspace

ENV_THREADPOOL = "RETRAIN_SERVE_PREDICT_IN_THREADPOOL"


def worker_app():
    """The app of one worker process (uvicorn calls it, ``factory=True``)."""
    ws = Workspace.open(os.environ[ENV_CONFIG])
    return build_app(ws, serve_token(ws.settings.serve),
                     predict_in_threadpool=os.environ.get(ENV_THREADPOOL) == "1",
                     freeze_gc=True)
