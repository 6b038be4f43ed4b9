"""Prefect's temporary server (``retrain run`` without ``PREFECT_API_URL``) stops with the
process that started it, however that process ends.

Prefect starts the temporary server as a child process and stops it at exit; a process that is
SIGKILLed never gets to, and the server would keep running, holding its port and its SQLite
database. Here each temporary server gets a watchdog: a small process of its own that waits
for its parent (the ``retrain`` process) to go and then stops the server (SIGTERM, then SIGKILL
after 5 s). It leaves by itself when the server stops first.
"""

from __future__ import annotations

import os
import subprocess
import sys

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL

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


class _WatchedServer(SubprocessASGIServer):
    """Prefect's temporary server, with a watchdog started beside it."""

    def _run_uvicorn_command(self) -> subprocess.Popen:
        process = super()._run_uvicorn_command()
        subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(process.pid)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        return process


def temporary_server_dies_with_this_process() -> None:
    """Make the temporary server Prefect starts in this process (if it starts one) a watched
    one. Prefect keeps one instance per port and asks for port None; the instance registered
    here is the one it then gets (Prefect's own test harness registers its server the same
    way)."""
    if PREFECT_API_URL.value() or None in SubprocessASGIServer._instances:
        return  # a server of the user's, or a temporary one that exists already
    _WatchedServer(None)  # registers itself under port None (SubprocessASGIServer.__new__)
