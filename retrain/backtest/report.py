"""A backtest for people: the policies side by side as text or markdown tables, and a
self-contained HTML page with the metric of each policy over time and its retrain and
promotion marks."""

from __future__ import annotations

from pathlib import Path

from retrain.backtest.results import BacktestResult
from retrain.reporting.tables import html_table, markdown_table, text_table, write_page
from retrain.reporting.tables import number_or_dash as _fmt

SUMMARY_HEADERS = ["policy", "model", "mean metric", "worst period", "retrains", "promotions",
                   "rejections", "run seconds"]


def summary_rows(result: BacktestResult) -> list[list[str]]:
    rows = []
    for policy in result.policies.values():
        for name, totals in policy.totals.items():
            rows.append([policy.policy, name,
                         f"{result.metrics.get(name, '')} {_fmt(totals.mean_metric)}".strip(),
                         _fmt(totals.worst_metric), str(totals.retrains), str(totals.promotions),
                         str(totals.rejections), f"{totals.seconds:.1f}"])
    return rows


def period_rows(result: BacktestResult, model: str) -> tuple[list[str], list[list[str]]]:
    """One row per period: for each policy the version it served and its metric next period,
    with R for a retrain and P for a promotion at that period end."""
    headers = ["period end", *result.policies]
    rows = []
    for k, period in enumerate(result.periods):
        row = [period.end[:10]]
        for policy in result.policies.values():
            outcome = policy.periods[model][k]
            marks = ("R" if outcome.retrained else "") + (
                "P" if outcome.decision in ("promoted", "bootstrapped") else "")
            row.append(f"{outcome.served_version or '-'} {_fmt(outcome.value)}"
                       + (f" {marks}" if marks else ""))
        rows.append(row)
    return headers, rows


def backtest_text(result: BacktestResult) -> str:
    lines = [f"Backtest: {len(result.periods)} periods of {result.every}, "
             f"{result.periods[0].end[:10]} .. {result.periods[-1].next_end[:10]}", "",
             text_table(SUMMARY_HEADERS, summary_rows(result))]
    for model in result.models:
        headers, rows = period_rows(result, model)
        lines += ["", f"{model}: served version and {result.metrics.get(model, 'metric')} on the "
                      "next period (R retrained, P promoted)", text_table(headers, rows)]
    return "\n".join(lines)


def backtest_markdown(result: BacktestResult) -> str:
    lines = [f"# Backtest: {len(result.periods)} periods of {result.every}", "",
             markdown_table(SUMMARY_HEADERS, summary_rows(result))]
    for model in result.models:
        headers, rows = period_rows(result, model)
        lines += ["", f"## {model}", "", markdown_table(headers, rows)]
    return "\n".join(lines)


def write_html(result: BacktestResult, path: Path) -> Path:
    """A self-contained page (plotly included): per model, each policy's metric on the next
    period over time, with its retrains (open circles) and promotions (stars) marked."""
    import plotly.graph_objects as go  # late: plotly is heavy, and only the page needs it
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=len(result.models), cols=1, shared_xaxes=True,
                        subplot_titles=[f"{m}: {result.metrics.get(m, 'metric')} on the next period"
                                        for m in result.models])
    for row, model in enumerate(result.models, start=1):
        for policy in result.policies.values():
            periods = policy.periods[model]
            x = [p.period_end[:10] for p in periods]
            fig.add_trace(go.Scatter(x=x, y=[p.value for p in periods], mode="lines+markers",
                                     name=f"{policy.policy} ({model})", legendgroup=policy.policy,
                                     hovertext=[f"{p.served_version}: {p.decision or 'no run'}"
                                                for p in periods]), row=row, col=1)
            retrained = [p for p in periods if p.retrained]
            fig.add_trace(go.Scatter(
                x=[p.period_end[:10] for p in retrained], y=[p.value for p in retrained],
                mode="markers", marker={"symbol": "circle-open", "size": 14},
                name=f"{policy.policy} retrains ({model})", legendgroup=policy.policy,
                showlegend=row == 1), row=row, col=1)
            promoted = [p for p in periods if p.decision in ("promoted", "bootstrapped")]
            fig.add_trace(go.Scatter(
                x=[p.period_end[:10] for p in promoted], y=[p.value for p in promoted],
                mode="markers", marker={"symbol": "star", "size": 12},
                name=f"{policy.policy} promotions ({model})", legendgroup=policy.policy,
                showlegend=row == 1), row=row, col=1)
    fig.update_layout(title=f"Backtest: {len(result.periods)} periods of {result.every}",
                      height=380 * len(result.models) + 120)
    return write_page(fig, path, "<h2>Totals</h2>" + html_table(SUMMARY_HEADERS, summary_rows(result)))
