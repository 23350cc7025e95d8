"""GAN losses as pure functions of discriminator outputs, plus the WGAN gradient penalty and clipping.

Conventions: `d_real`, `d_fake` are raw logits (BCE losses) or critic scores (Wasserstein
losses) of shape (B,). Every loss is a scalar to be *minimised*.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GANConfig

LossFn = Callable[..., torch.Tensor]


def d_loss_bce(d_real: torch.Tensor, d_fake: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """Discriminator BCE: -log D(x) - log(1 - D(G(z))), batch means summed (Goodfellow et al. 2014, eq. 1).

    `real_label` < 1 is one-sided label smoothing (Salimans et al. 2016): only real targets move.
    At the equilibrium D = 1/2 everywhere the loss is 2 log 2 ~ 1.386.
    """
    loss_real = F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_label))
    loss_fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return loss_real + loss_fake


def g_loss_minimax(d_fake: torch.Tensor) -> torch.Tensor:
    """Saturating generator loss: minimise log(1 - D(G(z))) = -softplus(d_fake), as in the minimax game.

    Its gradient vanishes exactly when D confidently rejects the fakes, early in training.
    """
    return -F.softplus(d_fake).mean()


def g_loss_non_saturating(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: minimise -log D(G(z)) = softplus(-d_fake) (Goodfellow et al. 2014, sec. 3)."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def d_loss_wasserstein(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Critic loss E[f(G(z))] - E[f(x)]: its negative estimates the Wasserstein-1 distance (Arjovsky et al. 2017)."""
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

    x_hat = alpha x_real + (1 - alpha) x_fake with one alpha ~ U[0, 1] per *sample* (shape (B, 1, ..., 1)),
    the gradient norm taken over all non-batch dimensions, `eps` inside the square root so the
    norm's gradient stays finite at a zero gradient. Each sample is scored with its own
    condition `y`. `reduction='none'` returns the (B,) per-sample penalties.
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


def losses_for(config: GANConfig) -> tuple[LossFn, LossFn]:
    """(d_loss(d_real, d_fake), g_loss(d_fake)) for a config."""
    if config.loss == "wgan":
        return d_loss_wasserstein, g_loss_wasserstein
    real = config.real_label

    def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return d_loss_bce(d_real, d_fake, real)

    g_loss = g_loss_minimax if config.g_loss == "minimax" else g_loss_non_saturating
    return d_loss, g_loss
