"""report.json -> report.html: one self-contained page with the verdict, every number and the plots.

`render_html` is a pure function of the report dict (like `render_markdown`), so `edgekit report
RUN_DIR` can re-render a run without measuring anything. The page must open anywhere a run
directory is copied to (a CI artifact, an air-gapped laptop): CSS is inline, plots are inline SVG
drawn by matplotlib's Agg/SVG backends, and nothing is fetched from the network. matplotlib is
imported inside the plotting functions so that `import edgekit.report.markdown` stays cheap.

>>> from edgekit.report.markdown import load_report
>>> html = render_html(load_report("runs/quickstart"))      # doctest: +SKIP
>>> Path("report.html").write_text(html, encoding="utf-8")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import re
from html import escape

from edgekit.report.markdown import _num, _pct
from edgekit.sizes import format_size

# runtime -> colour; shared by every plot so a runtime keeps its colour across the page
_RUNTIME_COLORS = {"litert": "#1f77b4", "onnxruntime": "#ff7f0e"}
_OTHER_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_ROLE_MARKERS = {"baseline": "s", "final": "o"}

_PASS_PILL, _FAIL_PILL = '<span class="pill pass">pass</span>', '<span class="pill fail">FAIL</span>'

_CSS = """
:root{--ok:#1a7f37;--ok-bg:#e6f4ea;--bad:#c62828;--bad-bg:#fdecea;--line:#d0d7de;--muted:#57606a}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1f2328;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:1.7em;margin:0 0 4px}h2{font-size:1.25em;margin:32px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:1em;margin:0 0 6px}
.meta{color:var(--muted);margin:0 0 16px}
.banner{border-radius:8px;padding:14px 18px;border:2px solid}
.banner.pass{background:var(--ok-bg);border-color:var(--ok)}.banner.fail{background:var(--bad-bg);border-color:var(--bad)}
.verdict{font-size:1.35em;font-weight:700;margin:0 0 8px}.pass .verdict{color:var(--ok)}.fail .verdict{color:var(--bad)}
.banner table{background:#fff}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}tbody tr:nth-child(even){background:#fafbfc}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-weight:600;font-size:.85em}
.pill.pass{background:var(--ok-bg);color:var(--ok)}.pill.fail{background:var(--bad);color:#fff}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px}
figure{margin:0}figcaption{color:var(--muted);font-size:.85em;margin-top:4px}
figure svg{width:100%;height:auto;display:block}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:8px;padding:8px 16px}
.small{font-size:.85em;color:var(--muted)}
nav a{margin-right:12px}
"""


def render_html(report: dict) -> str:
    """The whole report as one HTML document: no external URL, font or script."""
    title = f"edgekit report: {report.get('name', '')}"
    sections = [
        _banner(report),
        _section("artifacts", "Artifacts", _artifact_intro(report) + _artifact_table(report)),
        _section("plots", "Plots", _plots(report)),
        _section("stages", "Stages", _stage_table(report)),
    ]
    if report.get("warnings"):
        items = "".join(f"<li>{escape(str(w))}</li>" for w in report["warnings"])
        sections.append(_section("warnings", "Warnings", f'<div class="warn"><ul>{items}</ul></div>'))
    sections += [_section("data", "Data", _data(report)), _section("environment", "Environment", _environment(report))]
    nav = " ".join(f'<a href="#{key}">{label}</a>' for key, label in (
        ("artifacts", "Artifacts"), ("plots", "Plots"), ("stages", "Stages"), ("data", "Data"),
        ("environment", "Environment")))
    meta = (f"Created {escape(str(report.get('created', '')))} by edgekit "
            f"{escape(str(report.get('edgekit_version', '')))}; task {escape(str(report.get('task', '')))}"
            + (f"; recipe <code>{escape(str(report['recipe']))}</code>" if report.get("recipe") else ""))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{escape(title)}</h1>\n<p class=\"meta\">{meta}</p>\n"
            f'<nav aria-label="Sections">{nav}</nav>\n' + "\n".join(sections) + "\n</main>\n</body>\n</html>\n")


# ---------------------------------------------------------------- text parts

def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}" aria-labelledby="h-{key}">\n<h2 id="h-{key}">{escape(title)}</h2>\n{body}\n</section>'


def _table(headers: list[str], rows: list[list[tuple[str, bool]]], caption: str = "") -> str:
    """A table; each cell is (already-escaped html, numeric?)."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if numeric else f"<td>{c}</td>"
                                    for c, numeric in row) + "</tr>\n" for row in rows)
    cap = f"<caption class=\"small\">{escape(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table></div>'


