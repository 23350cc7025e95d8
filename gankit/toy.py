"""A GAN you can watch: a ring of 8 Gaussians in the plane, trained by the same Trainer in seconds.

The data are 2-D points, so D's whole decision surface and every sample of G fit in one picture
(lesson 01), and a critic's level sets show what weight clipping and the gradient penalty do to
it (lesson 03). The Trainer is the course's own: only the data source (`PointSource`, the
interface of BatchSource) and the two small MLPs are specific to points.

Measures follow Srivastava et al. (2017, VEEGAN) on this data set: a mode is *covered* when at
least `min_share` of the samples lie within 3 standard deviations of its centre, and a sample is
*high quality* when it lies within 3 standard deviations of some centre.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from .config import GANConfig
from .losses import Objective

MODES, RADIUS, STD = 8, 2.0, 0.05  # the ring: 8 centres on a circle of radius 2, std 0.05 each


def ring_centres(modes: int = MODES, radius: float = RADIUS) -> torch.Tensor:
    """(modes, 2): the centres, evenly spaced on the circle, the first at (radius, 0)."""
    angle = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return (radius * torch.stack([angle.cos(), angle.sin()], 1)).float()


def ring(n: int, *, modes: int = MODES, std: float = STD, seed: int = 0) -> torch.Tensor:
    """(n, 2) points: a centre chosen uniformly at random, plus N(0, std^2 I) noise."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.randint(0, modes, (n,), generator=g)
    return ring_centres(modes)[centre] + std * torch.randn(n, 2, generator=g)


class PointSource:
    """Shuffled batches of 2-D points (float (B, 2), no labels), with BatchSource's interface:
    epoch `e` is a permutation seeded by (seed, e), so a run is repeatable."""

    labels = None

    def __init__(self, points: torch.Tensor, batch_size: int, *, seed: int = 0) -> None:
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"points must be (N, 2), got {tuple(points.shape)}")
        if batch_size > len(points):
            raise ValueError(f"batch_size={batch_size} > {len(points)} points")
        self.points, self.batch_size, self.seed = points.float(), batch_size, seed
        self.device = points.device

    def __len__(self) -> int:
        return len(self.points) // self.batch_size

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, None]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.points), generator=g)
        for i in range(start, len(self)):
            yield self.points[perm[i * self.batch_size : (i + 1) * self.batch_size]], None


