"""`retrain drift`: each production model's drift, with its tables and report."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from retrain.cli.output import print_json


def cmd_drift(args: argparse.Namespace) -> int:
    """Exit status 0: no drift; 1: drift in at least one model; 2: an error."""
    from retrain.drift.check import check_drift
    from retrain.reporting.tables import text_table
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
    results = {n: c.summary() for n, c in checks.items()}
    detected = any(r.detected for r in results.values())
    if args.json:
        print_json({"detected": detected, "models": {n: r.to_dict() for n, r in results.items()}})
        return 1 if detected else 0
    for name, r in results.items():
        rule = r.decision or ""
        print(f"{name}: {'DRIFT DETECTED' if r.detected else 'no drift'} "
              f"({len(r.drifted_features)} drifted features, share {r.share:.2f}"
              f"{', rule ' + rule if rule else ''})"
              f"{' - ' + r.note if r.note else ''}")
        importance = {f.feature: f for f in r.features or []}

        def share(feature: str) -> str:
            row = importance.get(feature)
            return "-" if row is None or row.importance is None else f"{row.importance:.1%}"

        rows = [[t.feature if part == "features" else f"[{part}] {t.feature}", t.method,
                 f"{t.value:.4g}", f"{t.threshold:.4g}",
                 "-" if t.effect is None else f"{t.effect:.3f}",
                 share(t.feature) if part == "features" else "-",
                 "yes" if t.drifted else ("held back (effect)" if t.held_back else "no")]
                for part, t in r.parts_tables()]
        if rows:
            print(text_table(["feature", "method", "value", "threshold", "effect", "importance",
                              "drifted"], rows))
        if r.below_importance:
            print(f"  below [drift] min_importance (reported, not triggering): "
                  f"{', '.join(r.below_importance)}")
        d = r.domain_classifier
        if d is not None:
            print(f"  domain classifier: ROC AUC {d.auc:.3f} [{d.lower:.3f}, {d.upper:.3f}] "
                  f"vs {d.threshold} -> {'DRIFT' if d.detected else 'no drift'}; relies on "
                  + ", ".join(f"{f.feature} ({f.importance:.0%})" for f in d.top_features[:5]))
        for seg in r.segments:
            for row in seg.segments:
                if row.detected:
                    print(f"  segment {seg.segment}={row.value}: "
                          f"{', '.join(row.drifted_features)} drifted")
            if seg.note:
                print(f"  segments by {seg.segment}: {seg.note}")
        for part, info in (("label drift", r.label_drift), ("prediction drift", r.prediction_drift)):
            if info is not None and info.note:
                print(f"  {part}: {info.note}")
        if r.report is not None and r.report.html:
            print(f"  report: {r.report.html}")
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


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add `drift` to the `retrain` parser."""
    p = sub.add_parser("drift", parents=[workspace_options],
                       help="check drift of each production model's data (exit 1 on drift)")
    p.add_argument("--model", action="append", help="model name (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")
    p.add_argument("--html", metavar="PATH",
                   help="also write Evidently's HTML report to PATH (a folder for several models)")
    p.set_defaults(func=cmd_drift)
