"""What every command prints with: one JSON document on stdout, progress on stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from retrain.serialization import json_default

log = logging.getLogger("retrain")


def setup_logging(verbose: bool) -> None:
    """Progress lines of the ``retrain`` logger on stderr (stdout is for results)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    # The run summary is printed on stdout by the command; not a second time on stderr.
    handler.addFilter(lambda record: not getattr(record, "run_summary", False))
    log.handlers = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def print_json(document: Any) -> None:
    """``document`` as one indented JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=json_default) + "\n")