def mlp(n_in: int, n_out: int, width: int = 128, depth: int = 3) -> nn.Sequential:
    """`depth` hidden layers of `width` ReLU units (the toy networks of Metz et al. 2017)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, n_out))


class PointCritic(nn.Module):
    """points (B, 2) -> scores (B,): logits for BCE, critic values for WGAN."""

    def __init__(self, width: int = 128, depth: int = 3) -> None:
        super().__init__()
        self.net = mlp(2, 1, width, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def toy_config(**overrides: Any) -> GANConfig:
    """The toy's config: latent 2, batches of 256, Adam 1e-3 (betas 0.5, 0.999), 1 epoch =
    `steps_per_epoch` steps over 25,600 ring points; any GANConfig field can be overridden."""
    base = dict(
        preset="toy-ring", model="mlp", latent_dim=2, batch_size=256, lr_g=1e-3, lr_d=1e-3,
        epochs=1, steps_per_epoch=100, log_every=20, n_fixed=1024, profile="cpu",
    )  # fmt: skip
    return GANConfig(**{**base, **overrides})


def toy_trainer(config: GANConfig | None = None, *, objective: Objective | None = None, **kw: Any):
    """A Trainer for the ring: G an MLP from `latent_dim` to the plane, D a PointCritic, on CPU."""
    from .train import Trainer

    config = config or toy_config(**kw)
    torch.manual_seed(config.seed)
    points = ring(config.batch_size * (config.steps_per_epoch or 100), seed=config.seed)
    data = PointSource(points, config.batch_size, seed=config.seed)
    G, D = mlp(config.latent_dim, 2), PointCritic()
    return Trainer(config, G, D, data, objective=objective, device="cpu", progress=False)


def ring_quality(points: torch.Tensor, *, min_share: float = 0.01) -> dict[str, float]:
    """modes covered (of 8) and the share of high-quality samples (within 3 std of a centre)."""
    d = torch.cdist(points.float().cpu(), ring_centres())  # (n, modes)
    nearest, which = d.min(1)
    good = nearest <= 3 * STD
    counts = torch.bincount(which[good], minlength=MODES).float()
    return {
        "modes_covered": int((counts >= min_share * len(points)).sum()),
        "high_quality": float(good.float().mean()),
    }


@torch.no_grad()
def surface(trainer: Any, lim: float = 3.0, n: int = 101) -> tuple[torch.Tensor, ...]:
    """(xs, ys, values (n, n)) of D over the square [-lim, lim]^2: D(x) as a probability for a
    BCE GAN, the raw critic for a WGAN."""
    xs = torch.linspace(-lim, lim, n)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    scores = trainer.D(grid.to(trainer.device)).cpu()
    values = trainer.objective.as_probability(scores) if trainer.config.loss == "bce" else scores
    return xs, xs, values.reshape(n, n)


def g_loss_gradient(trainer: Any, x_fake: torch.Tensor, g_loss: Any = None) -> torch.Tensor:
    """-d L_G / d x for each fake point (B, 2): the direction G's loss pushes each sample (the
    arrows of lesson 01's toy), through D, with `g_loss` (default: the Objective's)."""
    g_loss = g_loss or trainer.objective.g_loss
    x = x_fake.detach().clone().requires_grad_(True)
    loss = g_loss(trainer.D(x)) * len(x)  # per sample: the batch mean's 1/B undone
    (grad,) = torch.autograd.grad(loss, x)
    return -grad


class Snapshots:
    """Trainer callback: every `every` steps (and at the start) keep G's samples from the fixed
    noise, D's surface and the ring quality, for plotting and animating."""

    def __init__(self, every: int = 50, lim: float = 3.0) -> None:
        self.every, self.lim, self.frames = every, lim, []

    def take(self, trainer: Any) -> None:
        with torch.no_grad():
            fake = trainer.sample(len(trainer.fixed_noise), noise=trainer.fixed_noise).cpu()
        self.frames.append(
            {"step": trainer.step, "fake": fake, "surface": surface(trainer, self.lim),
             **ring_quality(fake)}
        )  # fmt: skip

    def on_fit_start(self, trainer: Any) -> None:
        if not self.frames:
            self.take(trainer)

    def on_batch_end(self, trainer: Any) -> None:
        if trainer.step % self.every == 0:
            self.take(trainer)


def draw(ax: Any, frame: dict[str, Any], *, real: torch.Tensor | None = None, levels: int = 12):
    """One frame: D's surface as filled contours, real points (grey) and G's samples (red)."""
    xs, ys, values = frame["surface"]
    filled = ax.contourf(xs, ys, values, levels=levels, cmap="viridis", alpha=0.85)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.85", alpha=0.5, linewidths=0)
    fake = frame["fake"]
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="red", alpha=0.6, linewidths=0)
    lim = float(xs.max())
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    ax.set_title(f"step {frame['step']}: {frame['modes_covered']}/8 modes", fontsize=9)
    return filled


def animate(frames: list[dict[str, Any]], real: torch.Tensor, duration_ms: int = 250) -> bytes:
    """An animated GIF (bytes) of the frames, drawn with matplotlib and assembled with Pillow."""
    import matplotlib.pyplot as plt
    from PIL import Image

    images = []
    for frame in frames:
        fig, ax = plt.subplots(figsize=(3.2, 3.2), dpi=80)
        draw(ax, frame, real=real)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        images.append(Image.open(buf).convert("P", palette=Image.Palette.ADAPTIVE))
    out = io.BytesIO()
    durations = [duration_ms] * (len(images) - 1) + [duration_ms * 6]
    images[0].save(out, format="gif", save_all=True, append_images=images[1:],
                   duration=durations, loop=0)  # fmt: skip
    return out.getvalue()
