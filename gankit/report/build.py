"""Progress reports from run folders (Markdown, one-file HTML, PDF); notebook exports, indexed."""

from __future__ import annotations

import copy
import html
import json
import math
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from ..runs import runs_root as default_runs_root
from .render import (
    LOG4,
    compact_grid,
    is_count,
    is_num,
    loss_figure,
    metric_keys,
    metric_label,
    quality_figure,
    to_html,
    to_markdown,
)
from .runs import RunSummary, as_date, epoch_of, find_runs

KEY_HPARAMS = (
    "profile",
    "dataset",
    "model",
    "loss",
    "epochs",
    "batch_size",
    "lr_g",
    "lr_d",
    "betas",
    "latent_dim",
    "n_critic",
    "gp_weight",
    "seed",
)  # always shown, even when all runs agree
LONG_ITEMS, LONG_CHARS = 6, 60  # lists longer than this are summarised outside the appendix
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def build_report(
    runs_root: str | Path | None = None,
    out: str | Path = "reports",
    *,
    since: date | str | None = None,
    until: date | str | None = None,
    title: str | None = None,
    pdf: bool = True,
    notes: str = "",
) -> dict[str, Path | str]:
    """Write out/progress-YYYY-MM-DD.{md,html[,pdf]} over the runs started in [since, until]
    (until: today) under `runs_root` (None: gankit.runs.runs_root(), i.e. $GANKIT_RUNS, else the
    project's runs/).

    The Markdown keeps its images in out/progress-YYYY-MM-DD_files/; the HTML embeds them as base64
    data URIs with inline CSS, so it opens offline as one file. The PDF is the HTML printed by
    headless Chromium; without Chromium the result has a 'message' saying so instead of a 'pdf'.
    Also refreshes out/index.html.
    """
    root = default_runs_root(runs_root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"runs folder {str(root)!r} does not exist; train first (`gankit train PRESET` "
            "writes runs/<preset>/<timestamp>/) or pass the folder that holds your runs"
        )
    since, until = as_date(since), as_date(until)
    day = until or date.today()
    runs = find_runs(root, since, until)
    blocks, images = _compose(runs, title or "gankit progress report", since, day, notes)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"progress-{day:%Y-%m-%d}"
    files_dir = out / f"{stem}_files"
    if files_dir.exists():
        shutil.rmtree(files_dir)  # a rebuild on the same day must not keep stale figures
    if images:
        files_dir.mkdir()
        for name, data in images.items():
            (files_dir / name).write_bytes(data)
    result: dict[str, Path | str] = {"md": out / f"{stem}.md", "html": out / f"{stem}.html"}
    result["md"].write_text(to_markdown(blocks, files_dir.name), encoding="utf-8")
    result["html"].write_text(
        to_html(blocks, images, title or "gankit progress report"), encoding="utf-8"
    )
    if pdf:
        pdf_path, message = html_to_pdf(result["html"], out / f"{stem}.pdf")
        if pdf_path:
            result["pdf"] = pdf_path
        else:
            result["message"] = message
            print(message)
    result["index"] = write_index(out)
    return result


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or None."""
    return next((p for p in map(shutil.which, CHROMIUMS) if p), None)


def html_to_pdf(html_path: Path, pdf_path: Path, timeout: float = 120) -> tuple[Path | None, str]:
    """Print an HTML file to PDF with headless Chromium;
    (pdf_path, "") or (None, why it was skipped)."""
    chromium = find_chromium()
    if not chromium:
        return None, (
            "PDF skipped: no Chromium on PATH (looked for "
            + ", ".join(CHROMIUMS)
            + "). Install it "
            "(Debian/Ubuntu: `apt install chromium`; macOS: `brew install --cask chromium`) "
            "and run "
            f"`gankit report` again, or open {html_path.name} in a browser and print it to PDF."
        )
    pdf_path = Path(pdf_path).resolve()
    pdf_path.unlink(missing_ok=True)  # never leave an older PDF beside a newer HTML
    with (
        tempfile.TemporaryDirectory() as profile
    ):  # a fresh profile: no first-run state, no shared locks
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            "--print-to-pdf-no-header",  # new and old spelling; unknown flags are ignored
            f"--print-to-pdf={pdf_path}",
            Path(html_path).resolve().as_uri(),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            return (
                None,
                f"PDF skipped: {chromium} failed to run ({err}); the HTML report is complete.",
            )
    if pdf_path.is_file() and pdf_path.read_bytes()[:4] == b"%PDF":
        return pdf_path, ""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return (
        None,
        f"PDF skipped: {chromium} exited with {proc.returncode} and wrote no PDF: "
        f"{' | '.join(tail)}",
    )


def export_notebooks(notebooks: Sequence[str | Path], out: str | Path = "reports") -> list[Path]:
    """Export executed notebooks to out/<name>.html without code (as
    `jupyter nbconvert --no-input`); refresh index."""
    import nbformat
    from nbconvert import HTMLExporter

    # The three switches of nbconvert's --no-input flag;
    # embed_images inlines images linked from Markdown.
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for nb_path in map(Path, notebooks):
        nb = nbformat.read(nb_path, as_version=4)
        unrun = [
            c
            for c in nb.cells
            if c.cell_type == "code" and c.source.strip() and c.execution_count is None
        ]
        if unrun:
            warnings.warn(
                f"{nb_path.name}: {len(unrun)} code cells were never run, "
                "so the export lacks their "
                "output; execute the notebook first (e.g. `jupyter nbconvert --execute --inplace`)",
                stacklevel=2,
            )
        resources = {
            "metadata": {"name": _notebook_title(nb) or nb_path.stem, "path": str(nb_path.parent)}
        }
        body, _ = exporter.from_notebook_node(_images_as_html(nb), resources=resources)
        if _has_math(nb):
            body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + MATH_NOTE, body, count=1)
        target = out / f"{nb_path.stem}.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
    write_index(out)
    return written


# At the top of an export with formulas; removed by its script once MathJax (nbconvert loads it
# from a CDN in <head>) is there, so only a reader without a connection sees it.
MATH_NOTE = """
<div id="gankit-math-note" style="margin: 0 0 1em; padding: .6em 1em; background: #fff8c5;
  border: 1px solid #d4a72c; border-radius: 6px; font: 14px/1.5 sans-serif; color: #1f2328">
