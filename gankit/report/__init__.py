"""The instructor's progress report: run folders read back, rendered, exported to HTML/MD/PDF."""

from .build import build_report, export_notebooks

__all__ = ["build_report", "export_notebooks"]
