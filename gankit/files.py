"""Crash-safe file writes: a file is whole or absent, and a full disk is recognised as such."""

from __future__ import annotations

import errno
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: Path, data: bytes | Callable[[io.BufferedWriter], None]) -> None:
    """Write `data` (bytes, or a function that writes to the open file) to a temp file in the same
    folder, fsync, then os.replace: `path` is whole or absent, whatever kills the process
    meanwhile."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through atomic_write, creating the folder: checkpoints, weights and caches are
    never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(obj, f))


def is_disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
