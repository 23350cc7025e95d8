"""GAN training tricks of Salimans et al. 2016 ("Improved techniques for training GANs") as options.

Kept apart from models.py because these are not networks of their own: they wrap an existing
discriminator, reaching into its `features` (the last hidden activations) and replacing its
`head`, so any MLP or DCGAN discriminator gets them without a second copy of its code. Each
trick is a switch in GANConfig, measured on and off in lesson 04:
  - one-sided label smoothing: `real_label=0.9` (a loss option, see losses.d_loss_bce)
  - feature matching: `feature_matching=w` adds w * ||mean f(x_real) - mean f(G(z))||^2 to the
    G loss
  - minibatch discrimination: `minibatch_disc=True` lets D compare each sample with the rest of
    its batch
"""

from __future__ import annotations

import torch
import torch.nn as nn


class MinibatchDiscrimination(nn.Module):
    """Batch-similarity features (Salimans et al. 2016, sec. 3.2): f (N, A) -> [f, o(f)] (N, A + B).

    M_i = f_i T reshaped to (B, C); c_b(i, j) = exp(-||M_{i,b} - M_{j,b}||_1);
    o(f_i)_b = sum_{j != i} c_b(i, j).
    A generator that collapses makes its samples close to each other, so o grows and D can see the
    collapse, which one sample at a time it cannot. Fully vectorised: all N x N pairs at once
    (torch.cdist per kernel, (B, N, N) distances). The sum skips j = i (as the authors' code
    does), so a sample alone in its batch gets o = 0. Depends on the whole batch: never use it
    in a critic with a gradient penalty, whose per-sample gradients assume independence.
    """

    def __init__(
        self, in_features: int, kernels: int = 100, kernel_dim: int = 4, *, init_std: float = 0.05
    ) -> None:
        super().__init__()
        self.in_features, self.kernels, self.kernel_dim = in_features, kernels, kernel_dim
        # N(0, 0.05^2) as in the authors' improved-gan code
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * init_std)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        n = f.shape[0]
        m = (
            (f @ self.T).view(n, self.kernels, self.kernel_dim).transpose(0, 1)
        )  # (N, A) -> (B, N, C)
        l1 = torch.cdist(
            m, m, p=1.0
        )  # (B, N, N): ||M_i,b - M_j,b||_1, about 2x faster than broadcasting
        o = torch.exp(-l1).sum(2).t() - 1.0  # (N, B); exp(0) = 1 is the j = i term
        return torch.cat([f, o], dim=1)  # (N, A + B)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, kernels={self.kernels}, kernel_dim={self.kernel_dim}"
        )


def add_minibatch_discrimination(
    D: nn.Module, kernels: int = 100, kernel_dim: int = 4
) -> nn.Module:
    """Insert MinibatchDiscrimination before D's head, widening its input by `kernels`; returns D.

    D must have a `head`: nn.Linear(A, 1) on (N, A) features (MLPDiscriminator) or
    nn.Conv2d(ch, 1, k) on (N, ch, k, k) features (DCGANDiscriminator). The projection term of a
    conditional D still uses the unchanged features, so conditioning is untouched.
    """
    head = getattr(D, "head", None)
    if isinstance(head, nn.Linear) and head.out_features == 1:
        a = head.in_features
        D.head = nn.Sequential(
            MinibatchDiscrimination(a, kernels, kernel_dim), nn.Linear(a + kernels, 1)
        )
    elif isinstance(head, nn.Conv2d) and head.out_channels == 1 and head.padding == (0, 0):
        a = (
            head.in_channels * head.kernel_size[0] * head.kernel_size[1]
        )  # the head sees one k x k map
        D.head = nn.Sequential(
            nn.Flatten(), MinibatchDiscrimination(a, kernels, kernel_dim), nn.Linear(a + kernels, 1)
        )  # (N, ch, k, k) -> (N, A) -> (N, A + B) -> (N, 1)
    else:
        raise TypeError(
            f"{type(D).__name__} has no single-output Linear/Conv2d `head` to put minibatch "
            "discrimination in front of; it works with gankit's MLP and DCGAN discriminators"
        )
    return D


def discriminator_features(
    D: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """D's intermediate features f(x), flattened to (N, F): `D.features`'s output on D's own path.

    Captured with a forward hook, so whatever D does before its features (resizing, concatenating a
    label embedding) happens exactly as in training.
    """
    captured: list[torch.Tensor] = []
    handle = D.features.register_forward_hook(
        lambda module, inputs, output: captured.append(output)
    )
    try:
        D(x) if y is None else D(x, y)
    finally:
        handle.remove()
    return captured[0].flatten(1)


def feature_matching_loss(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """||mean_i f(x_real_i) - mean_i f(G(z)_i)||_2^2 (Salimans et al. 2016, sec. 3.1).

    f_real and f_fake are (N, F).
    """
    return (f_real.mean(0) - f_fake.mean(0)).pow(2).sum()


class FeatureMatching:
    """An `Objective.g_extra` term: weight * feature_matching_loss on the discriminator's features.

    Added to the usual generator loss rather than replacing it (the paper replaces it; the sum keeps
    the adversarial signal and lets `weight` dial the trick in). Real features carry no gradient.
    """

    def __init__(self, weight: float = 1.0) -> None:
        if weight <= 0:
            raise ValueError(f"feature matching weight must be > 0, got {weight}")
        self.weight = weight

    def __call__(
        self, D: nn.Module, x_real: torch.Tensor, x_fake: torch.Tensor, y: torch.Tensor | None
    ) -> torch.Tensor:
        with torch.no_grad():
            f_real = discriminator_features(D, x_real, y)
        f_fake = discriminator_features(D, x_fake, y)
        return self.weight * feature_matching_loss(f_real, f_fake)

    def __repr__(self) -> str:
        return f"FeatureMatching(weight={self.weight})"
