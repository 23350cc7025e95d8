"""Plots: the loss panels take the run's loss kind from its config, never from the scores' range."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from gankit.config import GANConfig
from gankit.viz import plot_losses


def history(d_real: list[float], d_fake: list[float]) -> pd.DataFrame:
    n = len(d_real)
    return pd.DataFrame(
        {
            "step": [10 * (i + 1) for i in range(n)],
            "epoch": [(i + 1) / n for i in range(n)],
            "loss_d": [1.3, 1.2, 1.1][:n],
            "loss_g": [0.8, 0.7, 0.9][:n],
            "d_real": d_real,
            "d_fake": d_fake,
            "seconds": [1.0, 2.0, 3.0][:n],
        }
    )


def reference_levels(ax: plt.Axes) -> list[float]:
    """The y of every horizontal reference line (constant y, no label) drawn on an axis."""
    levels = []
    for line in ax.get_lines():
        y = list(line.get_ydata())
        if line.get_label().startswith("_") and len(set(y)) == 1:
            levels.append(float(y[0]))
    return levels


# A critic's scores can happen to lie in [0, 1]: they are still not probabilities.
CRITIC_IN_UNIT_RANGE = history([0.9, 0.6, 0.4], [0.1, 0.3, 0.2])


@pytest.mark.parametrize(
    "kwargs", [{"config": GANConfig(loss="wgan")}, {"loss": "wgan"}], ids=["config", "loss"]
)
def test_wgan_history_in_unit_range_is_not_labelled_bce(kwargs):
    fig = plot_losses(CRITIC_IN_UNIT_RANGE, **kwargs)
    try:
        loss_ax, score_ax = fig.axes
        assert reference_levels(loss_ax) == [] and reference_levels(score_ax) == []
        assert "probability" not in score_ax.get_ylabel()
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "kwargs", [{"config": GANConfig(loss="bce")}, {"loss": "bce"}], ids=["config", "loss"]
)
def test_bce_history_gets_the_equilibrium_lines(kwargs):
    fig = plot_losses(history([0.7, 0.6, 0.55], [0.3, 0.4, 0.45]), **kwargs)
    try:
        loss_ax, score_ax = fig.axes
        assert reference_levels(loss_ax) == pytest.approx([2 * math.log(2)])
        assert reference_levels(score_ax) == pytest.approx([0.5])
    finally:
        plt.close(fig)


def test_loss_kind_is_required_and_checked():
    with pytest.raises(TypeError, match=r"config=trainer\.config"):
        plot_losses(CRITIC_IN_UNIT_RANGE)
    with pytest.raises(ValueError, match="'hinge'"):
        plot_losses(CRITIC_IN_UNIT_RANGE, loss="hinge")
    with pytest.raises(ValueError, match="disagree"):
        plot_losses(CRITIC_IN_UNIT_RANGE, config=GANConfig(loss="bce"), loss="wgan")
