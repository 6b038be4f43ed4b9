"""`retrain notify`, `approve` and `reject`: the outbox, and answers to pending promotions."""

from __future__ import annotations

import argparse
import logging

from retrain.cli.orchestrator import require
from retrain.cli.output import print_json

log = logging.getLogger("retrain")


def cmd_approve(args: argparse.Namespace) -> int:
    """Answer a promotion waiting for approval in a paused flow run."""
    from retrain.registry.rules import default_actor
    orchestrator = require(args.orchestrator, "answering a paused promotion")
    approve = args.command == "approve"
    comment = (args.comment if approve else args.reason) or ""
    resumed = orchestrator.answer_approval(args.run_id, approve, args.actor or default_actor(), comment)
    print(f"{'approved' if approve else 'rejected'}: flow run {resumed} resumes")
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    from retrain.notify import NotificationService
    from retrain.reporting.tables import text_table
    from retrain.workspace import Workspace
    ws = Workspace.open(args.config)
    service = NotificationService(workspace=ws)
    if args.retry_failed:
        log.info("%d failed notification(s) queued again", service.outbox.retry_failed())
    counts = None
    if args.flush or args.retry_failed:
        from retrain.promotion.switch import finish_interrupted
        for line in finish_interrupted(ws, service):
            log.warning("interrupted production switch: %s", line)
        counts = service.flush(now=True)
    rows = service.outbox.messages(status=args.status, limit=args.limit)
    if args.json:
        print_json({"delivered": counts, "notifications": [
            {"id": m.id, "kind": m.kind, "channel": m.channel, "model": m.model_name,
             "subject": m.subject, "status": m.status, "attempts": m.attempts,
             "last_error": m.last_error, "created_at": m.created_at, "sent_at": m.sent_at}
            for m in rows]})
        return 0
    if counts is not None:
        print(f"delivered {counts['sent']}, still pending {counts['retry'] + counts['skipped']}, "
              f"failed {counts['failed']}")
    if service.channels() == ["log"]:
        print("channels: log only (no [notifications] smtp_host with email_recipients, no "
              "webhook_url): notices are lines of the retrain log, in the console or the run's "
              "logs, and reach nobody else")
    print(text_table(["id", "created (UTC)", "kind", "channel", "status", "attempts", "subject", "last error"],
                     [[m.id, f"{m.created_at:%Y-%m-%d %H:%M:%S}", m.kind, m.channel, m.status,
                       m.attempts, m.subject[:60], (m.last_error or "")[:50]] for m in rows]))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def register(sub, workspace_options: argparse.ArgumentParser) -> None:
    """Add `approve`, `reject` and `notify` to the `retrain` parser."""
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
    p.add_argument("--flush", action="store_true",
                   help="finish interrupted production switches, deliver every pending notification now")
    p.add_argument("--retry-failed", action="store_true", help="queue failed notifications again and deliver")
    p.add_argument("--status", choices=["pending", "sent", "failed"], help="only list these")
    p.add_argument("--limit", type=_positive, default=30, help="how many rows to list (default 30)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_notify)
