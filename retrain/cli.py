"""The ``retrain`` command line.

A user's mistake (bad config, bad data, unknown model) prints one line and exits with 2;
``--json`` prints exactly one JSON document on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from retrain.errors import RetrainError

log = logging.getLogger("retrain")
DEMO_MARKER = ".retrain-demo"


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    log.handlers = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def _prefect_env() -> None:
    """Defaults for running flows from the CLI (the user's own settings win)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "retrain")


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=_json_default) + "\n")


def _run_pipeline(config: str | None, models: list[str] | None, force: bool, reason: str,
                  engine: str) -> dict[str, Any]:
    if engine == "prefect":
        from retrain.config import load_config
        # A bad config is a one-line error before Prefect (and maybe a local server) starts.
        load_config(config)
        _prefect_env()
        # The CLI is the outermost layer: it may start the orchestrated flow.
        flows = importlib.import_module("flows.pipeline")
        if not log.isEnabledFor(logging.DEBUG):
            importlib.import_module("flows.common").quiet_user_error_tracebacks()
        return flows.retraining_pipeline(models=models, force=force, reason=reason, config=config)
    from retrain.pipeline import run_pipeline
    from retrain.workspace import Workspace
    return run_pipeline(Workspace.open(config), models, force=force, reason=reason)


# Commands ------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from retrain.report import run_summary_text
    document = _run_pipeline(args.config, args.model, args.force, args.reason, args.engine)
    if args.json:
        _print_json(document)
    else:
        print(run_summary_text(document))
    return 0 if document["success"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from retrain.demo import append_drifted_month, write_workspace
    from retrain.report import run_summary_text
    workspace = Path(args.workspace).resolve()
    if workspace.exists() and not workspace.is_dir():
        raise RetrainError(f"{workspace} exists and is not a folder; choose another --workspace")
    if workspace.exists() and any(workspace.iterdir()):
        if not (workspace / DEMO_MARKER).exists():
            raise RetrainError(f"{workspace} exists and is not a demo workspace; "
                               "choose another --workspace")
        shutil.rmtree(workspace)
    started = time.monotonic()
    log.info("writing the demo workspace to %s (6 months of loan applications)", workspace)
    config = write_workspace(workspace)
    (workspace / DEMO_MARKER).write_text("made by `retrain demo`; safe to delete\n")
    log.info("run 1: bootstrap the production models on January-June")
    first = _run_pipeline(str(config), None, False, "manual", args.engine)
    log.info("appending July: the applicants and what predicts default have changed")
    append_drifted_month(workspace)
    log.info("run 2: the monthly run finds the drift and retrains")
    second = _run_pipeline(str(config), None, False, "schedule", args.engine)
    print("\n== Run 1: bootstrap ==\n" + run_summary_text(first))
    print("\n== Run 2: after the drift ==\n" + run_summary_text(second))
    print(f"\nDone in {time.monotonic() - started:.0f}s. Next: cd {args.workspace} && retrain models")
    return 0 if first["success"] and second["success"] else 1


def _version_dict(ws, v) -> dict[str, Any]:
    return {"version_id": v.version_id, "number": v.number, "status": v.status, "kind": v.kind,
            "params": v.params, "metrics": v.metrics, "created_at": v.created_at,
            "promoted_at": v.promoted_at,
            "train_window": {"start": v.train_start, "end": v.train_end},
            "holdout_start": v.holdout_start, "row_count": v.row_count,
            "holdout_rows": v.holdout_rows, "data_fingerprint": v.data_fingerprint,
            "artifact_path": str(ws.registry.artifact_file(v)), "artifact_sha256": v.artifact_sha256}


def cmd_models(args: argparse.Namespace) -> int:
    from retrain.report import text_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    models = []
    for m in ws.registry.models():
        versions = ws.registry.versions(m.name)
        prod = [v.version_id for v in versions if v.status == "production"]
        models.append({"name": m.name, "kind": m.kind, "production_version": prod[0] if prod else None,
                       "versions": [_version_dict(ws, v) for v in versions]})
    if args.json:
        _print_json({"models": models})
        return 0
    if not models:
        print("no models registered yet (run `retrain run`)")
        return 0
    metric = ws.settings.promotion.metric
    rows = [[m["name"], v["version_id"], v["status"].upper() if v["status"] == "production" else v["status"],
             v["kind"], f"{v['metrics'].get(metric, float('nan')):.4f}", v["row_count"],
             f"{v['train_window']['start']:%Y-%m-%d} .. {v['train_window']['end']:%Y-%m-%d}",
             f"{v['created_at']:%Y-%m-%d %H:%M}"] for m in models for v in m["versions"]]
    print(text_table(["model", "version", "status", "kind", f"{metric} (own holdout)", "rows",
                      "training window", "created (UTC)"], rows))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from retrain.errors import RegistryError
    from retrain.report import text_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    if args.model not in {m.name for m in ws.registry.models()}:
        raise RegistryError(f"no registered model {args.model!r}")
    events = ws.registry.history(args.model)
    if args.json:
        _print_json({"model": args.model, "events": [
            {"action": e.action, "version_id": e.version_id, "actor": e.actor, "reason": e.reason,
             "at": e.at, "details": e.details} for e in events]})
        return 0
    print(text_table(["at (UTC)", "action", "version", "actor", "reason"],
                     [[f"{e.at:%Y-%m-%d %H:%M:%S}", e.action, e.version_id or "-", e.actor, e.reason]
                      for e in events]))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import polars as pl

    from retrain.errors import DataValidationError
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    ws.model_names([args.model])
    version = ws.registry.resolve_version(args.model, args.version)
    model = ws.registry.load(version)
    src = Path(args.input)
    if not src.is_file():
        raise DataValidationError(None, f"input file {src} does not exist")
    suffix = src.suffix.lower()
    if suffix == ".parquet":
        df = pl.read_parquet(src)
    elif suffix == ".csv":
        df = pl.read_csv(src, try_parse_dates=True, infer_schema_length=10_000)
    else:
        raise DataValidationError(None, f"{src}: expected a .parquet or .csv file")
    if args.output:
        dest = Path(args.output)
        if _in_feature_store(ws, dest):
            raise RetrainError(f"--output {dest} is inside the feature store "
                               f"({ws.settings.data_source}); its rows would become training data")
    else:
        dest = src.with_name(f"{src.stem}.predictions{suffix}")
        if _in_feature_store(ws, dest):
            # Next to a feature-store file the predictions would be read back as training data.
            dest = ws.settings.resolve("predictions") / dest.name
            if _in_feature_store(ws, dest):
                raise RetrainError(f"{src} is in the feature store ({ws.settings.data_source}); "
                                   "choose where the predictions go with --output")
            dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix.lower() not in (".csv", ".parquet"):
        raise RetrainError(f"--output {dest}: expected a .parquet or .csv file")
    if df.height == 0:
        model.preprocessing.transform(df)  # still checks that the feature columns exist
        classes = pl.Series(model.classes)
        labels, proba = classes.head(0), pl.Series([], dtype=pl.Float64)
    else:
        labels, proba = model.predict(df)
    out = df.with_columns(pl.Series("prediction", labels), pl.Series("probability", proba))
    if dest.suffix.lower() == ".csv":
        out.write_csv(dest)
    else:
        out.write_parquet(dest)
    log.info("scored %d rows with %s -> %s", out.height, version.version_id, dest)
    print(dest)
    return 0


def _in_feature_store(ws, path: Path) -> bool:
    """Whether a file written at ``path`` would be read as part of the feature store."""
    import fnmatch
    source = ws.settings.data_source
    if "://" in source:
        return False
    target = path.resolve()
    root = Path(source)
    if root.is_dir():
        return target.is_relative_to(root.resolve())
    return fnmatch.fnmatch(str(target), source) or fnmatch.fnmatch(str(path), source)


def cmd_promote(args: argparse.Namespace) -> int:
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    version = ws.registry.get_version(args.version)
    version = ws.registry.promote(version.version_id, reason=args.reason or "manual promotion",
                                  details={"override": args.force, "manual": True})
    print(f"{version.version_id} is now production for {version.model_name}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from retrain.promotion import rollback_model
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    ws.model_names([args.model])
    result = rollback_model(ws, args.model, to=args.to, reason=args.reason or "")
    print(f"{result['production_version']} is production again for {args.model} "
          f"(was {result['rolled_back_from'] or 'none'})")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    """Answer a promotion waiting for approval in a paused Prefect flow run."""
    from retrain.registry.registry import default_actor
    _prefect_env()
    approval = importlib.import_module("flows.approval")
    approve = args.command == "approve"
    comment = (args.comment if approve else args.reason) or ""
    resumed = approval.answer(args.run_id, approve, args.actor or default_actor(), comment)
    print(f"{'approved' if approve else 'rejected'}: flow run {resumed} resumes")
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from retrain.notify import NotificationService
    from retrain.report import text_table
    from retrain.workspace import Workspace
    service = NotificationService(workspace=Workspace.open(args.config))
    if args.retry_failed:
        log.info("%d failed notification(s) queued again", service.outbox.retry_failed())
    counts = service.flush(now=True) if (args.flush or args.retry_failed) else None
    rows = service.outbox.messages(status=args.status, limit=args.limit)
    if args.json:
        _print_json({"delivered": counts, "notifications": [
            {"id": m.id, "kind": m.kind, "channel": m.channel, "model": m.model_name,
             "subject": m.subject, "status": m.status, "attempts": m.attempts,
             "last_error": m.last_error, "created_at": m.created_at, "sent_at": m.sent_at}
            for m in rows]})
        return 0
    if counts is not None:
        print(f"delivered {counts['sent']}, still pending {counts['retry'] + counts['skipped']}, "
              f"failed {counts['failed']}")
    print(text_table(["id", "created (UTC)", "kind", "channel", "status", "attempts", "subject", "last error"],
                     [[m.id, f"{m.created_at:%Y-%m-%d %H:%M:%S}", m.kind, m.channel, m.status,
                       m.attempts, m.subject[:60], (m.last_error or "")[:50]] for m in rows]))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """Exit status 0: no drift; 1: drift in at least one model; 2: an error."""
    from retrain.drift_check import check_drift
    from retrain.report import text_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    names = ws.model_names(args.model)
    checks, shared = {}, {}
    for name in names:
        # An explicit --html writes the report whatever [drift] save_reports says.
        checks[name] = check_drift(ws, name, cache=shared,
                                   save_reports=True if args.html else None)
    if args.html:
        _copy_html_reports(args.html, checks)
    results = {n: c.as_dict() for n, c in checks.items()}
    detected = any(r["detected"] for r in results.values())
    if args.json:
        _print_json({"detected": detected, "models": results})
        return 1 if detected else 0
    for name, r in results.items():
        rule = r.get("decision") or ""
        print(f"{name}: {'DRIFT DETECTED' if r['detected'] else 'no drift'} "
              f"({len(r['drifted_features'])} drifted features, share {r['share']:.2f}"
              f"{', rule ' + rule if rule else ''})"
              f"{' - ' + r['note'] if r['note'] else ''}")
        rows = [[t["feature"], t["method"], f"{t['value']:.4g}", f"{t['threshold']:.4g}",
                 "yes" if t["drifted"] else "no"] for t in r.get("table", [])]
        for part in ("label_drift", "prediction_drift"):
            info = r.get(part) or {}
            rows += [[f"[{part.split('_')[0]}] {t['feature']}", t["method"], f"{t['value']:.4g}",
                      f"{t['threshold']:.4g}", "yes" if t["drifted"] else "no"]
                     for t in info.get("table", [])]
        if rows:
            print(text_table(["feature", "method", "value", "threshold", "drifted"], rows))
        for part in ("label_drift", "prediction_drift"):
            info = r.get(part) or {}
            if info.get("note"):
                print(f"  {part.replace('_', ' ')}: {info['note']}")
        if r.get("report") and r["report"].get("html"):
            print(f"  report: {r['report']['html']}")
    return 1 if detected else 0


def _copy_html_reports(target: str, checks: dict) -> None:
    """``--html PATH``: the report itself for one model; for several, PATH is a folder that
    gets ``<model>.html`` each."""
    with_html = {n: c.reports.html for n, c in checks.items() if c.reports and c.reports.html}
    if not with_html:
        return
    path = Path(target)
    if len(checks) == 1 and path.suffix.lower() in (".html", ".htm"):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(next(iter(with_html.values())), path)
        return
    path.mkdir(parents=True, exist_ok=True)
    for name, html in with_html.items():
        shutil.copyfile(html, path / f"{name}.html")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrain", description=__doc__.splitlines()[0] if __doc__ else "")
    config_help = "path to retrain.toml (default: $RETRAIN_CONFIG or ./retrain.toml)"
    parser.add_argument("--config", help=config_help)
    # Also accepted after the command (`retrain models --config ws/retrain.toml`); SUPPRESS
    # keeps a --config given before the command when none follows it.
    workspace_options = argparse.ArgumentParser(add_help=False)
    workspace_options.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def engine_flag(p):
        p.add_argument("--local", dest="engine", action="store_const", const="local", default="prefect",
                       help="run the library steps directly, without Prefect")

    p = sub.add_parser("demo", help="write a demo workspace and run the pipeline in it")
    p.add_argument("--workspace", default="demo", help="folder to create (default: ./demo)")
    engine_flag(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", parents=[workspace_options], help="one pipeline run in the current workspace")
    p.add_argument("--model", action="append", help="model name (repeatable; default: all)")
    p.add_argument("--force", action="store_true", help="retrain even if no trigger fires")
    p.add_argument("--reason", default="manual", choices=["schedule", "drift", "volume", "performance", "manual"])
    p.add_argument("--json", action="store_true", help="print the run document as JSON")
    engine_flag(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("models", parents=[workspace_options], help="registered models and their versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("history", parents=[workspace_options], help="the audit log of one model")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("predict", parents=[workspace_options], help="score a Parquet or CSV file")
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("--version", help="version id or number (default: production)")
    p.add_argument("--output", help="output .parquet or .csv file (default: INPUT.predictions.<ext>, "
                   "or under <workspace>/predictions/ when INPUT is in the feature store)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("promote", parents=[workspace_options], help="make a version production by hand")
    p.add_argument("version", help="version id, e.g. lightgbm-v3")
    p.add_argument("--reason")
    p.add_argument("--force", action="store_true", help="also promote a rejected version")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", parents=[workspace_options], help="make an earlier version production again")
    p.add_argument("model")
    p.add_argument("--to", help="version id or number (default: the previous production version)")
    p.add_argument("--reason")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("approve", help="approve a promotion waiting in a paused flow run")
    p.add_argument("run_id", help="the paused flow run (or its pipeline run) id")
    p.add_argument("--comment")
    p.add_argument("--actor", help="who approves (default: RETRAIN_ACTOR or the OS user)")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("reject", help="reject a promotion waiting in a paused flow run")
    p.add_argument("run_id", help="the paused flow run (or its pipeline run) id")
    p.add_argument("--reason", required=True)
    p.add_argument("--actor", help="who rejects (default: RETRAIN_ACTOR or the OS user)")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("notify", parents=[workspace_options],
                       help="the notification outbox: list, deliver pending, retry failed")
    p.add_argument("--flush", action="store_true", help="deliver every pending notification now")
    p.add_argument("--retry-failed", action="store_true", help="queue failed notifications again and deliver")
    p.add_argument("--status", choices=["pending", "sent", "failed"], help="only list these")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_notify)

    p = sub.add_parser("drift", parents=[workspace_options],
                       help="check drift of each production model's data (exit 1 on drift)")
    p.add_argument("--model", action="append", help="model name (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")
    p.add_argument("--html", metavar="PATH",
                   help="also write Evidently's HTML report to PATH (a folder for several models)")
    p.set_defaults(func=cmd_drift)

    # Commands that live in their own modules: A/B tests and rollouts, the prediction service.
    from retrain import cli_experiments, cli_serve
    cli_experiments.register(sub, workspace_options)
    cli_serve.register(sub, workspace_options)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    saved_logging = (log.handlers[:], log.level, log.propagate)
    _setup_logging(args.verbose)
    saved_config = os.environ.get("RETRAIN_CONFIG")
    if args.config:
        # Code that finds the config by itself (the Python API, flows) sees the same file.
        os.environ["RETRAIN_CONFIG"] = str(Path(args.config).resolve())
    try:
        return args.func(args)
    except RetrainError as exc:
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --output, a missing folder: the user's to fix
        if args.verbose:
            raise
        print(f"retrain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retrain: interrupted", file=sys.stderr)
        return 130
    finally:
        # main() is also called in-process (tests, scripts): leave the environment and the
        # "retrain" logger as found.
        if saved_config is None:
            os.environ.pop("RETRAIN_CONFIG", None)
        else:
            os.environ["RETRAIN_CONFIG"] = saved_config
        log.handlers, log.propagate = saved_logging[0], saved_logging[2]
        log.setLevel(saved_logging[1])


if __name__ == "__main__":
    sys.exit(main())
