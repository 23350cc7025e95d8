"""Checkpoints: what an exact resume needs (the Trainer's Checkpointing), written with a checksum,
read safely (weights_only, every key, type, shape and size checked before anything is built), and
matched against the run that continues them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import CONFIG_BOUNDS, ConfigError, GANConfig
from .distributed import gather, noise_seed, on_main
from .files import atomic_save
from .models import build_models
from .speed import load_optimizer_state

CHECKPOINT_FORMAT = 1
PROGRESS = ("step", "epoch", "batch_in_epoch", "records", "evaluations", "events")  # in checkpoints


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: truncated, corrupted, or from another preset or version."""


def run_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """A run folder's checkpoints, newest first: last.pt, then step_*.pt from the highest step."""
    folder = Path(run_dir) / "checkpoints"
    last = [folder / "last.pt"] if (folder / "last.pt").exists() else []
    return last + sorted(folder.glob("step_*.pt"), reverse=True)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint safely (weights_only: a stranger's file runs no code), then check it whole
    (check_checkpoint) before anything is built from it; CheckpointError says, in one line, what is
    wrong."""
    path = Path(path)
    source = f"checkpoint {str(path)!r}"
    if not path.exists():
        raise FileNotFoundError(f"{source} does not exist")
    if path.is_dir():
        inside = [p for p in (path / "checkpoints" / "last.pt", path / "last.pt") if p.is_file()]
        hint = f", e.g. {inside[0]}" if inside else " (a run's checkpoints/last.pt)"
        raise CheckpointError(f"{source} is a directory; pass a checkpoint file{hint}")
    if not path.is_file():  # a FIFO or a device: open() would wait or read forever
        raise CheckpointError(
            f"{source} is not a regular file (a pipe, socket or device); pass a checkpoint file"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        if any("Weights only load failed" in ln for ln in lines):  # never repeat torch's advice
            found = [
                ln.split("Unsupported global:")[1] for ln in lines if "Unsupported global:" in ln
            ]
            if found:
                raise CheckpointError(
                    f"{source} cannot be read safely: it holds Python objects, not only tensors "
                    f"and plain data ({found[0].split(' was not')[0].strip()}), and loading those "
                    "could run code; use a checkpoint written by gankit"
                ) from None
            lines = [ln.split("error:", 1)[-1].strip() for ln in lines if "Unpickler error" in ln]
        others = sorted(p.name for p in path.parent.glob("*.pt") if p != path)
        hint = f" Other checkpoints in that folder: {', '.join(others)}." if others else ""
        reason = (lines or [""])[0][:200]  # one line: torch's messages run to paragraphs
        raise CheckpointError(
            f"{source} is truncated or corrupted and cannot be read "
            f"({type(e).__name__}: {reason}).{hint}"
        ) from None
    check_checkpoint(ckpt, source)
    return ckpt


# What Checkpointing.load_state_dict reads from a checkpoint, with the types it needs.
CHECKPOINT_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": int, "version": str, "config": dict, "G": dict, "D": dict, "opt_g": dict,
    "opt_d": dict, "step": int, "epoch": int, "batch_in_epoch": int, "elapsed": (int, float),
    "accum": torch.Tensor, "accum_n": int, "fixed_noise": torch.Tensor,
    "fixed_labels": (torch.Tensor, type(None)), "rng": dict,
}  # fmt: skip
# Keys older checkpoints may lack.
OPTIONAL_KEYS: dict[str, type | tuple[type, ...]] = {
    "objective": (dict, type(None)), "records": list, "evaluations": list, "events": list,
    "G_ema": dict, "checksum": str, "ranks": list,
}  # fmt: skip
# The parts of a checkpoint that state_checksum covers, and what a mismatch says about each.
CHECKSUM_PARTS = {
    "G": "G weights do not match their checksum",
    "D": "D weights do not match their checksum",
    "opt_g": "G optimizer state does not match its checksum",
    "opt_d": "D optimizer state does not match its checksum",
    "G_ema": "G moving-average weights do not match their checksum",
}


def check_checkpoint(ckpt: Any, source: str = "checkpoint") -> GANConfig:
    """CheckpointError unless `ckpt` is a whole gankit checkpoint whose parts agree; returns its
    config. Checked before anything is built from it, in this order: the keys load_state_dict
    reads and their types; the config's field types and CONFIG_BOUNDS; every G/D weight (and
    G_ema's, and each optimizer moment) has the shape the config implies (the networks are built on
    the meta device: no memory) and bytes of its own in the file; the checksum, when the checkpoint
    has one (state_checksum); G's and D's weights are finite; the RNG states can be restored."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{source} is not a gankit checkpoint (format {CHECKPOINT_FORMAT} expected)"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{source} is incomplete: it lacks {', '.join(missing)}; use a checkpoint written by "
            "gankit (a run's checkpoints/last.pt)"
        )
    wanted = {**CHECKPOINT_KEYS, **OPTIONAL_KEYS}
    for key, kinds in wanted.items():
        value = ckpt.get(key)
        if key in ckpt and (not isinstance(value, kinds) or isinstance(value, bool)):
            names = "/".join(t.__name__ for t in (kinds if isinstance(kinds, tuple) else (kinds,)))
            raise CheckpointError(
                f"{source} is damaged: {key} is a {type(value).__name__}, not {names}"
            )
    for k in ("step", "epoch", "batch_in_epoch", "accum_n", "elapsed"):
        if not 0 <= ckpt[k] < float("inf"):  # NaN fails too
            raise CheckpointError(f"{source} is damaged: {k}={ckpt[k]} (a count or time >= 0)")
    lists = [k for k in ("records", "evaluations", "events") if k in ckpt]
    if any(not isinstance(row, dict) for k in lists for row in ckpt[k]):
        raise CheckpointError(f"{source} is damaged: its {', '.join(lists)} are not lists of dicts")
    for r, part in enumerate(ckpt.get("ranks", [])):  # per-process state of a torchrun run
        ok = isinstance(part, dict) and isinstance(part.get("rng"), dict)
        if not ok or not isinstance(part.get("accum"), torch.Tensor) or part["accum"].shape != (5,):
            raise CheckpointError(f"{source} is damaged: the state of process {r} is unreadable")
    config = _checkpoint_config(ckpt["config"], source)
    try:
        with torch.device("meta"):  # shapes without memory
            G, D = build_models(config)
    except (ValueError, TypeError) as e:  # ConfigError is a ValueError
        raise CheckpointError(
            f"{source} has a config gankit cannot build networks from: {e}"
        ) from None
    nets = {"G": G.state_dict(), "D": D.state_dict()}
    if "G_ema" in ckpt:  # torch's AveragedModel: n_averaged, then G's keys under module.
        nets["G_ema"] = {"n_averaged": torch.empty((), dtype=torch.long)}
        nets["G_ema"].update({f"module.{k}": v for k, v in nets["G"].items()})
    for name, want in nets.items():
        _check_shapes(ckpt[name], want, name, config, source)
    for name, net in (("opt_g", G), ("opt_d", D)):
        _check_optimizer(ckpt[name], [tuple(p.shape) for p in net.parameters()], name, source)
    noise, labels = ckpt["fixed_noise"], ckpt["fixed_labels"]
    if noise.dim() != 2 or noise.shape[1] != config.latent_dim or ckpt["accum"].shape != (5,):
        raise CheckpointError(
            f"{source} is damaged: fixed_noise {tuple(noise.shape)} or accum "
            f"{tuple(ckpt['accum'].shape)} do not fit latent_dim={config.latent_dim}"
        )
    if labels is not None and (labels.dim() == 0 or labels.shape[0] != noise.shape[0]):
        raise CheckpointError(f"{source} is damaged: fixed_labels do not match fixed_noise")
    tensors = [(f"{name} {k}", t) for name in nets for k, t in ckpt[name].items()]
    tensors += [(f"{o} state", t) for o in ("opt_g", "opt_d") for t in _tensors(ckpt[o]["state"])]
    _check_backed([*tensors, ("fixed_noise", noise)], source)
    if "checksum" in ckpt:
        _check_checksum(ckpt, source)
    for name in [n for n in ("G", "D", "G_ema") if n in nets]:
        bad = [k for k, t in ckpt[name].items() if t.is_floating_point() and not t.isfinite().all()]
        if bad:
            raise CheckpointError(
                f"{source} holds NaN/Inf in its {name} weights ({', '.join(bad[:3])}): it would "
                "draw blank images and cannot train on; use an earlier checkpoint"
            )
    saved = rng_state()
    try:  # on the CPU, where RNG states live (resume maps a checkpoint to the training device)
        for part in [ckpt, *ckpt.get("ranks", [])]:
            set_rng_state(_on_cpu(part["rng"]))
    except Exception as e:
        raise CheckpointError(
            f"{source} is damaged: its RNG states cannot be restored ({type(e).__name__})"
        ) from None
    finally:
        set_rng_state(saved)
    return config


