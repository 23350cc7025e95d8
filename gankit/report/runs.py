"""Reading run folders back for reports: one RunSummary per folder, found by date."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..runs import RUN_FILES, TIMESTAMP, with_defaults
from ..runs import runs_root as default_runs_root


def is_num(v: Any) -> bool:
    """A finite int or float (not a bool): a value a report can print or plot."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class RunSummary:
    """One run folder, read once: config, history (one row
    per logging interval), metrics and sample grids."""

    path: Path
    preset: str
    started: datetime
    config: dict[str, Any]
    history: pd.DataFrame  # step, epoch, loss_d, loss_g, d_real, d_fake, seconds
    metrics: dict[str, Any]  # {"evaluations": [...], "final": {...}, "status": ..., "notes": ...}
    samples: list[Path]  # samples/epoch_XXXX.png sorted by epoch
    hours: float  # training time: the last logged `seconds`, in hours
    status: str  # finished | running | diverged (from metrics.json) or incomplete (inferred)
    missing: list[str] = field(default_factory=list)  # files absent, empty or unreadable
    label: str = ""  # "preset MM-DD HH:MM", unique among the runs found together (find_runs)

    def __post_init__(self) -> None:
        self.label = self.label or f"{self.preset} {self.started:%m-%d %H:%M}"

    @property
    def evaluations(self) -> list[dict[str, Any]]:
        return [e for e in self.metrics.get("evaluations") or [] if isinstance(e, dict)]

    @property
    def final(self) -> dict[str, Any]:
        return self.metrics.get("final") or (self.evaluations[-1] if self.evaluations else {})

    @property
    def epochs_planned(self) -> int | None:
        return self.config.get("epochs")

    @property
    def epochs_done(self) -> int:
        """Highest epoch with a sample grid or an evaluation
        (both are written at the end of an epoch)."""
        done = [epoch_of(p) for p in self.samples] + [
            e["epoch"] for e in self.evaluations if is_num(e.get("epoch"))
        ]
        if done:
            return int(max(done))
        if "epoch" in self.history and self.history["epoch"].notna().any():
            return int(self.history["epoch"].max())
        return 0


def find_runs(
    runs_root: str | Path | None = None,
    since: date | str | None = None,
    until: date | str | None = None,
) -> list[RunSummary]:
    """Runs under `runs_root/<preset>/<timestamp>/` started within [since, until] (dates
    inclusive), oldest first. `runs_root` None is gankit.runs.runs_root(): $GANKIT_RUNS, else
    the project's runs/."""
    root, since, until = default_runs_root(runs_root), as_date(since), as_date(until)
    runs = []
    for path in root.glob("*/*") if root.is_dir() else []:
        if not path.is_dir() or path.name.startswith(".") or not _looks_like_run(path):
            continue
        started = _started(path)
        if (since and started.date() < since) or (until and started.date() > until):
            continue
        runs.append(_load_run(path, started))
    return unique_labels(sorted(runs, key=lambda r: (r.started, str(r.path))))


def unique_labels(runs: list[RunSummary]) -> list[RunSummary]:
    """Give each run a label no other run in `runs` has: "preset MM-DD HH:MM", with the seconds
    where two runs of a preset started in one minute, the folder name where even those agree (two
    runs started in one second: <stamp>-1), and a counter as the last resort. Returns `runs`."""
    ways = (
        lambda r: f"{r.preset} {r.started:%m-%d %H:%M}",
        lambda r: f"{r.preset} {r.started:%m-%d %H:%M:%S}",
        lambda r: f"{r.preset} {r.path.parent.name}/{r.path.name}",
    )
    labels = [ways[0](r) for r in runs]
    for way in ways[1:]:
        taken = Counter(labels)
        labels = [way(r) if taken[label] > 1 else label for r, label in zip(runs, labels)]
    seen: Counter[str] = Counter()
    for run, label in zip(runs, labels):
        seen[label] += 1
        run.label = label + (f" #{seen[label]}" if labels.count(label) > 1 else "")
    return runs


def _looks_like_run(path: Path) -> bool:
    """A folder a Trainer made: named by its start time (even if empty: a run cut off at once), or
    holding a run's files (a renamed run). A runs root nested in another
    (runs/test/<preset>/<timestamp>/) is neither, and must not be read as runs of a preset called
    "test"."""
    try:
        datetime.strptime(path.name[:15], TIMESTAMP)
        return True
    except ValueError:
        return any((path / name).exists() for name in RUN_FILES)


def _load_run(path: Path, started: datetime) -> RunSummary:
    missing: list[str] = []
    config = _read_json(path / "config.json", missing)
    if config:  # the report then shows no false difference between old and new runs
        config = with_defaults(config)
    metrics = _read_json(path / "metrics.json", missing)
    history = _read_history(path / "history.csv", missing)
    samples = sorted((path / "samples").glob("epoch_*.png"), key=epoch_of)
    if not samples:
        missing.append("samples/epoch_*.png")
    run = RunSummary(
        path=path,
        preset=str(config.get("preset") or metrics.get("preset") or path.parent.name),
        started=started,
        config=config,
        history=history,
        metrics=metrics,
        samples=samples,
        hours=0.0,
        status="",
        missing=missing,
    )
    seconds = [run.final.get("seconds")]
    if "seconds" in history and history["seconds"].notna().any():
        seconds.append(history["seconds"].dropna().iloc[-1])
    run.hours = max([float(s) for s in seconds if is_num(s)], default=0.0) / 3600
    losses = history[[c for c in ("loss_d", "loss_g") if c in history]]
    if metrics.get("status"):
        run.status = str(metrics["status"])
    elif len(losses) and not losses.apply(lambda c: c.map(math.isfinite)).all().all():
        run.status = "diverged"
    elif run.epochs_planned and run.epochs_done >= run.epochs_planned:
        run.status = "finished"
    else:
        run.status = "incomplete"
    return run


def _started(path: Path) -> datetime:
    try:
        return datetime.strptime(path.name[:15], TIMESTAMP)
    except ValueError:  # a hand-made or renamed folder: its modification time is the best guess
        return datetime.fromtimestamp(path.stat().st_mtime)


def _read_json(path: Path, missing: list[str]) -> dict[str, Any]:
    if not path.is_file():
        missing.append(path.name)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:  # e.g. cut off while being written
        missing.append(f"{path.name} (unreadable: {err})")
        return {}
    return data if isinstance(data, dict) else {}


def _read_history(path: Path, missing: list[str]) -> pd.DataFrame:
    if not path.is_file():
        missing.append(path.name)
        return pd.DataFrame()
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        missing.append(f"{path.name} (unreadable: {err})")
        return pd.DataFrame()
    if df.empty:
        missing.append(f"{path.name} (no rows)")
    return df.apply(pd.to_numeric, errors="coerce")


def epoch_of(path: Path) -> int:
    """The epoch in a sample grid's name (samples/epoch_0007.png -> 7)."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else 0


def as_date(value: date | str | None) -> date | None:
    """A date, a datetime or an ISO string (2026-11-22) as a date; None stays None."""
    if value is None or isinstance(value, date):
        return value.date() if isinstance(value, datetime) else value
    return date.fromisoformat(value)
