"""The report's plots, drawn by matplotlib as inline SVG: search trials, quality vs size, latency, sparsity,
wall time.

Each plot is a pure function of the report dict. matplotlib is imported inside the functions that
draw, so that importing edgekit.report (and the CLI) stays cheap; the Agg/SVG backends need no display.
Every runtime keeps its colour across the page's plots.
"""

from __future__ import annotations

import io
import re
from html import escape
from typing import NamedTuple

from edgekit.formats.registry import runtime_names
from edgekit.report.contents import final_artifacts_with_layers, quality_key
from edgekit.report.formatting import format_percent, format_quality
from edgekit.report.search import completed_points

# runtime -> colour; shared by every plot so a runtime keeps its colour across the page
_RUNTIME_COLORS = {"litert": "#1f77b4", "onnxruntime": "#ff7f0e"}
_OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_ROLE_MARKERS = {"baseline": "s", "final": "o"}
_RUNTIME_ORDER = {name: rank for rank, name in enumerate(runtime_names())}  # ties: the registry's order


class Plot(NamedTuple):
    """One drawn figure: `key` names it in the page (id="plot-<key>"), `svg` is self-contained SVG markup;
    a `wide` figure (wider than 8 inches, as the two-panel search plot) spans the page's row of plots."""

    key: str
    caption: str
    svg: str
    wide: bool = False


def report_plots(report: dict) -> list[Plot]:
    """The figures that have data, in page order; a plot without data is left out, never drawn empty."""
    plots = []
    for key, draw, caption in (
        ("search-pareto", _plot_search, "Search trials: quality (validation split) against file size (log scale) "
         "and p50 latency. Filled circles meet every gate, hollow ones miss one; orange circles are the Pareto "
         "points (joined by a step line where they form a front on that axis), blue and grey ones are not; the "
         "star is the chosen trial. Failed trials are not drawn."),
        ("quality-size", _plot_quality_vs_size, "Quality against file size (log scale). The teacher is the "
         "dashed line; hollow diamonds (where present) are the stages' in-framework figures, at params x 4 bytes."),
        ("sensitivity", _plot_sensitivity, "Per-layer quantization sensitivity: the drop (points, validation "
         "split) when the layer alone is quantized, per format, most sensitive first."),
        ("latency", _plot_latency, "Latency per artifact on its runtime: bar = p50, whisker = p90."),
        ("sparsity", _plot_sparsity, "Zero weights per layer, counted in each final file."),
        ("wall-time", _plot_wall_time, "Wall time of each stage of the run."),
    ):
        drawn = draw(report)
        if drawn is not None:
            figure, alt = drawn
            plots.append(Plot(key, caption, _svg(figure, key, alt), wide=bool(figure.get_figwidth() > 8)))
    return plots