def state_checksum(state: dict[str, Any]) -> str:
    """'G:<sha256> D:<sha256> opt_g:<sha256> opt_d:<sha256>' (and G_ema when the state has one):
    one SHA-256 per part over its tensors' names, dtypes, shapes and values, in a fixed order.

    Values are hashed in logical (contiguous) order, so a channels_last network and its reloaded
    copy agree. Checkpointing.state_dict stores it as "checksum"; check_checkpoint names the part
    whose bytes changed since."""
    return " ".join(f"{k}:{_digest(state[k])}" for k in CHECKSUM_PARTS if k in state)


def _digest(part: Any) -> str:

    h = hashlib.sha256()
    for name, t in _tensors(part, with_names=True):
        t = t.detach().cpu().contiguous()
        h.update(f"{name} {t.dtype} {tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _tensors(obj: Any, prefix: str = "", *, with_names: bool = False) -> list[Any]:
    """Every tensor inside nested dicts/lists, in a fixed order (dict keys sorted as text)."""
    if torch.is_tensor(obj):
        return [(prefix, obj)] if with_names else [obj]
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: str(kv[0]))
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    else:
        return []
    return [t for k, v in items for t in _tensors(v, f"{prefix}/{k}", with_names=with_names)]


def _on_cpu(obj: Any) -> Any:
    """`obj` with every tensor inside nested dicts, lists and tuples moved to the CPU."""
    if torch.is_tensor(obj):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def _checkpoint_config(raw: dict[str, Any], source: str) -> GANConfig:
    """The checkpoint's GANConfig; each field of the type GANConfig declares, in CONFIG_BOUNDS."""
    d = GANConfig.upgrade(raw)
    hints = typing.get_type_hints(GANConfig)
    for f in dataclasses.fields(GANConfig):
        if f.name not in d:
            continue  # added since that checkpoint was written: the default
        value, hint = d[f.name], hints[f.name]
        if not _fits(value, hint):
            raise CheckpointError(
                f"{source} is damaged: its config has {f.name}={value!r} "
                f"({type(value).__name__}), not {getattr(hint, '__name__', hint)}"
            )
        low, high = CONFIG_BOUNDS.get(f.name, (None, None))
        if low is not None and value is not None and not low <= value <= high:
            raise CheckpointError(
                f"{source} has {f.name}={value} in its config, beyond what gankit loads "
                f"({low}..{high}); refused before anything is built from it"
            )
    try:
        config = GANConfig.from_dict(d)
    except ConfigError as e:
        raise CheckpointError(f"{source} has a config this gankit cannot use: {e}") from None
    if config.cond_dim and config.label_names and len(config.label_names) != config.cond_dim:
        raise CheckpointError(
            f"{source} is damaged: {len(config.label_names)} label_names for cond_dim "
            f"{config.cond_dim}"
        )
    return config