<strong>The formulas on this page need an internet connection.</strong> They are typeset by
MathJax, which this page loads from cdnjs.cloudflare.com; offline they show as raw TeX
(<code>$\\min_G \\max_D V(D, G)$</code>). Open the notebook itself in Jupyter to read them offline.
</div>
<script>if (window.MathJax) document.getElementById("gankit-math-note").remove();</script>
"""
# TeX in Markdown: $x$ (no space inside the dollars: not $5 to $10), $$...$$, \(, \[, \begin{
TEX = re.compile(r"\$\$.+?\$\$|\$[^$\s](?:[^$]*[^$\s])?\$|\\\(|\\\[|\\begin\{", re.S)
# Images nbconvert's HTML templates show; any other image type (a GIF animation) is embedded here.
SHOWN_IMAGES = ("image/png", "image/jpeg", "image/svg+xml")


def _has_math(nb) -> bool:
    return any(c.cell_type == "markdown" and TEX.search(c.source) for c in nb.cells)


def _images_as_html(nb):
    """A copy of `nb` where each image output the HTML templates cannot show (image/gif, e.g. the
    training-progress animation of viz.show_gif) is an <img> with a base64 data URI, so it plays in
    the export instead of printing `<IPython.core.display.Image object>`."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if not data or any(m in data for m in SHOWN_IMAGES):
                continue
            mime = next((m for m in data if m.startswith("image/")), None)
            if mime:
                b64 = "".join(data[mime]).replace("\n", "")
                alt = "training progress, one frame per epoch" if mime == "image/gif" else mime
                output["data"] = {
                    "text/html": f'<img src="data:{mime};base64,{b64}" alt="{alt}" '
                    'style="max-width: 100%">'
                }
    return nb


