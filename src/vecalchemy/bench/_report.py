"""The report of a bench, from its ``bench.json`` content: Markdown and a recall-QPS plot.

The plot needs matplotlib (the ``bench`` extra); it is drawn with the object-oriented API
on an Agg canvas, so pyplot's global state and the caller's backend are left alone.

Private to vecalchemy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["PLOT_HINT", "render_markdown", "render_plot"]

PLOT_HINT = "pip install 'vecalchemy[bench]' (matplotlib) to get recall_qps.png"


def _index_label(data: dict[str, Any]) -> str:
    ix = data["index"]
    params = ", ".join(f"{k}={v}" for k, v in ix["params"].items())
    return f"{ix['method']} ({params}), {ix['opclass']}"


def _title(data: dict[str, Any]) -> str:
    if data["dataset"] is not None:
        return f"dataset {data['dataset']['spec']}"
    return f"{data['table']}.{data['column']}"


def render_markdown(data: dict[str, Any], plot: str | None) -> str:
    """The report: where and what was measured, the steps as a table (the same rounded
    values as the JSON), the smallest setting reaching each recall target, the plot."""
    m, s = data["machine"], data["server"]
    k, setting = data["k"], data["setting"]
    lines = [
        f"# vecalchemy bench: {_title(data)}",
        "",
        f"Run {data['created']} in {data['seconds']:.1f} s on {m['cpu_count']} x {m['cpu']}, "
        f"Python {m['python']}, vecalchemy {m['packages']['vecalchemy']}; PostgreSQL "
        f"{s['postgresql']}, pgvector {s['pgvector']}.",
        "",
        f"- table: `{data['table']}`, column `{data['column']}`: {data['rows']:,} rows, "
        f"{data['dims']} dimensions ({data['storage']}), metric {data['metric']}",
        f"- index: `{data['index']['name']}`, {_index_label(data)}",
        f"- k = {k}; {data['queries']} queries, {data['query_source']}",
        f"- filter: {'`' + data['where'] + '`' if data['where'] else 'none'}",
        "- recall@k: the share of the exact top k (sequential scan) the index search found; "
        "latency per query from one client; QPS = queries / wall time of the searches",
        "",
        f"| {setting} | recall@{k} | p50 ms | p95 ms | QPS |",
        "|--:|--:|--:|--:|--:|",
    ]
    for step in [*data["steps"], data["exact"]]:
        value = step["value"] if step["value"] is not None else "exact"
        lines.append(
            f"| {value} | {step['recall']:.4f} | {step['p50_ms']:.3f} | {step['p95_ms']:.3f} "
            f"| {step['qps']:.1f} |"
        )
    lines.append("")
    best = max(data["steps"], key=lambda st: st["recall"])
    for target, value in data["reaches"].items():
        found = (
            f"{setting} = {value}"
            if value is not None
            else f"not reached (best {best['recall']:.4f} at {setting} = {best['value']})"
        )
        lines.append(f"- recall >= {target}: {found}")
    lines.append("")
    for warning in data["warnings"]:
        lines += [f"> warning: {warning}", ""]
    if plot is not None:
        lines.append(f"![recall vs QPS]({plot})")
    else:
        lines.append(f"No plot: {PLOT_HINT}.")
    return "\n".join(lines) + "\n"


def render_plot(data: dict[str, Any], path: Path) -> bool:
    """Draw recall (x) against QPS (y, log scale), one annotated point per step and the
    exact baseline, into the PNG ``path``; False (nothing written) without matplotlib."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return False
    steps = data["steps"]
    exact = data["exact"]
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    xs = [st["recall"] for st in steps]
    ys = [st["qps"] for st in steps]
    ax.plot(xs, ys, marker="o", color="#4c72b0", label=f"index, by {data['setting']}")
    for st in steps:
        ax.annotate(
            f"{st['value']}",
            (st["recall"], st["qps"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.scatter([exact["recall"]], [exact["qps"]], marker="s", color="#999999", label="exact scan")
    ax.annotate(
        "exact",
        (exact["recall"], exact["qps"]),
        textcoords="offset points",
        xytext=(-8, 4),
        ha="right",
        fontsize=8,
    )
    for target in data["reaches"]:
        ax.axvline(float(target), color="#dddddd", linestyle=":", zorder=0)
    low = min([*xs, exact["recall"]])
    ax.set_xlim(max(0.0, low - 0.05), 1.01)
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}")
    ax.yaxis.set_major_formatter(plain)
    # Within one decade the major ticks are too few: label the minor ones too.
    narrow = max([*ys, exact["qps"]]) < 10 * min([*ys, exact["qps"]])
    ax.yaxis.set_minor_formatter(plain if narrow else NullFormatter())
    ax.set_xlabel(f"recall@{data['k']} (vs exact search)")
    ax.set_ylabel("queries per second, one client (log scale)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(
        f"{_title(data)}: {data['rows']:,} rows x {data['dims']} dims, {data['metric']}\n"
        f"{_index_label(data)}; k={data['k']}, {data['queries']} queries",
        fontsize=9,
    )
    fig.savefig(path, dpi=110)
    return True
