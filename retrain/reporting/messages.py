"""Subjects and bodies (plain text and HTML) for each kind of notification."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any



@dataclass
class Message:
    kind: str
    subject: str
    text: str
    html: str = ""
    model_name: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def _metrics_table(candidate: dict[str, float] | None, production: dict[str, float] | None) -> tuple[str, str]:
    """The evaluation table as plain text and as HTML."""
    if not candidate:
        return "", ""
    rows = [(m, candidate.get(m), (production or {}).get(m)) for m in candidate]
    text = "\n".join(f"  {m:<10} {c:>8.4f}   {'' if p is None else f'{p:.4f}'}" for m, c, p in rows)
    text = f"  {'metric':<10} {'new':>8}   production\n" + text
    cells = "".join(f"<tr><td>{m}</td><td>{c:.4f}</td><td>{'' if p is None else f'{p:.4f}'}</td></tr>"
                    for m, c, p in rows)
    table = ("<table border='1' cellpadding='4' style='border-collapse:collapse'>"
             "<tr><th>metric</th><th>new</th><th>production</th></tr>" + cells + "</table>")
    return text, table


def _html(title: str, paragraphs: list[str], table: str = "") -> str:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return f"<html><body><h2>{html.escape(title)}</h2>{body}{table}</body></html>"


def pending_promotion(model: str, version: str, previous: str | None, reason: str,
                      candidate: dict | None = None, production: dict | None = None) -> Message:
    subject = (f"[retrain] {model}: {version} will replace {previous} in production" if previous
               else f"[retrain] {model}: {version} will become the first production version")
    lines = [f"{version} is about to become the production version of {model} "
             f"(now: {previous or 'none'}).", f"Why: {reason}"]
    text_table, html_table = _metrics_table(candidate, production)
    return Message("pending_promotion", subject, "\n".join(lines) + "\n\n" + text_table,
                   _html(subject, lines, html_table), model,
                   {"version_id": version, "previous_version": previous, "reason": reason,
                    "metrics": {"candidate": candidate, "production": production}})


def promotion(model: str, version: str, improvement_percent: float | None,
              new_metrics: dict[str, float], previous: str | None = None,
              production_metrics: dict | None = None, reason: str = "") -> Message:
    gain = "" if improvement_percent is None else f" ({improvement_percent:+.1f}%)"
    subject = f"[retrain] {model}: {version} promoted to production{gain}"
    lines = [f"{version} is now the production version of {model}"
             + (f", replacing {previous}." if previous else "."),
             *( [f"Why: {reason}"] if reason else [])]
    text_table, html_table = _metrics_table(new_metrics, production_metrics)
    return Message("promotion", subject, "\n".join(lines) + "\n\n" + text_table,
                   _html(subject, lines, html_table), model,
                   {"version_id": version, "previous_version": previous,
                    "improvement_percent": improvement_percent, "metrics": new_metrics})


def switch_abandoned(model: str, version: str, production: str | None, reason: str) -> Message:
    """A change of production that was announced did not happen."""
    subject = f"[retrain] {model}: {version} did not replace {production or 'nothing'} after all"
    lines = [f"The change announced earlier did not happen: {version} is not in production; "
             f"production of {model} is {production or 'none'}.", f"Why: {reason}"]
    return Message("switch_abandoned", subject, "\n".join(lines), _html(subject, lines), model,
                   {"version_id": version, "production_version": production, "reason": reason})


def rejection(model: str, version: str, reason: str, candidate: dict | None = None,
              production: dict | None = None) -> Message:
    subject = f"[retrain] {model}: {version} rejected"
    lines = [f"{version} was not promoted; production is unchanged.", f"Why: {reason}"]
    text_table, html_table = _metrics_table(candidate, production)
    return Message("rejection", subject, "\n".join(lines) + "\n\n" + text_table,
                   _html(subject, lines, html_table), model, {"version_id": version, "reason": reason})


def rollback(model: str, version: str, rolled_back_from: str | None, reason: str) -> Message:
    subject = f"[retrain] {model}: rolled back to {version}"
    lines = [f"{version} is the production version of {model} again"
             + (f", replacing {rolled_back_from}." if rolled_back_from else "."), f"Why: {reason}"]
    return Message("rollback", subject, "\n".join(lines), _html(subject, lines), model,
                   {"version_id": version, "rolled_back_from": rolled_back_from, "reason": reason})


def _drift_by_model(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per model ``{detected, drifted_features, share}`` from what a caller has: that mapping,
    one such dict, or the seed's ``should_retrain`` info (``{"models": {m: {"drift": ...}}}``)."""
    models = results.get("models")
    if isinstance(models, dict) and all(isinstance(e, dict) for e in models.values()):
        found = {m: e["drift"] if isinstance(e.get("drift"), dict) else e for m, e in models.items()}
        if all("detected" in r for r in found.values()):
            return found
    if results and all(isinstance(v, dict) and "detected" in v for v in results.values()):
        return results
    return {"data": results}


