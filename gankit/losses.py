"""GAN losses as pure functions of discriminator outputs, the WGAN penalty and clipping, and the
`Objective` that bundles what one run minimises.

Conventions: `d_real`, `d_fake` are raw logits (BCE losses) or critic scores (Wasserstein
losses) of shape (B,). Every loss is a scalar to be *minimised*.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ConfigError, GANConfig
from .tricks import FeatureMatching

LossFn = Callable[..., torch.Tensor]
# penalty(D, x_real, x_fake, y) and g_extra(D, x_real, x_fake, y): scalars added to loss_d / loss_g
PenaltyFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def d_loss_bce(d_real: torch.Tensor, d_fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """BCE for D: -log D(x) - log(1 - D(G(z))), batch means summed (Goodfellow et al. 2014, eq. 1).

    `real_label` < 1 is one-sided label smoothing (Salimans et al. 2016): only real targets move.
    At the equilibrium D = 1/2 everywhere the loss is 2 log 2 ~ 1.386.
    """
    loss_real = F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_label))
    loss_fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return loss_real + loss_fake


def g_loss_minimax(d_fake: torch.Tensor) -> torch.Tensor:
    """Saturating G loss: minimise log(1 - D(G(z))) = -softplus(d_fake), as in the minimax game.

    Its gradient vanishes exactly when D confidently rejects the fakes, early in training.
    """
    return -F.softplus(d_fake).mean()


def g_loss_non_saturating(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: minimise -log D(G(z)) = softplus(-d_fake).

    Goodfellow et al. 2014, sec. 3.
    """
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def d_loss_wasserstein(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Critic loss E[f(G(z))] - E[f(x)]: its negative estimates the Wasserstein-1 distance.

    Arjovsky et al. 2017.
    """
    return d_fake.mean() - d_real.mean()


def g_loss_wasserstein(d_fake: torch.Tensor) -> torch.Tensor:
    """Generator loss -E[f(G(z))]."""
    return -d_fake.mean()


def gradient_penalty(
    critic: nn.Module,
    x_real: torch.Tensor,
    x_fake: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    alpha: torch.Tensor | None = None,
    reduction: str = "mean",
    eps: float = 1e-12,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3), unweighted: E[(||grad f(x_hat)||_2 - 1)^2].

    x_hat = alpha x_real + (1 - alpha) x_fake with one alpha ~ U[0, 1] per *sample* (shape
    (B, 1, ..., 1)), the gradient norm taken over all non-batch dimensions, `eps` inside the
    square root so the norm's gradient stays finite at a zero gradient. Each sample is scored
    with its own condition `y`. `reduction='none'` returns the (B,) per-sample penalties.
    """
    b = x_real.shape[0]
    if alpha is None:
        alpha = torch.rand(b, *([1] * (x_real.dim() - 1)), device=x_real.device, dtype=x_real.dtype)
    x_hat = (alpha * x_real + (1 - alpha) * x_fake.detach()).requires_grad_(True)
    scores = critic(x_hat) if y is None else critic(x_hat, y)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + eps)
    penalty = (norm - 1.0) ** 2
    return penalty if reduction == "none" else penalty.mean()


@torch.no_grad()
def clip_weights(module: nn.Module, bound: float) -> None:
    """WGAN weight clipping: every parameter into [-bound, bound] (Arjovsky et al. 2017, alg. 1)."""
    for p in module.parameters():
        p.clamp_(-bound, bound)


def _identity(scores: torch.Tensor) -> torch.Tensor:
    return scores


@dataclass(frozen=True)
class Objective:
    """What D and G minimise in a run, built once (`objective_for(config)`), given to the Trainer.

    loss_d = d_loss(d_real, d_fake) + penalty_weight * penalty(D, x_real, x_fake, y)
    loss_g = g_loss(d_fake) + g_extra(D, x_real, x_fake, y)
    and after each D update every D weight is clipped into [-clip_value, clip_value] when
    clip_value > 0. `as_probability` reads a D output as "probability real" for the progress
    numbers (sigmoid of a logit for BCE; a critic's score is shown as it is). The Trainer's loop
    never changes between objectives: WGAN-GP is this object with other functions, and
    `n_critic` from the config.
    """

    d_loss: LossFn
    g_loss: LossFn
    penalty: PenaltyFn | None = None
    penalty_weight: float = 0.0
    clip_value: float = 0.0
    g_extra: PenaltyFn | None = None
    as_probability: Callable[[torch.Tensor], torch.Tensor] = _identity

    def __post_init__(self) -> None:
        if self.penalty is not None and not self.penalty_weight > 0:
            raise ConfigError(
                f"a penalty needs a weight > 0, got penalty_weight={self.penalty_weight}: pass "
                "penalty_weight= (or set gp_weight in the config; Gulrajani et al. use 10)"
            )
        if self.clip_value < 0:
            raise ConfigError(f"clip_value must be >= 0, got {self.clip_value}")

    def describe(self) -> dict[str, Any]:
        """The objective by name, saved in checkpoints and compared on resume.

        Functions are named module.qualname.
        """
        return {
            "d_loss": _name(self.d_loss),
            "g_loss": _name(self.g_loss),
            "penalty": _name(self.penalty),
            "penalty_weight": float(self.penalty_weight) if self.penalty is not None else 0.0,
            "clip_value": float(self.clip_value),
            "g_extra": _name(self.g_extra),
        }


def _name(fn: Any) -> str | None:
    """A stable loss-piece name: module.qualname, with a partial's keywords or an object's repr."""
    if fn is None:
        return None
    if isinstance(fn, functools.partial):
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(fn.keywords.items()))
        return f"{_name(fn.func)}({args})"
    if hasattr(fn, "__qualname__"):
        return f"{fn.__module__}.{fn.__qualname__}"
    return repr(fn)  # a callable object, e.g. FeatureMatching(weight=0.5)


def objective_for(
    config: GANConfig,
    *,
    d_loss: LossFn | None = None,
    g_loss: LossFn | None = None,
    penalty: PenaltyFn | None = None,
    penalty_weight: float | None = None,
) -> Objective:
    """A config's objective; a learner's own `d_loss`, `g_loss` or `penalty` replaces that piece.

    loss="bce": d_loss_bce (with config.real_label) and the minimax or non-saturating G loss, read
    as probabilities through a sigmoid. loss="wgan": the Wasserstein losses, with the gradient
    penalty when config.gp_weight > 0 and weight clipping when config.clip_value > 0. A penalty
    passed here is weighted by `penalty_weight`, else config.gp_weight. config.feature_matching > 0
    adds feature matching to the G loss (tricks.FeatureMatching).
    """
    if config.loss == "wgan":
        default_d, default_g, prob = d_loss_wasserstein, g_loss_wasserstein, _identity
    else:
        default_d = (
            functools.partial(d_loss_bce, real_label=config.real_label)
            if config.real_label != 1.0
            else d_loss_bce
        )
        default_g = g_loss_minimax if config.g_loss == "minimax" else g_loss_non_saturating
        prob = torch.sigmoid
    if penalty is None and config.gp_weight > 0:
        penalty = gradient_penalty
    weight = config.gp_weight if penalty_weight is None else penalty_weight
    return Objective(
        d_loss=d_loss or default_d,
        g_loss=g_loss or default_g,
        penalty=penalty,
        penalty_weight=weight if penalty is not None else 0.0,
        clip_value=config.clip_value,
        g_extra=FeatureMatching(config.feature_matching) if config.feature_matching > 0 else None,
        as_probability=prob,
    )
