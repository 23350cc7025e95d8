"""Crash-safe file writes: a file is whole or absent, and a full disk is recognised as such."""

from __future__ import annotations

import errno
import io
import os
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# An .npz entry given as (shape, dtype, chunks along the first axis), written as they come.
Chunked = tuple[tuple[int, ...], Any, Iterable[np.ndarray]]


def atomic_write(path: Path, data: bytes | Callable[[io.BufferedWriter], None]) -> None:
    """Write `data` (bytes, or a function that writes to the open file) to a temp file in the same
    folder, fsync, then os.replace: `path` is whole or absent, whatever kills the process
    meanwhile. An OSError (a full disk, a read-only folder) names `path`, not the temp file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno and e.filename in (None, str(tmp)):
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from e
        raise


class _Sink:
    """A file's write and flush, keeping the OSError that torch's zip writer turns into
    'RuntimeError: [enforce fail at inline_container.cc] unexpected pos'."""

    def __init__(self, f: io.BufferedWriter) -> None:
        self.f, self.error = f, None

    def write(self, data: bytes) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save through atomic_write, creating the folder: checkpoints, weights and caches are
    never half-written. A failed write (e.g. a full disk) is raised as its OSError naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def save(f: io.BufferedWriter) -> None:
        sink = _Sink(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise

    atomic_write(path, save)


def atomic_write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray | Chunked]) -> None:
    """np.savez_compressed, streamed and atomic: each entry is an array, or (shape, dtype, chunks)
    whose chunks along the first axis are written as they come, so an .npz larger than memory
    never is in memory. `path` is whole or absent (atomic_write); np.load reads it as usual."""

    def write(f: io.BufferedWriter) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, value in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    if isinstance(value, np.ndarray):
                        np.lib.format.write_array(entry, value, allow_pickle=False)
                        continue
                    shape, dtype, chunks = value
                    header = {
                        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                        "fortran_order": False,
                        "shape": tuple(shape),
                    }
                    np.lib.format.write_array_header_1_0(entry, header)
                    rows = 0
                    for chunk in chunks:
                        chunk = np.ascontiguousarray(chunk, dtype=dtype)
                        if chunk.shape[1:] != tuple(shape[1:]):
                            raise ValueError(f"{name}: chunk {chunk.shape} does not fit {shape}")
                        entry.write(memoryview(chunk).cast("B"))
                        rows += len(chunk)
                    if rows != shape[0]:
                        raise ValueError(f"{name}: {rows} rows written, {shape[0]} announced")

    atomic_write(Path(path), write)


def output_problem(path: str | os.PathLike, *, folder: bool) -> str | None:
    """Why `path` cannot be written as an output folder (folder=True; made if missing) or an output
    file, as the end of a sentence starting with the path; None when it can. A file where a folder
    is needed, a folder where a file is, a path under a file, a read-only folder."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        return "is a file, not a folder"
    if not folder and path.is_dir():
        return "is a folder, not a file"
    target = path if folder else path.parent
    for p in (target, *target.parents):
        if p.is_dir():
            if not os.access(p, os.W_OK | os.X_OK):
                return f"cannot be written: {p} is read-only"
            return None
        if p.exists() or p.is_symlink():
            return f"cannot be made: {p} is a file, not a folder"
    return None


def free_bytes(path: str | os.PathLike) -> int:
    """Free space for files written at `path` (its nearest existing folder's file system)."""
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.is_dir())
    return shutil.disk_usage(existing).free


def is_disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
