"""``python -m deployments.prefect_yaml``: write prefect.yaml from the declared deployments
(``retrain_prefect.deployments``); ``--check`` only says whether it is up to date."""

from __future__ import annotations

import argparse
from pathlib import Path

from retrain_prefect.deployments import prefect_yaml

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.prefect_yaml", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if prefect.yaml differs from what the list gives")
    args = parser.parse_args(argv)
    text = prefect_yaml()
    if args.check:
        same = PREFECT_YAML.read_text() == text
        print(f"{PREFECT_YAML}: {'up to date' if same else 'out of date'}")
        return 0 if same else 1
    PREFECT_YAML.write_text(text)
    print(f"wrote {PREFECT_YAML}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
