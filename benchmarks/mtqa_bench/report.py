"""The bench report: `report.md`, the self-contained `report.html`, PNG plots and the headline
ratios from a sweep's `results.json`.

Plots (matplotlib Agg): throughput against p50/p95/p99 latency per variant and batching setting,
one panel per target; the per-request overhead breakdown (client, network, queue, compute); the
batching gain per user count. Ratios: served-through-SDK / in-process ORT at equal batch, best
served / naive at a p99 no worse, int8 / fp32, batching on / off, Locust / perf_analyzer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mtqa import htmlpage
from mtqa_bench.errors import BenchError
from mtqa_bench.stats import ratio

Row = dict[str, Any]
COLUMNS = (
    "source", "target", "transport", "variant", "batching", "users", "batch", "throughput",
    "p50_ms", "p95_ms", "p99_ms", "client_ms", "network_ms", "queue_ms", "compute_ms",
    "net_batch", "failures",
)  # fmt: skip
TARGETS = {"inspect": "mtqa_inspect (encoded images)", "net": "mtqa_net (raw tensors)"}
_PARTS = ("client_ms", "network_ms", "queue_ms", "compute_ms")


def load(path: Path) -> dict[str, Any]:
    """Read a sweep's results.json (raises BenchError when absent or malformed)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"cannot read bench results {path}: {exc}") from exc
    if "rows" not in data:
        raise BenchError(f"{path} holds no 'rows'; was it written by mtqa bench?")
    return data


def _pick(rows: Iterable[Row], **match: Any) -> list[Row]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


# -- ratios --------------------------------------------------------------------------------------
def sdk_vs_ort(rows: list[Row]) -> list[Row]:
    """Served raw network (SDK, Locust) / in-process ORT at the batch the server executed, with
    as many ORT sessions busy as the point kept server instances busy (users, up to the most the
    peer measured: the server's instance count)."""
    out = []
    for r in _pick(rows, source="locust", target="net"):
        batch = max(1, round(r.get("net_batch") or 1))
        peers = _pick(rows, source="ort", variant=r["variant"], batch=batch)
        busy = min(r["users"], max((p["users"] for p in peers), default=1))
        ort = _pick(peers, users=busy)
        value = ratio(r["throughput"], ort[0]["throughput"] if ort else None)
        point = {**_key(r), "transport": r.get("transport"), "exec_batch": batch}
        out.append({**point, "ratio": value})
    return out


def served_vs_naive(rows: list[Row]) -> Row | None:
    """Best served ensemble throughput at a p99 no worse than the naive server's best point."""
    naive = _pick(rows, source="naive")
    if not naive:
        return None
    best_naive = max(naive, key=lambda r: r["throughput"])
    served = [
        r
        for r in _pick(rows, source="locust", target="inspect")
        if r["p99_ms"] <= best_naive["p99_ms"]
    ]
    best = max(served, key=lambda r: r["throughput"]) if served else None
    return {
        "naive": best_naive,
        "served": best,
        "ratio": ratio(best["throughput"], best_naive["throughput"]) if best else None,
    }


def pairs(rows: list[Row], field: str, num: str, den: str, source: str = "locust") -> list[Row]:
    """Throughput ratio num/den of `field` (e.g. variant int8/fp32) at otherwise equal points."""
    out = []
    for r in _pick(rows, source=source, **{field: num}):
        others = {k: r[k] for k in ("target", "variant", "batching", "users") if k != field}
        match = _pick(rows, source=source, **{field: den}, **others)
        if match:
            out.append({**others, "ratio": ratio(r["throughput"], match[0]["throughput"])})
    return out


def ort_int8_vs_fp32(rows: list[Row]) -> list[Row]:
    """In-process ORT int8 / fp32 at every batch and session count measured for both."""
    out = []
    for r in _pick(rows, source="ort", variant="int8"):
        point = {"batch": r["batch"], "users": r["users"]}
        match = _pick(rows, source="ort", variant="fp32", **point)
        if match:
            out.append({**point, "ratio": ratio(r["throughput"], match[0]["throughput"])})
    return out


