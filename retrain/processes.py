"""Which process did something, and whether it is gone: what a crash leaves behind (a
production switch half done, a candidate never decided) is finished or tidied only once the
process that was working on it no longer runs."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

# Work recorded by a process on another machine is taken over after this long without progress.
STALE_AFTER = timedelta(minutes=30)


def process_owner() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(owner: str | None, last_progress: datetime, now: datetime) -> bool:
    """Whether the process ``owner`` (``host:pid``) no longer runs: on this machine, its pid
    is gone; on another, nothing has moved for ``STALE_AFTER``. Work without an owner (made
    before owners were recorded) counts as the other machine's."""
    host, _, pid = (owner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # a process of another user has that pid now
        return False
    return now - last_progress > STALE_AFTER
