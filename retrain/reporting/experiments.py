"""Plain-text renderings of experiments for the terminal (`retrain ab`, `retrain rollout`)."""

from __future__ import annotations

from typing import Any, Iterable

from retrain.registry.tables import Experiment
from retrain.reporting.tables import text_table


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _when(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value.replace("T", " ")[:16]
    return f"{value:%Y-%m-%d %H:%M}"


def experiments_table(experiments: Iterable[Experiment]) -> str:
    rows = [[e.id, e.model_name, e.kind.replace("_", " "), e.status, e.version_a, e.version_b,
             f"{e.traffic_b:.0%}", e.metric, e.winner or "-", _when(e.started_at),
             _when(e.ended_at)] for e in experiments]
    if not rows:
        return "no experiments yet (start one with `retrain ab create` or `retrain rollout start`)"
    return text_table(["id", "model", "kind", "status", "A", "B", "to B", "metric", "winner",
                       "started (UTC)", "ended (UTC)"], rows)


def status_text(document: dict[str, Any]) -> str:
    """An A/B test's or a rollout's status: the headline, the variants, the test, warnings."""
    winner = document.get("winner")
    headline = (f"{document['test_id']} ({document['model']}): {document['status'].upper()}"
                + (f", winner {winner} ({document['winner_version']})" if winner else ""))
    lines = [headline]
    if document.get("rollout_id"):
        lines.append(f"{document['strategy']} rollout, step {document['step']} of "
                     f"{document['steps']}: {document['traffic_percentage']}% to "
                     f"{document['version_b']}; next step "
                     f"{_when(document.get('next_step_at'))} UTC")
    elif document.get("ended_at"):
        lines.append(f"started {_when(document.get('started_at'))}, ended "
                     f"{_when(document['ended_at'])} UTC")
    else:
        lines.append(f"started {_when(document.get('started_at'))}, ends "
                     f"{_when(document.get('ends_at'))} UTC")
    variants = document.get("variants")
    if variants:
        metric = document["metric"]
        lines.append(text_table(
            ["variant", "version", "traffic", "requests", "outcomes", metric],
            [[v, d["version_id"], f"{d['traffic_share']:.0%}", d["requests"], d["outcomes"],
              _num(d["metric"])] for v, d in variants.items()]))
        direction = "higher" if document.get("higher_is_better", True) else "lower"
        lines.append(f"lift B - A: {_num(document.get('lift'))} ({direction} is better), "
                     f"always-valid {1 - document['alpha']:.0%} interval "
                     f"[{_num(document.get('ci_low'))}, {_num(document.get('ci_high'))}], "
                     f"p = {_p(document.get('p_value'))} (alpha {document['alpha']})")
        srm = document.get("srm")
        if srm:
            lines.append(f"traffic split check (SRM): "
                         f"{'MISMATCH' if srm['mismatch'] else 'ok'} (p = {_p(srm['p_value'])})")
    guardrail = document.get("guardrail")
    if guardrail:
        lines.append(f"guardrail (tolerance {guardrail['tolerance']}): "
                     f"{'BREACH: ' + guardrail['breach'] if guardrail['breach'] else 'ok'}")
    if document.get("reason"):
        lines.append(f"reason: {document['reason']}")
    if document.get("promoted"):
        lines.append(f"promoted {document['promoted']} to production")
    lines += [f"warning: {w}" for w in document.get("warnings") or []]
    return "\n".join(lines)


def schedule_table(schedule: list[dict[str, Any]], current_step: int | None = None) -> str:
    return text_table(["step", "traffic", "after (hours)", ""],
                      [[s["step"], f"{s['traffic_percentage']}%", s["delay_hours"],
                        "<- now" if s["step"] == current_step else ""] for s in schedule])


def advance_table(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no active rollouts"
    return text_table(["rollout", "model", "version", "action", "step", "traffic", "reason"],
                      [[e["rollout_id"], e["model"], e["version"], e["action"].upper(),
                        f"{e['step']}/{e['steps']}", f"{e['traffic_percentage']}%", e["reason"]]
                       for e in entries])