def drift_alert(drift_results: dict[str, Any],
                report_links: dict[str, str] | None = None) -> Message:
    """``drift_results``: per model ``{detected, drifted_features, share, features?}``, one
    such dict, or the seed's ``should_retrain`` info; ``report_links``: per model, a URL of
    its drift report that the reader can open."""
    per_model = _drift_by_model(drift_results)
    drifted = {m: r for m, r in per_model.items() if r.get("detected")}
    subject = (f"[retrain] data drift detected for {', '.join(drifted)}" if drifted
               else "[retrain] drift check: no drift detected")
    lines = []
    for model, r in per_model.items():
        feats = ", ".join(r.get("drifted_features", [])) or "none"
        lines.append(f"{model}: {'DRIFT' if r.get('detected') else 'no drift'} "
                     f"(share of drifted features {r.get('share', 0):.2f}; drifted: {feats})")
    links = {m: url for m, url in (report_links or {}).items() if url}
    body = _html(subject, lines, "".join(
        f'<p><a href="{html.escape(url)}">{html.escape(m)}: drift report</a></p>'
        for m, url in links.items()))
    lines += [f"{m} drift report: {url}" for m, url in links.items()]
    return Message("drift_alert", subject, "\n".join(lines), body,
                   next(iter(drifted), None), {"models": {m: {k: r.get(k) for k in
                                                             ("detected", "drifted_features", "share")}
                                                         for m, r in per_model.items()}})


def retraining_summary(drift_detected: bool, volume_threshold_met: bool,
                       deployment_results: dict[str, Any], summary_text: str = "") -> Message:
    models = deployment_results.get("models", {})
    promoted = [n for n, r in models.items() if r.get("decision") in ("promoted", "bootstrapped")]
    subject = (f"[retrain] retraining summary: {len(promoted)} promoted of {len(models)} "
               f"(drift {'yes' if drift_detected else 'no'}, volume {'met' if volume_threshold_met else 'not met'})")
    lines = [f"Drift detected: {'yes' if drift_detected else 'no'}",
             f"Volume threshold met: {'yes' if volume_threshold_met else 'no'}"]
    lines += [f"{n}: {r.get('decision', '?')} {r.get('version_id') or r.get('candidate_version') or ''}"
              f" - {r.get('reason', '')}" for n, r in models.items()]
    text = "\n".join(lines) + (f"\n\n{summary_text}" if summary_text else "")
    html_body = _html(subject, lines) + (f"<pre>{html.escape(summary_text)}</pre>" if summary_text else "")
    return Message("retraining_summary", subject, text, html_body, None,
                   {"drift_detected": drift_detected, "volume_threshold_met": volume_threshold_met,
                    "decisions": {n: r.get("decision") for n, r in models.items()}})


