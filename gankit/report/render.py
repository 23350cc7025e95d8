"""Report rendering: figures (Agg PNG), grids sized to embed, blocks -> Markdown / one-file HTML."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from pathlib import Path
from typing import Any

from .runs import RunSummary, is_num

METRIC_ORDER = (
    "fid",
    "kid_mean",
    "classes_covered",
    "kl_uniform",
    "mean_confidence",
    "cond_accuracy",
    "genre_roc_auc",
    "genre_map",
)
METRIC_LABELS = {
    "fid": "FID",
    "kid_mean": "KID",
    "kid_std": "KID std",
    "classes_covered": "classes covered",
    "kl_uniform": "KL to uniform",
    "mean_confidence": "mean confidence",
    "cond_accuracy": "label accuracy",
    "genre_roc_auc": "genre ROC-AUC",
    "genre_map": "genre mAP",
}
NOT_METRICS = ("step", "epoch", "seconds", "eval_seconds")  # bookkeeping, not sample quality
LOG4 = 2 * math.log(2)  # BCE loss_d when D outputs 1/2 for every image: -log(1/2) - log(1/2)


def metric_label(key: str) -> str:
    return METRIC_LABELS.get(key, key.replace("_", " "))


def is_count(key: str) -> bool:
    return key.startswith("n_") or key.endswith(("_samples", "_size"))


def metric_keys(evaluations: list[dict[str, Any]]) -> list[str]:
    """Metric names worth a curve: numeric, not a sample count or a spread, known ones first."""
    keys = {
        k: None
        for e in evaluations
        for k, v in e.items()  # class_hist_*: ten shares, summed up by
        if is_num(v)
        and k not in NOT_METRICS
        and not is_count(k)
        and not k.endswith("_std")  # KL and coverage
        and not k.startswith("class_hist")
    }
    return sorted(
        keys, key=lambda k: (METRIC_ORDER.index(k) if k in METRIC_ORDER else len(METRIC_ORDER), k)
    )


# ----------------------------------------------------------------------------- figures (Agg, PNG)


def _png(fig) -> bytes:
    """The figure as a 256-colour PNG: line plots need
    no more colours, and the file is ~3x smaller."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(
        buf, format="png", dpi=110, metadata={"Software": None}
    )  # no version stamp: stable bytes
    buf.seek(0)
    out = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(256).save(out, format="PNG", optimize=True)
    return out.getvalue()


