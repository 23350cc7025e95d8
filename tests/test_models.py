"""Shapes at several sizes, output ranges, canonical DCGAN parameter counts, conditioning paths."""

import pytest
import torch
import torch.nn as nn

from gankit.config import ConfigError, make_config
from gankit.models import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    build_models,
    count_parameters,
)


def test_canonical_dcgan_parameter_counts():
    # pytorch/examples DCGAN at 64x64 RGB, nz=100,
    # ngf=ndf=64: G 3,576,704 and D 2,765,568 parameters.
    assert count_parameters(DCGANGenerator(100, 64, 3, 64)) == 3_576_704
    assert count_parameters(DCGANDiscriminator(64, 3, 64)) == 2_765_568


def saturated(G: nn.Module) -> nn.Module:
    """G with its output layer's weights x1000: the pre-activations reach far past +-1."""
    last = [m for m in G.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.weight.mul_(1e3)
    return G


def assert_spans_tanh_range(x: torch.Tensor) -> None:
    # Saturated, a Tanh output reaches both ends and never passes them; no activation passes
    # them, a sigmoid never gets below 0, an overshooting resize passes them.
    assert x.min().item() == -1.0 and x.max().item() == 1.0


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 1), (64, 3), (128, 3)])
def test_dcgan_shapes_at_sizes(size, channels):
    torch.manual_seed(0)
    G, D = DCGANGenerator(16, size, channels, 8), DCGANDiscriminator(size, channels, 8)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, channels, size, size)
    assert D(x).shape == (3,)
    assert_spans_tanh_range(saturated(G)(torch.randn(3, 16)))


@pytest.mark.parametrize("size", [16, 48, 100])
def test_dcgan_rejects_unsupported_sizes_clearly(size):
    with pytest.raises(ConfigError, match="power of two"):
        DCGANGenerator(16, size, 1, 8)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_mlp_shapes(shape):
    torch.manual_seed(0)
    G, D = MLPGenerator(8, 16, shape), MLPDiscriminator(shape, 16)
    x = G(torch.randn(5, 8))
    assert x.shape == (5, *shape)
    assert D(x).shape == (5,)
    assert_spans_tanh_range(saturated(G)(torch.randn(5, 8)))


@pytest.mark.parametrize("mode", ["concat", "projection"])
@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_conditional_models_use_labels(model, mode):
    torch.manual_seed(0)
    cfg = make_config(
        "cgan-mnist",
        "smoke",
        model=model,
        image_size=32 if model == "dcgan" else 28,
        cond_mode=mode,
        g_width=8,
        d_width=8,
        hidden_dim=16,
    )
    G, D = build_models(cfg)
    z = torch.randn(4, cfg.latent_dim)
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    G.eval()
    assert not torch.allclose(G(z, y0), G(z, y1))  # the label changes the image
    x = G(z, y0)
    assert not torch.allclose(D(x, y0), D(x, y1))  # and the score
    with pytest.raises(ValueError, match="needs labels"):
        G(z)


def test_multi_hot_condition():
    G = DCGANGenerator(16, 64, 3, 8, cond_dim=28)
    D = DCGANDiscriminator(64, 3, 8, norm="layer", cond_dim=28)
    y = torch.zeros(2, 28)
    y[0, [3, 14]] = 1
    y[1, 5] = 1
    x = G(torch.randn(2, 16), y)
    assert x.shape == (2, 3, 64, 64) and D(x, y).shape == (2,)


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    G, _ = build_models(make_config("dcgan-mnist", "full"))
    conv = G.net[3].weight
    bn = G.net[1].weight
    assert abs(conv.std().item() - 0.02) < 0.002 and abs(conv.mean().item()) < 0.002
    assert abs(bn.mean().item() - 1.0) < 0.01


def test_gradient_penalty_critic_must_not_batch_norm():
    with pytest.raises(ConfigError, match="batch norm"):
        build_models(make_config("wgan-gp-mnist", "smoke", d_norm="batch"))
