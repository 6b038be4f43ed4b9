"""`retrain backtest`: replay the workspace's feature store under several retraining policies
(see ``retrain.backtest.replay``); the workspace's registry is never opened."""

from __future__ import annotations

import argparse
from datetime import datetime

from retrain.cli.output import print_json
from retrain.errors import ConfigError


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date such as 2026-03-01, got {text!r}") from None


def cmd_backtest(args: argparse.Namespace) -> int:
    from retrain.backtest.replay import backtest, parse_overrides
    from retrain.backtest.report import backtest_text, write_html
    from retrain.config import load_config
    if args.start and args.end and args.start >= args.end:
        raise ConfigError(f"--from {args.start:%Y-%m-%d} is not before --to {args.end:%Y-%m-%d}")
    result = backtest(load_config(args.config), start=args.start, end=args.end, every=args.every,
                      policies=args.policy, overrides=parse_overrides(args.set or []),
                      models=args.model)
    if args.html:
        write_html(result, args.html)
    if args.json:
        print_json(result.to_dict())
    else:
        print(backtest_text(result))
        if args.html:
            print(f"\npage: {args.html}")
    return 0


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add `backtest` to the `retrain` parser."""
    p = sub.add_parser("backtest", parents=[workspace_options],
                       help="replay the feature store under retraining policies and compare them")
    p.add_argument("--from", dest="start", type=_date, metavar="DATE",
                   help="the first period end (default: one period after the first row)")
    p.add_argument("--to", dest="end", type=_date, metavar="DATE",
                   help="the end of the replay (default: the last row)")
    p.add_argument("--every", default="30d", help="the period: <N>d, <N>h or <N>w (default 30d)")
    p.add_argument("--policy", action="append", metavar="NAME",
                   help="configured | never | always | oracle (repeatable; default: all)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting of the configured policy, e.g. "
                        "promotion.improvement_basis=metric (repeatable)")
    p.add_argument("--model", action="append", help="model name (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON document")
    p.add_argument("--html", metavar="PATH", help="also write the comparison page (plotly) to PATH")
    p.set_defaults(func=cmd_backtest)
