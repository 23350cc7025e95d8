"""Run configuration: profiles, devices, seeding, the typed GANConfig and the lesson presets."""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "full")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16")
DATASETS = ("mnist", "fashion-mnist", "cifar10", "folder", "posters")  # load_dataset reads each


class ConfigError(ValueError):
    """A setting (environment variable, preset name, option) has a value we cannot use."""


def resolve_device(name: str | None = None) -> torch.device:
    """The training device: `name`, else $GANKIT_DEVICE, else auto (cuda, then mps, then cpu)."""
    raw = name if name is not None else os.environ.get("GANKIT_DEVICE", "auto")
    choice = raw.strip().lower() or "auto"
    base = choice.split(":")[0]
    if base not in DEVICES:
        raise ConfigError(
            f"unknown device {raw!r} (from {'argument' if name else 'GANKIT_DEVICE'}); "
            f"use one of {', '.join(DEVICES)}, e.g. GANKIT_DEVICE=cpu"
        )
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {raw!r} was asked for but CUDA is not available here; "
            + ("use cpu" if name is not None else "unset GANKIT_DEVICE or use cpu")
        )
    if base == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ConfigError(
            f"device {raw!r} was asked for but Apple MPS is not available here; use cpu"
        )
    return torch.device(choice)


def resolve_profile(name: str | None = None, device: torch.device | None = None) -> str:
    """The budget profile: `name`, else $GANKIT_PROFILE, else `full` on a GPU, `cpu` otherwise."""
    raw = name if name is not None else os.environ.get("GANKIT_PROFILE", "")
    choice = raw.strip().lower()
    if not choice or choice == "auto":
        device = device or resolve_device()
        return "full" if device.type in ("cuda", "mps") else "cpu"
    if choice not in PROFILES:
        raise ConfigError(
            f"unknown profile {raw!r} (from {'argument' if name else 'GANKIT_PROFILE'}); "
            f"use one of {', '.join(PROFILES)}"
        )
    return choice


def project_dir() -> Path:
    """The checkout's root when inside one (e.g. from notebooks/), else the current folder."""
    here = Path.cwd()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").exists() and (d / "gankit").is_dir():
            return d
    return here


def data_root(path: str | os.PathLike | None = None) -> Path:
    """Where data sets live: `path`, else $GANKIT_DATA, else <project>/data.

    <project>/data is created on demand by downloads.
    """
    raw = path if path is not None else os.environ.get("GANKIT_DATA") or project_dir() / "data"
    root = Path(raw).expanduser()
    if "GANKIT_DATA" in os.environ and path is None and not root.exists():
        # A relative GANKIT_DATA is usually meant from the checkout's root (where `make` and
        # `jupyter lab` start), while the lessons' kernels run in notebooks/: try the checkout's
        # root too.
        tried = [root.absolute()]
        if not root.is_absolute():
            from_project = project_dir() / root
            if from_project.exists():
                return from_project
            tried.append(from_project)
        where = " or ".join(repr(str(p)) for p in dict.fromkeys(tried))
        raise ConfigError(
            f"GANKIT_DATA points at {str(root)!r} ({where}), which does not exist; fix the path "
            "(it should contain e.g. MNIST/raw/) or unset it to use ./data"
        )
    return root


def cache_root() -> Path:
    """Where gankit writes what it generates (the toy poster set): $GANKIT_CACHE, else the data
    root when GANKIT_DATA is unset (./data), else <project>/data/cache so a shared data folder is
    never written to."""
    if os.environ.get("GANKIT_CACHE"):
        return Path(os.environ["GANKIT_CACHE"]).expanduser()
    if not os.environ.get("GANKIT_DATA"):
        return project_dir() / "data"
    return project_dir() / "data" / "cache"


def progress_mode(progress: bool | str) -> str:
    """ "bar" (a live tqdm bar), "epochs" (one printed line per epoch) or "none"; True means
    $GANKIT_PROGRESS if set (`make course` sets "epochs": executed notebooks keep plain lines,
    not a frozen widget), else "bar"."""
    mode = os.environ.get("GANKIT_PROGRESS", "bar") if progress is True else progress or "none"
    if mode not in ("bar", "epochs", "none"):
        raise ValueError(f"progress={mode!r}: use 'bar', 'epochs' or 'none' (or True/False)")
    return mode


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


