"""Write the student versions of the lessons: solutions replaced, outputs cleared.

The committed notebooks are the instructor versions: executed, with the solutions of the your-turn
cells between nbgrader's `### BEGIN SOLUTION` / `### END SOLUTION` markers. This runs nbgrader's
own ClearSolutions preprocessor on each (without nbgrader's course database: the markers are the
only metadata we use), which replaces every solution region with `raise NotImplementedError()`
(and `YOUR ANSWER HERE` in text cells), then clears outputs and execution counts.

    python scripts/make_student.py [OUT_DIR]      # default: build/student/ (git-ignored)

A check cell after each exercise tests the learner's code; while a solution is missing it says so
and the lesson goes on with the library's version (gankit.exercises).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor
from nbgrader.preprocessors import ClearSolutions

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def student_version(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """(the notebook with solutions replaced and outputs cleared, number of solution regions)."""
    regions = sum(c.source.count("### BEGIN SOLUTION") for c in nb.cells)
    nb, _ = ClearSolutions(enforce_metadata=False).preprocess(nb, {})
    nb, _ = ClearOutputPreprocessor().preprocess(nb, {})
    nb.metadata.pop("jupytext", None)  # the student copy is not paired with the sources
    return nb, regions


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "student"
    out.mkdir(parents=True, exist_ok=True)
    for path in LESSONS:
        nb, regions = student_version(nbformat.read(path, as_version=4))
        nbformat.write(nb, out / path.name)
        print(f"{out / path.name}: {regions} exercise solution(s) replaced")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