def _svg(figure, key: str, alt: str) -> str:
    """A matplotlib figure as inline SVG: deterministic ids, no metadata, a <title> for screen readers."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"edgekit-{key}", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Format": None, "Type": None, "Creator": None, "Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE (it names an external DTD)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"',
                 lambda m: f'<svg {m.group(1)}role="img" aria-labelledby="svg-title-{key}"', svg, count=1)
    open_tag_end = svg.index(">") + 1
    return f'{svg[:open_tag_end]}\n<title id="svg-title-{key}">{escape(alt)}</title>{svg[open_tag_end:]}'


def _new_figure(width: float, height: float):
    """A figure (width x height inches) with one light-gridded axes, drawn off-screen by Agg."""
    figure = _blank_figure(width, height)
    return figure, _gridded(figure.add_subplot())


def _blank_figure(width: float, height: float):
    """A figure (width x height inches) without axes, drawn off-screen by Agg."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _gridded(axes):
    """The axes in the plots' style: a light grid behind the data, no top or right spine."""
    axes.grid(True, color="#e1e4e8", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return axes


def _color(runtime: str, seen: dict) -> str:
    """The runtime's colour; a runtime without one of its own gets the next spare colour, remembered in `seen`."""
    if runtime not in _RUNTIME_COLORS and runtime not in seen:
        seen[runtime] = _OTHER_COLORS[len(seen) % len(_OTHER_COLORS)]
    return _RUNTIME_COLORS.get(runtime) or seen[runtime]


def _plot_quality_vs_size(report: dict):
    """Quality against file size of every measured file, with the teacher and the stages' in-framework figures."""
    key = quality_key(report)
    label = "top-1 accuracy" if key == "accuracy" else "MAE (lower is better)"
    files = [a for a in report.get("artifacts", []) if a.get("bytes") and a.get(key) is not None]
    stages = [s for s in report.get("stages", []) if (s.get("metrics") or {}).get(key) is not None
              and (s.get("metrics") or {}).get("params")]
    if not files and not stages:
        return None
    figure, axes = _new_figure(6.4, 4.2)
    extra = {}
    teacher = next((a for a in report.get("artifacts", [])
                    if a.get("role") == "teacher" and a.get(key) is not None), None)
    if teacher:
        axes.axhline(teacher[key], color="#555", linestyle="--", linewidth=1.2,
                     label=f"teacher ({teacher.get('runtime')}): {format_quality(report, teacher[key])}")
    for s in stages:
        metrics = s["metrics"]
        axes.scatter(4 * metrics["params"], metrics[key], marker="D", s=36, facecolors="none",
                     edgecolors="#6e7781", zorder=3)
        axes.annotate(s["name"], (4 * metrics["params"], metrics[key]), textcoords="offset points", xytext=(6, 0),
                      va="center", fontsize=8, color="#57606a")
    if stages:
        axes.scatter([], [], marker="D", facecolors="none", edgecolors="#6e7781", label="stage, in framework")
    for a, place in zip(files, _label_places(files, key)):
        runtime = str(a.get("runtime"))
        axes.scatter(a["bytes"], a[key], marker=_ROLE_MARKERS.get(a.get("role"), "^"), s=56, zorder=4,
                     color=_color(runtime, extra), edgecolors="white", linewidths=0.8)
        offset, ha, va = {"above": ((0, 9), "center", "bottom"), "below": ((0, -10), "center", "top"),
                          "right": ((8, 0), "left", "center")}[place]
        axes.annotate(f"{a['name']} ({runtime})", (a["bytes"], a[key]), textcoords="offset points",
                      xytext=offset, ha=ha, va=va, fontsize=8)
    for runtime in dict.fromkeys(str(a.get("runtime")) for a in files):
        axes.scatter([], [], color=_color(runtime, extra), label=runtime)
    for role in dict.fromkeys(a.get("role") for a in files if a.get("role") in _ROLE_MARKERS):
        axes.scatter([], [], marker=_ROLE_MARKERS[role], color="#8c959f", label=f"{role} file")
    _size_axis(axes)
    values = [a[key] for a in files] + [s["metrics"][key] for s in stages] + ([teacher[key]] if teacher else [])
    low, high = min(values), max(values)
    span = max(high - low, 0.02 if key == "accuracy" else 0.1 * abs(high) or 0.1)
    top = high + 0.35 * span
    axes.set_ylim(low - 0.35 * span, min(top, 1.01) if key == "accuracy" and high <= 1.0 else top)
    axes.set_xlabel("file size (log scale)")
    axes.set_ylabel(label)
    axes.set_title("Quality vs size", loc="left", fontsize=11, fontweight="bold")
    # below the axes, so the legend never covers a point or a label
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    if key == "accuracy":
        from matplotlib.ticker import PercentFormatter
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))  # decimals follow the range
    return figure, f"Scatter plot of {label} against file size for {len(files)} exported files"


def _label_places(files: list[dict], key: str) -> list[str]:
    """Where each point's label goes so that neighbours (within 0.3 decades of size) do not collide:
    the highest of a group is labelled above, the next below, any others to the right."""
    import math

    places = []
    for a in files:
        group = [b for b in files if abs(math.log10(b["bytes"] / a["bytes"])) < 0.3]
        group.sort(key=lambda b: (-b[key], _RUNTIME_ORDER.get(b.get("runtime"), 0), b["bytes"]))
        rank = next(i for i, b in enumerate(group) if b is a)
        places.append(("above", "below", "right")[min(rank, 2)])
    return places