def write_index(out: str | Path = "reports") -> Path:
    """Write out/index.html and out/README.md linking the
    notebook exports and progress reports found in out/."""
    out = Path(out)
    reports = sorted(out.glob("progress-*.html"), reverse=True)  # newest first
    lessons = sorted(
        p
        for p in out.glob("*.html")
        if p.name != "index.html" and not p.name.startswith("progress-")
    )
    blocks: list[tuple] = [("h", 1, "gankit reports")]
    blocks += [("h", 2, "Lessons (executed notebooks, code hidden)")]
    blocks += (
        [("links", [(_html_title(p) or p.stem, [(p.name, "html")]) for p in lessons])]
        if lessons
        else [("p", "No notebook exports yet: run `make reports`.")]
    )
    blocks += [("h", 2, "Progress reports")]
    entries = [
        (
            p.stem.removeprefix("progress-"),
            [
                (q.name, q.suffix[1:])
                for q in (p, p.with_suffix(".md"), p.with_suffix(".pdf"))
                if q.exists()
            ],
        )
        for p in reports
    ]
    blocks += (
        [("links", entries)]
        if entries
        else [("p", "No progress reports yet: run `gankit report`.")]
    )
    (out / "README.md").write_text(to_markdown(blocks, ""), encoding="utf-8")
    (out / "index.html").write_text(to_html(blocks, {}, "gankit reports"), encoding="utf-8")
    return out / "index.html"


def _fmt(v: Any) -> str:
    """Numbers for prose and tables: 3 significant digits
    below 10, one decimal above (FID 85.1, KID 0.0123)."""
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return "–" if v is None else str(v)


def _setting(run: RunSummary, key: str, short: bool = True) -> str:
    """A run's setting for a table cell or a sentence; short: a long list as its length and what it
    counts ("28 genres"), the full value being in the appendix."""
    return _hp(_shortened(run.config.get(key), key, run.config) if short else run.config.get(key))


def _shortened(v: Any, key: str, config: dict[str, Any]) -> Any:
    if isinstance(v, dict):
        return {k: _shortened(x, k, config) for k, x in v.items()}
    if isinstance(v, (list, tuple)) and (len(v) > LONG_ITEMS or len(_hp(v)) > LONG_CHARS):
        noun = "values"
        if key == "label_names":
            noun = "genres" if config.get("dataset") == "posters" else "classes"
        return f"{len(v)} {noun}"
    return v