def _fits(value: Any, hint: Any) -> bool:
    """Whether a config value (as torch.load gives it back) has the type a GANConfig field
    declares: int, float (finite), str, bool, None, tuple[...] (list or tuple), dict, unions."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in args)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and math.isfinite(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, origin or hint)


def _check_shapes(
    saved: dict[Any, Any], want: dict[str, torch.Tensor], name: str, config: GANConfig, source: str
) -> None:
    """CheckpointError unless `saved` (a state dict) has exactly `want`'s keys, tensors of its
    shapes and kinds (floating or not)."""
    missing, extra = [k for k in want if k not in saved], [k for k in saved if k not in want]
    sizes = ("hidden_dim",) if config.model == "mlp" else ("g_width", "d_width")
    keys = ("model", "image_size", "channels", "latent_dim", *sizes, "num_classes", "cond_dim")
    arch = ", ".join(f"{k}={getattr(config, k)}" for k in keys if getattr(config, k) != 0)
    if missing or extra:
        what = "; ".join(
            f"{label} {', '.join(map(str, keys[:3]))}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("lacks", missing), ("has unexpected", extra))
            if keys
        )
        raise CheckpointError(f"{source} does not match its own config ({arch}): {name} {what}")
    for k, t in saved.items():
        w = want[k]
        if not torch.is_tensor(t):
            raise CheckpointError(f"{source} is damaged: {name} {k} is a {type(t).__name__}")
        if tuple(t.shape) != tuple(w.shape) or t.is_floating_point() != w.is_floating_point():
            kind = "" if t.is_floating_point() == w.is_floating_point() else f" {t.dtype}"
            raise CheckpointError(
                f"{source} does not match its own config: {name} {k} is{kind} "
                f"{tuple(t.shape)} where the config ({arch}) implies{kind and f' {w.dtype}'} "
                f"{tuple(w.shape)}"
            )


def _check_optimizer(opt: dict[str, Any], shapes: list[tuple[int, ...]], name: str, source: str):
    """CheckpointError unless `opt` is an optimizer state over exactly these parameters, each
    moment (exp_avg, ...) of its parameter's shape."""
    state, groups = opt.get("state"), opt.get("param_groups")
    ok = isinstance(state, dict) and isinstance(groups, list)
    ok = ok and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
    ids = sorted(i for g in groups for i in g["params"]) if ok else []
    if not ok or ids != list(range(len(shapes))) or any(i not in range(len(shapes)) for i in state):
        raise CheckpointError(
            f"{source} is damaged: {name} is not an optimizer state over the {len(shapes)} "
            "parameters its config implies"
        )
    for i, moments in state.items():
        for k, v in moments.items() if isinstance(moments, dict) else [("state", moments)]:
            if torch.is_tensor(v) and v.dim() > 0 and tuple(v.shape) != shapes[i]:
                raise CheckpointError(
                    f"{source} is damaged: {name} {k} of parameter {i} is {tuple(v.shape)}, "
                    f"its parameter {shapes[i]}"
                )


