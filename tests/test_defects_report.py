"""Progress reports, notebook exports, `make course` and the lessons' Colab cell, as a learner and
an instructor meet them: unique run labels, reasons for missing numbers, long settings summarised,
every column in the PDF, exports that show the animation and say what MathJax needs, a course run
that leaves the checkout clean, one install source in the Colab cell."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from test_report import make_run

from gankit.datasets.posters import GENRES
from gankit.report import build as report

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def make_runs(root: Path) -> Path:
    """Five runs as an instructor's week holds them: two wgan-gp-mnist runs started in one minute
    (the second never evaluated, and 30 s long), two poster runs with the 28 genre names in their
    config, one MLP run."""
    make_run(root, "mlp-mnist", "20261207-173018", 4e-4, [431.0, 69.5], (200, 30, 30))
    make_run(root, "wgan-gp-mnist", "20261207-190105", 2e-3, [600.0, 181.3], (30, 30, 200))
    quick = make_run(root, "wgan-gp-mnist", "20261207-190142", 2e-3, [600.0], (30, 200, 200))
    _edit_json(quick / "metrics.json", evaluations=[], final={})
    rows = (quick / "history.csv").read_text().splitlines()
    seconds = [",".join(r.split(",")[:-1] + [f"{7.5 * i:.1f}"]) for i, r in enumerate(rows[1:])]
    (quick / "history.csv").write_text("\n".join([rows[0], *seconds]) + "\n")  # 30 s of training
    _edit_json(quick / "config.json", latent_dim=512)
    posters = (("20261207-192000", "multi-hot", 28.0), ("20261207-192600", "normalised", 16.6))
    for stamp, encoding, fid in posters:
        run = make_run(root, "poster-cgan", stamp, 1e-3, [fid], (150, 80, 20))
        _edit_json(
            run / "config.json",
            dataset="posters",
            cond_dim=28,
            label_names=list(GENRES),
            genre_encoding=encoding,
            image_size=64,
            channels=3,
        )
        final = dict(step=40, epoch=1, seconds=60.0, fid=fid, kid_mean=2.77, kid_std=0.1)
        final.update(genre_roc_auc=0.818, genre_map=0.461, n_samples=380, n_reference=10000)
        _edit_json(run / "metrics.json", evaluations=[final], final=final)
    return root


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> dict:
    root = make_runs(tmp_path_factory.mktemp("runs"))
    out = tmp_path_factory.mktemp("reports")
    paths = report.build_report(root, out, until=date(2026, 12, 7))
    return dict(paths=paths, md=paths["md"].read_text(), html=paths["html"].read_text())


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _table_rows(md: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in md.splitlines()
        if line.startswith(f"| {first_cell} ")
    ]


# ------------------------------------------------------------------------------- progress report
def test_runs_started_in_one_minute_get_different_labels(week):
    labels = re.findall(r"^- \[.\] \*\*(.+?)\*\*", _section(week["md"], "Status"), re.M)
    assert len(labels) == 5 and len(set(labels)) == 5, labels
    assert "wgan-gp-mnist 12-07 19:01:05" in labels and "wgan-gp-mnist 12-07 19:01:42" in labels
    assert "mlp-mnist 12-07 17:30" in labels  # alone in its minute: the short label stays
    headers = [
        h for row in _table_rows(_section(week["md"], "Hyperparameters"), "setting") for h in row
    ]
    assert len([h for h in headers if h.startswith("wgan-gp-mnist")]) == 2
    assert len(set(headers) - {"setting"}) == 5


def test_unique_labels_fall_back_to_the_folder():
    """Two runs started in one second (folders <stamp> and <stamp>-1)."""
    from datetime import datetime

    from gankit.report.runs import RunSummary, unique_labels

    def run(name):
        path = Path("runs/mlp-mnist") / name
        return RunSummary(
            path, "mlp-mnist", datetime(2026, 12, 7, 19, 1, 5), {}, None, {}, [], 0, ""
        )

    labels = [r.label for r in unique_labels([run("20261207-190105"), run("20261207-190105-1")])]
    assert labels == [
        "mlp-mnist mlp-mnist/20261207-190105",
        "mlp-mnist mlp-mnist/20261207-190105-1",
    ]


def test_a_run_without_evaluations_says_so(week):
    md = week["md"]
    row = next(r for r in _table_rows(_section(md, "Metrics"), "wgan-gp-mnist 12-07 19:01:42"))
    assert row[4] == "not evaluated" and set(row[5:]) == {""}  # one reason, not a row of dashes
    assert "Not evaluated: the run's metrics.json holds no evaluation" in md
    status = next(s for s in md.splitlines() if "**wgan-gp-mnist 12-07 19:01:42**: finished" in s)
    assert status.endswith("not evaluated")
    assert re.search(r"<td colspan=\d+>not evaluated</td>", week["html"])  # one cell, spanning


def test_long_settings_are_summarised_outside_the_appendix(week):
    md = week["md"]
    before_appendix = md.split("## Appendix")[0]
    assert "Western" not in before_appendix and "Action, Adult" not in before_appendix
    (row,) = _table_rows(_section(md, "Hyperparameters"), "label_names")[-1:]
    assert row[-2:] == ["28 genres", "28 genres"]
    ranking = next(s for s in md.splitlines() if s.startswith("- **poster-cgan**: final FID"))
    assert ranking == (
        "- **poster-cgan**: final FID by run, best first: 16.6 (genre_encoding=normalised); "
        "28.0 (genre_encoding=multi-hot)."
    )
    assert "Western" in _section(md, "Appendix: full configurations")  # the full list, once


def test_settings_tables_wrap_and_fit_the_page(week):
    tables = re.findall(r"<table class=(\w+)>", week["html"])
    assert tables.count("settings") >= 4  # 5 runs: two key tables and two appendix tables
    css = week["html"].split("<style>")[1].split("</style>")[0]
    assert re.search(r"table\.settings \{[^}]*table-layout: fixed; width: 100%", css)
    assert re.search(r"table\.settings th, table\.settings td \{[^}]*white-space: normal", css)


def test_short_runs_show_seconds(week):
    status = next(s for s in week["md"].splitlines() if "**wgan-gp-mnist 12-07 19:01:42**" in s)
    assert ", 30 s," in status and "0 min" not in week["md"]
    row = _table_rows(_section(week["md"], "Metrics"), "wgan-gp-mnist 12-07 19:01:42")[0]
    assert row[3] == "30 s"
    assert [report._duration(h) for h in (0.4 / 3600, 59 / 3600, 61 / 3600, 3 / 60, 1.5)] == [
        "0 s",
        "59 s",
        "1 min",
        "3 min",
        "1.5 h",
    ]


class _VisibleText(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.hidden = [], 0

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("style", "title", "script")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("style", "title", "script")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def _words(text: str) -> Counter:
    return Counter(re.findall(r"[A-Za-z0-9]+", text))


@pytest.mark.skipif(
    not (report.find_chromium() and shutil.which("pdftotext")),
    reason="needs Chromium and pdftotext (Debian: apt install chromium poppler-utils)",
)
def test_pdf_holds_every_word_of_the_html_within_the_page(week):
    """Every word of the HTML report reaches the PDF (no run's column dropped, no metric column cut
    off), and no word ends beyond the right margin (12 mm, @page in render.CSS)."""
    parser = _VisibleText()
    parser.feed(week["html"])
    want = _words(" ".join(parser.parts))
    pdf = str(week["paths"]["pdf"])
    boxes = subprocess.run(["pdftotext", "-bbox", pdf, "-"], capture_output=True, text=True).stdout
    got = _words(
        " ".join(html.unescape(w) for w in re.findall(r"<word[^>]*>([^<]*)</word>", boxes))
    )
    assert {w: (n, got[w]) for w, n in want.items() if got[w] < n} == {}
    page_width = float(re.search(r'<page width="([\d.]+)"', boxes).group(1))
    right = page_width - 12 / 25.4 * 72
    ends = re.findall(r'xMax="([\d.]+)"[^>]*>([^<]*)<', boxes)
    beyond = [(w, x) for x, w in ends if float(x) > right + 0.5]
    assert beyond == []


# ------------------------------------------------------------------------------ notebook exports
def _gif() -> tuple[str, int]:
    frames = [Image.new("L", (12, 12), v) for v in (0, 120, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    return base64.b64encode(buf.getvalue()).decode("ascii"), len(frames)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    gif, n_frames = _gif()
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Lesson 9\n\nThe game: $\\min_G \\max_D V(D, G)$."),
            new_code_cell(
                "show_gif(progress_gif(trainer.run_dir))",
                execution_count=1,
                outputs=[
                    new_output(
                        "display_data",
                        data={
                            "image/gif": gif,
                            "text/plain": "<IPython.core.display.Image object>",
                        },
                    )
                ],
            ),
        ]
    )
    out = tmp_path_factory.mktemp("exports")
    nbformat.write(nb, out / "09_lesson.ipynb")
    plain = new_notebook(cells=[new_markdown_cell("# Prices\n\nFrom $5 to $10, no maths here.")])
    nbformat.write(plain, out / "10_plain.ipynb")
    pages = report.export_notebooks([out / "09_lesson.ipynb", out / "10_plain.ipynb"], out / "html")
    return dict(page=pages[0].read_text(), plain=pages[1].read_text(), frames=n_frames, gif=gif)


def test_the_training_animation_is_embedded_and_plays(exported):
    page = exported["page"]
    assert "IPython.core.display.Image object" not in page
    (src,) = re.findall(r'<img [^>]*src="(data:image/gif;base64,[^"]+)"', page)
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        assert im.format == "GIF" and im.n_frames == exported["frames"]  # every frame: it plays


def test_exports_with_formulas_say_they_need_a_connection(exported):
    page = exported["page"]
    body = page.split("<body", 1)[1]
    note = body.index('id="gankit-math-note"')
    assert note < body.index("Lesson 9")  # at the top, above the lesson
    assert "need an internet connection" in body[note : note + 1000]
    assert "MathJax" in body[note : note + 1000]
    assert "gankit-math-note" not in exported["plain"]  # dollars without TeX: no note


@pytest.mark.skipif(not report.find_chromium(), reason="needs Chromium")
def test_the_note_goes_away_where_mathjax_loads(exported, tmp_path):
    """Offline the note stays; where MathJax loads (a stand-in script here) it is removed."""
    stub = tmp_path / "mathjax.js"
    stub.write_text("window.MathJax = {Hub: {Config() {}, Queue() {}}};")
    cdn = re.search(r'<script src="(https://cdnjs[^"]*mathjax[^"]*)"', exported["page"]).group(1)
    pages = {
        "offline": exported["page"],
        "online": exported["page"].replace(cdn, stub.as_uri()),
    }
    dom = {}
    for name, text in pages.items():
        (tmp_path / f"{name}.html").write_text(text)
        cmd = [report.find_chromium(), "--headless", "--no-sandbox", "--disable-gpu"]
        cmd += [f"--user-data-dir={tmp_path / ('profile-' + name)}"]
        cmd += ["--host-resolver-rules=MAP * ~NOTFOUND"]  # offline, whatever this machine has
        cmd += ["--dump-dom", (tmp_path / f"{name}.html").as_uri()]
        dom[name] = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    note = 'id="gankit-math-note"'
    assert note in dom["offline"] and note not in dom["online"]


# ------------------------------------------------------------------------------------- Makefile
def _make(*args: str, **env: str) -> subprocess.CompletedProcess:
    # -o: never rebuild the venv from a test, even when pyproject.toml is newer than it
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed", *args]
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "MAKEFLAGS"}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_course_executes_copies_and_leaves_the_checkout_clean(tmp_path):
    """`make course` on a one-cell lesson: executed in COURSE_DIR (the kernel sees
    GANKIT_PROGRESS=epochs, over IPC: no TCP warning), the lesson itself untouched, reports in
    COURSE_DIR/reports."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    lesson = tmp_path / "lessons" / "01_probe.ipynb"
    lesson.parent.mkdir()
    code = "import os\nprint(os.environ.get('GANKIT_PROGRESS'), os.getcwd())"
    widget = "import ipywidgets\nipywidgets.IntSlider()"  # saved: a live view and a text fallback
    nbformat.write(new_notebook(cells=[new_code_cell(code), new_code_cell(widget)]), lesson)
    before = lesson.read_bytes()
    runs = tmp_path / "runs"
    make_run(runs, "mlp-mnist", "20261207-173018", 4e-4, [69.5], (200, 30, 30))
    course = tmp_path / "build" / "course"
    done = _make("course", f"NOTEBOOKS={lesson}", f"COURSE_DIR={course}", GANKIT_RUNS=str(runs))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "without encryption" not in done.stdout + done.stderr
    assert lesson.read_bytes() == before  # the tracked lesson is not executed in place
    executed = nbformat.read(course / "01_probe.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].split() == ["epochs", str(course)]
    # a reader of the executed copy without its kernel sees a note, not "IntSlider(value=0)"
    (view,) = executed.cells[1].outputs
    assert view["data"]["text/plain"].startswith("[interactive widget")
    for name in ("index.html", "01_probe.html"):
        assert (course / "reports" / name).is_file(), name
    assert list((course / "reports").glob("progress-*.html"))


def test_course_folder_is_git_ignored_and_maintainers_have_their_own_target():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "build/course/01_vanilla_mlp_gan.ipynb"], cwd=ROOT
    )
    assert ignored.returncode == 0
    dry = _make("-n", "notebooks").stdout
    assert "--inplace" in dry and "GANKIT_PROGRESS=epochs" in dry
    assert "--KernelManager.transport=ipc" in dry
    assert "nbstripout --keep-output --keep-count notebooks/01_vanilla_mlp_gan.ipynb" in dry
    course = _make("-n", "course").stdout
    assert "GANKIT_PROGRESS=epochs" in course and "--KernelManager.transport=ipc" in course
    assert not re.search(r"--inplace \S*notebooks/\d\d_", course)  # never the tracked lessons


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_dist_builds_a_wheel(tmp_path):
    done = _make("dist", f"DIST_DIR={tmp_path}")
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = tmp_path.glob("gankit-*-py3-none-any.whl")
    assert wheel.name in done.stdout


