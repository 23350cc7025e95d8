"""What the device can do for a training step: FLOP counts, rate probes, the step's kernels alone.

`gankit bench` divides a loop's FLOP rate by a probe's (a large matmul, a convolution) to say how
much of the device it uses, and times `KernelReplay`, the step's matmul, convolution and fused
optimizer kernels replayed back to back, to say how fast any loop doing this step could go.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn as nn
from torch.utils._python_dispatch import (
    TorchDispatchMode,
)  # the documented __torch_dispatch__ mode base

from .tutorial import synchronize


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (multiply and add counted separately) of
    the matmuls and convolutions that fn() runs."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    # Its per-module attribution hooks break autograd.grad(create_graph=True), which the gradient
    # penalty needs; only the total is wanted here, so count everything under one "Global" entry.
    counter.mod_tracker = _NoModuleTracking()
    with counter:
        fn()
    return int(counter.get_total_flops())


class _NoModuleTracking:
    parents: ClassVar[set[str]] = {"Global"}

    def __enter__(self) -> _NoModuleTracking:
        return self

    def __exit__(self, *exc: Any) -> None: ...


class RateProbe:
    """One fixed operation timed on demand: a square fp32 matmul, or a 3x3 convolution forward.

    The convolution is a typical mid-network layer, (B, 128, 16, 16) -> (B, 128, 16, 16); both
    sizes are large enough to keep every core busy. `measure()` returns GFLOP/s of one run.
    """

    def __init__(self, kind: str, device: torch.device) -> None:
        gpu = device.type != "cpu"
        self.kind, self.device = kind, device
        if kind == "matmul":
            n = 8192 if gpu else 2048
            a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
            self.size = f"{n}x{n} @ {n}x{n}"
            self._fn = lambda: a @ b
        elif kind == "conv":
            conv = nn.Conv2d(128, 128, 3, padding=1, bias=False).to(device)
            x = torch.randn(512 if gpu else 64, 128, 16, 16, device=device)
            self.size = f"3x3 conv, ({x.shape[0]}, 128, 16, 16) -> same shape, forward"

            def run() -> torch.Tensor:
                with torch.no_grad():
                    return conv(x)

            self._fn = run
        else:
            raise ValueError(f"unknown probe {kind!r}; use 'matmul' or 'conv'")
        self.flops = count_flops(self._fn)
        self._calls = (
            10 if gpu else 1
        )  # GPU runs are short; time several so launch latency does not count
        self.measure()  # warm-up: first calls pick kernels and allocate

    def measure(self) -> float:
        synchronize(self.device)
        t = time.perf_counter()
        for _ in range(self._calls):
            self._fn()
        synchronize(self.device)
        return self.flops * self._calls / (time.perf_counter() - t) / 1e9


# --------------------------------------------------------------------------- a step's kernels alone
def kernel_ops() -> set[Any]:
    """The aten operators a GAN step cannot do without: matmuls, convolutions (forward and backward)
    and the fused optimizer updates (one kernel for all tensors; a per-tensor optimizer's
    element-wise work is not counted)."""
    aten = torch.ops.aten
    ops = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.convolution, aten.convolution_backward}
    for name in ("_fused_adam_", "_fused_adamw_", "_fused_sgd_"):
        with contextlib.suppress(AttributeError, RuntimeError):  # an older torch lacks it
            ops.add(getattr(aten, name))
    return ops


def _own_copy(x: Any) -> Any:
    """x with every tensor in it copied (same shape, strides
    and dtype), so a replay touches nothing of the run's."""
    if isinstance(x, torch.Tensor):
        return (
            x.detach().clone()
        )  # preserve_format: a dense tensor keeps its strides (channels_last, transposes)
    if isinstance(x, (list, tuple)):
        return type(x)(_own_copy(v) for v in x)
    if isinstance(x, dict):
        return {k: _own_copy(v) for k, v in x.items()}
    return x


class _KernelRecorder(TorchDispatchMode):
    """Records each kernel_ops() call below autograd, with
    copies of its arguments, and runs it as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.ops, self.calls = kernel_ops(), []

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func.overloadpacket in self.ops:
            self.calls.append((func, _own_copy(args), _own_copy(kwargs)))
        return func(*args, **kwargs)


class KernelReplay:
    """The matmul, convolution and fused optimizer
    kernels of one training cycle, replayed back to back.

    `one_cycle` (a loop's own, e.g. GankitLoop.one_cycle) runs once under a dispatch mode that
    records every such kernel call with copies of its inputs; `run(cycles)` then calls the same
    kernels on the copies, with the same shapes, strides and dtypes, and nothing between them: no
    Python model code, autograd, element-wise layers, losses or data loading, and on warm caches.
    Its speed is therefore an upper bound for any loop that computes this step (the same networks,
    batch, precision and update rule) on this device: what is left between a loop and this bound is
    overhead a loop could in principle remove, the rest is the device. Replaying changes nothing of
    the recorded run.
    """

    name = "kernels only"

    def __init__(
        self, one_cycle: Callable[[], Any], images_per_cycle: int, device: torch.device
    ) -> None:
        recorder = _KernelRecorder()
        with recorder:
            one_cycle()
        if not recorder.calls:
            raise ValueError(
                "the cycle ran no matmul, convolution or fused optimizer kernel: nothing to replay"
            )
        self.calls, self.images_per_cycle, self.device = recorder.calls, images_per_cycle, device

    def kernels(self) -> Counter:
        """How many calls of each operator one cycle makes,
        e.g. Counter({'aten.mm.default': 14, ...})."""
        return Counter(str(func) for func, _, _ in self.calls)

    @torch.no_grad()
    def one_cycle(self) -> None:
        for func, args, kwargs in self.calls:
            func(*args, **kwargs)

    def run(self, cycles: int) -> int:
        """Replay `cycles` cycles; returns the real images
        those cycles train on in the recorded loop."""
        for _ in range(cycles):
            self.one_cycle()
        synchronize(self.device)
        return cycles * self.images_per_cycle
