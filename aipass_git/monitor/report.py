"""`git aipass report --html FILE`: the figures as one self-contained HTML page.

Every chart is an SVG drawn by matplotlib and written into the page itself, next to a
table of the same numbers: no script, no stylesheet, font or image is loaded from
anywhere, and the page reads the same with JavaScript off (it has none). matplotlib is
imported here only (about half a second), through its object API, not pyplot.
"""

from __future__ import annotations

import html
import io
from typing import Any

OUTCOME_COLOURS = {"ok": "#2e7d32", "bounced": "#c62828", "crashed": "#6a1b9a", "cancelled": "#9e9e9e"}


def _svg(draw, width: float = 7.0, height: float = 2.8) -> str:
    from matplotlib.figure import Figure  # deferred: only the report draws

    fig = Figure(figsize=(width, height), dpi=96)
    ax = fig.add_subplot()
    draw(ax)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})  # no timestamp: the same data, the same page
    text = out.getvalue()
    return text[text.index("<svg"):]


def _bars(categories: list[str], stacks: dict[str, list[float]], ylabel: str):
    def draw(ax):
        bottom = [0.0] * len(categories)
        for name, values in stacks.items():
            ax.bar(categories, values, bottom=bottom, label=name, color=OUTCOME_COLOURS.get(name))
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel(ylabel)
        if len(stacks) > 1:
            ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return draw


def _histogram(values: list[float], xlabel: str):
    def draw(ax):
        ax.hist(values, bins=min(20, max(1, len(values))), color="#1565c0")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("runs")
    return draw


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or '<tr><td>none</td></tr>'}</tbody></table>"


def _section(title: str, chart: str | None, table: str, note: str = "") -> str:
    return (f"<section><h2>{html.escape(title)}</h2>" + (f"<figure>{chart}</figure>" if chart else "")
            + (f"<p>{html.escape(note)}</p>" if note else "") + table + "</section>")


def render(fig: dict[str, Any], title: str) -> str:
    d, m, p = fig["dispatches"], fig["mail"], fig["prs"]
    results = sorted({r for c in d["by_agent"].values() for r in c})
    agents = list(d["by_agent"])
    sections = [
        _section("Dispatches per agent, by outcome",
                 _svg(_bars(agents, {r: [d["by_agent"][a].get(r, 0) for a in agents] for r in results}, "dispatches"))
                 if agents else None,
                 _table(["agent", *results], [[a, *(d["by_agent"][a].get(r, 0) for r in results)] for a in agents])),
        _section("Dispatches over time",
                 _svg(_bars(list(d["by_day"]), {r: [d["by_day"][day].get(r, 0) for day in d["by_day"]] for r in results},
                            "dispatches")) if d["by_day"] else None,
                 _table(["day", *results], [[day, *(c.get(r, 0) for r in results)] for day, c in d["by_day"].items()])),
        _section("Run time", _svg(_histogram(d["runs"], "seconds from start to end")) if d["runs"] else None,
                 _table(["runs", "median s", "p95 s"], [[d["run_seconds"]["count"], d["run_seconds"]["median"],
                                                        d["run_seconds"]["p95"]]])),
        _section("Mail volume and answers",
                 _svg(_bars(list(m["by_day"]), {"messages": list(m["by_day"].values())}, "messages")) if m["by_day"] else None,
                 _table(["messages", "answered", "median answer s", "p95 answer s"],
                        [[m["total"], m["answer_seconds"]["count"], m["answer_seconds"]["median"], m["answer_seconds"]["p95"]]])),
        _section("PRs", None,
                 _table(["state", "PRs"], sorted(p["states"].items()))
                 + _table(["merged", "median lead s (opened to merged)", "p95 lead s"],
                          [[p["lead_seconds"]["count"], p["lead_seconds"]["median"], p["lead_seconds"]["p95"]]])
                 + _table(["bounce cause", "PRs"], sorted(p["bounce_causes"].items()))),
        _section("Errors found by the merge queue's audits",
                 _svg(_bars(list(fig["audit"]["errors_by_day"]), {"errors": list(fig["audit"]["errors_by_day"].values())},
                            "errors")) if fig["audit"]["errors_by_day"] else None,
                 _table(["day", "errors"], sorted(fig["audit"]["errors_by_day"].items()))),
        _section("Working memory per agent",
                 _svg(_bars(list(fig["memory_bytes"]), {"bytes": list(fig["memory_bytes"].values())}, "bytes"))
                 if fig["memory_bytes"] else None,
                 _table(["agent", "memory.json bytes"], sorted(fig["memory_bytes"].items()))),
        _section("Plans in progress", None,
                 _table(["plan", "title", "state", "done"],
                        [[x["id"][:12], x["title"], x["state"], f"{x['done']}/{x['phases']}"] for x in fig["plans"]])),
    ]
    since = f" since {fig['since']}" if fig["since"] else ""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Made {fig['made']}{since} by git aipass report.</p>"
            + "".join(sections) + "</body></html>\n")


STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
         "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.2rem .6rem;"
         "text-align:left}th{background:#f3f3f3}figure{margin:0}svg{max-width:100%;height:auto}")
