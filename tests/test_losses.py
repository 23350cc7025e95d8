"""Golden values of every loss on a hand-computed batch; closed forms of the gradient penalty."""

import math

import pytest
import torch
import torch.nn as nn

from gankit import losses
from gankit.models import DCGANDiscriminator

# Hand-computed batch: logits d_real = [2, -1], d_fake = [0, 1]. softplus(-2) = 0.126928,
# softplus(1) = 1.313262, softplus(0) = log 2 = 0.693147, softplus(-1) = 0.313262
D_REAL = torch.tensor([2.0, -1.0])
D_FAKE = torch.tensor([0.0, 1.0])


def test_d_loss_bce_golden():
    # real: (0.126928 + 1.313262) / 2 = 0.720095; fake: (0.693147 + 1.313262) / 2 = 1.003204
    assert losses.d_loss_bce(D_REAL, D_FAKE).item() == pytest.approx(1.723299, abs=1e-6)


def test_d_loss_one_sided_label_smoothing_golden():
    # BCE(x, t) = softplus(x) - t x: (2.126928 - 1.8 +
    # 0.313262 + 0.9) / 2 = 0.770095; fake part unchanged
    assert losses.d_loss_bce(D_REAL, D_FAKE, real_label=0.9).item() == pytest.approx(
        1.773299, abs=1e-6
    )


def test_d_loss_at_equilibrium_is_2_log_2():
    zeros = torch.zeros(5)
    assert losses.d_loss_bce(zeros, zeros).item() == pytest.approx(2 * math.log(2), abs=1e-7)


def test_generator_losses_golden():
    # non-saturating: (softplus(0) + softplus(-1)) / 2 = 0.503204
    assert losses.g_loss_non_saturating(D_FAKE).item() == pytest.approx(0.503204, abs=1e-6)
    # minimax: -(softplus(0) + softplus(1)) / 2 = -1.003204
    assert losses.g_loss_minimax(D_FAKE).item() == pytest.approx(-1.003204, abs=1e-6)


def test_non_saturating_has_stronger_gradient_when_d_rejects_fakes():
    # D confidently rejects a fake (logit -6): minimax gradient ~ sigmoid(-6) ~ 0.0025,
    # non-saturating ~ 1.
    for fn, lo, hi in [
        (losses.g_loss_minimax, 0.0, 0.01),
        (losses.g_loss_non_saturating, 0.99, 1.0),
    ]:
        d = torch.tensor([-6.0], requires_grad=True)
        fn(d).backward()
        assert lo <= abs(d.grad.item()) <= hi


def test_wasserstein_losses_golden():
    d_fake = torch.tensor([0.0, 3.0])  # mean 1.5; d_real mean 0.5
    assert losses.d_loss_wasserstein(D_REAL, d_fake).item() == pytest.approx(1.0)
    assert losses.g_loss_wasserstein(d_fake).item() == pytest.approx(-1.5)


class LinearCritic(nn.Module):
    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.flatten().clone())

    def forward(self, x):
        return x.flatten(1) @ self.w + 0.7


def test_gradient_penalty_linear_critic_closed_form():
    # For f(x) = w.x + b the input gradient is w everywhere,
    # so the penalty is (||w|| - 1)^2 = (3 - 1)^2.
    w = torch.randn(1, 4, 4)
    w = w / w.norm() * 3.0
    critic = LinearCritic(w)
    x_real, x_fake = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    gp = losses.gradient_penalty(critic, x_real, x_fake)
    assert gp.item() == pytest.approx(4.0, rel=1e-5)
    per = losses.gradient_penalty(critic, x_real, x_fake, reduction="none")
    assert per.shape == (6,) and torch.allclose(per, torch.full((6,), 4.0), rtol=1e-5)


def test_gradient_penalty_alpha_is_per_sample():
    # x_hat must interpolate each sample with ONE alpha: pass an explicit per-sample alpha and check
    # the default draws that shape by making a critic whose gradient depends on the position.
    critic = DCGANDiscriminator(32, 1, 8, norm="layer")
    x_real, x_fake = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    torch.manual_seed(0)
    default = losses.gradient_penalty(critic, x_real, x_fake, reduction="none")
    torch.manual_seed(0)
    alpha = torch.rand(4, 1, 1, 1)
    explicit = losses.gradient_penalty(critic, x_real, x_fake, alpha=alpha, reduction="none")
    assert torch.allclose(default, explicit)


def test_gradient_penalty_per_sample_independent_of_batch():
    torch.manual_seed(1)
    critic = DCGANDiscriminator(32, 1, 8, norm="layer")
    x_real, x_fake = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    alpha = torch.rand(4, 1, 1, 1)
    before = losses.gradient_penalty(critic, x_real, x_fake, alpha=alpha, reduction="none")
    x_real2, x_fake2 = x_real.clone(), x_fake.clone()
    x_real2[1:] = torch.randn(3, 1, 32, 32)  # change every other sample in the batch
    x_fake2[1:] = torch.randn(3, 1, 32, 32)
    after = losses.gradient_penalty(critic, x_real2, x_fake2, alpha=alpha, reduction="none")
    assert torch.allclose(before[0], after[0], atol=1e-6)
    assert not torch.allclose(before[1:], after[1:])


def test_batch_norm_critic_couples_samples():
    # Why the critic drops batch norm: with it, sample 0's penalty moves when other samples change.
    torch.manual_seed(1)
    critic = DCGANDiscriminator(32, 1, 8, norm="batch").train()
    x_real, x_fake = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    alpha = torch.rand(4, 1, 1, 1)
    before = losses.gradient_penalty(critic, x_real, x_fake, alpha=alpha, reduction="none")
    x_real[1:] += 3.0
    after = losses.gradient_penalty(critic, x_real, x_fake, alpha=alpha, reduction="none")
    assert not torch.allclose(before[0], after[0], atol=1e-4)


def test_gradient_penalty_finite_at_real_equals_fake_and_zero_gradient():
    class Quadratic(nn.Module):  # input gradient 2 w x is exactly zero at x = 0
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(1.5))

        def forward(self, x):
            return self.w * x.pow(2).flatten(1).sum(1)

    critic = Quadratic()
    x = torch.zeros(3, 1, 4, 4)
    gp = losses.gradient_penalty(critic, x, x.clone())
    gp.backward()
    assert torch.isfinite(gp) and gp.item() == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(critic.w.grad)


def test_clip_weights_bounds_every_parameter():
    critic = DCGANDiscriminator(32, 1, 8, norm="none")
    for p in critic.parameters():
        nn.init.normal_(p, 0, 1.0)
    losses.clip_weights(critic, 0.01)
    assert all(p.abs().max().item() <= 0.01 for p in critic.parameters())
    assert any(p.abs().max().item() == pytest.approx(0.01) for p in critic.parameters())
