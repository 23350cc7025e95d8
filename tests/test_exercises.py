"""The your-turn checks: a right answer passes, typical mistakes fail with a hint, a skipped
exercise (NotImplementedError, the student version) falls back to the library's function."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config, tiny_trainer

from gankit.exercises import check_d_loss, check_g_loss, check_gan_step
from gankit.losses import d_loss_bce, g_loss_non_saturating


def right_d_loss(d_real, d_fake):
    return F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real)
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def not_done(*args):
    raise NotImplementedError()


def test_d_loss_check(capsys):
    assert check_d_loss(right_d_loss) is right_d_loss
    assert "D loss: correct" in capsys.readouterr().out
    assert check_d_loss(not_done) is d_loss_bce
    assert "not written yet" in capsys.readouterr().out
    swapped = lambda r, f: right_d_loss(f, r)
    with pytest.raises(AssertionError, match="target 1"):
        check_d_loss(swapped)
    naive = lambda r, f: -(torch.log(torch.sigmoid(r)) + torch.log(1 - torch.sigmoid(f))).mean()
    with pytest.raises(AssertionError, match="overflows"):
        check_d_loss(naive)
    summed = lambda r, f: right_d_loss(r, f) * len(r)
    with pytest.raises(AssertionError, match="average over the batch"):
        check_d_loss(summed)


def test_g_loss_check(capsys):
    mine = lambda d: F.softplus(-d).mean()
    assert check_g_loss(mine) is mine
    assert check_g_loss(not_done) is g_loss_non_saturating
    minimax = lambda d: -F.softplus(d).mean() + 2 * math.log(2) - math.log(2)
    with pytest.raises(AssertionError):
        check_g_loss(minimax)


def right_step(G, D, opt_g, opt_d, x_real, latent_dim):
    b = len(x_real)
    with torch.no_grad():
        x_fake = G(torch.randn(b, latent_dim))
    loss_d = right_d_loss(D(x_real), D(x_fake))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    out = D(G(torch.randn(b, latent_dim)))
    loss_g = F.softplus(-out).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g


def test_gan_step_check_passes_algorithm_1_and_catches_mistakes(capsys):
    t = tiny_trainer(tiny_config())
    t.fit(1)  # mid-training: Adam has state, the networks have gradients
    assert check_gan_step(right_step, t) is right_step
    assert "GAN step: correct" in capsys.readouterr().out
    fallback = check_gan_step(not_done, t)
    loss_d, loss_g = fallback(t.G, t.D, t.opt_g, t.opt_d, next(t.data.epoch(0))[0], 8)
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)

    def no_zero_grad(G, D, opt_g, opt_d, x_real, latent_dim):
        b = len(x_real)
        with torch.no_grad():
            x_fake = G(torch.randn(b, latent_dim))
        loss_d = right_d_loss(D(x_real), D(x_fake))
        loss_d.backward()  # D's gradients accumulate over steps
        opt_d.step()
        out = D(G(torch.randn(b, latent_dim)))
        loss_g = F.softplus(-out).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g

    with pytest.raises(AssertionError, match="zero D's gradients"):
        check_gan_step(no_zero_grad, t)

    def reused_fakes(G, D, opt_g, opt_d, x_real, latent_dim):
        b = len(x_real)
        x_fake = G(torch.randn(b, latent_dim))
        loss_d = right_d_loss(D(x_real), D(x_fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(x_fake)).mean()  # the D step's fakes: no fresh noise
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g

    with pytest.raises(AssertionError, match="draw fresh noise for the G step"):
        check_gan_step(reused_fakes, t)
