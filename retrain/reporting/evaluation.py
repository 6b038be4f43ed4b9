"""An evaluation for people: one line, the interval, and the candidate-vs-production table."""

from __future__ import annotations

from retrain.evaluation.results import Evaluation, Interval
from retrain.stats.metrics import relative_improvement


def interval_text(interval: Interval | None) -> str:
    if interval is None:
        return "-"
    return (f"[{interval.lower:+.4f}, {interval.upper:+.4f}] "
            f"({interval.confidence:.0%} {interval.method})")


def evaluation_line(evaluation: Evaluation) -> str:
    metric = evaluation.metric
    cand, prod = evaluation.candidate_metric, evaluation.production_metric
    if prod is None:
        return f"{metric} {cand:.4f} (no production version)"
    return (f"{metric} {cand:.4f} vs production {prod:.4f} "
            f"(difference {cand - prod:+.4f}, {evaluation.relative_improvement:+.1%}"
            f"{evaluation.basis_words()}; interval {interval_text(evaluation.interval)})")


def evaluation_markdown(evaluations: dict[str, Evaluation]) -> str:
    """A markdown table: one row per model and metric, candidate vs production."""
    lines = ["| model | metric | candidate | production | difference | relative improvement |",
             "|---|---|---:|---:|---:|---:|"]
    for name, ev in evaluations.items():
        cand, prod = ev.metrics.candidate, ev.metrics.production
        for metric in cand:  # the task's metrics, in their order
            rel = (relative_improvement(metric, cand[metric], prod[metric], ev.improvement_basis)
                   if prod else None)
            star = " **(primary)**" if metric == ev.metric else ""
            guard = " (guardrail)" if metric in ev.guardrails else ""
            diff = None if prod is None else cand[metric] - prod[metric]
            lines.append(f"| {name} | {metric}{star}{guard} | {cand[metric]:.4f} | "
                         f"{'-' if prod is None else f'{prod[metric]:.4f}'} | "
                         f"{'-' if diff is None else f'{diff:+.4f}'} | "
                         f"{'-' if rel is None else f'{rel:+.2%}'} |")
    intervals = [f"- **{n}**: challenger better than champion on {ev.metric} by "
                 f"{ev.interval.difference:+.4f}, interval {interval_text(ev.interval)}"
                 for n, ev in evaluations.items() if ev.interval is not None]
    if intervals:
        lines += ["", *intervals]
    return "\n".join(lines)
