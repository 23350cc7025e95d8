"""Run folders: where runs go, finding one to reuse or resume, one writer per folder (lock_run),
and the RunFolder callback that writes a run's files while it trains (checkpoints: checkpoints.py).

Reading run folders back for reports is gankit.report.runs.
"""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .checkpoints import run_checkpoints
from .config import GANConfig, project_dir
from .distributed import on_main
from .files import atomic_save, atomic_write
from .viz import save_grid

TIMESTAMP = "%Y%m%d-%H%M%S"  # run folder names: runs/<preset>/20261122-143005/
RUN_FILES = ("config.json", "metrics.json", "history.csv", "samples", "checkpoints")


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Where run folders go: `root`, else $GANKIT_RUNS, else <project>/runs."""
    return Path(root or os.environ.get("GANKIT_RUNS") or project_dir() / "runs")


def new_run_dir(preset: str, root: str | os.PathLike | None = None) -> Path:
    """A fresh runs/<preset>/<YYYYmmdd-HHMMSS>/ folder (suffixed if two start in one second)."""
    base = runs_root(root) / preset
    stamp = datetime.now().strftime(TIMESTAMP)
    path, k = base / stamp, 1
    while path.exists():
        path, k = base / f"{stamp}-{k}", k + 1
    path.mkdir(parents=True)
    return path


def latest_run(preset: str, root: str | os.PathLike | None = None) -> Path | None:
    """The newest run folder of a preset that holds a checkpoint (last.pt or step_*.pt), or None."""
    base = runs_root(root) / preset
    runs = sorted(p for p in base.glob("*") if run_checkpoints(p)) if base.exists() else []
    return runs[-1] if runs else None


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config dict, with today's defaults for settings added since it was written
    (e.g. precision): what the gankit that wrote it did; settings older versions kept in `extra`
    move to their fields. Fields this version lacks are kept, not refused."""
    config = GANConfig.upgrade(config)
    return {**{k: v for k, v in GANConfig().to_dict().items() if k not in config}, **config}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict as JSON sees it, with defaults for fields added since (with_defaults), without
    what setup() derives from the data (genre names) or from other fields (batch_per_rank)."""
    d = json.loads(json.dumps(with_defaults(config)))
    d.pop("label_names", None)
    d.pop("batch_per_rank", None)
    return d


def find_run(
    config: GANConfig, root: str | os.PathLike | None = None, *, finished: bool = True
) -> Path | None:
    """The newest config.preset run folder trained with exactly this config (finished, if asked)."""
    base = runs_root(root) / config.preset
    want = _comparable(config.to_dict())
    for run in sorted(base.glob("*"), reverse=True) if base.is_dir() else []:
        try:
            if not (run / "checkpoints" / "last.pt").exists():
                continue
            if _comparable(json.loads((run / "config.json").read_text())) != want:
                continue
            status = (
                json.loads((run / "metrics.json").read_text()).get("status") if finished else None
            )
        except (OSError, ValueError):
            continue  # a half-written or foreign folder is not a run to reuse
        if not finished or status == "finished":
            return run
    return None


# ------------------------------------------------------------------------ one writer per run folder
class RunLocked(RuntimeError):
    """Another live process is training into the same run folder."""


def _pid_alive(pid: int) -> bool:
    """Whether a local process is running (a killed child not yet reaped, a zombie, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): os.kill's answer stands
        return True


def lock_run(run_dir: Path) -> Path:
    """Take run_dir/.lock for this process (the Trainer removes it when fit ends). Refuse a run
    folder that a live process is writing; take over a killed run's lock.

    The lock file holds "pid host". On this machine a lock whose process is gone (SIGKILL, a
    crashed kernel) is stale and taken over. A lock from another machine (runs on a shared
    drive) cannot be checked from here, so it is refused with the way out.
    """
    lock, host = run_dir / ".lock", socket.gethostname()
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            text, age = lock.read_text().split(), time.time() - lock.stat().st_mtime
        except FileNotFoundError:  # its owner just finished
            return lock_run(run_dir)
        pid = int(text[0]) if text and text[0].isdigit() else 0
        owner = (
            text[1] if len(text) > 1 else host
        )  # locks written before hosts were recorded: this machine
        if owner != host:
            raise RunLocked(
                f"{run_dir} is locked by pid {pid} on another machine ({owner}). If that run "
                f"has stopped (e.g. a Colab session that was cut off), delete {lock} "
                "and try again; "
                "otherwise train into a new run folder"
            ) from None
        # pid 0: an empty lock, its writer killed between creating and writing it
        # (unless just created)
        stale = (pid == os.getpid() or not _pid_alive(pid)) if pid else age > 10
        if stale:
            lock.unlink(missing_ok=True)
            return lock_run(run_dir)
        raise RunLocked(
            f"{run_dir} is in use by another training process (pid {pid}); "
            "wait for it or train into a new run folder"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()} {host}")
    return lock