def _quality_key(report: dict) -> str:
    return "accuracy" if report.get("metric", "accuracy") == "accuracy" else "mae"


def _quality(report: dict, value) -> str:
    return _pct(value) if _quality_key(report) == "accuracy" else _num(value)


def _banner(report: dict) -> str:
    passed = report.get("passed", True)
    exit_code = report.get("exit_code", 0)
    gates = report.get("gates") or []
    failed = sum(not g.get("passed") for g in gates)
    if passed:
        verdict = "PASS: every gate passed" if gates else "PASS: no gates were set"
    else:
        verdict = f"FAIL: {failed} of {len(gates)} gate(s) failed" if failed else "FAIL"
    rows = [[(escape(str(g.get("gate", ""))), False), (escape(str(g.get("artifact", ""))), False),
             (escape(_num(g.get("limit"))), True), (escape(_num(g.get("value"))), True),
             (escape(str(g.get("unit", ""))), False),
             (_PASS_PILL if g.get("passed") else _FAIL_PILL, False)]
            for g in gates]
    table = (_table(["gate", "artifact", "limit", "value", "unit", "result"], rows) if gates
             else '<p>No gates were set (<code>gates:</code> in the recipe).</p>')
    state = "pass" if passed else "fail"
    return (f'<section class="banner {state}" role="status" aria-label="Verdict">\n'
            f'<p class="verdict">{escape(verdict)} (exit code {escape(str(exit_code))})</p>\n{table}\n</section>')


def _latency_setting(report: dict) -> dict:
    return next((a["latency_ms"] for a in report.get("artifacts", []) if a.get("latency_ms")), {})


def _artifact_intro(report: dict) -> str:
    lat = _latency_setting(report)
    setting = (f" Latency: batch {lat.get('batch', '?')}, {lat.get('threads', '?')} thread(s), "
               f"{lat.get('runs', '?')} runs after {lat.get('warmup', '?')} warm-up.") if lat else ""
    return (f"<p>Every row but the teacher's was measured by running the exported file on its runtime, on the "
            f"same {escape(str(report.get('data', {}).get('test', '?')))} test samples; agreement is top-1 "
            f"agreement with the teacher.{escape(setting)}</p>\n")


def _artifact_table(report: dict) -> str:
    metric = "accuracy" if _quality_key(report) == "accuracy" else "MAE"
    headers = ["artifact", "role", "format", "runtime", "precision", "bytes", "gzip bytes", metric,
               "agreement", "p50 ms", "p90 ms"]
    rows = []
    for a in report.get("artifacts", []):
        lat = a.get("latency_ms") or {}
        size = a.get("bytes")
        size_html = f'{escape(_num(size))}<br><span class="small">{escape(format_size(size))}</span>' if size else "-"
        rows.append([(f"<strong>{escape(str(a.get('name', '')))}</strong>", False)]
                    + [(escape(str(a.get(k) or "-")), False) for k in ("role", "format", "runtime", "precision")]
                    + [(size_html, True), (escape(_num(a.get("gzip_bytes"))), True),
                       (escape(_quality(report, a.get(_quality_key(report)))), True),
                       (escape(_pct(a.get("agreement"))), True),
                       (escape(_num(lat.get("p50"), 3)), True), (escape(_num(lat.get("p90"), 3)), True)])
    return _table(headers, rows)


