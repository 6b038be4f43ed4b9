"""The ``retrain`` command line (see ``retrain.cli.main``)."""

from retrain.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