def failure(flow_name: str, run_name: str, state: str, message: str, url: str | None = None,
            flow_run_id: str | None = None) -> Message:
    """A run of one of our flows ended Failed or Crashed: which flow, which run, the state and
    the state's message (the error), and where to look."""
    subject = f"[retrain] {flow_name} run {run_name} {state.lower()}"
    lines = [f"The {flow_name} run {run_name} ended in state {state}.",
             message or "(the run left no message)"]
    if flow_run_id:
        lines.append(f"Flow run id: {flow_run_id}")
    if url:
        lines.append(f"Details: {url}")
    return Message("failure", subject, "\n".join(lines), _html(subject, lines), None,
                   {"flow": flow_name, "run": run_name, "flow_run_id": flow_run_id, "state": state,
                    "message": message, "url": url})


def ab_test_result(document: dict[str, Any]) -> Message:
    """A winner was declared, or a test ended; ``document`` is ``check_test_status``'s."""
    model, test_id, status = document["model"], document["test_id"], document["status"]
    winner = document.get("winner")
    verdict = f"{winner} ({document['winner_version']}) wins" if winner else "no winner"
    subject = f"[retrain] {model}: A/B test {test_id} {status}, {verdict}"
    variants = document["variants"]
    lines = [f"A/B test {test_id}: {document['version_a']} (A) vs {document['version_b']} (B), "
             f"metric {document['metric']}, status {status}."]
    for name in ("A", "B"):
        v = variants[name]
        metric = "-" if v["metric"] is None else f"{v['metric']:.4f}"
        lines.append(f"{name} {v['version_id']}: {v['requests']} requests, {v['outcomes']} "
                     f"outcomes, {document['metric']} {metric}")
    if document.get("p_value") is not None:
        lines.append(f"Always-valid p-value {document['p_value']:.3g} (alpha {document['alpha']}).")
    lines += list(document.get("warnings") or [])
    if document.get("promoted"):
        lines.append(f"{document['promoted']} was promoted to production.")
    return Message("ab_test_result", subject, "\n".join(lines), _html(subject, lines), model,
                   {"test_id": test_id, "status": status, "winner": winner,
                    "winner_version": document.get("winner_version"),
                    "p_value": document.get("p_value"), "promoted": document.get("promoted")})


def ab_test_started(model: str, test_id: str, version_a: str, version_b: str,
                    traffic_split: float, metric: str, ends_at: Any, actor: str) -> Message:
    subject = f"[retrain] {model}: A/B test {test_id} started ({version_a} vs {version_b})"
    lines = [f"{actor} started A/B test {test_id} on {model}: {version_a} (A) gets "
             f"{1 - traffic_split:.0%} of the traffic, {version_b} (B) {traffic_split:.0%}.",
             f"The variants are compared on {metric}; the test is planned until {ends_at:%Y-%m-%d %H:%M} UTC.",
             f"`retrain ab status {test_id}` shows the numbers; `retrain ab end {test_id}` ends it."]
    return Message("ab_test_started", subject, "\n".join(lines), _html(subject, lines), model,
                   {"test_id": test_id, "version_a": version_a, "version_b": version_b,
                    "traffic_split": traffic_split, "metric": metric})


def rollout_step(model: str, rollout_id: str, version: str, step: int, steps: int,
                 traffic_percentage: float, reason: str = "") -> Message:
    subject = (f"[retrain] {model}: rollout of {version} at {traffic_percentage:g}% "
               f"(step {step} of {steps})")
    lines = [f"Rollout {rollout_id} now sends {traffic_percentage:g}% of {model}'s traffic to "
             f"{version} (step {step} of {steps})."] + ([reason] if reason else [])
    return Message("rollout_step", subject, "\n".join(lines), _html(subject, lines), model,
                   {"rollout_id": rollout_id, "version_id": version, "step": step,
                    "steps": steps, "traffic_percentage": traffic_percentage})


def rollout_rollback(model: str, rollout_id: str, version: str, production: str | None,
                     reason: str) -> Message:
    subject = f"[retrain] {model}: rollout of {version} rolled back"
    lines = [f"Rollout {rollout_id} sends no more traffic to {version}; all of {model}'s traffic "
             f"goes to {production or 'the production version'}.", f"Why: {reason}"]
    return Message("rollout_rollback", subject, "\n".join(lines), _html(subject, lines), model,
                   {"rollout_id": rollout_id, "version_id": version,
                    "production_version": production, "reason": reason})