def _check_backed(tensors: list[tuple[str, torch.Tensor]], source: str) -> None:
    """CheckpointError if tensors claim more bytes than the file stores for them (a stride-0 view
    of one number, or many tensors over one storage): what makes a small file weigh gigabytes."""
    used: dict[tuple[str, int], int] = {}
    for name, t in tensors:
        if t.numel() <= 1:
            continue
        storage = t.untyped_storage()
        key = (str(storage.device), storage.data_ptr())
        used[key] = used.get(key, 0) + t.numel() * t.element_size()
        if used[key] > storage.nbytes():
            raise CheckpointError(
                f"{source} is not a gankit checkpoint: {name} claims {used[key]} bytes but the "
                f"file stores {storage.nbytes()} bytes for it"
            )


def _check_checksum(ckpt: dict[str, Any], source: str) -> None:
    saved = dict(part.split(":", 1) for part in ckpt["checksum"].split() if ":" in part)
    if not {"G", "D", "opt_g", "opt_d"} <= set(saved) <= set(CHECKSUM_PARTS):
        raise CheckpointError(f"{source} is damaged: its checksum is unreadable")
    for key in saved:
        if key not in ckpt or _digest(ckpt[key]) != saved[key]:
            raise CheckpointError(
                f"{source} is damaged: {CHECKSUM_PARTS[key]} (bytes changed after it was "
                "saved); use another checkpoint"
            )


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from (torch CPU and CUDA, NumPy, Python): saved in each checkpoint."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore rng_state()'s generators; the states may have been loaded onto a GPU (they are
    byte tensors that torch wants on the CPU)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), *rest))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def newest_checkpoint(
    run_dir: str | os.PathLike | None, device: str | torch.device = "cpu"
) -> tuple[str, dict[str, Any]] | None:
    """(path, checkpoint) of a run folder's newest readable checkpoint (last.pt, else the highest
    step_*.pt), or None. Skipping an unreadable one is said out loud (the steps since are lost)."""
    candidates = run_checkpoints(run_dir) if run_dir else []
    for i, path in enumerate(candidates):
        try:
            return str(path), load_checkpoint(path, device)
        except CheckpointError as e:
            if i == len(candidates) - 1:
                raise
            print(f"warning: {e} Trying {candidates[i + 1].name} instead.")
    return None


