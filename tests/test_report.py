"""Progress reports from tiny fake run folders, and notebook exports (no training, no torch)."""

from __future__ import annotations

import base64
import json
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from PIL import Image

from gankit.report import build as report


def make_run(
    root: Path, preset: str, stamp: str, lr: float, fids: list[float], color: tuple[int, int, int]
) -> Path:
    """A run folder as the Trainer writes it: config, history, metrics with one evaluation per
    epoch, sample grids."""
    path = root / preset / stamp
    (path / "samples").mkdir(parents=True)
    config = dict(
        preset=preset,
        dataset="mnist",
        model="mlp",
        loss="bce",
        latent_dim=64,
        hidden_dim=256,
        batch_size=64,
        lr_g=lr,
        lr_d=lr,
        betas=[0.5, 0.999],
        epochs=len(fids),
        seed=0,
        profile="cpu",
        extra={},
    )
    (path / "config.json").write_text(json.dumps(config))
    rows = ["step,epoch,loss_d,loss_g,d_real,d_fake,seconds"]
    rows += [
        f"{s},{s // 40 + 1},{1.38 + 0.01 * (s % 3)},{0.7 + 0.01 * (s % 5)},0.1,-0.1,{s * 1.5}"
        for s in range(0, 40 * len(fids), 8)
    ]
    (path / "history.csv").write_text("\n".join(rows) + "\n")
    evals = [
        dict(
            step=40 * (e + 1),
            epoch=e + 1,
            seconds=60.0 * (e + 1),
            fid=fid,
            classes_covered=10,
            n_samples=500.0,
            kid_subset_size=500.0,
            eval_seconds=1.5,
            class_hist_3=0.1,
        )
        for e, fid in enumerate(fids)
    ]
    (path / "metrics.json").write_text(
        json.dumps(dict(preset=preset, evaluations=evals, final=evals[-1], status="finished"))
    )
    for e in range(
        1, len(fids) + 1
    ):  # a 2x2 grid of 8-px tiles, a different colour per run and epoch
        grid = Image.new("RGB", (18, 18), (0, 0, 0))
        for k in range(4):
            grid.paste(
                Image.new("RGB", (8, 8), (color[0], color[1], (color[2] + 40 * e) % 256)),
                (1 + 9 * (k % 2), 1 + 9 * (k // 2)),
            )
        grid.save(path / "samples" / f"epoch_{e:04d}.png")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "mlp-mnist", "20261110-091500", 2e-4, [40.0, 21.0, 12.5], (200, 30, 30))
    make_run(root, "mlp-mnist", "20261112-140210", 1e-4, [44.0, 30.0, 18.25], (30, 200, 30))
    make_run(
        root, "dcgan-mnist", "20261001-080000", 3e-4, [50.0], (30, 30, 200)
    )  # before the period
    (root / "wgan-gp-mnist" / "20261120-101010").mkdir(
        parents=True
    )  # interrupted before writing anything
    return root


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("reports")
    paths = report.build_report(
        runs,
        out,
        since=date(2026, 11, 8),
        until=date(2026, 11, 22),
        notes="Check the learning rates next.",
    )
    return dict(paths=paths, md=paths["md"].read_text(), html=paths["html"].read_text(), runs=runs)


def test_find_runs_dates_sorting_and_filters(runs):
    found = report.find_runs(runs)
    assert [r.started for r in found] == sorted(r.started for r in found)
    assert found[0].started == datetime(2026, 10, 1, 8, 0, 0)  # parsed from the folder name
    assert [r.preset for r in report.find_runs(runs, since=date(2026, 11, 8))] == [
        "mlp-mnist",
        "mlp-mnist",
        "wgan-gp-mnist",
    ]
    assert [r.path.name for r in report.find_runs(runs, until="2026-11-11")] == [
        "20261001-080000",
        "20261110-091500",
    ]
    first = report.find_runs(runs, since=date(2026, 11, 10), until=date(2026, 11, 10))[0]
    assert first.epochs_done == 3 and first.status == "finished"
    assert first.hours == pytest.approx(
        180 / 3600
    )  # the last evaluation (180 s) is after the last log (168 s)
    assert report.find_runs(runs.parent / "no-such-folder") == []


def test_a_runs_root_nested_in_another_is_not_read_as_runs(tmp_path):
    """runs/test/<preset>/<timestamp>/ (e.g. GANKIT_RUNS=runs/test)
    holds runs, but is not a run of preset "test"."""
    make_run(tmp_path, "mlp-mnist", "20261110-091500", 2e-4, [40.0], (200, 30, 30))
    make_run(tmp_path / "test", "mlp-mnist", "20261111-091500", 2e-4, [40.0], (200, 30, 30))
    renamed = make_run(tmp_path, "dcgan-mnist", "20261112-091500", 2e-4, [40.0], (30, 30, 200))
    renamed.rename(renamed.parent / "best-run")  # a renamed run still holds its files: still a run
    (tmp_path / "wgan-gp-mnist" / "20261113-101010").mkdir(
        parents=True
    )  # cut off before writing: still a run
    found = report.find_runs(tmp_path)
    assert [
        (r.preset, r.path.name) for r in found
    ] == [  # the renamed run is dated by its folder's mtime: today
        ("mlp-mnist", "20261110-091500"),
        ("wgan-gp-mnist", "20261113-101010"),
        ("dcgan-mnist", "best-run"),
    ]


def test_settings_added_later_read_as_their_defaults(tmp_path):
    """A config.json written before a setting existed (precision) gets its default, so an old and a
    new run do not seem to differ in it; a setting the run did record is kept."""
    old = make_run(tmp_path, "mlp-mnist", "20261110-091500", 2e-4, [40.0], (200, 30, 30))
    new = make_run(tmp_path, "mlp-mnist", "20261111-091500", 2e-4, [40.0], (200, 30, 30))
    cfg = json.loads((new / "config.json").read_text())
    (new / "config.json").write_text(json.dumps({**cfg, "precision": "fp32"}))
    a, b = report.find_runs(tmp_path)
    assert "precision" not in json.loads((old / "config.json").read_text())
    assert a.config["precision"] == b.config["precision"] == "fp32" and a.config["lr_g"] == 2e-4
    md = report.build_report(tmp_path, tmp_path / "out", pdf=False)["md"].read_text()
    key_table = md.split("Appendix")[0]
    assert (
        "| precision |" not in key_table
    )  # the runs agree: not listed among the differing settings


def test_report_files_named_by_date(built):
    assert built["paths"]["md"].name == "progress-2026-11-22.md"
    assert built["paths"]["html"].name == "progress-2026-11-22.html"


def test_report_has_both_runs_hyperparameters(built):
    for text in (built["md"], built["html"]):
        assert "0.0002" in text and "0.0001" in text  # lr_g / lr_d of each run
        assert "(0.5, 0.999)" in text
    row = next(line for line in built["md"].splitlines() if line.startswith("| lr_g |"))
    assert row.split("|")[2:4] == [" 0.0002 ", " 0.0001 "]  # runs as columns, oldest first


def test_report_contains_metrics_and_observations(built):
    for text in (built["md"], built["html"]):
        assert "12.5" in text and "18.2" in text  # final FIDs (18.25 shown to one decimal)
    assert "FID fell from 40.0 to 12.5 between epoch 1 and epoch 3" in built["md"]
    assert "all 10 classes covered" in built["md"]
    assert "near 2·ln 2" in built["md"]  # loss_d ~1.39 in the fake history
    assert (
        "Check the learning rates next." in built["md"]
        and "Check the learning rates next." in built["html"]
    )
    assert "12.5 (lr_g=0.0002, lr_d=0.0002); 18.2 (lr_g=0.0001, lr_d=0.0001)" in built["md"]
    header = next(line for line in built["md"].splitlines() if line.startswith("| run | status"))
    assert (
        "class hist" not in header and "eval seconds" not in header
    )  # bookkeeping stays out of the table
    assert header.endswith("| kid subset size | n samples |")  # counts last, as whole numbers:
    assert re.search(
        r"\| 500 \| 500 \|$",
        next(
            line
            for line in built["md"].splitlines()
            if "11-12 14:02" in line and line.startswith("| mlp-mnist")
        ),
    )


def test_html_is_self_contained_with_embedded_images(built):
    html = built["html"]
    for name in ("20261110-091500", "20261112-140210"):
        grid = (built["runs"] / "mlp-mnist" / name / "samples" / "epoch_0003.png").read_bytes()
        assert base64.b64encode(grid).decode() in html  # the sample grid itself, embedded
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)
    assert len(srcs) >= 2 * 3 + 3  # 3 grids per run + loss curves + 2 quality figures
    assert all(src.startswith("data:image/png;base64,") for src in srcs)  # tiny flat grids stay PNG
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from a CDN
    assert "<style>" in html


