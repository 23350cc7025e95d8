"""Replace the text fallback of widget outputs in executed notebooks with a note a reader can use.

A saved notebook keeps a widget's output as two views: the live view (which needs a running
kernel) and a text fallback, the widget's repr, e.g. `VBox(children=(SelectMultiple(...`.
Wherever the live view cannot be shown (GitHub, an HTML export, a notebook reopened without its
kernel) the reader sees that repr. This replaces it with a short note; the live view is kept.

    python scripts/widget_fallbacks.py NOTEBOOK.ipynb [...]     # `make notebooks` runs it
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

WIDGET = "application/vnd.jupyter.widget-view+json"
NOTE = "[interactive widget: run this cell in Jupyter or Colab to use it]"


def replace_fallbacks(nb: nbformat.NotebookNode) -> int:
    """Set the text/plain view of every widget output to NOTE; returns how many were replaced."""
    replaced = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET in data and data.get("text/plain") != NOTE:
                data["text/plain"] = NOTE
                replaced += 1
    return replaced


def main(paths: list[str]) -> int:
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        n = replace_fallbacks(nb)
        if n:
            nbformat.write(nb, path)
        print(f"{path}: {n} widget text fallback(s) replaced")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
