"""Run folders and checkpoint files: where runs go, finding one to resume or reuse, reading and writing
checkpoints safely, one writer per run folder (lock_run), and reading a run folder back (RunSummary, for
reports)."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import GANConfig, project_dir

CHECKPOINT_FORMAT = 1
TIMESTAMP = "%Y%m%d-%H%M%S"  # run folder names: runs/<preset>/20261122-143005/
RUN_FILES = ("config.json", "metrics.json", "history.csv", "samples", "checkpoints")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: truncated, corrupted, or from another preset or version."""


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


def run_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """A run folder's checkpoints, newest first: checkpoints/last.pt, then step_*.pt from the highest step."""
    folder = Path(run_dir) / "checkpoints"
    last = [folder / "last.pt"] if (folder / "last.pt").exists() else []
    return last + sorted(folder.glob("step_*.pt"), reverse=True)


def latest_run(preset: str, root: str | os.PathLike | None = None) -> Path | None:
    """The newest run folder of a preset that holds a checkpoint (last.pt or step_*.pt), or None."""
    base = runs_root(root) / preset
    runs = sorted(p for p in base.glob("*") if run_checkpoints(p)) if base.exists() else []
    return runs[-1] if runs else None


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint safely (weights_only: a stranger's file cannot run code) with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        others = sorted(p.name for p in path.parent.glob("*.pt") if p != path)
        hint = f" Other checkpoints in that folder: {', '.join(others)}." if others else ""
        reason = (str(e).strip().splitlines() or [""])[0][
            :200
        ]  # one line: torch's messages run to paragraphs
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupted and cannot be read ({type(e).__name__}: "
            f"{reason}).{hint}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a gankit checkpoint (format {CHECKPOINT_FORMAT} expected)"
        )
    return ckpt


def rng_state() -> dict[str, Any]:
    """Every generator a run draws from (torch CPU and CUDA, NumPy, Python): saved in each checkpoint."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config dict, with today's defaults for settings added since it was written (e.g. precision):
    what the gankit that wrote it did. Fields this version lacks are kept, not refused."""
    return {**{k: v for k, v in GANConfig().to_dict().items() if k not in config}, **config}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict as JSON sees it, with defaults for fields added since (with_defaults), without what
    setup() derives from the data (genre names)."""
    d = json.loads(json.dumps(with_defaults(config)))
    d.get("extra", {}).pop("label_names", None)
    return d


def find_run(
    config: GANConfig, root: str | os.PathLike | None = None, *, finished: bool = True
) -> Path | None:
    """The newest run folder of config.preset trained with exactly this config (and finished, if asked)."""
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


# ------------------------------------------------------------------------- one writer per run folder
class RunLocked(RuntimeError):
    """Another live process is training into the same run folder."""


def _pid_alive(pid: int) -> bool:
    """Whether a process of this machine is running (a killed child not yet reaped, a zombie, is not)."""
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
    """Take run_dir/.lock for this process (the Trainer removes it when fit ends). Refuse a run folder that a
    live process is writing; take over a killed run's lock.

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
                f"has stopped (e.g. a Colab session that was cut off), delete {lock} and try again; "
                "otherwise train into a new run folder"
            ) from None
        # pid 0: an empty lock, its writer killed between creating and writing it (unless just created)
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