def locust_vs_perf(rows: list[Row]) -> list[Row]:
    """Locust throughput / perf_analyzer throughput at the same point."""
    out = []
    for r in _pick(rows, source="locust"):
        pa = _pick(rows, source="perf_analyzer", **_key(r))
        if pa:
            out.append({**_key(r), "ratio": ratio(r["throughput"], pa[0]["throughput"])})
    return out


def locust_vs_perf_gaps(rows: list[Row], limit: float = 0.2) -> list[str]:
    """One sentence per point where Locust and perf_analyzer differ by more than `limit`, from
    what each measured on its side of the wire (both generators share the server's host)."""
    lines = []
    for item in locust_vs_perf(rows):
        if item["ratio"] is None or abs(item["ratio"] - 1) <= limit:
            continue
        loc = _pick(rows, source="locust", **_key(item))[0]
        pa = _pick(rows, source="perf_analyzer", **_key(item))[0]
        side = [sum(r.get(k) or 0.0 for k in ("client_ms", "network_ms")) for r in (loc, pa)]
        lines.append(
            f"{item['target']} {item['variant']} batching {item['batching']}, {item['users']} "
            f"users: Locust {loc['throughput']:.0f} vs perf_analyzer {pa['throughput']:.0f} img/s "
            f"(x{item['ratio']:.2f}); client + network per request {side[0]:.2f} ms (Python SDK "
            f"under gevent) vs {side[1]:.2f} ms (C++), server queue + compute "
            f"{_server_ms(loc):.1f} vs {_server_ms(pa):.1f} ms: the generator's own CPU use, on "
            "the cores the server also needs, sets the gap."
        )
    return lines


def _server_ms(r: Row) -> float:
    return (r.get("queue_ms") or 0.0) + (r.get("compute_ms") or 0.0)


def _key(r: Row) -> Row:
    return {k: r[k] for k in ("target", "variant", "batching", "users")}


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """The headline figures (None where the sweep lacked the columns to compute one)."""
    rows = data["rows"]

    def spread(name: str, items: list[Row]) -> dict[str, float | None]:
        """Median and best over the points: one point alone can flatter on a busy machine."""
        values = [i["ratio"] for i in items if i["ratio"] is not None]
        return {
            f"{name}_median": float(np.median(values)) if values else None,
            f"{name}_best": max(values) if values else None,
        }

    naive = served_vs_naive(rows)
    gap = [abs(i["ratio"] - 1) for i in locust_vs_perf(rows) if i["ratio"] is not None]
    return {
        **spread("sdk_over_ort", sdk_vs_ort(rows)),
        "served_over_naive": naive["ratio"] if naive else None,
        **spread("int8_over_fp32_served", pairs(rows, "variant", "int8", "fp32")),
        **spread("int8_over_fp32_ort", ort_int8_vs_fp32(rows)),
        "batching_gain": {
            f"{i['target']} {i['variant']} u{i['users']}": i["ratio"]
            for i in pairs(rows, "batching", "on", "off")
        },
        "locust_vs_perf_median_gap": float(np.median(gap)) if gap else None,
        "locust_vs_perf_max_gap": max(gap) if gap else None,
    }


# -- plots ---------------------------------------------------------------------------------------
def _label(r: Row) -> str:
    if r["source"] == "naive":
        return "naive FastAPI + eager"
    return f"{r['variant']} batching {r['batching']}"


def _plain(value: float, _pos: object = None) -> str:
    """A tick label as a plain number (10, 20, 50), not 2x10^1."""
    return f"{value:g}"


def _panel_rows(rows: list[Row], target: str, source: str) -> list[Row]:
    """The rows one latency panel draws: the load tool's points, plus the naive server's (which
    Locust drives) in the Locust panel."""
    peers = ("naive",) if source == "locust" else ()
    return [r for r in rows if r["target"] == target and r["source"] in (source, *peers)]


