"""Test-suite setup: every test and every notebook kernel runs in the smoke profile on the CPU.

Tests skipped because real MNIST is missing are never silent: with CI set (CI=true) each one
fails, naming GANKIT_DATA and the files it should hold; locally the summary counts them.
"""

import os
import re
from pathlib import Path

import pytest

# Set at import time so the nbval kernels (started from this environment) inherit them.
os.environ["GANKIT_PROFILE"] = "smoke"
os.environ.setdefault("GANKIT_DEVICE", "cpu")
# Not under runs/ (nor a GANKIT_RUNS of the user's): `gankit report` reads the runs root for the
# instructor's report, and smoke runs do not belong in it.
os.environ["GANKIT_RUNS"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".test-runs")
os.environ["TQDM_DISABLE"] = "1"

# The skip reasons of tests/helpers.py's `needs_mnist` and of test_metrics.py's `mnist` fixture.
MNIST_SKIP = re.compile(r"MNIST.*GANKIT_DATA", re.DOTALL)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def gankit_data() -> str:
    value = os.environ.get("GANKIT_DATA")
    if value:
        return value
    return f"(unset, so {Path(__file__).resolve().parent / 'data'})"


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def skipped_for_mnist(report: pytest.TestReport) -> bool:
    return bool(report.skipped and MNIST_SKIP.search(skip_reason(report)))


def mnist_missing_message(reason: str) -> str:
    from gankit.data import MNIST_FILES

    files = ", ".join(MNIST_FILES)
    return (
        f"MNIST not found under GANKIT_DATA={gankit_data()}: with CI set, a test that needs real "
        "MNIST fails instead of skipping.\n"
        f"Expected GANKIT_DATA/MNIST/raw/ to hold {files} (the originals or their .gz).\n"
        "Set GANKIT_DATA to the folder that contains MNIST/raw "
        "(here: GANKIT_DATA=../shared/data).\n"
        f"({reason})"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and skipped_for_mnist(report):
        report.outcome = "failed"
        report.longrepr = mnist_missing_message(skip_reason(report))
        report.mnist_missing = True


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config):
    # Skipped in setup (skipif, a fixture's skip), so pytest would call the failure an ERROR.
    if getattr(report, "mnist_missing", False):
        return "failed", "F", "FAILED"
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = sum(skipped_for_mnist(r) for r in terminalreporter.stats.get("skipped", []))
    if n:
        terminalreporter.write_line(
            f"{n} tests skipped: MNIST not found under GANKIT_DATA={gankit_data()} "
            "(set GANKIT_DATA=../shared/data)",
            yellow=True,
            bold=True,
        )
