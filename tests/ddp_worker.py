"""Run under `torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT` by test_distributed.

Each rank builds the Trainer the way gankit.lesson.setup does under torchrun (its share of every
batch, its own noise stream, G and D wrapped in DDP) on small synthetic data; rank 0 saves to OUT
what the single-process references in test_distributed.py are compared with.
"""

import dataclasses
import functools
import sys

import torch
from helpers import synthetic, tiny_config

from gankit import distributed
from gankit.checkpoints import state_checksum
from gankit.data import BatchSource
from gankit.losses import gradient_penalty
from gankit.models import build_models
from gankit.train import Trainer

# Every objective and trick that must work under DDP (tiny networks, 2 epochs of 4 steps).
VARIANTS = {
    "bce": {},
    "wgan-gp": dict(loss="wgan", gp_weight=10.0, n_critic=2, d_norm="none"),
    "wgan-clip": dict(loss="wgan", clip_value=0.01, n_critic=2, optimizer="rmsprop"),
    "feature-matching": dict(feature_matching=1.0),
    "minibatch-disc": dict(minibatch_disc=True),
    "dcgan-batchnorm": dict(
        preset="dcgan-mnist", model="dcgan", image_size=32, g_width=4, d_width=4, d_norm="batch"
    ),
    "conditional": dict(preset="cgan-mnist", num_classes=10),
    "ema": dict(ema_decay=0.9),
}


def make_trainer(world: distributed.World, **kw) -> Trainer:
    config = tiny_config(world_size=world.size, **kw)
    images, labels = synthetic(64, config.channels, config.image_size, config.num_classes, seed=1)
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    G, D = build_models(config)
    source = BatchSource(
        images,
        labels,
        config.batch_size,
        seed=config.seed,
        steps_per_epoch=config.steps_per_epoch,
        rank=world.rank,
        world_size=world.size,
    )
    torch.manual_seed(distributed.noise_seed(config.seed, world.rank))  # as setup() does
    return Trainer(config, G, D, source, device="cpu", progress=False)


def penalty_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_real, x_fake, alpha) for a batch of 8: what the WGAN-GP D step is tested on."""
    g = torch.Generator().manual_seed(5)
    x_real, x_fake = torch.randn(8, 1, 28, 28, generator=g), torch.randn(8, 1, 28, 28, generator=g)
    return x_real, x_fake, torch.rand(8, 1, 1, 1, generator=g)


def with_fixed_inputs(trainer: Trainer, x_fake: torch.Tensor, alpha: torch.Tensor) -> None:
    """Make trainer.d_step use these fakes and these interpolation weights (no random draws)."""
    trainer.generate = lambda n, y=None: x_fake
    penalty = functools.partial(gradient_penalty, alpha=alpha)
    trainer.objective = dataclasses.replace(trainer.objective, penalty=penalty)


def main(out: str) -> None:
    torch.set_num_threads(1)  # as the single-process reference: float sums must agree
    world, _ = distributed.init(torch.device("cpu"), "gloo")
    results: dict = {"world": world.size}

    # 1. BCE parity: weights after 2 epochs, compared with one process on the whole batches.
    trainer = make_trainer(world)
    trainer.fit()
    results["parity"] = {k: getattr(trainer, k).state_dict() for k in ("G", "D")}
    results["history"] = trainer.history

    # 2. The D step of WGAN-GP on fixed inputs (the fakes and the penalty's alphas given): the
    # per-sample penalties, and D's gradients in the step.
    trainer = make_trainer(world, loss="wgan", gp_weight=10.0, d_norm="none")
    x_real, x_fake, alpha = penalty_inputs()
    share = slice(world.rank * 4, (world.rank + 1) * 4)
    results["penalty_D0"] = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    penalty = gradient_penalty(
        trainer.D, x_real[share], x_fake[share], alpha=alpha[share], reduction="none"
    )
    results["penalty"] = distributed.gather(penalty.detach(), world)
    with_fixed_inputs(trainer, x_fake[share], alpha[share])
    trainer.d_step(x_real[share])
    results["penalty_grads"] = [p.grad for p in trainer.D.parameters()]  # None: no effect

    # 3. Every variant trains, and the ranks hold the same weights and optimizer states
    # afterwards (the whole state's checksum). Batch-norm running statistics are the exception:
    # each rank updates its own in its last forward (DDP broadcasts rank 0's at the start of each
    # forward, so training only ever uses rank 0's, and checkpoints hold those).
    results["variants"] = {}
    for name, kw in VARIANTS.items():
        trainer = make_trainer(world, **kw)
        trainer.fit()
        state = trainer.state_dict()
        for net in ("G", "D"):
            state[net] = {k: v for k, v in state[net].items() if "running_" not in k}
        results["variants"][name] = distributed.gather(state_checksum(state), world)
    if world.is_main:
        torch.save(results, out)
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
