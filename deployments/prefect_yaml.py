"""``python -m deployments.prefect_yaml``: write prefect.yaml and prefect-git.yaml from the
declared deployments (``retrain_prefect.deployments``); ``--check`` only says whether they are
up to date."""

from __future__ import annotations

import argparse
from pathlib import Path

from retrain_prefect.deployments import prefect_yaml

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"
GIT_YAML = PREFECT_YAML.with_name("prefect-git.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.prefect_yaml", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if prefect.yaml differs from what the list gives")
    args = parser.parse_args(argv)
    stale = 0
    for path, text in ((PREFECT_YAML, prefect_yaml()), (GIT_YAML, prefect_yaml(git=True))):
        if args.check:
            same = path.exists() and path.read_text() == text
            print(f"{path}: {'up to date' if same else 'out of date'}")
            stale += not same
        else:
            path.write_text(text)
            print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