def _size_axis(axes) -> None:
    """Log x axis of file sizes, ticked at 1-2-5 steps and labelled in kB/MB rather than 10^n."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes.set_xscale("log")
    axes.margins(x=0.25)
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=9))
    axes.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v / 1e6:g} MB" if v >= 1e6 else f"{v / 1e3:g} kB" if v >= 1e3 else f"{v:g} B"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _plot_latency(report: dict):
    """p50 latency bars with p90 whiskers, one per timed artifact."""
    timed = [a for a in report.get("artifacts", []) if (a.get("latency_ms") or {}).get("p50") is not None]
    if not timed:
        return None
    figure, axes = _new_figure(6.4, 4.2)
    extra = {}
    p50 = [a["latency_ms"]["p50"] for a in timed]
    p90 = [max(a["latency_ms"].get("p90") or p, p) for a, p in zip(timed, p50)]
    names = [f"{a['name']}\n({a.get('runtime')})\np50 {p:.3g} ms" for a, p in zip(timed, p50)]
    colors = [_color(str(a.get("runtime")), extra) for a in timed]
    axes.bar(range(len(timed)), p50, color=colors, width=0.6,
             yerr=[[0] * len(timed), [hi - lo for lo, hi in zip(p50, p90)]],
             error_kw={"ecolor": "#24292f", "capsize": 5, "elinewidth": 1.2})
    axes.set_xticks(range(len(timed)), names, fontsize=8)
    axes.set_ylabel("latency per batch (ms)")
    axes.set_ylim(0, max(p90) * 1.15)
    axes.set_title("Latency: p50 (bar) and p90 (whisker)", loc="left", fontsize=11, fontweight="bold")
    axes.grid(False, axis="x")
    return figure, "Bar chart of p50 latency with p90 whiskers for " + ", ".join(a["name"] for a in timed)


def _short_layer(name: str, limit: int = 30) -> str:
    """`model/quant_dense_1/MatMul;...FakeQuant...` -> `quant_dense_1/MatMul`: the layer and its op."""
    short = "/".join(name.split(";")[0].rstrip("/").split("/")[-2:]) or name
    return short if len(short) <= limit else "…" + short[-(limit - 1):]


def _plot_sparsity(report: dict):
    """Zero-weight fraction of each layer of the final files; drawn only when some layer is at least 5% sparse."""
    artifacts = report.get("artifacts", [])
    if not any((layer.get("sparsity") or 0) >= 0.05 for a in artifacts for layer in a.get("layers") or []):
        return None
    finals = final_artifacts_with_layers(report)
    if not finals:
        return None
    rows = [(a, layer) for a in finals for layer in a["layers"]]
    figure, axes = _new_figure(6.4, max(2.6, 0.9 + 0.3 * len(rows)))
    extra = {}
    y = list(range(len(rows)))
    colors = [_color(str(a.get("runtime")), extra) for a, _ in rows]
    bars = axes.barh(y, [layer.get("sparsity") or 0 for _, layer in rows], color=colors, height=0.7)
    axes.bar_label(bars, labels=[f"{100 * (layer.get('sparsity') or 0):.0f}%" for _, layer in rows],
                   padding=3, fontsize=8)
    axes.set_yticks(y, [f"{a['name']}: {_short_layer(layer.get('name', '?'))}" for a, layer in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    axes.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    axes.set_xlabel("zero weights in the exported file")
    axes.grid(False, axis="y")
    target = next((s["details"]["target_sparsity"] for s in report.get("stages", [])
                   if (s.get("details") or {}).get("target_sparsity") is not None), None)
    if target is not None:
        axes.axvline(target, color="#c62828", linestyle=":", linewidth=1.2)
        axes.set_xlabel(f"zero weights in the exported file (dotted line: prune target {format_percent(target)})")
    axes.set_title("Weight sparsity per layer", loc="left", fontsize=11, fontweight="bold")
    return figure, "Horizontal bar chart of weight sparsity per layer of " + ", ".join(a["name"] for a in finals)


def _plot_wall_time(report: dict):
    """Wall time of each stage of the run, exports and evaluations greyed."""
    stages = [s for s in report.get("stages", []) if s.get("wall_s") is not None]
    if not stages:
        return None
    figure, axes = _new_figure(6.4, max(2.6, 0.9 + 0.28 * len(stages)))
    kind = {"export": "#8c959f", "evaluate": "#afb8c1"}
    colors = [kind.get(str(s["name"]).split(" ")[0], "#2da44e") for s in stages]
    bars = axes.barh(range(len(stages)), [s["wall_s"] for s in stages], color=colors, height=0.7)
    axes.bar_label(bars, labels=[f"{s['wall_s']:.2f} s" for s in stages], padding=3, fontsize=8)
    axes.set_yticks(range(len(stages)), [str(s["name"]) for s in stages], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, max(s["wall_s"] for s in stages) * 1.18 or 1)
    axes.set_xlabel("wall time (s)")
    axes.grid(False, axis="y")
    axes.set_title(f"Stage wall time (total {sum(s['wall_s'] for s in stages):.1f} s)", loc="left",
                   fontsize=11, fontweight="bold")
    return figure, f"Horizontal bar chart of the wall time of {len(stages)} stages"


def _plot_sensitivity(report: dict):
    """Drop when each layer alone is quantized, one bar per format, most sensitive layer on top."""
    analysis = report.get("analysis") or {}
    rows = analysis.get("layers") or []
    if not rows:
        return None
    formats = sorted({fmt for row in rows for fmt in (row.get("quantized_alone") or {})})
    if not formats:
        return None
    figure, axes = _new_figure(6.4, max(2.6, 1.0 + 0.32 * len(rows) * len(formats)))
    height = 0.8 / len(formats)
    palette = {"tflite": _RUNTIME_COLORS["litert"], "onnx": _RUNTIME_COLORS["onnxruntime"]}
    for k, fmt in enumerate(formats):
        y = [i + k * height for i in range(len(rows))]
        values = [100 * (row.get("quantized_alone") or {}).get(fmt, 0.0) for row in rows]
        bars = axes.barh(y, values, height=height, label=f".{fmt}", color=palette.get(fmt, _OTHER_COLORS[k % 4]))
        axes.bar_label(bars, labels=[f"{v:+.1f}" for v in values], padding=3, fontsize=8)
    axes.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [_short_layer(r["layer"]) for r in rows], fontsize=8)
    axes.invert_yaxis()
    axes.axvline(0, color="#57606a", linewidth=0.8)
    axes.set_xlabel(f"{analysis.get('metric', 'accuracy')} drop when only this layer is quantized (points)")
    axes.grid(False, axis="y")
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title("Quantization sensitivity per layer", loc="left", fontsize=11, fontweight="bold")
    return figure, "Horizontal bar chart of the accuracy drop of each layer quantized alone, for " + ", ".join(formats)


_SEARCH_COLORS = {"feasible": "#0969da", "pareto": "#e36209", "infeasible": "#8c959f"}
_SEARCH_PANELS = (("bytes", "file size (log scale)", "Search: quality vs size"),
                  ("p50_ms", "p50 latency per batch (ms)", "Search: quality vs latency"))


def _plot_search(report: dict):
    """Quality of each completed search trial against its size and, when timed, its p50 latency: one panel each."""
    points = completed_points(report)
    panels = [panel for panel in _SEARCH_PANELS if any(p.get(panel[0]) is not None for p in points)]
    if not panels:
        return None
    key = quality_key(report)
    label = "accuracy (validation)" if key == "accuracy" else "MAE, validation (lower is better)"
    chosen = report["search"].get("chosen")
    figure = _blank_figure(6.4 if len(panels) == 1 else 11.0, 4.4)
    for column, (x, xlabel, title) in enumerate(panels):
        axes = _gridded(figure.add_subplot(1, len(panels), column + 1))
        _draw_trials(axes, [p for p in points if p.get(x) is not None], x, key, chosen)
        if x == "bytes":
            _size_axis(axes)
        else:
            axes.margins(x=0.12)
        axes.margins(y=0.15)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(label)
        axes.set_title(title, loc="left", fontsize=11, fontweight="bold")
        if key == "accuracy":
            from matplotlib.ticker import PercentFormatter
            axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
        if column == 0:
            _search_legend(axes)
    figure.legend(loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return figure, _search_alt(report, points, label, [xlabel for _, xlabel, _ in panels])


def _draw_trials(axes, points: list[dict], x: str, key: str, chosen) -> None:
    """The trials as circles (filled: meets every gate; orange: a Pareto point), the front's step line, the chosen
    trial's star and label."""
    for pareto in (False, True):
        for feasible in (True, False):
            group = [p for p in points if bool(p.get("pareto")) == pareto and bool(p.get("feasible")) == feasible]
            color = _SEARCH_COLORS["pareto" if pareto else "feasible" if feasible else "infeasible"]
            axes.scatter([p[x] for p in group], [p[key] for p in group], s=44, linewidths=1.4, zorder=3,
                         facecolors=color if feasible else "none", edgecolors=color)
    front = _front(points, x, key)
    if front:
        axes.step([p[x] for p in front], [p[key] for p in front], where="post", color=_SEARCH_COLORS["pareto"],
                  linewidth=1.2, alpha=0.8, zorder=2)
    star = next((p for p in points if p.get("trial") == chosen), None)
    if star is not None:
        axes.scatter(star[x], star[key], marker="*", s=300, color="#d4a72c", edgecolors="#24292f", linewidths=0.8,
                     zorder=4)
        # up and to the left for accuracy (down for MAE): no completed trial beats a Pareto point there
        axes.annotate(f"chosen (trial {chosen})", (star[x], star[key]), textcoords="offset points",
                      xytext=(-10, 10 if key == "accuracy" else -10), ha="right",
                      va="bottom" if key == "accuracy" else "top", fontsize=8, fontweight="bold")


