"""`retrain ab ...` and `retrain rollout ...`: A/B tests and rollouts from the command line."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from retrain.cli.output import print_json
from retrain.errors import RetrainError


def _manager(args: argparse.Namespace):
    from retrain.experiments import ABTestingManager
    from retrain.workspace import Workspace
    return ABTestingManager(workspace=Workspace.open(args.config))


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RetrainError(f"--now {value!r}: expected an ISO time such as 2026-04-01T09:00 "
                           "(UTC unless it carries an offset)") from None
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


# retrain ab ----------------------------------------------------------------------------------

def cmd_ab_create(args: argparse.Namespace) -> int:
    test = _manager(args).create_ab_test(args.model, args.a, args.b, traffic_split=args.split,
                                         duration_days=args.days, metric=args.metric)
    if args.json:
        print_json(test)
        return 0
    print(f"started A/B test {test['test_id']}: {test['version_a']} (A, "
          f"{1 - test['traffic_split']:.0%}) vs {test['version_b']} (B, {test['traffic_split']:.0%}), "
          f"metric {test['metric']}, until {test['ends_at']:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_ab_status(args: argparse.Namespace) -> int:
    from retrain.reporting.experiments import status_text
    manager = _manager(args)
    if args.test_id:
        ids = [args.test_id]
    else:
        tests = manager.list_tests(model_name=args.model, active_only=True)
        if args.model and not tests:
            tests = manager.list_tests(model_name=args.model)[-1:]  # the latest one
        ids = [t.id for t in tests]
    documents = [manager.check_test_status(i) for i in ids]
    if args.json:
        print_json(documents[0] if args.test_id else {"tests": documents})
        return 0
    if not documents:
        print("no active A/B tests" + (f" for {args.model}" if args.model else "")
              + " (see `retrain ab list`)")
    print("\n\n".join(status_text(d) for d in documents))
    return 0


def cmd_ab_end(args: argparse.Namespace) -> int:
    result = _manager(args).end_test(args.test_id, promote_winner=not args.no_promote)
    if args.json:
        print_json(result)
        return 0
    winner = (f"winner {result['winner']} ({result['winner_version']})" if result["winner"]
              else "no winner")
    print(f"ended {args.test_id}: {result['status']}, {winner}; "
          + (f"promoted {result['promoted']}; " if result["promoted"] else "")
          + f"production is {result['production_version'] or 'none'}")
    return 0


def cmd_ab_list(args: argparse.Namespace) -> int:
    from retrain.experiments import store
    from retrain.reporting.experiments import experiments_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    experiments = store.list_experiments(ws.registry, args.model, None if args.all else "ab_test")
    if args.json:
        print_json({"experiments": [e.model_dump() for e in experiments]})
        return 0
    print(experiments_table(experiments))
    return 0


# retrain rollout -----------------------------------------------------------------------------

def cmd_rollout_start(args: argparse.Namespace) -> int:
    from retrain.reporting.experiments import schedule_table
    rollout = _manager(args).create_gradual_rollout(
        args.model, args.version, strategy=args.strategy, initial_traffic=args.initial,
        increment=args.increment, increment_interval_hours=args.interval_hours, steps=args.steps)
    if args.json:
        print_json(rollout)
        return 0
    if rollout["status"] == "completed":
        print(f"{rollout['new_version']} is production for {args.model} (immediate rollout)")
        return 0
    print(f"started {rollout['strategy']} rollout {rollout['rollout_id']}: "
          f"{rollout['traffic_percentage']}% of {args.model}'s traffic to {rollout['new_version']} "
          f"(production {rollout['production_version']})")
    print(schedule_table(rollout["schedule"], current_step=1))
    return 0


def cmd_rollout_status(args: argparse.Namespace) -> int:
    from retrain.reporting.experiments import schedule_table, status_text
    document = _manager(args).rollout_status(args.model)
    if args.json:
        print_json(document)
        return 0
    print(status_text(document))
    print(schedule_table(document["schedule"], current_step=document["step"]))
    return 0


def cmd_rollout_control(args: argparse.Namespace) -> int:
    manager = _manager(args)
    action = {"pause": manager.pause_rollout, "resume": manager.resume_rollout,
              "abort": manager.abort_rollout}[args.rollout_command]
    entry = action(args.model, reason=args.reason or "")
    if args.json:
        print_json(entry)
        return 0
    print(f"{entry['rollout_id']} {entry['action']}: {entry['traffic_percentage']}% of "
          f"{args.model}'s traffic to {entry['version']} (step {entry['step']} of {entry['steps']})")
    return 0


def cmd_rollout_advance(args: argparse.Namespace) -> int:
    """Exit status 1 when a rollout could not be handled (a conflict in the registry)."""
    from retrain.reporting.experiments import advance_table
    entries = _manager(args).advance_rollouts(now=_parse_now(args.now))
    if args.json:
        print_json({"rollouts": entries})
    else:
        print(advance_table(entries))
    return 1 if any(e["action"] == "failed" for e in entries) else 0


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add the `ab` and `rollout` commands to the `retrain` parser."""
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print one JSON document")
    common = [workspace_options, json_flag]

    ab = sub.add_parser("ab", help="A/B tests between two versions of a model")
    ab_sub = ab.add_subparsers(dest="ab_command", required=True, metavar="ACTION")
    p = ab_sub.add_parser("create", parents=common, help="start an A/B test")
    p.add_argument("model")
    p.add_argument("--a", default="production",
                   help="version A, the control: id, number or 'production' (default)")
    p.add_argument("--b", required=True, help="version B, the challenger: id or number")
    p.add_argument("--split", type=float, help="share of traffic to B (default: [abtest] traffic_split)")
    p.add_argument("--days", type=float, help="planned duration (default: [abtest] duration_days)")
    p.add_argument("--metric", choices=["accuracy", "brier", "log_loss", "reward"],
                   help="per-request metric (default: [abtest] metric)")
    p.set_defaults(func=cmd_ab_create)
    p = ab_sub.add_parser("status", parents=common,
                          help="status of a test, or of every active test (stores a new winner)")
    p.add_argument("test_id", nargs="?")
    p.add_argument("--model", help="the model's active (else latest) test")
    p.set_defaults(func=cmd_ab_status)
    p = ab_sub.add_parser("end", parents=common, help="end a test; promote its winner")
    p.add_argument("test_id")
    p.add_argument("--no-promote", action="store_true", help="do not promote the winner")
    p.set_defaults(func=cmd_ab_end)
    p = ab_sub.add_parser("list", parents=common, help="A/B tests, newest last")
    p.add_argument("--model")
    p.add_argument("--all", action="store_true", help="rollouts too")
    p.set_defaults(func=cmd_ab_list)

    rollout = sub.add_parser("rollout", help="canary, gradual and immediate rollouts")
    r_sub = rollout.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
    p = r_sub.add_parser("start", parents=common, help="start rolling a version out")
    p.add_argument("model")
    p.add_argument("version", help="the new version: id or number")
    p.add_argument("--strategy", choices=["canary", "gradual", "immediate"],
                   help="default: [rollout] strategy")
    p.add_argument("--initial", type=float, help="canary: first share of traffic, e.g. 0.1")
    p.add_argument("--increment", type=float, help="canary: share added per step, e.g. 0.2")
    p.add_argument("--interval-hours", type=float, help="hours between steps")
    p.add_argument("--steps", type=int, help="gradual: number of equal steps")
    p.set_defaults(func=cmd_rollout_start)
    p = r_sub.add_parser("status", parents=common, help="the model's rollout: step, numbers, guardrail")
    p.add_argument("model", help="model name (or rollout id)")
    p.set_defaults(func=cmd_rollout_status)
    for name, text in (("pause", "hold the rollout at its current step"),
                       ("resume", "continue a paused rollout (the step's clock restarts)"),
                       ("abort", "send all traffic back to production")):
        p = r_sub.add_parser(name, parents=common, help=text)
        p.add_argument("model")
        p.add_argument("--reason")
        p.set_defaults(func=cmd_rollout_control)
    p = r_sub.add_parser("advance", parents=common,
                         help="one pass of the rollout-advance job: guardrails, due steps, promotion")
    p.add_argument("--now", help="act as if it were this UTC time (ISO), e.g. to test a schedule")
    p.set_defaults(func=cmd_rollout_advance)
