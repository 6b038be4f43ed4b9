"""`retrain models`, `history`, `report`, `promote` and `rollback`: the registry from the
command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from retrain.cli.output import print_json


def _version_dict(ws, v) -> dict[str, Any]:
    return {"version_id": v.version_id, "number": v.number, "status": v.status, "kind": v.kind,
            "task": v.task,
            "params": v.params, "metrics": v.metrics, "created_at": v.created_at,
            "promoted_at": v.promoted_at,
            "train_window": {"start": v.train_start, "end": v.train_end},
            "holdout_start": v.holdout_start, "row_count": v.row_count,
            "holdout_rows": v.holdout_rows, "data_fingerprint": v.data_fingerprint,
            "artifact_path": ws.registry.artifact_url(v), "artifact_sha256": v.artifact_sha256}


def cmd_models(args: argparse.Namespace) -> int:
    from retrain.reporting.tables import text_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    models = []
    for m in ws.registry.models():
        versions = ws.registry.versions(m.name)
        prod = [v.version_id for v in versions if v.status == "production"]
        models.append({"name": m.name, "kind": m.kind, "production_version": prod[0] if prod else None,
                       "versions": [_version_dict(ws, v) for v in versions]})
    if args.json:
        print_json({"models": models})
        return 0
    if not models:
        print("no models registered yet (run `retrain run`)")
        return 0
    def primary(v: dict) -> str:  # the primary metric of the version's task
        metric = ws.settings.promotion.metric_for(v["task"])
        return f"{metric} {v['metrics'].get(metric, float('nan')):.4f}"

    rows = [[m["name"], v["version_id"], v["status"].upper() if v["status"] == "production" else v["status"],
             v["kind"], primary(v), v["row_count"],
             f"{v['train_window']['start']:%Y-%m-%d} .. {v['train_window']['end']:%Y-%m-%d}",
             f"{v['created_at']:%Y-%m-%d %H:%M}"] for m in models for v in m["versions"]]
    print(text_table(["model", "version", "status", "kind", "primary metric (own holdout)", "rows",
                      "training window", "created (UTC)"], rows))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from retrain.errors import RegistryError
    from retrain.reporting.tables import text_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    if args.model not in {m.name for m in ws.registry.models()}:
        raise RegistryError(f"no registered model {args.model!r}")
    events = ws.registry.history(args.model)
    if args.json:
        print_json({"model": args.model, "events": [
            {"action": e.action, "version_id": e.version_id, "actor": e.actor, "reason": e.reason,
             "at": e.at, "details": e.details} for e in events]})
        return 0
    print(text_table(["at (UTC)", "action", "version", "actor", "reason"],
                     [[f"{e.at:%Y-%m-%d %H:%M:%S}", e.action, e.version_id or "-", e.actor, e.reason]
                      for e in events]))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Exit status 1 when the smoke check undid the switch."""
    from retrain.promotion.decisions import promote_by_hand
    from retrain.workspace import Workspace
    result = promote_by_hand(Workspace.open(args.config), args.version, reason=args.reason or "",
                             force=args.force)
    if result.outcome == "undone":
        print(f"{result.version_id} was not kept: {result.reason}; production of "
              f"{result.model} is {result.previous or 'none'}")
        return 1
    print(f"{result.version_id} is now production for {result.model}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Exit status 1 when the smoke check undid the rollback."""
    from retrain.promotion.decisions import rollback_model
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    ws.model_names([args.model])
    result = rollback_model(ws, args.model, to=args.to, reason=args.reason or "")
    if result["outcome"] == "undone":
        print(f"the rollback of {args.model} was undone: {result['reason']}; production is "
              f"{result['production_version'] or 'none'}")
        return 1
    print(f"{result['production_version']} is production again for {args.model} "
          f"(was {result['rolled_back_from'] or 'none'})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The model's versions as a table; with ``--html``, its history page too."""
    from retrain.errors import RegistryError
    from retrain.pipeline.report_files import run_reports_dir
    from retrain.reporting.history import version_rows, write_history_html
    from retrain.reporting.tables import text_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    ws.model_names([args.model])
    rows = version_rows(ws, args.model)
    if not rows:
        raise RegistryError(f"no versions of {args.model!r} yet (run `retrain run`)")
    if args.html:
        write_history_html(ws, args.model, Path(args.html), run_reports_dir(ws, args.model))
    if args.json:
        print_json({"model": args.model, "versions": rows, "html": args.html})
        return 0
    print(text_table(list(rows[0]), [["-" if v is None else v for v in r.values()] for r in rows]))
    if args.html:
        print(f"\npage: {args.html}")
    return 0


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add `models`, `history`, `report`, `promote` and `rollback` to the `retrain` parser."""
    p = sub.add_parser("models", parents=[workspace_options], help="registered models and their versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("history", parents=[workspace_options], help="the audit log of one model")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("report", parents=[workspace_options],
                       help="one model's versions; --html: its history page (metrics, drift, live, changes)")
    p.add_argument("model")
    p.add_argument("--html", metavar="PATH", help="write the history page (plotly) to PATH")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

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
