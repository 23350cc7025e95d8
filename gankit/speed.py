"""Trainer speed choices per device: one D call on [real; fake], memory layout, bf16, fused Adam.

Each was measured with `gankit bench` and kept only where it helped (benchmarks/README.md); none
changes what is computed beyond float rounding.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn as nn

from .config import ConfigError, GANConfig

# Layers that treat each sample on its own (no batch statistics, no randomness). A discriminator
# built only from these (exact types) gives a concatenated [real; fake] batch the scores of two
# separate calls (up to float rounding), so the Trainer may score both in one call.
_PER_SAMPLE_LAYERS = (
    nn.Linear,
    nn.Conv2d,
    nn.LeakyReLU,
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.Identity,
    nn.Flatten,
    nn.Sequential,
    nn.ModuleList,
    nn.Embedding,
)


def scores_per_sample(D: nn.Module) -> bool:
    """True if D scores each sample independently of its batch (gankit's D without batch norm)."""
    from .models import ConditionEmbedding, DCGANDiscriminator, MLPDiscriminator

    known = (*_PER_SAMPLE_LAYERS, MLPDiscriminator, DCGANDiscriminator, ConditionEmbedding)
    return all(type(m) in known for m in D.modules())


def memory_format_for(config: GANConfig, device: torch.device) -> torch.memory_format:
    """channels_last (oneDNN's preferred layout) for convolutional models on CPU, else the default.

    Faster on a CPU and no clear gain on a GPU (benchmarks/README.md). It changes the memory layout
    only, so results differ by float rounding alone.
    """
    if config.model == "dcgan" and device.type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


def cpu_supports_bf16() -> bool:
    """Whether this CPU has bf16 matmul units (AVX512-BF16/AMX), where bf16 autocast can pay off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def bf16_is_native(device: torch.device) -> bool:
    """Whether `device` has native (not emulated) bf16: bf16 autocast is only faster there."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # an older torch without the including_emulation argument
            return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_supports_bf16()


def check_bf16(device: torch.device, *, warn: bool = True) -> None:
    """Refuse precision="bf16" where autocast cannot do it (ConfigError).

    Warn where bf16 is emulated (slower).
    """
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error"
        )  # autocast warns and turns itself off where bf16 is unsupported
        try:
            torch.autocast(device.type, dtype=torch.bfloat16)
        except (RuntimeError, UserWarning) as e:
            raise ConfigError(
                f"precision='bf16' is not available on {device} ({e}); use precision='fp32'"
            ) from None
    if warn and not bf16_is_native(device):
        warnings.warn(
            f"{device} has no native bf16 units: bf16 autocast will emulate them and train slower "
            "than fp32 (precision='fp32' is the default for this reason)",
            stacklevel=3,
        )


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load optimizer state but keep this optimizer's kernel choice (fused/foreach): a checkpoint
    from another machine or torch version carries the update rule, not a kernel this one may lack.
    Moment buffers take their parameter's memory layout (a checkpoint may come from a
    channels-first run)."""
    mine = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in opt.param_groups]
    groups = [{**saved, **flags} for saved, flags in zip(state["param_groups"], mine)]
    opt.load_state_dict({**state, "param_groups": groups})
    for p, s in opt.state.items():
        for k, v in s.items():
            if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                s[k] = torch.empty_like(p).copy_(v)  # empty_like keeps p's layout


def make_optimizer(config: GANConfig, module: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The config's optimizer over `module`'s parameters; Adam uses the fused kernel if it exists.

    fused=True applies the same update rule in one kernel over all tensors
    (faster: benchmarks/README.md).
    """
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(module.parameters(), lr=lr)
    try:
        return torch.optim.Adam(module.parameters(), lr=lr, betas=config.betas, fused=True)
    except RuntimeError:  # torch < 2.4 on a CPU, or a device without the fused kernel
        return torch.optim.Adam(module.parameters(), lr=lr, betas=config.betas)


# ---------------------------------------------------------- switches a benchmark flips on a Trainer
def set_precision(trainer: Any, precision: str) -> None:
    """Train `trainer` in `precision` from its next step on: "fp32", or "bf16" (forward passes under
    bf16 autocast; weights, gradients and optimizer state stay fp32). The trainer gets a copy of its
    config (other trainers may share the old one), so checkpoints say how the run was trained."""
    if precision == "bf16":
        check_bf16(trainer.device)
    if precision != trainer.config.precision:  # the copy validates: an unknown precision is refused
        trainer.config = trainer.config.replace(precision=precision)


def set_memory_format(trainer: Any, fmt: torch.memory_format) -> None:
    """Keep `trainer`'s G, D and every real batch in `fmt` (its train_step converts the batches)."""
    trainer.memory_format = fmt
    trainer.G.to(memory_format=fmt)
    trainer.D.to(memory_format=fmt)