def compact_grid(data: bytes) -> tuple[bytes, str]:
    """A sample grid as it goes into a report: (bytes, extension).

    Grey grids (MNIST) stay lossless PNG, stored with one channel: JPEG would blur thin strokes.
    Colour grids (posters) become JPEG (quality 90) when that is less than half the PNG; a
    64-poster grid drops from ~600 KB to ~100 KB, which keeps the HTML and PDF reports small.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
    r, g, b = rgb.split()
    out = io.BytesIO()
    if r.tobytes() == g.tobytes() == b.tobytes():
        r.save(out, format="PNG", optimize=True)
        return (out.getvalue(), "png") if out.tell() < len(data) else (data, "png")
    rgb.save(out, format="JPEG", quality=90, optimize=True)
    return (out.getvalue(), "jpg") if out.tell() < len(data) / 2 else (data, "png")


def loss_figure(runs: list[RunSummary]) -> bytes | None:
    # matplotlib.figure.Figure renders with Agg without
    # pyplot: no global backend switch, no figure leaks
    from matplotlib.figure import Figure

    runs = [
        r for r in runs if {"step", "loss_d", "loss_g"} <= set(r.history.columns) and len(r.history)
    ]
    if not runs:
        return None
    ncols = 2 if len(runs) in (2, 4) else min(3, len(runs))
    nrows = math.ceil(len(runs) / ncols)
    fig = Figure(
        figsize=(3.2 * ncols if ncols < 3 else 9.5, 2.5 * nrows + 0.3), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, run in zip(axes.flat, runs):
        h = run.history
        window = max(1, len(h) // 40)  # ~40 points of running mean whatever the logging interval
        for col, color in (("loss_d", "C0"), ("loss_g", "C1")):
            if window > 1:
                ax.plot(h["step"], h[col], color=color, alpha=0.25, lw=0.8)
            ax.plot(
                h["step"],
                h[col].rolling(window, min_periods=1).mean(),
                color=color,
                lw=1.6,
                label=col,
            )
        if run.config.get("loss", "bce") == "bce":
            ax.axhline(LOG4, color="0.4", ls=":", lw=1.2, label="2·ln 2")
        ax.set_title(f"{run.label} ({run.config.get('loss', 'bce')})", fontsize=9)
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(runs) :]:
        ax.set_visible(False)
    legend: dict[str, Any] = {}  # one legend for all panels: same colours everywhere
    for ax in axes.flat:
        handles, labels = ax.get_legend_handles_labels()
        legend.update(zip(labels, handles))
    fig.legend(
        legend.values(),
        legend.keys(),
        loc="outside upper center",
        ncols=3,
        fontsize=9,
        frameon=False,
    )
    return _png(fig)


def quality_figure(runs: list[RunSummary], colors: dict[Path, str], x: str) -> bytes:
    """One panel per metric, each run a line, against x =
    "seconds" (shown in minutes or hours) or "step"."""
    from matplotlib.figure import Figure

    keys = metric_keys([e for r in runs for e in r.evaluations])
    longest = max(
        (e["seconds"] for r in runs for e in r.evaluations if is_num(e.get("seconds"))), default=0
    )
    unit, scale = ("hours", 3600) if longest > 2 * 3600 else ("minutes", 60)
    scale, xlabel = (scale, f"training time ({unit})") if x == "seconds" else (1, "step")
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(9.5, 2.4 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    for ax, key in zip(axes.flat, keys):
        values = []
        for run in runs:
            pts = [e for e in run.evaluations if is_num(e.get(key)) and is_num(e.get(x))]
            ax.plot(
                [e[x] / scale for e in pts],
                [e[key] for e in pts],
                color=colors[run.path],
                marker="o",
                ms=3.5,
                lw=1.5,
                label=run.label,
            )
            values += [e[key] for e in pts]
        if (
            key in ("fid", "kid_mean")
            and values
            and min(values) > 0
            and max(values) / min(values) > 10
        ):
            ax.set_yscale(
                "log"
            )  # early FIDs are 10x the late ones; log keeps the late progress visible
        ax.set_title(metric_label(key), fontsize=10)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncols=min(4, len(runs)),
        fontsize=9,
        frameon=False,
    )
    return _png(fig)


# ----------------------------------------------------------------------------- rendering blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("\u00a0", " ")


def to_markdown(blocks: list[tuple], files_dir: str) -> str:
    # Tables are written by hand: DataFrame.to_markdown needs the optional `tabulate` package.
    lines: list[str] = []
    for kind, *args in blocks:
        if kind == "h":
            lines += ["#" * args[0] + " " + args[1], ""]
        elif kind in ("p", "meta"):
            lines += [args[0] if kind == "p" else f"*{args[0]}*", ""]
        elif kind == "list":
            items, checks = args
            lines += [
                f"- {'' if checks is None else '[x] ' if c else '[ ] '}{t}"
                for t, c in zip(items, checks or [None] * len(items))
            ] + [""]
        elif kind == "table":
            header, rows = args[:2]
            lines += ["| " + " | ".join(map(_md_cell, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c or "") for c in row) + " |" for row in rows]
            lines += [""]
        elif kind == "figs":
            figs, _ = args
            src = [f"{files_dir}/{name}" for name, _ in figs]
            if len(figs) == 1:
                lines += [f"![{_md_cell(figs[0][1])}]({src[0]})", "", f"*{figs[0][1]}*", ""]
            else:  # a one-row table puts the grids side by side
                lines += [
                    "| " + " | ".join(_md_cell(c) for _, c in figs) + " |",
                    "|" + "---|" * len(figs),
                    "| " + " | ".join(f"![{c}]({s})" for (_, c), s in zip(figs, src)) + " |",
                    "",
                ]
        elif kind == "links":
            lines += [
                f"- {name}: " + ", ".join(f"[{label}]({href})" for href, label in links)
                for name, links in args[0]
            ] + [""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then the two Markdown marks the report uses:
    **bold** and `code` (and _italic_ placeholders)."""
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"(?<!\w)_(\(.+?\))_(?!\w)", r"<em>\1</em>", text)


def _is_numeric_cell(text: str) -> bool:
    number = r"[-+]?[\d.]+(e[-+]?\d+)?"
    return text == "–" or bool(re.fullmatch(rf"{number}(\s±\s{number})?( s| min| h)?", text))


def _td(row: list[str | None], numeric: bool) -> list[str]:
    """A row's <td>s; a cell followed by None cells spans them (colspan)."""
    cells = []
    for i, c in enumerate(row):
        if c is None:
            continue
        span = next((j for j in range(i + 1, len(row)) if row[j] is not None), len(row)) - i
        attrs = (" class=num" if numeric and _is_numeric_cell(c) else "") + (
            f" colspan={span}" if span > 1 else ""
        )
        cells.append(f"<td{attrs}>{html.escape(c)}</td>")
    return cells