def _hp(v: Any) -> str:
    """A config value as written by a person: 0.0002, (0.5, 0.999), {}."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(map(_hp, v)) + ")"
    if isinstance(v, dict):
        return json.dumps(v, separators=(", ", ": ")) if v else "{}"
    return "–" if v is None else str(v)


def _n_classes(run: RunSummary) -> int | None:
    c = run.config
    return (
        c.get("num_classes")
        or c.get("cond_dim")
        or (10 if c.get("dataset", "mnist") in ("mnist", "fashion-mnist", "cifar10") else None)
    )


def _duration(hours: float) -> str:
    """Training time as people say it: 40 s, 12 min, 1.5 h."""
    seconds = hours * 3600
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 3570 else f"{hours:.1f} h"


# ----------------------------------------------------------------------------- composing the report


def _compose(
    runs: list[RunSummary], title: str, since: date | None, day: date, notes: str
) -> tuple[list[tuple], dict[str, bytes]]:
    """The report as a list of blocks (rendered to Markdown
    and HTML alike) and its PNG images by file name."""
    start = since or (runs[0].started.date() if runs else day)
    total = sum(r.hours for r in runs)
    blocks: list[tuple] = [
        ("h", 1, title),
        (
            "meta",
            f"Period {start:%Y-%m-%d} to {day:%Y-%m-%d} · {len(runs)} runs · "
            f"{_duration(total)} of training · built by `gankit report`",
        ),
    ]
    images: dict[str, bytes] = {}
    if not runs:
        return blocks + [
            (
                "p",
                "No runs started in this period. Train with `gankit train PRESET`, or widen "
                "`--since`.",
            )
        ] + _next_steps(runs, notes), images

    blocks += [
        ("h", 2, "Status"),
        ("list", [_status_line(r) for r in runs], [r.status == "finished" for r in runs]),
    ]

    blocks += [
        ("h", 2, "Hyperparameters"),
        (
            "p",
            "Runs as columns; the key settings, then every setting that differs between runs "
            "(the appendix lists them all).",
        ),
    ]
    blocks += _config_tables(runs, full=False)

    blocks += [
        ("h", 2, "Samples"),
        ("p", "Fixed-noise grids at the first, middle and last epoch with a grid."),
    ]
    for run in runs:
        blocks.append(("h", 3, run.label))
        picks = sorted({0, len(run.samples) // 2, len(run.samples) - 1}) if run.samples else []
        figs = []
        for i in picks:
            data, ext = compact_grid(run.samples[i].read_bytes())
            name = f"{run.preset}-{run.path.name}-{run.samples[i].stem}.{ext}"
            images[name] = data
            figs.append((name, f"epoch {epoch_of(run.samples[i])}"))
        blocks.append(
            ("figs", figs, "sample")
            if figs
            else ("p", "No sample grids (samples/ is missing or empty).")
        )

    blocks += [("h", 2, "Training curves")]
    colors = {r.path: f"C{i % 10}" for i, r in enumerate(runs)}
    loss_png = loss_figure(runs)
    if loss_png:
        images["losses.png"] = loss_png
        blocks += [
            (
                "figs",
                [
                    (
                        "losses.png",
                        "loss_d and loss_g per logged step (faint: raw; solid: running mean). "
                        "Dotted: 2·ln 2, the BCE loss_d of a D that outputs 1/2 everywhere.",
                    )
                ],
                "plot",
            )
        ]
    else:
        blocks += [("p", "No loss curves: no run has a readable history.csv.")]
    datasets = sorted(
        {str(r.config.get("dataset", "?")) for r in runs if metric_keys(r.evaluations)}
    )
    for ds in (
        datasets
    ):  # metrics of different data sets live in different feature spaces: never on one axis
        group = [
            r
            for r in runs
            if str(r.config.get("dataset", "?")) == ds and metric_keys(r.evaluations)
        ]
        if all(
            len(r.evaluations) < 2 for r in group
        ):  # one point per run is no curve: the table has it
            blocks += [
                (
                    "p",
                    f"No quality curves on {ds}: each run was evaluated once, after training "
                    "(its numbers are in the metrics table).",
                )
            ]
            continue
        for x, what in (("seconds", "training time"), ("step", "training step")):
            name = f"quality-{ds}-{x}.png"
            images[name] = quality_figure(group, colors, x)
            blocks += [
                (
                    "figs",
                    [(name, f"Sample quality on {ds} against {what}. {_counts(group)}")],
                    "plot",
                )
            ]
    if not datasets:
        blocks += [("p", "No quality curves: no run has evaluations in metrics.json.")]

    blocks += [("h", 2, "Metrics")] + _metrics_table(runs)
    blocks += [("h", 2, "Observations"), ("list", _observations(runs), None)]
    blocks += _next_steps(runs, notes)
    blocks += [("h", 2, "Appendix: full configurations")] + _config_tables(runs, full=True)
    return blocks, images


def _status_line(run: RunSummary) -> str:
    planned = run.epochs_planned if run.epochs_planned is not None else "?"
    final, parts = run.final, []
    if is_num(final.get("fid")):
        parts.append(f"FID {_fmt(final['fid'])}")
    if is_num(final.get("kid_mean")):
        parts.append(f"KID {_fmt(final['kid_mean'])}")
    if is_num(final.get("classes_covered")):
        total = _n_classes(run)
        parts.append(f"{int(final['classes_covered'])}{f'/{total}' if total else ''} classes")
    if is_num(final.get("cond_accuracy")):
        acc = final["cond_accuracy"]
        parts.append(f"label accuracy {acc * 100 if acc <= 1 else acc:.0f}%")
    if is_num(final.get("genre_roc_auc")):
        parts.append(f"genre ROC-AUC {final['genre_roc_auc']:.3f}")
    line = (
        f"**{run.label}**: {run.status}, epoch {run.epochs_done}/{planned}, {_duration(run.hours)}"
    )
    line += (", " + ", ".join(parts)) if parts else ""
    line += "" if _evaluated(final) else f", {_not_evaluated(run)}"
    return line + (f"; missing: {', '.join(run.missing)}" if run.missing else "")


def _config_tables(runs: list[RunSummary], full: bool) -> list[tuple]:
    lacking = [r.label for r in runs if not r.config]
    runs = [r for r in runs if r.config]  # a column of dashes says less than one sentence
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.config))
    keys.pop("preset", None)  # already in every column header
    if not full:
        differ = [k for k in keys if len({_hp(r.config.get(k)) for r in runs}) > 1]
        keys = dict.fromkeys(
            [k for k in KEY_HPARAMS if k in keys] + [k for k in differ if k not in KEY_HPARAMS]
        )
    tables: list[tuple] = (
        [("p", "No config.json in " + ", ".join(lacking) + ".")] if lacking else []
    )
    per = (
        math.ceil(len(runs) / math.ceil(len(runs) / 4)) if runs else 1
    )  # <= 4 runs a table: fits A4
    for i in range(0, len(runs), per):
        chunk = runs[i : i + per]
        rows = [[k] + [_setting(r, k, short=not full) for r in chunk] for k in keys]
        if full:
            rows.insert(0, ["folder"] + [f"{r.path.parent.name}/{r.path.name}" for r in chunk])
        # "settings": cells wrap and the table keeps to the page, so every run's column is printed
        tables.append(("table", ["setting"] + [r.label for r in chunk], rows, False, "settings"))
    return tables


def _metrics_table(runs: list[RunSummary]) -> list[tuple]:
    finals = [r.final for r in runs]
    keys = metric_keys(finals)
    merged = {
        k: k[:-5] + "_std"
        for k in keys
        if k.endswith("_mean") and any(k[:-5] + "_std" in f for f in finals)
    }
    counts = sorted({k for f in finals for k, v in f.items() if is_count(k) and is_num(v)})
    header = (
        ["run", "status", "epoch", "time"]
        + ([metric_label(k) for k in keys] or ["metrics"])
        + [k.replace("_", " ") for k in counts]
    )
    rows = []
    for run, f in zip(runs, finals):
        if _evaluated(f):
            cells = [
                _fmt(f.get(k))
                + (f"\u00a0±\u00a0{_fmt(f[merged[k]])}" if is_num(f.get(merged.get(k))) else "")
                for k in keys
            ] + [_fmt_count(f.get(k)) for k in counts]
        else:  # one cell says why, spanning the row's metric columns (None: covered by the span)
            cells = [_not_evaluated(run)] + [None] * (len(header) - 5)
        rows.append(
            [
                run.label,
                run.status,
                _fmt(f.get("epoch", run.epochs_done or None)),
                _duration(run.hours),
                *cells,
            ]
        )
    note = (
        "Final evaluation of each run. "
        "FID and KID fall as the number of samples grows, so compare runs "
        + (
            "at equal sample counts (last columns)."
            if counts
            else "at equal sample counts (not recorded here)."
        )
    )
    if any(_evaluated(f) and any(not is_num(f.get(k)) for k in keys) for f in finals):
        note += " A dash marks a metric not measured for that run (genre scores need posters)."
    if not all(_evaluated(f) for f in finals):
        note += (
            " Not evaluated: the run's metrics.json holds no evaluation (trained without an "
            "EvaluateCallback, measured only in its notebook, or stopped before its first one)."
        )
    # True: right-align the numbers; "wide": smaller type and wrapping labels, to fit the page
    return [("p", note), ("table", header, rows, True, "wide" if len(header) > 8 else "")]


def _evaluated(final: dict[str, Any]) -> bool:
    """Whether a run's final evaluation holds any metric."""
    return bool(metric_keys([final]))