def plot_latency(rows: list[Row], path: Path) -> Path | None:
    """Throughput (x) against p50/p95/p99 latency (y, log): one panel per target and load tool
    measured, one colour per variant and batching setting (numbers at the points: concurrent
    users); None when no load tool measured anything."""
    labels = sorted({_label(r) for r in rows if r["source"] in ("locust", "naive")})
    labels += sorted({_label(r) for r in rows if r["source"] == "perf_analyzer"} - set(labels))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    styles = {"p50_ms": ("-", "o"), "p95_ms": ("--", "s"), "p99_ms": (":", "^")}
    panels = [
        (t, s)
        for t in TARGETS
        for s in ("locust", "perf_analyzer")
        if any(r["source"] == s and r["target"] == t for r in rows)
    ]
    if not panels:
        return None
    columns = min(len(panels), 2)
    grid = (math.ceil(len(panels) / columns), columns)
    fig = Figure(figsize=(6.5 * columns, 4.6 * grid[0] + 0.8))
    axes = fig.subplots(*grid, squeeze=False).ravel()
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (target, source) in zip(axes, panels, strict=False):
        picked = _panel_rows(rows, target, source)
        groups: dict[str, list[Row]] = {}
        for r in picked:
            groups.setdefault(_label(r), []).append(r)
        for label, series in sorted(groups.items()):
            series.sort(key=lambda r: r["users"])
            colour = colours.get(label, "black")
            x = [r["throughput"] for r in series]
            for key, (ls, marker) in styles.items():
                ax.plot(x, [r[key] for r in series], ls=ls, marker=marker, color=colour, ms=4)
            for r in series:
                ax.annotate(str(r["users"]), (r["throughput"], r["p99_ms"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points", color=colour)  # fmt: skip
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(_plain))
        ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(_plain))
        ax.set_xlabel("throughput (images/s)")
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"{TARGETS[target]} - {source.replace('_', ' ')}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], color=c, lw=2, label=label) for label, c in colours.items()]
    handles += [
        Line2D([], [], color="grey", ls=ls, marker=m, label=k[:3]) for k, (ls, m) in styles.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle("Throughput vs latency (numbers at the p99 points = concurrent users)")
    fig.tight_layout(rect=(0, 0.8 / fig.get_figheight(), 1, 0.97))
    fig.savefig(path, dpi=100)
    return path


def plot_overhead(rows: list[Row], path: Path) -> Path:
    """Stacked per-request latency: client, network (+gRPC), server queue, server compute."""
    picked = [r for r in rows if r["source"] in ("locust", "perf_analyzer")]
    picked.sort(key=lambda r: (r["target"], r["variant"], r["batching"], r["source"], r["users"]))
    fig = Figure(figsize=(max(8, 0.45 * len(picked) + 2), 5.5))
    ax = fig.subplots()
    bottom = [0.0] * len(picked)
    for part, colour in zip(_PARTS, ("C0", "C1", "C3", "C2"), strict=True):
        values = [r.get(part) or 0.0 for r in picked]
        ax.bar(range(len(picked)), values, bottom=bottom, color=colour, label=part[:-3])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    labels = [
        f"{r['target']} {r['variant']} b={r['batching']}\n{r['source'][:6]} u{r['users']}"
        for r in picked
    ]
    ax.set_xticks(range(len(picked)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("mean ms per request")
    ax.set_title("Where a request's time goes (server queue/compute from Triton statistics)")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_batching(rows: list[Row], path: Path) -> Path | None:
    """Dynamic-batching gain (throughput on / off) per user count."""
    gains = pairs(rows, "batching", "on", "off")
    if not gains:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    groups: dict[str, list[Row]] = {}
    for g in gains:
        groups.setdefault(f"{g['target']} {g['variant']}", []).append(g)
    for label, items in sorted(groups.items()):
        items.sort(key=lambda g: g["users"])
        ax.plot([g["users"] for g in items], [g["ratio"] for g in items], marker="o", label=label)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    users = sorted({g["users"] for g in gains})
    ax.set_xticks(users, [str(u) for u in users])
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("throughput batching on / off")
    ax.set_title("Dynamic batching gain (Locust)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# -- markdown ------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


# Plain names of the headline figures (summary.json keeps the keys).
FIGURE_NAMES = {
    "sdk_over_ort_median": "served (SDK) / in-process ORT at the executed batch, median",
    "sdk_over_ort_best": "served (SDK) / in-process ORT at the executed batch, best point",
    "served_over_naive": "best served / naive server, at a p99 no worse",
    "int8_over_fp32_served_median": "INT8 / FP32 served, median",
    "int8_over_fp32_served_best": "INT8 / FP32 served, best point",
    "int8_over_fp32_ort_median": "INT8 / FP32 in-process ORT, median",
    "int8_over_fp32_ort_best": "INT8 / FP32 in-process ORT, best point",
    "locust_vs_perf_median_gap": "Locust vs perf_analyzer throughput gap, median",
    "locust_vs_perf_max_gap": "Locust vs perf_analyzer throughput gap, largest",
}
TARGETS_TEXT = (
    "Targets for the network measured: served (SDK) / ORT >= 0.85, served / naive >= 3 at a p99 "
    "no worse, INT8 / FP32 >= 2, Locust and perf_analyzer within 20 %."
)


def headline_rows(head: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure in words, value) for every headline figure that was measured."""
    rows = [(FIGURE_NAMES.get(k, k), _fmt(v)) for k, v in head.items() if k != "batching_gain"]
    rows += [(f"batching on / off, {k}", _fmt(v)) for k, v in head["batching_gain"].items()]
    return [(name, value) for name, value in rows if value != "-"]


def option_rows(options: dict[str, Any]) -> list[tuple[str, str]]:
    """(command-line option, value) for the options the sweep ran with."""
    rows = []
    for key, value in options.items():
        if isinstance(value, list):
            value = ",".join(map(str, value))
        rows.append((f"--{key.replace('_', '-')}", "-" if value is None else str(value)))
    return rows


def _sections(data: dict[str, Any], head: dict[str, Any]) -> list[tuple[str, list[str], list]]:
    """(title, columns, rows) of every table; a table without rows is left out of the report."""
    rows = data["rows"]
    ort_pairs = [{"sessions": i["users"], **i} for i in ort_int8_vs_fp32(rows)]
    naive = served_vs_naive(rows)
    picked = [r for r in (naive["naive"], naive["served"]) if r] if naive else []
    table = [
        ("All measurements", list(COLUMNS), rows),
        ("Served (SDK) / in-process ORT at the executed batch", ["target", "transport",
         "variant", "batching", "users", "exec_batch", "ratio"], sdk_vs_ort(rows)),
        ("INT8 / FP32 served", ["target", "batching", "users", "ratio"],
         pairs(rows, "variant", "int8", "fp32")),
        ("INT8 / FP32 in-process ORT", ["batch", "sessions", "ratio"], ort_pairs),
        ("Batching on / off", ["target", "variant", "users", "ratio"],
         pairs(rows, "batching", "on", "off")),
        ("Locust / perf_analyzer", ["target", "variant", "batching", "users", "ratio"],
         locust_vs_perf(rows)),
        ("Best served vs naive", ["source", "variant", "batching", "users", "throughput",
         "p99_ms"], picked),
    ]  # fmt: skip
    return [(title, cols, [[_fmt(r.get(c)) for c in cols] for r in items])
            for title, cols, items in table]  # fmt: skip


def _markdown(data: dict[str, Any], head: dict[str, Any], plots: list[Path]) -> str:
    meta = data.get("meta", {})

    def md_table(columns: list[str], rows: list) -> list[str]:
        return [
            "| " + " | ".join(columns) + " |",
            "|" + " --- |" * len(columns),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows),
        ]

    md = ["# mtqa bench report", ""]
    md += [f"Started {meta.get('started', '?')} on `{meta.get('host', '?')}`, "
           f"{meta.get('seconds', '?')} s.", ""]  # fmt: skip
    options = option_rows(meta.get("options", {}))
    if options:
        md += ["## Options", "", *md_table(["option", "value"], options), ""]
    md += ["## Headline ratios", ""]
    headline = headline_rows(head)
    md += md_table(["figure", "value"], headline) if headline else ["(none measured)"]
    md += ["", TARGETS_TEXT, ""]
    md += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    skipped = []
    for title, columns, rows in _sections(data, head):
        if not rows:
            skipped.append(title)
            continue
        md += [f"## {title}", ""]
        if title == "All measurements":
            md += ["Times in ms; throughput in images/s; `net_batch` = mean batch mtqa_net "
                   "executed (Triton statistics).", ""]  # fmt: skip
        md += [*md_table(columns, rows), ""]
        if title == "Locust / perf_analyzer":
            gaps = locust_vs_perf_gaps(data["rows"])
            if gaps:
                md += ["Points more than 20 % apart, and what each tool saw:", ""]
                md += [f"- {line}" for line in gaps] + [""]
    if skipped:
        md += [f"Not measured in this run: {', '.join(skipped)}.", ""]
    if data.get("notes"):
        md += ["## Notes", ""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(md) + "\n"


def _html(data: dict[str, Any], head: dict[str, Any], plots: list[Path]) -> str:
    h = htmlpage
    meta = data.get("meta", {})
    body = [
        f"<p>Started {h.esc(meta.get('started', '?'))} on <code>{h.esc(meta.get('host', '?'))}"
        f"</code>, {h.esc(meta.get('seconds', '?'))} s.</p>",
    ]
    options = option_rows(meta.get("options", {}))
    if options:
        body += ["<h2>Options</h2>", h.table(["option", "value"], options)]
    body += ["<h2>Headline ratios</h2>", h.table(["figure", "value"], headline_rows(head))]
    body += [f"<p class='note'>{h.esc(TARGETS_TEXT)}</p>", "<h2>Plots</h2>"]
    body += [h.figure(p.stem.replace("_", " "), p) for p in plots]
    skipped = []
    for title, columns, rows in _sections(data, head):
        if not rows:
            skipped.append(title)
            continue
        body += [f"<h2>{h.esc(title)}</h2>", h.table(columns, rows)]
        if title == "Locust / perf_analyzer":
            gaps = locust_vs_perf_gaps(data["rows"])
            body += (
                ["<ul>" + "".join(f"<li>{h.esc(g)}</li>" for g in gaps) + "</ul>"] if gaps else []
            )
    if skipped:
        body.append(f"<p class='note'>Not measured in this run: {h.esc(', '.join(skipped))}.</p>")
    if data.get("notes"):
        body += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{h.esc(n)}</li>" for n in
                                                     data["notes"]) + "</ul>"]  # fmt: skip
    body += ["<h2>Data files</h2>", "<ul><li>" + h.link("results.json", "results.json") +
             "</li><li>" + h.link("summary.json", "summary.json") + "</li></ul>"]  # fmt: skip
    return h.page("mtqa bench report", body)


def write_report(results: Path, out: Path | None = None) -> dict[str, Any]:
    """Write report.md, the self-contained report.html and PNGs next to results.json (or into
    `out`); returns the summary."""
    data = load(results)
    folder = (
        Path(out) if out else (Path(results) if Path(results).is_dir() else Path(results).parent)
    )
    folder.mkdir(parents=True, exist_ok=True)
    rows = data["rows"]
    if not rows:
        raise BenchError("the bench produced no measurements; see its notes and raw/ logs")
    head = summary(data)
    plots = [plot_latency(rows, folder / "throughput_latency.png"),
             plot_overhead(rows, folder / "overhead.png"),
             plot_batching(rows, folder / "batching_gain.png")]  # fmt: skip
    drawn = [p for p in plots if p]
    (folder / "report.md").write_text(_markdown(data, head, drawn))
    (folder / "summary.json").write_text(json.dumps(head, indent=2))
    (folder / "report.html").write_text(_html(data, head, drawn))
    return head


def format_summary(head: dict[str, Any]) -> str:
    """One line per headline figure, for the console."""
    lines = [f"{k:>28}: {_fmt(v)}" for k, v in head.items() if k != "batching_gain"]
    lines += [f"{'batching gain ' + k:>28}: {_fmt(v)}" for k, v in head["batching_gain"].items()]
    return "\n".join(lines)
