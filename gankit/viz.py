"""Plots: sample grids (torchvision make_grid), loss curves, progress GIFs, run comparisons."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if (
    not os.environ.get("DISPLAY")
    and "ipykernel" not in os.environ.get("MPLBACKEND", "")
    and os.name != "nt"
):
    # Headless scripts and the CLI get a file backend; notebooks keep their inline backend.
    import sys

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch
from torchvision.utils import make_grid, save_image

from .config import GANConfig
from .data import to_display


def grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] -> one (C, H', W')
    grid in [0, 1]; nrow defaults to a square."""
    nrow = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    return make_grid(to_display(images.float().cpu()), nrow=nrow, padding=padding, pad_value=1.0)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Save images in [-1, 1] as one PNG grid (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid(images, nrow), path)
    return path


def png_grid(images: torch.Tensor, nrow: int | None = None, width: int = 420) -> bytes:
    """Images in [-1, 1] as PNG bytes of one grid, enlarged
    by a whole factor (nearest) to about `width` px."""
    import io

    from PIL import Image

    g = (grid(images, nrow) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    picture = Image.fromarray(g.squeeze(2) if g.shape[2] == 1 else g)
    factor = max(1, width // picture.width)
    picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()


def show_grid(
    images: torch.Tensor,
    title: str = "",
    nrow: int | None = None,
    ax: plt.Axes | None = None,
    size: float = 5.0,
) -> plt.Axes:
    """Draw a grid of images in [-1, 1] on a matplotlib axis."""
    g = grid(images, nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(g.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
    return ax


def show_grids(
    grids: dict[str, torch.Tensor], nrow: int | None = None, size: float = 4.0
) -> plt.Figure:
    """Several labelled grids side by side (e.g. epochs 1, middle, last, or two runs)."""
    fig, axes = plt.subplots(1, len(grids), figsize=(size * len(grids), size + 0.4), squeeze=False)
    for ax, (title, images) in zip(axes[0], grids.items()):
        show_grid(images, title, nrow, ax)
    fig.tight_layout()
    return fig


LOSS_KINDS = ("bce", "wgan")


def loss_kind(config: GANConfig | None = None, loss: str | None = None) -> str:
    """The run's objective, "bce" or "wgan", from its config or an explicit `loss=`."""
    from_config = getattr(config, "loss", None) if config is not None else None
    if from_config is not None and loss is not None and from_config != loss:
        raise ValueError(f"config.loss={from_config!r} and loss={loss!r} disagree")
    kind = loss if loss is not None else from_config
    if kind is None:
        raise TypeError(
            "plot_losses needs the run's loss kind: pass config=trainer.config "
            "or loss='bce' | 'wgan'"
        )
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss={kind!r} is not one of {', '.join(LOSS_KINDS)}")
    return kind


def plot_losses(
    history: pd.DataFrame,
    config: GANConfig | None = None,
    *,
    loss: str | None = None,
    title: str = "",
    smooth: int = 1,
    axes: Sequence[plt.Axes] | None = None,
    label: str = "",
) -> plt.Figure:
    """Two panels against training step: loss_d and loss_g; D(x) and D(G(z)).

    The objective comes from the run's `config.loss` (or `loss="bce" | "wgan"`), never from
    the scores: a critic's scores can lie in [0, 1] too. For BCE GANs (D's outputs are
    probabilities) dotted lines mark the equilibrium values (loss_d = 2 log 2, D = 0.5); a
    WGAN critic's scores are unbounded and have no such reference.
    `smooth` is a rolling-mean window in logging intervals.
    """
    kind = loss_kind(config, loss)
    h = history.set_index("step")
    if smooth > 1:
        h = h.rolling(smooth, min_periods=1).mean()
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    else:
        fig = axes[0].figure
    prefix = f"{label} " if label else ""
    axes[0].plot(h.index, h["loss_d"], label=f"{prefix}loss_d")
    axes[0].plot(h.index, h["loss_g"], label=f"{prefix}loss_g")
    axes[0].set(xlabel="step", ylabel="loss", title=title or "losses")
    axes[1].plot(h.index, h["d_real"], label=f"{prefix}D(x)")
    axes[1].plot(h.index, h["d_fake"], label=f"{prefix}D(G(z))")
    if kind == "bce":
        axes[1].set(
            xlabel="step",
            ylabel="discriminator output (probability)",
            title="discriminator on real and fake",
        )
        axes[0].axhline(2 * math.log(2), ls=":", c="gray", lw=1)
        axes[1].axhline(0.5, ls=":", c="gray", lw=1)
    else:
        axes[1].set(xlabel="step", ylabel="critic score", title="critic on real and fake")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def compare_runs(
    histories: dict[str, pd.DataFrame],
    column: str = "loss_g",
    x: str = "step",
    smooth: int = 5,
    ax: plt.Axes | None = None,
    ylabel: str | None = None,
) -> plt.Axes:
    """One column of several runs' histories on one
    axis (e.g. loss_g of minimax vs non-saturating)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    for name, h in histories.items():
        ax.plot(h[x], h[column].rolling(smooth, min_periods=1).mean(), label=name)
    ax.set(xlabel=x, ylabel=ylabel or column)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def make_gif(
    frames: Sequence[str | os.PathLike], out: str | os.PathLike, duration_ms: int = 400
) -> Path:
    """An animated GIF from per-epoch grid PNGs (Pillow); the last frame is held longer."""
    from PIL import Image

    if not frames:
        raise ValueError("no frames: the run has no samples/epoch_*.png yet")
    images = [Image.open(f).convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    durations = [duration_ms] * (len(images) - 1) + [duration_ms * 4]
    out = Path(out)
    images[0].save(out, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return out


def progress_gif(run_dir: str | os.PathLike, duration_ms: int = 400) -> Path:
    """run_dir/progress.gif from run_dir/samples/epoch_*.png."""
    run_dir = Path(run_dir)
    return make_gif(
        sorted((run_dir / "samples").glob("epoch_*.png")), run_dir / "progress.gif", duration_ms
    )


def show_gif(path: str | os.PathLike):
    """Display a GIF in a notebook (an <img> with the bytes embedded, so exported HTML keeps it)."""
    from IPython.display import Image as IPImage

    return IPImage(data=Path(path).read_bytes(), format="gif")