def test_markdown_images_exist(built):
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", built["md"])
    assert len(refs) >= 2 * 3 + 3
    out = built["paths"]["md"].parent
    for ref in refs:
        assert (out / ref).is_file(), ref
    assert (out / refs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_since_excludes_older_runs(built):
    assert "dcgan-mnist" not in built["md"] and "50.0" not in built["md"]
    assert "Period 2026-11-08 to 2026-11-22" in built["md"]


def test_run_without_history_or_metrics_is_reported_missing(built):
    line = next(
        line
        for line in built["md"].splitlines()
        if "wgan-gp-mnist" in line and line.startswith("- [")
    )
    assert line.startswith("- [ ]") and "incomplete" in line
    for name in ("config.json", "history.csv", "metrics.json", "samples"):
        assert name in line


def test_pdf_made_or_clear_message(built):
    result = built["paths"]
    if report.find_chromium():
        assert (
            result["pdf"].name == "progress-2026-11-22.pdf"
            and result["pdf"].read_bytes()[:4] == b"%PDF"
        )
    else:
        assert "pdf" not in result and "chromium" in result["message"].lower()


def test_no_chromium_gives_message_not_crash(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "find_chromium", lambda: None)
    # only the interrupted run (no figures to draw): keeps the test fast
    result = report.build_report(runs, tmp_path, since=date(2026, 11, 20), until=date(2026, 11, 20))
    assert "pdf" not in result and result["html"].is_file()
    assert "PDF skipped" in result["message"] and "apt install chromium" in result["message"]
    assert "PDF skipped" in capsys.readouterr().out


def test_empty_period_and_missing_root(runs, tmp_path):
    result = report.build_report(
        runs, tmp_path, since=date(2030, 1, 1), until=date(2030, 1, 2), pdf=False
    )
    assert "No runs started in this period" in result["md"].read_text()
    with pytest.raises(FileNotFoundError, match="gankit train"):
        report.build_report(tmp_path / "nothing-here", tmp_path, pdf=False)


def test_default_runs_folder_is_the_runs_root(tmp_path, monkeypatch):
    """No folder given: GANKIT_RUNS (gankit.runs.runs_root), not ./runs of the working directory."""
    make_run(tmp_path / "root", "mlp-mnist", "20261110-091500", 2e-4, [40.0], (200, 30, 30))
    make_run(tmp_path / "cwd" / "runs", "dcgan-mnist", "20261111-091500", 2e-4, [40.0], (1, 2, 3))
    monkeypatch.setenv("GANKIT_RUNS", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path / "cwd")
    assert [(r.preset, r.path.name) for r in report.find_runs()] == [
        ("mlp-mnist", "20261110-091500")
    ]
    md = report.build_report(out=tmp_path / "out", pdf=False)["md"].read_text()
    assert "mlp-mnist" in md and "dcgan-mnist" not in md


def test_export_notebooks_hides_code_keeps_output(tmp_path, built):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    nb = new_notebook(
        cells=[
            new_markdown_cell("# Lesson 1: a vanilla GAN\n\nWhat to look for in the plots."),
            new_code_cell(
                "hidden_variable_name = 6 * 7\nprint(hidden_variable_name)",
                execution_count=1,
                outputs=[new_output("stream", name="stdout", text="the answer is 42\n")],
            ),
        ]
    )
    nb_path = tmp_path / "01_vanilla_mlp_gan.ipynb"
    nbformat.write(nb, nb_path)
    out = built["paths"]["md"].parent  # holds a progress report too: the index must list both
    (exported,) = report.export_notebooks([nb_path], out)
    page = exported.read_text()
    assert exported.name == "01_vanilla_mlp_gan.html"
    assert "the answer is 42" in page and "What to look for in the plots." in page
    assert "hidden_variable_name" not in page
    index, readme = (out / "index.html").read_text(), (out / "README.md").read_text()
    for text in (index, readme):
        assert "01_vanilla_mlp_gan.html" in text and "Lesson 1: a vanilla GAN" in text
        assert "progress-2026-11-22.html" in text and "progress-2026-11-22.md" in text


def test_repeated_runs_with_the_same_final_fid(tmp_path):
    """Re-running a seeded config gives the very same FID;
    the report must still rank the runs (it crashed here)."""
    make_run(tmp_path / "runs", "cgan-mnist", "20261122-184341", 2e-4, [40.0, 23.36], (10, 10, 10))
    make_run(tmp_path / "runs", "cgan-mnist", "20261122-191858", 2e-4, [41.0, 23.36], (20, 20, 20))
    result = report.build_report(tmp_path / "runs", tmp_path / "out", pdf=False)
    md = result["md"].read_text()
    line = next(s for s in md.splitlines() if s.startswith("- **cgan-mnist**: final FID by run"))
    assert line.count("23.4") == 2 and line.index("11-22 18:43") < line.index(
        "11-22 19:18"
    )  # ties keep start order


def test_colour_grids_become_jpeg_and_grey_grids_stay_lossless(tmp_path):
    """Poster-like grids are embedded as JPEG (small
    reports); MNIST-like grey grids keep every pixel."""
    import numpy as np

    rng = np.random.default_rng(0)
    root = tmp_path / "runs"
    colour = make_run(root, "poster-cgan", "20261115-100000", 1e-4, [30.0, 20.0], (10, 10, 10))
    grey = make_run(root, "mlp-mnist", "20261115-110000", 1e-4, [30.0, 20.0], (10, 10, 10))
    pixels = {}
    for e in (1, 2):
        # photo-like: smooth colour fields (bilinear from
        # 16x16) with a little grain, as generated posters are
        smooth = np.asarray(
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((128, 128))
        )
        grain = np.clip(smooth.astype(int) + rng.integers(-12, 13, smooth.shape), 0, 255).astype(
            np.uint8
        )
        Image.fromarray(grain).save(colour / "samples" / f"epoch_{e:04d}.png")
        digits = rng.integers(0, 256, (128, 128), dtype=np.uint8)
        pixels[e] = digits
        Image.fromarray(np.stack([digits] * 3, -1)).save(grey / "samples" / f"epoch_{e:04d}.png")
    paths = report.build_report(root, tmp_path / "out", since=date(2026, 11, 14), pdf=False)
    files = paths["md"].parent / f"{paths['md'].stem}_files"
    jpgs = sorted(files.glob("poster-cgan-*.jpg"))
    assert len(jpgs) == 2 and not list(files.glob("poster-cgan-*.png"))
    for f in jpgs:
        png = (colour / "samples" / f.name.split("-")[-1].replace(".jpg", ".png")).stat().st_size
        assert f.stat().st_size < png / 2
    for e in (1, 2):
        with Image.open(files / f"mlp-mnist-20261115-110000-epoch_{e:04d}.png") as im:
            assert np.array_equal(np.asarray(im.convert("L")), pixels[e])  # lossless
    assert paths["html"].read_text().count("data:image/jpeg;base64,") == 2


def test_genre_metrics_logged_after_training_reach_the_report(tmp_path):
    """Lesson 04 logs a poster run's genre ROC-AUC / mAP
    with Trainer.log_metrics; the report shows them."""
    run = make_run(
        tmp_path / "runs", "poster-cgan", "20261115-100000", 1e-4, [30.0, 20.0], (10, 10, 10)
    )
    doc = json.loads((run / "metrics.json").read_text())
    doc["evaluations"].append(
        dict(
            step=80,
            epoch=2,
            seconds=120.0,
            fid=16.6,
            genre_roc_auc=0.822,
            genre_map=0.486,
            n_samples=380,
        )
    )
    doc["final"] = doc["evaluations"][-1]
    (run / "metrics.json").write_text(json.dumps(doc))
    md = report.build_report(
        tmp_path / "runs", tmp_path / "out", since=date(2026, 11, 14), pdf=False
    )["md"].read_text()
    assert "| genre ROC-AUC | genre mAP |" in md and "| 0.822 | 0.486 |" in md
    assert "genre ROC-AUC 0.822" in md and "mean ROC-AUC 0.822 (0.5: condition ignored)" in md
    assert "quality-mnist-seconds.png" in md  # the run has evaluations over time: curves


def test_runs_evaluated_once_get_no_curves(tmp_path):
    make_run(tmp_path / "runs", "poster-cgan", "20261115-100000", 1e-4, [30.0], (10, 10, 10))
    md = report.build_report(
        tmp_path / "runs", tmp_path / "out", since=date(2026, 11, 14), pdf=False
    )["md"].read_text()
    assert "quality-mnist" not in md and "each run was evaluated once" in md and "| 30.0 |" in md