def _front(points: list[dict], x: str, key: str) -> list[dict]:
    """The Pareto points in order of `x` when they form a front on this axis (quality never worse as `x` grows,
    as on the axis of an objective); empty otherwise, the orange circles alone then marking them."""
    front = sorted((p for p in points if p.get("pareto")), key=lambda p: p[x])
    steps = zip(front, front[1:])
    better = all(b[key] >= a[key] if key == "accuracy" else b[key] <= a[key] for a, b in steps)
    return front if len(front) > 1 and better else []


def _search_legend(axes) -> None:
    """Legend entries for the markers, added once (on the first panel) for the figure's shared legend."""
    axes.scatter([], [], s=44, color=_SEARCH_COLORS["feasible"], label="meets every gate")
    axes.scatter([], [], s=44, facecolors="none", edgecolors=_SEARCH_COLORS["infeasible"], linewidths=1.4,
                 label="misses a gate")
    axes.scatter([], [], s=44, color=_SEARCH_COLORS["pareto"], label="Pareto point")
    axes.scatter([], [], marker="*", s=150, color="#d4a72c", edgecolors="#24292f", label="chosen trial")


def _search_alt(report: dict, points: list[dict], label: str, against: list[str]) -> str:
    """The plot's text alternative: what is drawn against what, and every count a reader needs."""
    search = report["search"]
    failed = sum(p.get("state") == "failed" for p in search.get("points") or [])
    chosen = search.get("chosen")
    of = f" of {search['trials']}" if search.get("trials") is not None else ""
    return (f"Scatter plot of {label} against {' and '.join(against)} for {len(points)} completed search trials"
            f"{of}: {sum(bool(p.get('feasible')) for p in points)} meet every gate, "
            f"{sum(bool(p.get('pareto')) for p in points)} are Pareto points"
            f"{f', trial {chosen} was chosen' if chosen is not None else ''}; "
            f"{failed} failed trial(s) not drawn")
