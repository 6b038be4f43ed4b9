"""`retrain predict`: score a Parquet or CSV file with a version of a model."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from retrain.errors import RetrainError

log = logging.getLogger("retrain")


def cmd_predict(args: argparse.Namespace) -> int:
    from retrain.errors import DataValidationError
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    ws.model_names([args.model])
    version = ws.registry.resolve_version(args.model, args.version)
    model = ws.registry.load(version)
    src = Path(args.input)
    suffix = src.suffix.lower()
    df = _input_frame(src)
    for column in model.preprocessing.schema.numeric:
        # Training and serving refuse infinities; scoring them would give a number anyway.
        if column in df.columns and df.schema[column].is_float() and df[column].is_infinite().any():
            raise DataValidationError(column, f"non-finite values (inf) in {src}: the model "
                                      "cannot score them (send null for a missing value)")
    if args.output:
        dest = Path(args.output)
        inside = _in_feature_store(ws, dest)
        if inside:
            raise RetrainError(f"--output {dest} is inside the feature store "
                               f"({inside}); its rows would become training data")
    else:
        dest = src.with_name(f"{src.stem}.predictions{suffix}")
        if _in_feature_store(ws, dest):
            # Next to a feature-store file the predictions would be read back as training data.
            dest = ws.settings.resolve("predictions") / dest.name
            inside = _in_feature_store(ws, dest)
            if inside:
                raise RetrainError(f"{src} is in the feature store ({inside}); "
                                   "choose where the predictions go with --output")
            dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix.lower() not in (".csv", ".parquet"):
        raise RetrainError(f"--output {dest}: expected a .parquet or .csv file")
    out = df.with_columns(prediction_columns(model, df))
    if dest.suffix.lower() == ".csv":
        out.write_csv(dest)
    else:
        out.write_parquet(dest)
    log.info("scored %d rows with %s -> %s", out.height, version.version_id, dest)
    print(dest)
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    """The estimated metrics of a version on an unlabeled file (CBPE)."""
    from retrain.cli.output import print_json
    from retrain.reporting.tables import text_table
    from retrain.triggers.estimate import estimate_version
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    ws.model_names([args.model])
    version = ws.registry.resolve_version(args.model, args.version)
    result = estimate_version(ws, version, _input_frame(Path(args.input)), args.confidence)
    if args.json:
        print_json(result.as_json())
        return 0
    print(f"{result.model} {result.version_id} on {result.rows} rows of {args.input}, "
          f"estimated without labels (CBPE; {args.confidence:.0%} intervals):")
    print(text_table(["metric", "estimate", "interval"],
                     [[m, f"{e.estimate:.4f}", f"{e.interval[0]:.4f} .. {e.interval[1]:.4f}"]
                      for m, e in result.metrics.items()]))
    return 0


def _input_frame(src: Path):
    from retrain.data.store import read_file
    from retrain.errors import DataValidationError
    if not src.is_file():
        raise DataValidationError(None, f"input file {src} does not exist")
    if src.suffix.lower() not in (".parquet", ".csv"):
        raise DataValidationError(None, f"{src}: expected a .parquet or .csv file")
    return read_file(src)


def prediction_columns(model, df) -> list:
    """``prediction`` (the class, or the value for a regression) and, for a classification,
    ``probability`` (binary: the positive class's) or one ``probability_<class>`` per class."""
    import polars as pl
    model.preprocessing.transform(df.head(0))  # the feature columns exist, even with no rows
    labels, scores = model.predict(df)
    if model.task == "regression":
        return [pl.Series("prediction", scores, dtype=pl.Float64)]
    prediction = pl.Series("prediction", labels) if len(labels) else pl.Series(
        "prediction", model.classes).head(0)
    if model.task == "binary":
        return [prediction, pl.Series("probability", scores, dtype=pl.Float64)]
    scores = scores.reshape(len(df), len(model.classes))
    return [prediction, *(pl.Series(f"probability_{c}", scores[:, j], dtype=pl.Float64)
                          for j, c in enumerate(model.classes))]


def _in_feature_store(ws, path: Path) -> str | None:
    """The dataset source whose files a file written at ``path`` would join, or None."""
    import fnmatch
    target = path.resolve()
    for source in ws.settings.data_sources:
        if "://" in source:
            continue
        root = Path(source)
        if root.is_dir():
            if target.is_relative_to(root.resolve()):
                return source
        elif fnmatch.fnmatch(str(target), source) or fnmatch.fnmatch(str(path), source):
            return source
    return None


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add `predict` to the `retrain` parser."""
    p = sub.add_parser("predict", parents=[workspace_options], help="score a Parquet or CSV file")
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("--version", help="version id or number (default: production)")
    p.add_argument("--output", help="output .parquet or .csv file (default: INPUT.predictions.<ext>, "
                   "or under <workspace>/predictions/ when INPUT is in the feature store)")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("estimate", parents=[workspace_options],
                       help="estimate a classifier's metrics on an unlabeled file (CBPE)")
    p.add_argument("model")
    p.add_argument("input", help="a .parquet or .csv file of the model's features")
    p.add_argument("--version", help="version id or number (default: production)")
    p.add_argument("--confidence", type=float, default=0.95,
                   help="coverage of each metric's interval (default: 0.95)")
    p.add_argument("--json", action="store_true", help="print the estimate as one JSON document")
    p.set_defaults(func=cmd_estimate)