def _img_tag(data: bytes, alt: str, kind: str) -> str:
    png = data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big") if png else 0
    cls = kind + (
        " px" if kind == "sample" and 0 < width < 240 else ""
    )  # upscale small grids without blur
    uri = f"data:image/{'png' if png else 'jpeg'};base64," + base64.b64encode(data).decode("ascii")
    return f'<img class="{cls}" src="{uri}" alt="{html.escape(alt)}">'


def to_html(blocks: list[tuple], images: dict[str, bytes], title: str) -> str:
    body: list[str] = []
    for kind, *args in blocks:
        if kind == "h":
            body.append(f"<h{args[0]}>{_inline(args[1])}</h{args[0]}>")
        elif kind in ("p", "meta"):
            body.append(f'<p class="{kind}">{_inline(args[0])}</p>')
        elif kind == "list":
            items, checks = args
            boxes = (
                [""] * len(items)
                if checks is None
                else [f'<input type="checkbox" disabled{" checked" if c else ""}> ' for c in checks]
            )
            body.append(
                f"<ul{'' if checks is None else ' class=checklist'}>"
                + "".join(f"<li>{b}{_inline(t)}</li>" for b, t in zip(boxes, items))
                + "</ul>"
            )
        elif kind == "table":  # ("table", header, rows[, numeric[, css class]])
            header, rows, numeric, cls = (*args, False, "")[:4]
            tr = "".join("<tr>" + "".join(_td(row, numeric)) + "</tr>" for row in rows)
            body.append(
                f'<div class="scroll"><table{f" class={cls}" if cls else ""}><thead><tr>'
                + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                + f"</tr></thead><tbody>{tr}</tbody></table></div>"
            )
        elif kind == "figs":
            figs, fig_kind = args
            body.append(
                f'<div class="figs {fig_kind}">'
                + "".join(
                    f"<figure>{_img_tag(images[name], caption, fig_kind)}"
                    f"<figcaption>{_inline(caption)}</figcaption></figure>"
                    for name, caption in figs
                )
                + "</div>"
            )
        elif kind == "links":
            body.append(
                "<ul>"
                + "".join(
                    f"<li>{html.escape(name)}: "
                    + ", ".join(
                        f'<a href="{html.escape(href)}">{label}</a>' for href, label in links
                    )
                    + "</li>"
                    for name, links in args[0]
                )
                + "</ul>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{CSS}</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f3f5f7; }
body { font: 15px/1.55 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       max-width: 1000px; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.75rem; margin: 0 0 .2rem; }
h2 { font-size: 1.3rem; margin: 2rem 0 .6rem; padding-bottom: .25rem; border-bottom: 1px solid \
var(--line);
     break-after: avoid; }
h3 { font-size: 1.02rem; margin: 1.2rem 0 .4rem; break-after: avoid; }
p.meta { color: var(--muted); margin-top: 0; padding-bottom: .6rem; border-bottom: 2px solid \
var(--line); }
ul { padding-left: 1.3rem; } li { margin: .25rem 0; }
ul.checklist { list-style: none; padding-left: .2rem; }
ul.checklist input { margin: 0 .45rem 0 0; vertical-align: -1px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .84rem; break-inside: avoid; }
th, td { border: 1px solid var(--line); padding: .22rem .6rem; text-align: left; white-space: \
nowrap; }
th { background: var(--head); font-weight: 600; white-space: normal; vertical-align: bottom; }
table.settings { table-layout: fixed; width: 100%; }  /* every run's column within the page */
table.settings th:first-child { width: 9.5rem; }
table.settings th, table.settings td { white-space: normal; overflow-wrap: anywhere; }
table.wide td:first-child { white-space: normal; min-width: 6.5rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.figs { display: flex; flex-wrap: wrap; gap: 1.2rem; align-items: flex-end; margin: .3rem 0 1rem;
        break-inside: avoid; }
figure { margin: 0; break-inside: avoid; }
img.sample { width: 240px; border: 1px solid var(--line); display: block; }
img.px { image-rendering: pixelated; }
img.plot { max-width: 100%; max-height: 245mm; display: block; }
figcaption { font-size: .8rem; color: var(--muted); margin-top: .3rem; }
.figs.sample figcaption { text-align: center; }
code { font: .88em "DejaVu Sans Mono", Menlo, Consolas, monospace; background: var(--head); \
padding: .05rem .3rem;
       border-radius: 4px; }
@page { size: A4; margin: 13mm 12mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 12px; }
  img.sample { width: 190px; }
  .scroll { overflow: visible; }
  table { font-size: .8rem; }
  th, td { padding: .16rem .4rem; }
  table.wide { font-size: .68rem; }
  table.wide th, table.wide td { padding: .14rem .25rem; }
  a { color: inherit; }
}
"""
