"""Run folders and checkpoint files: where runs go, finding one to resume or reuse, reading and writing
checkpoints safely."""
from __future__ import annotations

import json
import os
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import GANConfig, project_dir

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: truncated, corrupted, or from another preset or version."""


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Where run folders go: `root`, else $GANKIT_RUNS, else <project>/runs."""
    return Path(root or os.environ.get("GANKIT_RUNS") or project_dir() / "runs")


def new_run_dir(preset: str, root: str | os.PathLike | None = None) -> Path:
    """A fresh runs/<preset>/<YYYYmmdd-HHMMSS>/ folder (suffixed if two start in one second)."""
    base = runs_root(root) / preset
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
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


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (weights_only: a stranger's file cannot run code) with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        others = sorted(p.name for p in path.parent.glob("*.pt") if p != path)
        hint = f" Other checkpoints in that folder: {', '.join(others)}." if others else ""
        reason = (str(e).strip().splitlines() or [""])[0][:200]  # one line: torch's messages run to paragraphs
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupted and cannot be read ({type(e).__name__}: "
                              f"{reason}).{hint}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a gankit checkpoint (format {CHECKPOINT_FORMAT} expected)")
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


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict as JSON sees it, with defaults for fields added since it was written (precision), without
    what setup() derives from the data (genre names). Raises ConfigError for fields this version lacks."""
    d = json.loads(json.dumps(GANConfig.from_dict(config).to_dict()))
    d.get("extra", {}).pop("label_names", None)
    return d


def find_run(config: GANConfig, root: str | os.PathLike | None = None, *, finished: bool = True) -> Path | None:
    """The newest run folder of config.preset trained with exactly this config (and finished, if asked)."""
    base = runs_root(root) / config.preset
    want = _comparable(config.to_dict())
    for run in sorted(base.glob("*"), reverse=True) if base.is_dir() else []:
        try:
            if not (run / "checkpoints" / "last.pt").exists():
                continue
            if _comparable(json.loads((run / "config.json").read_text())) != want:
                continue
            status = json.loads((run / "metrics.json").read_text()).get("status") if finished else None
        except (OSError, ValueError):
            continue  # a half-written or foreign folder is not a run to reuse
        if not finished or status == "finished":
            return run
    return None
