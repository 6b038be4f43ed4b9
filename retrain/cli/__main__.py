"""``python -m retrain.cli``: the command line without the Prefect engine's entry point."""

import sys

from retrain.cli.main import main

sys.exit(main())