def check_compatible(ckpt: dict[str, Any], config: GANConfig, objective: Any, source: str) -> None:
    """CheckpointError unless `ckpt` continues a run of this preset, architecture and objective.

    The objective is compared by name (`Objective.describe`): a learner's own loss or penalty must
    be passed again to continue a run trained with it. Checkpoints older than this check are
    trusted.
    """
    saved = GANConfig.from_dict(ckpt["config"])
    if saved.preset != config.preset:
        raise CheckpointError(f"{source} is from preset {saved.preset!r}, not {config.preset!r}")
    diff = saved.architecture_diff(config)
    if diff:
        raise CheckpointError(
            f"{source} has another architecture ({diff}); saved with gankit {ckpt['version']}"
        )
    was, now = ckpt.get("objective"), objective.describe()
    diff = [f"{k}: saved {was[k]!r}, now {now[k]!r}" for k in now if was and was.get(k) != now[k]]
    if diff:
        raise CheckpointError(
            f"{source} was trained with another objective ({'; '.join(diff)}). Pass the same "
            "pieces again (e.g. train_or_load(..., penalty=my_penalty)) to continue it"
        )


# ------------------------------------------------------------------------ the Trainer's checkpoints
class Checkpointing:
    """The Trainer's checkpoint state: what an exact resume needs, saved, checked and loaded.

    A mixin of gankit.train.Trainer (kept here, beside the files it reads and writes, so that the
    Trainer's own module is the training loop); it uses the Trainer's attributes.
    """

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs: nanoGPT's checkpoint dict, history and RNG states.

        On several processes every rank must call it (it gathers each rank's RNG state and loss
        sums into "ranks"); "rng" is rank 0's and "accum" the ranks' mean, what one process
        continues from."""
        nets = {k: getattr(self, k).state_dict() for k in ("G", "D", "opt_g", "opt_d")}
        progress = {k: getattr(self, k) for k in PROGRESS}
        ranks = gather({"rng": rng_state(), "accum": self._sums.cpu()}, self.world)
        extra = {
            "fixed_noise": self.fixed_noise.cpu(),
            "accum": torch.stack([r["accum"] for r in ranks]).mean(0),
            "accum_n": self._n,
        }
        if len(ranks) > 1:
            extra["ranks"] = ranks
        labels = None if self.fixed_labels is None else self.fixed_labels.cpu()
        if self.G_ema is not None:
            extra["G_ema"] = self.G_ema.state_dict()
        state = {
            "format": CHECKPOINT_FORMAT, "version": __version__, "config": self.config.to_dict(),
            "objective": self.objective.describe(), **nets, **progress, **extra,
            "elapsed": self._clock(), "fixed_labels": labels, "rng": ranks[0]["rng"],
        }  # fmt: skip
        state["checksum"] = state_checksum(state)  # load_checkpoint names damaged weights
        return state

    def load_state_dict(self, ckpt: dict[str, Any], *, source: str = "checkpoint") -> None:
        """Continue from `ckpt`; CheckpointError for another preset, architecture or objective."""
        check_compatible(ckpt, self.config, self.objective, source)
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        if self.G_ema is not None and "G_ema" in ckpt:
            self.G_ema.load_state_dict(ckpt["G_ema"])
        elif self.G_ema is not None:  # a run saved without an average starts one from its G
            self.G_ema.module.load_state_dict(ckpt["G"])
        load_optimizer_state(self.opt_g, ckpt["opt_g"])
        load_optimizer_state(self.opt_d, ckpt["opt_d"])
        for k in PROGRESS:
            setattr(
                self, k, list(ckpt.get(k, [])) if isinstance(getattr(self, k), list) else ckpt[k]
            )
        self.elapsed, self._n = ckpt["elapsed"], ckpt["accum_n"]
        self.fixed_noise = ckpt["fixed_noise"].to(self.device)
        labels = ckpt["fixed_labels"]
        self.fixed_labels = None if labels is None else labels.to(self.device)
        self._restore_ranks(ckpt)

    def _restore_ranks(self, ckpt: dict[str, Any]) -> None:
        """Each rank's RNG state and loss sums: its own when the checkpoint was written by as many
        processes, else (another process count) rank 0's RNG (ranks the checkpoint lacks start
        fresh noise streams) and the mean sums (`resume` says so)."""
        world, saved = self.world, ckpt.get("ranks") or [{"rng": ckpt["rng"], "accum": None}]
        if len(saved) == world.size:
            mine = saved[world.rank]
            self._sums = (ckpt["accum"] if mine["accum"] is None else mine["accum"]).to(self.device)
            set_rng_state(mine["rng"])
            return
        self._sums = ckpt["accum"].to(self.device)
        if world.rank < len(saved):
            set_rng_state(saved[world.rank]["rng"])
        else:
            torch.manual_seed(noise_seed(self.config.seed + self.step, world.rank))

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Write the state to `path` or the run folder's checkpoints/last.pt; never a NaN state."""
        if path is None and self.run_folder is None:
            raise ValueError("no run folder: pass a path to save_checkpoint")
        if path is None:
            return self.run_folder.checkpoint(self)
        atomic_save(self.checked_state(), Path(path))
        return Path(path)

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Continue from `path`, or the run folder's newest readable checkpoint; False if none.
        On several processes every rank loads the checkpoint rank 0 found."""
        if path is None and self.world.size > 1:

            def newest_path() -> str | None:  # the path only: no tensors are broadcast
                found = newest_checkpoint(self.run_dir, "cpu")
                return found[0] if found else None

            path = on_main(newest_path, self.world)
            if path is None:
                return False
        found = newest_checkpoint(self.run_dir, self.device) if path is None else None
        if path is not None:
            found = (str(path), load_checkpoint(path, self.device))
        if found:
            self.load_state_dict(found[1], source=found[0])
            self.note_process_change(found[0], len(found[1].get("ranks") or [None]))
        return found is not None

    def note_process_change(self, source: str, was: int) -> None:
        """Say (and keep in `events`, hence metrics.json) that a run continues on another number
        of processes than the `was` that wrote its checkpoint: the weights, optimizer state and
        global batches continue exactly, the per-process noise streams do not."""
        now = self.world.size
        if was == now:
            return
        note = f"the noise streams differ from an uninterrupted {was}-process run"
        change = {"event": "process_count", "step": self.step, "from": was, "to": now, "note": note}
        self.events = [*self.events, change]
        if self.world.is_main:
            print(
                f"{source} was written by {was} process(es) and continues on {now}: same "
                f"weights, optimizer state and batches (global batch {self.config.batch_size}), "
                f"but {note}"
            )

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, data: Any = None, **kwargs: Any) -> Any:
        """A Trainer rebuilt from a checkpoint; it writes nothing until it trains (then into the
        checkpoint's run folder, unless run_dir= says otherwise)."""
        path, ckpt = Path(path), load_checkpoint(path)
        config = GANConfig.from_dict(ckpt["config"])
        in_run = path.parent.name == "checkpoints"
        kwargs.setdefault("run_dir", path.parent.parent if in_run else None)
        trainer = cls(config, *build_models(config), data, **kwargs)
        trainer.load_state_dict(ckpt, source=str(path))
        return trainer