def _detail_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_num(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return _num(value)


def _stage_table(report: dict) -> str:
    rows = []
    for s in report.get("stages", []):
        details = "".join(f"<li>{escape(k.replace('_', ' '))}: {escape(_detail_value(v))}</li>"
                          for k, v in (s.get("details") or {}).items())
        metrics = ", ".join(f"{k} {_num(v)}" for k, v in (s.get("metrics") or {}).items()) or "-"
        rows.append([(escape(str(s.get("name", ""))), False), (escape(str(s.get("summary", ""))), False),
                     (f'<ul class="small">{details}</ul>' if details else "-", False),
                     (escape(f"{s.get('wall_s') or 0:.2f} s"), True), (escape(metrics), False)])
    return _table(["stage", "summary", "details", "wall time", "in-framework metrics"], rows)


def _data(report: dict) -> str:
    d = report.get("data") or {}
    pre = d.get("preprocessing") or {}
    rows = [[(escape(k), False), (escape(str(v)), False)] for k, v in (
        ("description", d.get("description")), ("train / validation / test", f"{d.get('train')} / "
         f"{d.get('validation')} / {d.get('test')}"), ("calibration samples", d.get("calibration")),
        ("input shape", d.get("input_shape")), ("outputs", d.get("num_classes")),
        ("preprocessing", ", ".join(f"{k} {v}" for k, v in pre.items()) or None)) if v is not None]
    return _table(["field", "value"], rows)


def _environment(report: dict) -> str:
    env = report.get("environment") or {}
    intro = (f"<p>{escape(str(env.get('platform', '')))}; CPU: {escape(str(env.get('cpu', '')))} "
             f"({escape(str(env.get('cores', '?')))} cores); Python {escape(str(env.get('python', '')))}.</p>\n")
    rows = [[(escape(str(k)), False), (escape(str(v)), False)] for k, v in (env.get("packages") or {}).items()]
    return intro + _table(["package", "version"], rows)


# ---------------------------------------------------------------- plots

def _plots(report: dict) -> str:
    """The figures that have data; a plot without data is left out, never shown empty."""
    figures = []
    for key, builder, caption in (
        ("quality-size", _plot_quality_vs_size, "Quality against file size (log scale). The teacher is the "
         "dashed line; hollow diamonds (where present) are the stages' in-framework figures, at params x 4 bytes."),
        ("latency", _plot_latency, "Latency per artifact on its runtime: bar = p50, whisker = p90."),
        ("sparsity", _plot_sparsity, "Zero weights per layer, counted in each final file."),
        ("wall-time", _plot_wall_time, "Wall time of each stage of the run."),
    ):
        made = builder(report)
        if made is not None:
            figure, alt = made
            figures.append(f'<figure class="card" id="plot-{key}">{_svg(figure, key, alt)}'
                           f"<figcaption>{escape(caption)}</figcaption></figure>")
    return '<div class="plots">\n' + "\n".join(figures) + "\n</div>" if figures else "<p>No data to plot.</p>"


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
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, color="#e1e4e8", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return figure, axes


def _color(runtime: str, seen: dict) -> str:
    if runtime not in _RUNTIME_COLORS and runtime not in seen:
        seen[runtime] = _OTHER_COLORS[len(seen) % len(_OTHER_COLORS)]
    return _RUNTIME_COLORS.get(runtime) or seen[runtime]


def _plot_quality_vs_size(report: dict):
    key = _quality_key(report)
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
                     label=f"teacher ({teacher.get('runtime')}): {_quality(report, teacher[key])}")
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
        group.sort(key=lambda b: (-b[key], b.get("runtime") == "onnxruntime", b["bytes"]))
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
    artifacts = report.get("artifacts", [])
    if not any((layer.get("sparsity") or 0) >= 0.05 for a in artifacts for layer in a.get("layers") or []):
        return None
    finals = [a for a in artifacts if a.get("role") == "final" and a.get("layers")]
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
        axes.set_xlabel(f"zero weights in the exported file (dotted line: prune target {_pct(target)})")
    axes.set_title("Weight sparsity per layer", loc="left", fontsize=11, fontweight="bold")
    return figure, "Horizontal bar chart of weight sparsity per layer of " + ", ".join(a["name"] for a in finals)


def _plot_wall_time(report: dict):
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
