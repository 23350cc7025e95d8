"""What the four lesson builders share: the cell helpers, the Colab cell, and writing the notebook.

Each builder does `nb = Notebook("02_dcgan.ipynb")`, adds cells with `nb.md(...)` / `nb.code(...)`
and ends with `nb.write()`: the notebook goes to notebooks/<name>, or to the path given as the
script's first argument. It is written without outputs; execute it afterwards (`make course`, or
jupyter nbconvert --execute as in the Makefile) and strip it with `nbstripout --keep-output --keep-count`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1]
IGNORE = "# NBVAL_IGNORE_OUTPUT"  # first line of a cell whose output nbval must not compare

COLAB = r'''
# Colab only: install gankit, optionally keep runs on Google Drive so a cut-off session can resume.
import os, sys
IN_COLAB = "google.colab" in sys.modules
USE_DRIVE = False  # True: runs (checkpoints) go to /content/drive/MyDrive/gankit/runs
if IN_COLAB:
    %pip install -q "gankit @ git+https://github.com/gankit-course/gankit"
    if USE_DRIVE:
        from google.colab import drive
        drive.mount("/content/drive")
        os.environ["GANKIT_RUNS"] = "/content/drive/MyDrive/gankit/runs"
'''


class Notebook:
    """The cells of one lesson, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cells: list = []

    def md(self, text: str) -> None:
        self.cells.append(new_markdown_cell(text.strip("\n")))

    def code(self, text: str) -> None:
        self.cells.append(new_code_cell(text.strip("\n")))

    def colab(self) -> None:
        """The first code cell of every lesson: installs gankit on Colab, does nothing elsewhere."""
        self.code(COLAB)

    def write(self) -> Path:
        path = Path(sys.argv[1]) if len(sys.argv) > 1 else NOTEBOOKS / self.name
        nb = new_notebook(cells=self.cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        })
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
        print(f"wrote {path} ({len(self.cells)} cells)")
        return path