# Inclusive bounds on the fields that size networks and buffers, checked when a config is made and
# before a checkpoint's config is built: roomy for any course model, tight enough that a stranger's
# config cannot ask for gigabytes.
CONFIG_BOUNDS: dict[str, tuple[int, int]] = {
    "image_size": (1, 1024), "channels": (1, 4), "latent_dim": (1, 4096),
    "hidden_dim": (1, 16384), "g_width": (1, 4096), "d_width": (1, 4096),
    "num_classes": (0, 100_000), "cond_dim": (0, 10_000), "batch_size": (1, 65_536),
    "n_fixed": (1, 4096), "n_critic": (1, 1000), "epochs": (1, 10**6), "log_every": (1, 10**9),
    "checkpoint_every": (0, 10**12), "keep_checkpoints": (0, 10**6), "subset": (1, 10**9),
    "steps_per_epoch": (1, 10**12), "top_k": (1, 10_000), "world_size": (1, 4096),
}  # fmt: skip


@dataclass
class GANConfig:
    """Everything that defines one training run; saved in every checkpoint and run folder."""

    # Fields that shape the networks: a checkpoint loads only into a config that agrees on all of
    # them.
    ARCHITECTURE: ClassVar[tuple[str, ...]] = (
        "model", "image_size", "channels", "latent_dim", "hidden_dim", "g_width", "d_width",
        "d_norm", "num_classes", "cond_dim", "cond_mode", "minibatch_disc",
    )  # fmt: skip
    # Keys that older gankit versions kept in `extra` and that are typed fields now.
    _FROM_EXTRA: ClassVar[dict[str, str]] = {
        "top_k": "top_k", "encoding": "genre_encoding", "label_names": "label_names",
    }  # fmt: skip

    preset: str = "custom"
    # data
    dataset: str = "mnist"  # mnist | fashion-mnist | cifar10 | folder | posters
    data_path: str | None = None  # image folder or poster root; None = under GANKIT_DATA
    image_size: int = 28
    channels: int = 1
    subset: int | None = None  # use only the first N training images (smoke profile)
    top_k: int | None = None  # posters: keep only the K most frequent genres (None: all 28)
    genre_encoding: str = "multi-hot"  # posters: multi-hot | normalised (each row sums to 1)
    label_names: tuple[str, ...] = ()  # the condition's names, taken from the data by setup()
    augment: bool = False  # random flip (+ jitter for RGB) on each batch, on the device
    # model
    model: str = "mlp"  # mlp | dcgan
    latent_dim: int = 64  # from our source report; digits need few latent factors
    hidden_dim: int = 256  # MLP width; 256 learns all ten digits in minutes on a CPU
    g_width: int = 64  # DCGAN base width (ngf): canonical DCGAN uses 64
    d_width: int = 64  # DCGAN base width (ndf)
    d_norm: str = "batch"  # batch | layer | none; a WGAN-GP critic must not use batch norm
    num_classes: int = 0  # > 0: conditional on class ids (MNIST labels)
    cond_dim: int = 0  # > 0: conditional on a multi-hot vector (poster genres)
    cond_mode: str = "projection"  # concat | projection (Miyato & Koyama 2018)
    latent: str = "normal"  # normal | uniform (uniform is the lesson-01 pitfall, never a default)
    # objective
    loss: str = "bce"  # bce | wgan
    g_loss: str = "non-saturating"  # non-saturating | minimax (only for loss="bce")
    real_label: float = 1.0  # 0.9 = one-sided label smoothing (Salimans et al. 2016)
    feature_matching: float = (
        0.0  # > 0: weight of the feature-matching G term (Salimans et al. 2016; tricks.py)
    )
    minibatch_disc: bool = False  # minibatch discrimination in D (Salimans et al. 2016; tricks.py)
    gp_weight: float = 0.0  # lambda of the gradient penalty; 10 in Gulrajani et al.
    clip_value: float = 0.0  # > 0: WGAN weight clipping bound (0.01 in Arjovsky et al.)
    n_critic: int = 1  # discriminator steps per generator step; 5 for WGAN
    # optimisation
    batch_size: int = 64  # the global batch: all processes together (one process: the batch)
    # training processes (torchrun; gankit.distributed): each trains on batch_size // world_size
    # samples of every batch, and sync_bn (CUDA only) computes batch-norm statistics over all
    world_size: int = 1
    batch_per_rank: int = 0  # derived: batch_size // world_size, recorded so config.json says it
    sync_bn: bool = False
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # beta1=0.5 stabilises GANs (Radford et al.)
    optimizer: str = "adam"  # adam | rmsprop (RMSprop for weight-clipped WGAN, as in its paper)
    epochs: int = 10
    steps_per_epoch: int | None = None  # cap on batches per epoch (smoke profile)
    drop_last: bool = True  # a 1-sample last batch breaks batch norm and skews D; drop it
    # bf16: forward passes under bf16 autocast (weights, gradients and Adam stay fp32). Opt-in: it
    # pays off only on bf16 units (recent x86 CPUs, Ampere+ GPUs; benchmarks/README.md)
    precision: str = "fp32"
    # samples, grids and evaluation come from an exponential moving average of G's weights
    # (Yazici et al. 2019; StyleGAN, BigGAN); 0 = off. G itself trains and resumes.
    ema_decay: float = 0.0
    # bookkeeping
    seed: int = 0
    log_every: int = 50  # steps between host syncs (loss .item()) and progress updates
    checkpoint_every: int = 0  # steps between extra checkpoints; 0 = only at each epoch end
    keep_checkpoints: int = 3  # keep the last K step checkpoints (last.pt is always kept)
    on_diverge: str = (
        "stop"  # stop | rollback: reload the last good checkpoint, halve both lrs (<= 3 times)
    )
    n_fixed: int = 64  # samples in the per-epoch grid (fixed noise)
    profile: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)  # lesson-specific options

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # JSON round trips give lists
        self.label_names = tuple(self.label_names)
        checks = {
            "dataset": (self.dataset, DATASETS),
            "model": (self.model, ("mlp", "dcgan")),
            "loss": (self.loss, ("bce", "wgan")),
            "g_loss": (self.g_loss, ("non-saturating", "minimax")),
            "latent": (self.latent, ("normal", "uniform")),
            "d_norm": (self.d_norm, ("batch", "layer", "none")),
            "cond_mode": (self.cond_mode, ("concat", "projection")),
            "optimizer": (self.optimizer, ("adam", "rmsprop")),
            "profile": (self.profile, PROFILES),
            "on_diverge": (self.on_diverge, ("stop", "rollback")),
            "precision": (self.precision, PRECISIONS),
            "genre_encoding": (self.genre_encoding, ("multi-hot", "normalised")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        for name in ("batch_size", "epochs", "latent_dim", "n_critic", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, (low, high) in CONFIG_BOUNDS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise ConfigError(f"{name}={value} is outside {low}..{high}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1) (0: no average), got {self.ema_decay}")
        if self.num_classes and self.cond_dim:
            raise ConfigError("set num_classes (class ids) or cond_dim (multi-hot), not both")
        if self.batch_size % self.world_size:
            raise ConfigError(
                f"batch_size={self.batch_size} does not split over {self.world_size} processes: "
                f"use a batch size divisible by {self.world_size} (e.g. "
                f"{self.batch_size // self.world_size * self.world_size or self.world_size}) or a "
                "process count that divides it"
            )
        if self.world_size > 1 and not self.drop_last:
            raise ConfigError(
                "drop_last=False cannot run on several processes: a last, smaller batch does not "
                "split evenly over them; keep drop_last=True"
            )
        self.batch_per_rank = self.batch_size // self.world_size

    @property
    def conditional(self) -> bool:
        return bool(self.num_classes or self.cond_dim)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GANConfig:
        d = cls.upgrade(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(
                f"config has fields this gankit version does not know: {sorted(unknown)}"
            )
        return cls(**d)

    @classmethod
    def upgrade(cls, d: dict[str, Any]) -> dict[str, Any]:
        """A saved config dict with settings old versions kept in `extra` moved to their fields."""
        extra = dict(d.get("extra") or {})
        moved = {new: extra.pop(old) for old, new in cls._FROM_EXTRA.items() if old in extra}
        if not moved:
            return d
        return {**d, **{k: v for k, v in moved.items() if k not in d}, "extra": extra}

    def architecture_diff(self, other: GANConfig) -> str:
        """'field: saved A vs now B, ...' for ARCHITECTURE fields where self and other differ."""
        return ", ".join(
            f"{k}: saved {getattr(self, k)!r} vs now {getattr(other, k)!r}"
            for k in self.ARCHITECTURE
            if getattr(self, k) != getattr(other, k)
        )

    def replace(self, **changes: Any) -> GANConfig:
        return dataclasses.replace(self, **changes)


# Lesson presets: the base config (the `full` profile), then per-profile overrides. Why each value
# is what it is, with the measurements behind it: benchmarks/README.md, "Preset choices".
# fmt: off
PRESETS: dict[str, dict[str, Any]] = {
    # lr 4e-4: all ten digits twice as soon as DCGAN's 2e-4; 30 epochs: FID rises again after ~30
    "mlp-mnist": dict(model="mlp", latent_dim=64, hidden_dim=256, batch_size=64, epochs=30,
                      lr_g=4e-4, lr_d=4e-4, betas=(0.5, 0.999)),
    "dcgan-mnist": dict(model="dcgan", image_size=32, latent_dim=100, g_width=64, d_width=64,
                        batch_size=128, epochs=20),  # Radford et al.'s widths and batch
    "wgan-gp-mnist": dict(model="dcgan", image_size=32, latent_dim=128, g_width=64, d_width=64,
                          d_norm="layer", loss="wgan", gp_weight=10.0, n_critic=5, batch_size=64,
                          lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9), epochs=30),  # Gulrajani et al.
    "cgan-mnist": dict(model="mlp", num_classes=10, latent_dim=64, hidden_dim=512, batch_size=64,
                       epochs=40, cond_mode="projection"),
    "poster-cgan": dict(dataset="posters", model="dcgan", image_size=64, channels=3, cond_dim=28,
                        latent_dim=128, g_width=64, d_width=64, d_norm="layer", loss="wgan",
                        gp_weight=10.0, n_critic=5, batch_size=64, lr_g=1e-4, lr_d=1e-4,
                        betas=(0.0, 0.9), epochs=100, augment=True, cond_mode="projection"),
}

# How each profile shrinks a preset: smoke runs every code path in seconds; cpu gives
# recognisable results in minutes on a laptop; full is the preset itself.
PROFILE_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "*": dict(epochs=2, steps_per_epoch=20, subset=2048, log_every=5, n_fixed=16),
        "dcgan-mnist": dict(g_width=16, d_width=16),
        "wgan-gp-mnist": dict(g_width=16, d_width=16, d_norm="none", batch_size=32),
        "poster-cgan": dict(image_size=32, g_width=16, d_width=16, subset=256),
    },
    "cpu": {
        "*": dict(),
        "mlp-mnist": dict(epochs=15, batch_size=64),
        # widths 16: ~0.1 s per step on 2 CPU threads, all ten digits within 1200 steps
        "dcgan-mnist": dict(epochs=6, steps_per_epoch=200, g_width=16, d_width=16, batch_size=64),
        # no critic norm (Gulrajani et al.'s MNIST critic) at lr 2e-3: digits within 1200 steps
        "wgan-gp-mnist": dict(epochs=6, steps_per_epoch=200, g_width=16, d_width=16, d_norm="none",
                              batch_size=32, lr_g=2e-3, lr_d=2e-3, log_every=10),
        "cgan-mnist": dict(epochs=8),  # conditional accuracy 0.96 after 8 epochs
        # one critic step per G step at lr 1e-3: the most G updates per CPU second at width 16
        "poster-cgan": dict(g_width=16, d_width=16, n_critic=1, lr_g=1e-3, lr_d=1e-3,
                            betas=(0.5, 0.9), epochs=60),
    },
    "full": {"*": dict()},
}
# fmt: on


def make_config(preset: str, profile: str | None = None, **overrides: Any) -> GANConfig:
    """A lesson preset's config under a profile (None: $GANKIT_PROFILE or auto), with overrides."""
    if preset not in PRESETS:
        import difflib

        close = difflib.get_close_matches(preset, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.{hint}")
    profile = resolve_profile(profile)
    values: dict[str, Any] = dict(PRESETS[preset])
    values.update(PROFILE_OVERRIDES[profile].get("*", {}))
    values.update(PROFILE_OVERRIDES[profile].get(preset, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return GANConfig(preset=preset, profile=profile, **values)
