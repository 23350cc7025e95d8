"""Student versions: `make student` replaces every solution, and each exercise's check cell says
"correct" for the instructor's solution and "not written yet" for the student's stub (the lesson
then goes on with the library's function), running the lessons' own cells."""

import sys
from pathlib import Path

import nbformat
import pytest
import torch
from helpers import needs_mnist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_student import LESSONS, student_version  # noqa: E402

LESSON_01 = ROOT / "notebooks" / "01_vanilla_mlp_gan.ipynb"


def exercises(nb):
    """(solution cell, check cell) pairs: a cell with a solution region, and the next code cell."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    pairs = []
    for i, cell in enumerate(code[:-1]):
        if "### BEGIN SOLUTION" in cell.source or "raise NotImplementedError()" in cell.source:
            pairs.append((cell.source, code[i + 1].source))
    return pairs


def test_every_lesson_with_solutions_gets_a_student_version_without_them(tmp_path):
    from make_student import main

    assert main([str(tmp_path)]) == 0
    for path in LESSONS:
        instructor = nbformat.read(path, as_version=4)
        student = nbformat.read(tmp_path / path.name, as_version=4)
        regions = sum(c.source.count("### BEGIN SOLUTION") for c in instructor.cells)
        stubs = sum(c.source.count("raise NotImplementedError()") for c in student.cells)
        assert "### BEGIN SOLUTION" not in "".join(c.source for c in student.cells)
        assert stubs >= regions and all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in student.cells
            if c.cell_type == "code"
        )
    assert sum(c.source.count("### BEGIN SOLUTION") for c in nbformat.read(LESSON_01, 4).cells) == 3
    for path in LESSONS:  # every lesson has your-turn cells now
        cells = nbformat.read(path, 4).cells
        assert sum(c.source.count("### BEGIN SOLUTION") for c in cells) >= 2, path.name


@needs_mnist
@pytest.mark.parametrize("version", ["instructor", "student"])
def test_lesson_01_checks_pass_solutions_and_report_missing_ones(version, capsys):
    from gankit.config import make_config
    from gankit.exercises import check_d_loss, check_g_loss, check_gan_step
    from gankit.lesson import setup

    nb = nbformat.read(LESSON_01, as_version=4)
    if version == "student":
        nb, _ = student_version(nb)
    pairs = exercises(nb)
    assert len(pairs) == 2  # the two losses share a cell
    namespace = {
        "torch": torch,
        "check_d_loss": check_d_loss,
        "check_g_loss": check_g_loss,
        "check_gan_step": check_gan_step,
        "setup": setup,
        "config": make_config("mlp-mnist", "smoke"),
    }
    for solution, check in pairs:
        exec(solution, namespace)
        exec(check, namespace)
    out = capsys.readouterr().out
    names = ("D loss", "G loss", "GAN step")
    if version == "instructor":
        assert all(f"{n}: correct" in out for n in names) and "not written" not in out
    else:
        assert all(f"{n}: not written yet" in out for n in names) and "correct" not in out


def lesson_namespace(lesson: str) -> tuple[dict, tuple[str, ...]]:
    """What a lesson's your-turn and check cells need (its own imports), and the checks' names."""
    from gankit import exercises
    from gankit.config import make_config
    from gankit.lesson import setup

    base = {"torch": torch, "nn": torch.nn, "setup": setup, **vars(exercises)}
    if lesson.startswith("02"):
        return base, ("transposed convolution size", "generator block")
    if lesson.startswith("03"):
        base["config"] = make_config("wgan-gp-mnist", "smoke")
        return base, ("gradient penalty", "critic loop")
    return base, ("G input", "projection logit")


@needs_mnist
@pytest.mark.parametrize("version", ["instructor", "student"])
@pytest.mark.parametrize("lesson", [p.name for p in LESSONS if not p.name.startswith("01")])
def test_later_lessons_checks_pass_solutions_and_report_missing_ones(lesson, version, capsys):
    nb = nbformat.read(ROOT / "notebooks" / lesson, as_version=4)
    if version == "student":
        nb, _ = student_version(nb)
    namespace, names = lesson_namespace(lesson)
    pairs = exercises(nb)
    assert len(pairs) >= 1
    for solution, check in pairs:
        exec(solution, namespace)
        exec(check, namespace)
    out = capsys.readouterr().out
    if version == "instructor":
        assert all(f"{n}: correct" in out for n in names) and "not written" not in out, out
    else:
        assert all(f"{n}: not written yet" in out for n in names) and "correct" not in out, out
