"""Named failpoints, used by crash tests to stop a real process at a chosen instant.

When ``RETRAIN_FAILPOINT`` names a point, the process reaching it writes that name to the file
in ``RETRAIN_FAILPOINT_FILE`` and waits there until it is killed. With the variable unset (the
normal case) a failpoint costs one dictionary lookup.

The points: ``artifact:before-replace`` (temporary artifact file written and synced, not yet
renamed into place), ``register:after-artifact``, ``register:before-commit``,
``promote:after-archive``, ``promote:before-commit``, and the production switch's
``switch:announced`` (pending notice written), ``switch:switched`` (pointer moved) and
``switch:checked`` (smoke check run, its outcome not yet acted on).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def failpoint(name: str) -> None:
    if os.environ.get("RETRAIN_FAILPOINT") != name:
        return
    marker = os.environ.get("RETRAIN_FAILPOINT_FILE")
    if marker:
        Path(marker).write_text(name)
    while True:  # wait for SIGKILL
        time.sleep(0.05)
