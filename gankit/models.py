"""Generators and discriminators: MLP (lesson 01), DCGAN (02-04), with optional conditioning.

Networks map tensors to tensors and know nothing about losses or training. Every
generator takes (z, y=None) and returns images in [-1, 1] of shape (B, C, H, W); every
discriminator takes (x, y=None) and returns raw logits / critic scores of shape (B,).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ConfigError, GANConfig


class ConditionEmbedding(nn.Module):
    """y -> (B, dim): class ids (B,) through an embedding
    table, or a multi-hot (B, G) through a linear map."""

    def __init__(self, dim: int, *, num_classes: int = 0, cond_dim: int = 0) -> None:
        super().__init__()
        if bool(num_classes) == bool(cond_dim):
            raise ValueError("give exactly one of num_classes (class ids) or cond_dim (multi-hot)")
        self.multi_hot = bool(cond_dim)
        # A multi-hot vector times a bias-free linear map is the sum of its genres' embeddings.
        self.table = (
            nn.Linear(cond_dim, dim, bias=False) if cond_dim else nn.Embedding(num_classes, dim)
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.table(y.float()) if self.multi_hot else self.table(y.long())


def _condition(num_classes: int, cond_dim: int, dim: int) -> ConditionEmbedding | None:
    return (
        ConditionEmbedding(dim, num_classes=num_classes, cond_dim=cond_dim)
        if (num_classes or cond_dim)
        else None
    )


def _check_y(module: nn.Module, y: torch.Tensor | None) -> None:
    if (module.embed is None) != (y is None):
        want = (
            "needs labels y" if module.embed is not None else "is unconditional and takes no labels"
        )
        raise ValueError(f"{type(module).__name__} {want}")


class MLPGenerator(nn.Module):
    """z (B, latent_dim) [+ y] -> images (B, C, H, W) in [-1, 1] through two hidden layers."""

    def __init__(
        self,
        latent_dim: int = 64,
        hidden_dim: int = 256,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        *,
        num_classes: int = 0,
        cond_dim: int = 0,
        embed_dim: int = 32,
    ) -> None:
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        self.embed = _condition(num_classes, cond_dim, embed_dim)
        n_in = latent_dim + (embed_dim if self.embed is not None else 0)
        n_out = math.prod(self.image_shape)
        # Widening towards the output (h -> 2h) gives the last layer room for 784 pixels.
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden_dim),
            nn.LeakyReLU(0.2),  # (B, z) -> (B, h)
            nn.Linear(hidden_dim, 2 * hidden_dim),
            nn.LeakyReLU(0.2),  # (B, h) -> (B, 2h)
            nn.Linear(2 * hidden_dim, n_out),
            nn.Tanh(),  # (B, 2h) -> (B, C*H*W) in [-1, 1]
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        _check_y(self, y)
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.net(z).view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    """images (B, C, H, W) [+ y] -> logits (B,). Conditioning by concatenation or projection."""

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        hidden_dim: int = 256,
        *,
        num_classes: int = 0,
        cond_dim: int = 0,
        cond_mode: str = "projection",
        embed_dim: int = 32,
    ) -> None:
        super().__init__()
        self.cond_mode = cond_mode
        n_in = math.prod(image_shape)
        if (num_classes or cond_dim) and cond_mode == "concat":
            self.embed = _condition(num_classes, cond_dim, embed_dim)
            n_in += embed_dim
        else:  # projection: the embedding lives in feature space (dimension h)
            self.embed = _condition(num_classes, cond_dim, hidden_dim)
        self.features = nn.Sequential(
            nn.Linear(n_in, 2 * hidden_dim),
            nn.LeakyReLU(0.2),  # (B, C*H*W) -> (B, 2h)
            nn.Linear(2 * hidden_dim, hidden_dim),
            nn.LeakyReLU(0.2),  # (B, 2h) -> (B, h)
        )
        self.head = nn.Linear(hidden_dim, 1)  # logits: the loss applies the sigmoid

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        _check_y(self, y)
        h = x.flatten(1)
        if self.embed is not None and self.cond_mode == "concat":
            h = torch.cat([h, self.embed(y)], dim=1)
        h = self.features(h)
        out = self.head(h).squeeze(1)
        if self.embed is not None and self.cond_mode == "projection":
            out = out + (self.embed(y) * h).sum(
                1
            )  # <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3)
        return out


def _dcgan_stages(image_size: int) -> int:
    """Number of stride-2 stages between 4x4 and the (working) image size."""
    work = 32 if image_size == 28 else image_size
    if work < 32 or work & (work - 1):
        raise ConfigError(f"DCGAN image_size must be 28 or a power of two >= 32, got {image_size}")
    return int(math.log2(work)) - 2


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2016): z -> 4x4 -> ... -> image_size, BN + ReLU, Tanh output.

    At 28x28 it works at 32x32 and resizes the output, so MNIST needs no padding.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        image_size: int = 64,
        channels: int = 3,
        width: int = 64,
        *,
        num_classes: int = 0,
        cond_dim: int = 0,
        embed_dim: int = 32,
    ) -> None:
        super().__init__()
        self.latent_dim, self.image_size = latent_dim, image_size
        stages = _dcgan_stages(image_size)
        self.embed = _condition(num_classes, cond_dim, embed_dim)
        n_in = latent_dim + (embed_dim if self.embed is not None else 0)
        ch = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [  # (B, z, 1, 1) -> (B, width*2^(s-1), 4, 4)
            nn.ConvTranspose2d(n_in, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):  # (B, ch, s, s) -> (B, ch/2, 2s, 2s)
            layers += up_block(ch, ch // 2)
            ch //= 2
        layers += [
            nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False),
            nn.Tanh(),
        ]  # -> (B, C, S, S)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        _check_y(self, y)
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        x = self.net(z[:, :, None, None])
        if self.image_size == 28:  # (B, C, 32, 32) -> (B, C, 28, 28)
            x = F.interpolate(x, size=28, mode="bilinear", antialias=True, align_corners=False)
            # The resize's weights sum to 1 only up to rounding: saturated pixels came out at
            # -1.0000002. Clamped, the output stays in Tanh's [-1, 1] exactly.
            x = x.clamp(-1.0, 1.0)
        return x


def up_block(in_ch: int, out_ch: int) -> list[nn.Module]:
    """One DCGAN generator stage, (B, in_ch, s, s) -> (B, out_ch, 2s, 2s): a stride-2 transposed
    convolution (kernel 4, padding 1; no bias, batch norm's shift replaces it), batch norm, ReLU."""
    return [
        nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(True),
    ]


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "layer":  # GroupNorm with one group = layer norm over (C, H, W), per sample
        return nn.GroupNorm(1, ch)
    return nn.Identity()


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator / WGAN critic: strided convs, LeakyReLU(0.2), no norm on the first layer.

    `norm`: 'batch' (DCGAN), 'layer' or 'none' (a WGAN-GP critic: batch norm mixes the samples
    whose gradients the penalty constrains one by one). Returns (B,) logits / scores.
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        width: int = 64,
        *,
        norm: str = "batch",
        num_classes: int = 0,
        cond_dim: int = 0,
        cond_mode: str = "projection",
    ) -> None:
        super().__init__()
        self.image_size, self.cond_mode = image_size, cond_mode
        stages = _dcgan_stages(image_size)
        concat = bool(num_classes or cond_dim) and cond_mode == "concat"
        cond_ch = 8 if concat else 0  # concat: the label embedding enters as 8 constant planes
        ch = width
        layers: list[nn.Module] = [  # (B, C, S, S) -> (B, width, S/2, S/2)
            nn.Conv2d(channels + cond_ch, ch, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
        ]
        for _ in range(stages - 1):  # (B, ch, s, s) -> (B, 2ch, s/2, s/2)
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                _norm(norm, ch * 2),
                nn.LeakyReLU(0.2, True),
            ]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch, 1, 4, 1, 0, bias=False)  # (B, ch, 4, 4) -> (B, 1, 1, 1)
        if concat:
            self.embed = _condition(num_classes, cond_dim, cond_ch)
        else:
            self.embed = _condition(num_classes, cond_dim, ch)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        _check_y(self, y)
        if self.image_size == 28:  # (B, C, 28, 28) -> (B, C, 32, 32)
            x = F.interpolate(x, size=32, mode="bilinear", align_corners=False)
        if self.embed is not None and self.cond_mode == "concat":
            e = self.embed(y)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, e], dim=1)
        h = self.features(x)
        out = self.head(h).flatten()
        if self.embed is not None and self.cond_mode == "projection":
            out = out + (self.embed(y) * h.sum((2, 3))).sum(1)  # projection on sum-pooled features
        return out


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(config: GANConfig) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a config, on the CPU; the Trainer moves them to the device."""
    cond = dict(num_classes=config.num_classes, cond_dim=config.cond_dim)
    shape = (config.channels, config.image_size, config.image_size)
    if config.model == "mlp":
        G = MLPGenerator(config.latent_dim, config.hidden_dim, shape, **cond)
        D = MLPDiscriminator(shape, config.hidden_dim, cond_mode=config.cond_mode, **cond)
    elif config.model == "dcgan":
        G = DCGANGenerator(
            config.latent_dim, config.image_size, config.channels, config.g_width, **cond
        )
        D = DCGANDiscriminator(
            config.image_size,
            config.channels,
            config.d_width,
            norm=config.d_norm,
            cond_mode=config.cond_mode,
            **cond,
        )
        G.apply(dcgan_init)
        D.apply(dcgan_init)
    else:  # GANConfig validates the name; this guards a model added to the list without a builder
        raise ConfigError(f"no builder for model {config.model!r}")
    if (
        config.loss == "wgan"
        and config.gp_weight > 0
        and config.d_norm == "batch"
        and config.model == "dcgan"
    ):
        raise ConfigError(
            "a gradient-penalty critic must not use batch norm: set d_norm='layer' or 'none'"
        )
    if config.minibatch_disc:  # Salimans et al. 2016; see gankit/tricks.py
        if config.gp_weight > 0:
            raise ConfigError(
                "minibatch discrimination makes each score depend on the whole batch, which breaks "
                "the per-sample gradient penalty: set minibatch_disc=False or gp_weight=0"
            )
        from .tricks import add_minibatch_discrimination

        add_minibatch_discrimination(D)
    return G, D


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
