"""`retrain run` without a Prefect server starts Prefect's temporary one; SIGKILLed in the
middle of a run, it must not leave that server running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SMALL
from retrain.demo import write_workspace

pytestmark = pytest.mark.slow


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(entry.name), cmdline))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_a_killed_run_does_not_leave_the_temporary_server_running(tmp_path):
    config = write_workspace(tmp_path / "ws", **SMALL)
    marker = tmp_path / "reached"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RETRAIN_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               RETRAIN_FAILPOINT="register:before-commit", RETRAIN_FAILPOINT_FILE=str(marker))
    run = subprocess.Popen([str(Path(sys.executable).with_name("retrain")), "--config",
                            str(config), "run", "--model", "lightgbm"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert run.poll() is None, run.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never reached its registration"
        time.sleep(0.2)
    servers = [pid for pid, cmd in children_of(run.pid) if "retrain_prefect.ephemeral:create_app" in cmd]
    assert len(servers) == 1, children_of(run.pid)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    deadline = time.monotonic() + 30
    while alive(servers[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(servers[0]), "the temporary Prefect server outlived the killed run"