# ------------------------------------------------------------------------- the run folder callback
class RunFolder:
    """Trainer callback that keeps runs/<preset>/<timestamp>/ while a run trains.

    on_fit_start: take the folder's lock (RunLocked if another live process trains it), clean the
    temp files of a killed save, write config.json and metrics.json ("running"); nothing is written
    before the lock is held. Every `checkpoint_every` steps: checkpoints/step_XXXXXXXX.pt (the last
    `keep_checkpoints` are kept). Each epoch end: samples/epoch_XXXX.png from the fixed noise,
    history.csv and checkpoints/last.pt. Each evaluation: metrics.json. on_fit_end: metrics.json
    with how fit ended (finished, interrupted, diverged), then the lock is released.

    On several processes (gankit.distributed) the callback runs on every rank, which all take part
    in each checkpoint's state (Trainer.state_dict gathers per-rank RNG states); rank 0 alone takes
    the lock and writes, and a refused lock stops every rank with the same RunLocked.
    """

    order = 100  # after other callbacks: an epoch's checkpoint holds that epoch's evaluation

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)  # an empty folder: files come with training
        self.lock: Path | None = None

    def on_fit_start(self, trainer: Any) -> None:
        on_main(lambda: self.start(trainer), trainer.world)

    def start(self, trainer: Any) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = lock_run(self.path)
        for tmp in (self.path / "checkpoints").glob(".*.tmp"):  # a killed save's; we hold the lock
            tmp.unlink(missing_ok=True)
        self.write_config(trainer)
        self.write_metrics(trainer, "running")

    def on_batch_end(self, trainer: Any) -> None:
        every = trainer.config.checkpoint_every
        if every and trainer.step % every == 0:
            self.checkpoint(trainer, keep=True)

    def on_epoch_end(self, trainer: Any) -> None:
        if trainer.world.is_main:  # the files are rank 0's; the checkpoint needs every rank
            grid = trainer.sample(
                len(trainer.fixed_noise), trainer.fixed_labels, noise=trainer.fixed_noise
            )
            save_grid(grid, self.path / "samples" / f"epoch_{trainer.epoch:04d}.png")
            if trainer.records:
                history = trainer.history.to_csv(index=False).encode()
                atomic_write(self.path / "history.csv", history)
        self.checkpoint(trainer)

    def on_evaluate(self, trainer: Any) -> None:
        if trainer.world.is_main:
            self.write_metrics(trainer, None)

    def on_fit_end(self, trainer: Any) -> None:
        if self.lock is None:  # refused, or not rank 0: this folder is another process's to write
            return
        try:
            self.write_metrics(trainer, trainer.status)
        except OSError:  # e.g. a full disk: an exception already on its way must not be replaced
            if trainer.status == "finished":
                raise
        finally:
            self.lock.unlink(missing_ok=True)
            self.lock = None

    def write_config(self, trainer: Any) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        text = json.dumps(trainer.config.to_dict(), indent=2)
        atomic_write(self.path / "config.json", text.encode())

    def checkpoint(self, trainer: Any, *, keep: bool = False) -> Path:
        """checkpoints/last.pt (and step_XXXXXXXX.pt when keep=True, pruned to the last K)."""
        state = trainer.checked_state()  # TrainingDiverged instead of writing a NaN state
        if not trainer.world.is_main:  # every rank gave its part of the state; rank 0 writes it
            return self.path / "checkpoints" / "last.pt"
        if not (self.path / "config.json").exists():
            self.write_config(trainer)
        folder = self.path / "checkpoints"
        # last.pt first: whenever a step_*.pt exists, last.pt is at least as new
        atomic_save(state, folder / "last.pt")
        if keep:
            atomic_save(state, folder / f"step_{trainer.step:08d}.pt")
            for old in sorted(folder.glob("step_*.pt"))[: -trainer.config.keep_checkpoints or None]:
                old.unlink(missing_ok=True)
        return folder / "last.pt"

    def write_metrics(self, trainer: Any, status: str | None) -> None:
        """metrics.json; status None keeps the file's (an evaluation after fit: still finished)."""
        if status is None:
            try:
                status = json.loads((self.path / "metrics.json").read_text()).get(
                    "status", "running"
                )
            except (OSError, ValueError):  # not written yet, or unreadable: a run in progress
                status = "running"
        evaluations = trainer.evaluations
        doc = {
            "preset": trainer.config.preset,
            "status": status,
            "evaluations": evaluations,
            "final": evaluations[-1] if evaluations else {},
        }
        if trainer.events:
            doc["events"] = trainer.events
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path / "metrics.json", json.dumps(doc, indent=2).encode())
