"""Lesson cells call `setup` (config -> seed -> data -> models -> Trainer) and `train_or_load`."""

from __future__ import annotations

import os
from typing import Any

import torch

from . import distributed
from .config import (
    ConfigError,
    GANConfig,
    make_config,
    progress_mode,
    resolve_device,
    seed_everything,
)
from .data import BatchSource, load_dataset
from .losses import Objective, PenaltyFn, objective_for
from .models import build_models
from .runs import find_run, new_run_dir
from .train import Callback, Trainer

AUTO = "auto"  # run_dir="auto": a new runs/<preset>/<timestamp>/ folder


def resolve_config(
    preset_or_config: str | GANConfig,
    *,
    profile: str | None = None,
    data_path: str | None = None,
    **overrides: Any,
) -> GANConfig:
    """A preset under a profile, or a given config, with overrides applied (None values ignored).

    A given config already carries its profile: asking for another one is refused rather than
    ignored (build it with make_config(preset, profile) instead).
    """
    if isinstance(preset_or_config, GANConfig):
        if profile is not None and profile != preset_or_config.profile:
            raise ConfigError(
                f"profile={profile!r}, but this config was made for the "
                f"{preset_or_config.profile!r} "
                f"profile; use make_config({preset_or_config.preset!r}, {profile!r}, ...) instead"
            )
        changes = {k: v for k, v in dict(overrides, data_path=data_path).items() if v is not None}
        return preset_or_config.replace(**changes)
    return make_config(preset_or_config, profile, data_path=data_path, **overrides)


def setup(
    preset_or_config: str | GANConfig,
    *,
    profile: str | None = None,
    data_path: str | None = None,
    device: str | None = None,
    run_dir: str | os.PathLike | None = AUTO,
    runs: str | os.PathLike | None = None,
    progress: bool = True,
    objective: Objective | None = None,
    penalty: PenaltyFn | None = None,
    penalty_weight: float | None = None,
    **overrides: Any,
) -> Trainer:
    """Config -> seed -> data -> models -> Trainer: everything a lesson or `gankit train` needs.

    run_dir: "auto" makes a new run folder under `runs` (default: the runs root), None writes
    nothing, a path trains into that folder. `objective` replaces the config's (a learner's own
    losses: `Objective(d_loss=..., g_loss=...)`); `penalty` (weighted by `penalty_weight`, else the
    config's gp_weight) replaces the config's penalty. Functions are not saved in checkpoints: pass
    them again to resume (a checkpoint says by name which ones it was trained with).
    """
    config = resolve_config(preset_or_config, profile=profile, data_path=data_path, **overrides)
    dev = resolve_device(device)
    world = distributed.current()  # under torchrun: this process's rank (init() was called)
    if world.size > 1:
        if dev.type == "cuda":  # distributed.init made this rank's GPU the current one
            dev = torch.device("cuda", torch.cuda.current_device())
        distributed.check_sync_bn(config.sync_bn, dev)
        config = config.replace(world_size=world.size)  # ConfigError if the batch does not split
    seed_everything(config.seed)
    # Decoding bars follow the training progress: shown live ("bar"), not in executed notebooks
    # (GANKIT_PROGRESS=epochs, where a bar would be saved as a frozen "0%" line) nor with --quiet.
    ds = load_dataset(config, progress=progress_mode(progress) == "bar")
    if config.cond_dim and ds.label_names:  # genre names travel with the checkpoint (--genres)
        config = config.replace(
            label_names=tuple(ds.label_names)
        )  # a copy: the caller's is untouched
    source = BatchSource(
        ds.images,
        ds.labels if config.conditional else None,
        config.batch_size,
        device=dev,
        seed=config.seed,
        drop_last=config.drop_last,
        augment=config.augment,
        steps_per_epoch=config.steps_per_epoch,
        rank=world.rank,
        world_size=world.size,
    )
    G, D = build_models(config)  # the same weights on every rank (DDP also broadcasts rank 0's)
    if world.size > 1:  # each rank its own noise stream; the fixed grid noise is shared
        seed_everything(distributed.noise_seed(config.seed, world.rank))
    if objective is None:
        objective = objective_for(config, penalty=penalty, penalty_weight=penalty_weight)
    elif penalty is not None:
        raise ConfigError("pass a penalty inside your Objective or as penalty=, not both")
    folder = run_dir
    if run_dir == AUTO:  # rank 0 names the folder: the ranks' clocks may read another second
        folder = distributed.on_main(lambda: new_run_dir(config.preset, runs), world)
    trainer = Trainer(
        config, G, D, source, objective=objective, device=dev, run_dir=folder, progress=progress
    )
    trainer.dataset = ds
    return trainer


def train_or_load(
    preset_or_config: str | GANConfig,
    *,
    load: bool = False,
    resume: bool = False,
    callbacks: dict[str, list[Callback]] | None = None,
    runs: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = AUTO,
    **setup_kwargs: Any,
) -> Trainer:
    """What each lesson's training cell calls; returns the Trainer with its history and evaluations.

    load=True: reuse the newest *finished* run trained with exactly this config (no training;
    trains when there is none). resume=True: continue the newest run with this config from its
    checkpoint (e.g. after a Colab session was cut off). Otherwise a new run, in `run_dir` as in
    `setup` (None: no folder, nothing to load or resume). Callbacks are attached either way.
    """
    keys = ("profile", "data_path")
    picked = {k: setup_kwargs.pop(k) for k in keys if k in setup_kwargs}
    setup_only = ("device", "progress", "objective", "penalty", "penalty_weight")
    overrides = {k: setup_kwargs.pop(k) for k in list(setup_kwargs) if k not in setup_only}
    config = resolve_config(preset_or_config, **picked, **overrides)
    previous = None
    if (load or resume) and run_dir:  # rank 0 picks the run that every rank continues
        world = distributed.current()
        previous = distributed.on_main(lambda: find_run(config, runs, finished=not resume), world)
    trainer = setup(config, run_dir=previous or run_dir, runs=runs, **setup_kwargs)
    for event, fns in (callbacks or {}).items():
        for fn in fns:
            trainer.add_callback(event, fn)
    if previous is not None and trainer.resume():
        verb = "loaded" if load else "resumed"
        print(f"{verb} run {previous.name}: epoch {trainer.epoch}, step {trainer.step}")
        if load and not resume:
            return trainer
    trainer.fit()
    return trainer