# ------------------------------------------------------------------------ lessons' first cells
def _cells(path: Path) -> list[str]:
    """The code cells of a jupytext percent source, in order."""
    cells = re.split(r"^# %%.*$", path.read_text(encoding="utf-8"), flags=re.M)[1:]
    heads = re.findall(r"^# %%.*$", path.read_text(encoding="utf-8"), flags=re.M)
    return [c for h, c in zip(heads, cells) if "[markdown]" not in h]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_colab_cell_installs_from_one_variable(lesson, tmp_path):
    """Run the Colab cell as Colab would (google.colab importable, %pip a recording stand-in):
    pip gets GANKIT_SOURCE, whatever it is set to; a wheel on Drive mounts Drive first."""
    import jupytext

    nb = jupytext.read(lesson)
    colab = next(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(
        r'^GANKIT_SOURCE = "git\+https://github\.com/gankit-course/gankit"$', colab, re.M
    )
    assert colab.count("github.com") == 1  # the source is written once
    wheel = "/content/drive/MyDrive/gankit-0.1.0-py3-none-any.whl"
    script = tmp_path / "run_cell.py"
    script.write_text(
        "import json, sys, types\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "calls = []\n"
        "colab = types.ModuleType('google.colab')\n"
        "colab.drive = types.SimpleNamespace(mount=lambda p: calls.append(('mount', p)))\n"
        "sys.modules.update({'google': types.ModuleType('google'), 'google.colab': colab})\n"
        "shell = InteractiveShell.instance()\n"
        "shell.register_magic_function(lambda line: calls.append(('pip', line)), 'line', 'pip')\n"
        "shell.run_cell(sys.argv[1], store_history=False).raise_error()\n"
        "print(json.dumps(calls))\n"
    )
    for source, expected in (
        (colab, [["pip", 'install -q "git+https://github.com/gankit-course/gankit"']]),
        (
            re.sub(r'^GANKIT_SOURCE = ".*"$', f'GANKIT_SOURCE = "{wheel}"', colab, flags=re.M),
            [["mount", "/content/drive"], ["pip", f'install -q "{wheel}"']],
        ),
    ):
        done = subprocess.run(
            [sys.executable, str(script), source], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_setup_cell_has_a_resume_switch_that_reaches_training(lesson):
    cells = _cells(lesson)
    setup = next(c for c in cells if re.search(r"^LOAD_RUN = ", c, re.M))
    assert re.search(r"^LOAD_RUN = False  # .+\nRESUME = False  # True: .+", setup, re.M)
    text = lesson.read_text(encoding="utf-8")
    calls = re.findall(r"train_or_load\((?:[^()]|\([^()]*\))*\)", text)
    loading = [c for c in calls if "load=LOAD_RUN" in c]
    assert loading and all("resume=RESUME" in c for c in loading), loading