def _not_evaluated(run: RunSummary) -> str:
    """Why a run has no metrics, in a few words."""
    if "metrics.json" in run.missing:
        return "not evaluated (no metrics.json)"
    if any(m.startswith("metrics.json") for m in run.missing):
        return "not evaluated (metrics.json unreadable)"
    return "not evaluated"


def _fmt_count(v: Any) -> str:
    return str(int(v)) if is_num(v) and float(v).is_integer() else _fmt(v)


def _counts(runs: list[RunSummary]) -> str:
    counts = sorted(
        {
            f"{k.replace('_', ' ')} = {_fmt_count(v)}"
            for r in runs
            for k, v in r.final.items()
            if is_count(k) and is_num(v)
        }
    )
    return (
        ("Sample counts: " + ", ".join(counts) + ".")
        if counts
        else "Sample counts were not recorded."
    )


def _observations(runs: list[RunSummary]) -> list[str]:
    """Factual sentences from the numbers: metric trends, coverage, loss levels, what is missing."""
    out = [f"{len(runs)} runs, {_duration(sum(r.hours for r in runs))} of training in total."]
    for run in runs:
        facts, final = [], run.final
        fids = [e for e in run.evaluations if is_num(e.get("fid"))]
        when = lambda e: f"epoch {e['epoch']}" if "epoch" in e else f"step {e.get('step', '?')}"
        if len(fids) >= 2:
            first, last, best = fids[0], fids[-1], min(fids, key=lambda e: e["fid"])
            verb = "fell" if last["fid"] < first["fid"] else "rose"
            facts.append(
                f"FID {verb} from {_fmt(first['fid'])} to {_fmt(last['fid'])} "
                f"between {when(first)} and "
                f"{when(last)}"
                + (
                    f" (best {_fmt(best['fid'])} at {when(best)})"
                    if best["fid"] < 0.95 * last["fid"]
                    else ""
                )
            )
        elif fids:
            facts.append(f"FID {_fmt(fids[0]['fid'])} at {when(fids[0])} (one evaluation)")
        total = _n_classes(run)
        if is_num(final.get("classes_covered")):
            covered = int(final["classes_covered"])
            facts.append(
                f"all {total} classes covered"
                if total and covered >= total
                else f"{covered}{f' of {total}' if total else ''} classes covered"
            )
        if is_num(final.get("cond_accuracy")):
            acc = final["cond_accuracy"]
            facts.append(
                "samples show the requested label "
                f"{acc * 100 if acc <= 1 else acc:.1f}% of the time"
            )
        if is_num(final.get("genre_roc_auc")):
            facts.append(
                f"a genre classifier tells the requested genres from the others with mean ROC-AUC "
                f"{final['genre_roc_auc']:.3f} (0.5: condition ignored)"
            )
        if not _evaluated(final):
            facts.append(_not_evaluated(run) + ", so no quality numbers")
        facts += _loss_facts(run)
        if run.status != "finished" and run.epochs_done < (run.epochs_planned or math.inf):
            facts.append(
                f"stopped at epoch {run.epochs_done} of {run.epochs_planned or '?'} "
                f"(status: {run.status})"
            )
        elif run.status != "finished":
            facts.append(f"status: {run.status}")
        if run.missing:
            facts.append("missing " + ", ".join(run.missing))
        if run.metrics.get("notes"):
            facts.append(f"run notes: {run.metrics['notes']}")
        out.append(f"**{run.label}**: " + "; ".join(facts or ["no numbers to report"]) + ".")
    for preset in dict.fromkeys(r.preset for r in runs):  # compare repeated runs of one preset
        # Sort on FID alone (stable: ties keep start
        # order); repeated runs of one config tie exactly.
        scored = sorted(
            (
                (r.final["fid"], r)
                for r in runs
                if r.preset == preset and is_num(r.final.get("fid"))
            ),
            key=lambda pair: pair[0],
        )
        if len(scored) < 2:
            continue
        differ = [
            k
            for k in dict.fromkeys(k for _, r in scored for k in r.config)
            if len({_hp(r.config.get(k)) for _, r in scored}) > 1
        ][:3]
        named = [", ".join(f"{k}={_setting(r, k)}" for k in differ) for _, r in scored]
        if len(set(named)) < len(named):  # the settings differ beyond what a short form shows
            named = [f"{r.label}: {n}" if n else r.label for n, (_, r) in zip(named, scored)]
        parts = [f"{_fmt(fid)} ({n or r.label})" for n, (fid, r) in zip(named, scored)]
        out.append(f"**{preset}**: final FID by run, best first: " + "; ".join(parts) + ".")
    return out


