"""Check that each lesson notebook and its paired jupytext source agree, cell for cell.

A lesson is notebooks/NN_name.ipynb (the executed artefact) plus notebooks/NN_name.py (its source
in jupytext percent format, paired by the notebook's metadata `jupytext.formats: ipynb,py:percent`).
The pair agrees when the .py is exactly what jupytext writes from the .ipynb, up to trailing
whitespace.

    python scripts/check_notebooks.py [FOLDER]    # FOLDER defaults to the checkout's notebooks/

Exits 1 and names every lesson that disagrees, is not paired, has no source, or whose source has
no notebook. To fix a disagreement: `jupytext --sync notebooks/NN_name.py` (the newer file wins).
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import jupytext

FORMATS = "ipynb,py:percent"  # the pairing every lesson carries in its notebook metadata
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LESSON = "[0-9][0-9]_*"  # notebooks/NN_name.*, as the Makefile's NOTEBOOKS


def _normalise(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip().splitlines()]


def problems(folder: str | Path = NOTEBOOKS) -> list[str]:
    """A line per lesson in `folder` whose .ipynb and .py disagree or lack a partner; [] if none."""
    folder = Path(folder)
    notebooks = {p.stem: p for p in folder.glob(f"{LESSON}.ipynb")}
    sources = {p.stem: p for p in folder.glob(f"{LESSON}.py")}
    if not notebooks and not sources:
        return [f"no lessons ({LESSON}.ipynb, {LESSON}.py) in {folder}"]
    found = []
    for name in sorted(notebooks.keys() | sources.keys()):
        if name not in sources:
            found.append(f"{name}: {name}.ipynb has no source {name}.py")
            continue
        if name not in notebooks:
            found.append(f"{name}: {name}.py has no notebook {name}.ipynb")
            continue
        nb = jupytext.read(notebooks[name])
        formats = nb.metadata.get("jupytext", {}).get("formats")
        if formats != FORMATS:
            found.append(f"{name}: {name}.ipynb is paired as {formats!r}, not {FORMATS!r}")
            continue
        expected = _normalise(jupytext.writes(nb, fmt="py:percent"))
        actual = _normalise(sources[name].read_text(encoding="utf-8"))
        if actual != expected:
            diff = difflib.unified_diff(
                expected,
                actual,
                f"{name}.py as written from {name}.ipynb",
                f"{name}.py",
                n=1,
                lineterm="",
            )
            shown = list(diff)[:12]
            found.append(
                f"{name}: {name}.ipynb and {name}.py disagree\n    " + "\n    ".join(shown)
            )
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else NOTEBOOKS
    if not folder.is_dir():
        print(f"check_notebooks: no folder {folder}", file=sys.stderr)
        return 2
    found = problems(folder)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(
            f"{len(found)} lesson(s) out of sync; fix with: jupytext --sync {folder}/NN_name.py",
            file=sys.stderr,
        )
        return 1
    n = len(list(folder.glob(f"{LESSON}.ipynb")))
    print(f"{n} lessons: notebooks and sources agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
