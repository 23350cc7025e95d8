"""Several processes on the one Trainer: torchrun + DistributedDataParallel (DDP).

`torchrun --nproc_per_node=N -m gankit train PRESET ...` starts N copies of `gankit train`; each
calls `init()`, which joins them into one process group (NCCL on CUDA GPUs, gloo on CPUs). From
there the single-process code runs unchanged, with four differences, all made here or asked for
here:

- data: `BatchSource(rank=, world_size=)` serves rank r the r-th slice of every global batch of the
  epoch's permutation, so N ranks together see exactly the batches one process would;
- gradients: the Trainer trains through `wrap(G)` and `wrap(D)` (DDP: gradients are averaged over
  the ranks in `backward`) and keeps the bare modules for everything else (checkpoints, sampling,
  evaluation), see Trainer.d_step / g_step for the one place they differ;
- noise: each rank draws from its own stream, seeded by `noise_seed(seed, rank)`; the fixed
  visualisation noise is the same on every rank;
- files: rank 0 alone writes the run folder (`RunFolder`), after every rank has contributed the
  state only it holds (its RNG and its loss sums, `gather`).

Without torchrun (WORLD_SIZE unset or 1) nothing here does anything: `current()` is rank 0 of 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from .config import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes: rank r of `size`."""

    rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0


def current() -> World:
    """The process group this process belongs to (rank 0 of 1 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), dist.get_backend())
    return World()


def launched() -> bool:
    """Whether a launcher (torchrun) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """RANK as torchrun sets it (0 outside torchrun): usable before the group exists."""
    return int(os.environ.get("RANK", "0"))


def init(device: torch.device, backend: str | None = None) -> tuple[World, torch.device]:
    """Join the torchrun process group; returns (world, this rank's device).

    backend: "nccl" (CUDA GPUs, one per rank: cuda:LOCAL_RANK), "gloo" (CPUs; also works on GPUs,
    slower) or None for the usual choice for `device`. ConfigError, in one line, for NCCL without
    CUDA or more ranks on this machine than it has GPUs. Outside torchrun: (World(), device).
    """
    if not launched():
        return World(), device
    if dist.is_initialized():
        return current(), device
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ConfigError(f"backend {backend!r} is not one of nccl, gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError(
            "the NCCL backend needs CUDA GPUs and this machine has none; use --backend gloo "
            "(CPU processes) or run on a GPU machine"
        )
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"{os.environ.get('LOCAL_WORLD_SIZE', local + 1)} processes on this machine but "
                f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node <= "
                f"{torch.cuda.device_count()}"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    return current(), device


def shutdown() -> None:
    """Leave the process group (torch warns at exit when a group is left open)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def noise_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s noise stream: distinct per (seed, rank), and never `seed` itself
    (whose stream initialised the weights)."""
    return (seed * 1_000_003 + 7_919 * (rank + 1)) % (2**63)


def wrap(module: nn.Module, world: World, *, sync_bn: bool = False) -> nn.Module:
    """`module` for training under DDP (the module itself when there is one process).

    sync_bn converts batch norm to SyncBatchNorm: statistics over the global batch, as in one
    process. torch implements SyncBatchNorm for CUDA (NCCL) only; on gloo/CPU batch norm keeps
    per-rank statistics over each rank's share of the batch, and sync_bn is refused
    (`check_sync_bn`).
    """
    if world.size == 1:
        return module
    if sync_bn:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    param = next(module.parameters())
    ids = [param.device.index] if param.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def check_sync_bn(sync_bn: bool, device: torch.device) -> None:
    """ConfigError for sync_bn where torch has no SyncBatchNorm (anything but CUDA)."""
    if sync_bn and device.type != "cuda":
        raise ConfigError(
            "sync_bn needs CUDA GPUs (torch's SyncBatchNorm runs on CUDA only); on CPUs each "
            "process normalises over its own share of the batch: leave sync_bn off"
        )


def mean_over_ranks(t: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of `t` over the ranks (a copy; `t` itself when there is one process)."""
    if world.size == 1:
        return t
    out = t.clone()
    dist.all_reduce(out)
    return out / world.size


def gather(obj: Any, world: World) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (pickled: small objects only)."""
    if world.size == 1:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def on_main(fn: Any, world: World) -> Any:
    """fn() on rank 0 only, its result on every rank (e.g. the run folder rank 0 made). An exception
    it raises is raised on every rank, with its message, so that no rank waits forever for one that
    stopped (e.g. RunLocked). One broadcast; nothing at all with one process."""
    result, error = None, None
    if world.is_main:
        try:
            result = fn()
        except Exception as e:  # sent to the other ranks, then raised here too
            error = e
    if world.size > 1:
        box = [(result, None if error is None else (type(error), str(error)))]
        dist.broadcast_object_list(box, src=0)
        result, sent = box[0]
        if sent is not None and error is None:
            kind, message = sent
            try:
                error = kind(message)
            except Exception:  # an exception type that takes other arguments
                error = RuntimeError(message)
    if error is not None:
        raise error
    return result


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The torchrun command line for `gankit ARGV` on `nproc` local processes."""
    launcher = shutil.which("torchrun")
    head = [launcher] if launcher else [sys.executable, "-m", "torch.distributed.run"]
    return [*head, "--standalone", f"--nproc_per_node={nproc}", "-m", "gankit", *argv]


def train(preset: str, nproc: int, *options: str, check: bool = True) -> int:
    """`gankit train PRESET OPTIONS...` on `nproc` processes, from Python (a lesson, a script):
    runs torchrun and streams its output; returns its exit status (CalledProcessError when
    check=True and it failed). On CPUs add "--backend", "gloo" (the default there anyway)."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    cmd = torchrun_command(nproc, ["train", preset, *map(str, options)])
    return subprocess.run(cmd, check=check).returncode
