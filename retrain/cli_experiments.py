"""`retrain ab ...` and `retrain rollout ...`: A/B tests and rollouts from the command line."""

from __future__ import annotations

import argparse


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add the `ab` and `rollout` commands to the `retrain` parser."""