def _loss_facts(run: RunSummary) -> list[str]:
    h = run.history
    if not {"loss_d", "loss_g"} <= set(h.columns) or len(h) < 4:
        return []
    facts = []
    finite = h[["loss_d", "loss_g"]].apply(lambda c: c.map(math.isfinite)).all(axis=1)
    if not finite.all():
        facts.append(
            "losses became NaN/inf at step "
            f"{_fmt(h.loc[~finite, 'step'].iloc[0]) if 'step' in h else '?'}"
        )
        h = h.iloc[
            : int((~finite).to_numpy().argmax())
        ]  # the facts below describe the run before it broke
        if len(h) < 4:
            return facts
    quarter = max(1, len(h) // 4)
    tail = h.iloc[-quarter:]
    if run.config.get("loss", "bce") == "bce":
        m = tail["loss_d"].mean()
        near = abs(m - LOG4) < 0.2 * LOG4
        facts.append(
            f"loss_d averaged {_fmt(m)} over the last quarter of logged steps"
            + (
                f", near 2·ln 2 ≈ {LOG4:.2f}, the loss of a D that outputs 1/2 for every image"
                if near
                else ": D separates real from fake almost perfectly"
                if m < 0.3
                else f" (2·ln 2 ≈ {LOG4:.2f})"
            )
        )
    elif {"d_real", "d_fake"} <= set(h.columns):
        gap = h["d_real"] - h["d_fake"]
        first, last = _fmt(gap.iloc[:quarter].mean()), _fmt(gap.iloc[-quarter:].mean())
        facts.append(
            "critic gap d_real − d_fake (its Wasserstein estimate) "
            f"averaged {first} in the first and "
            f"{last} in the last quarter of logged steps"
        )
    return facts


def _next_steps(runs: list[RunSummary], notes: str) -> list[tuple]:
    todo = [
        f"finish **{r.label}**: `gankit train {r.preset} --resume`"
        for r in runs
        if r.status in ("running", "incomplete")
    ]
    todo += [
        f"find why **{r.label}** diverged (loss curves above)"
        for r in runs
        if r.status == "diverged"
    ]
    todo += ["_(instructor: add next steps)_"]
    blocks: list[tuple] = [("h", 2, "Notes and next steps")]
    blocks += [("p", para.strip()) for para in notes.split("\n\n") if para.strip()]
    return blocks + [("list", todo, [False] * len(todo))]


def _notebook_title(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return None


def _html_title(path: Path) -> str | None:
    found = re.search(
        r"<title>(.*?)</title>", path.read_text(encoding="utf-8", errors="replace")[:20000], re.S
    )
    return html.unescape(found.group(1)).strip() if found else None
