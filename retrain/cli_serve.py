"""`retrain serve`: the prediction service."""

from __future__ import annotations

import argparse


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add the `serve` command to the `retrain` parser."""
