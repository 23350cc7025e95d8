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


# ---------------------------------------------------------------------- lesson 02


def test_transposed_size_check(capsys):
    from gankit.exercises import check_transposed_size, transposed_output_size

    right = lambda n, k, s, p: (n - 1) * s - 2 * p + k
    assert check_transposed_size(right) is right
    assert check_transposed_size(not_done) is transposed_output_size
    with pytest.raises(AssertionError, match="ConvTranspose2d gives 4"):
        check_transposed_size(lambda n, k, s, p: (n + 2 * p - k) // s + 1)  # the forward conv's
    with pytest.raises(AssertionError, match="padding on both sides"):
        check_transposed_size(lambda n, k, s, p: (n - 1) * s - p + k)


def right_block(in_ch, out_ch):
    return torch.nn.Sequential(
        torch.nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False),
        torch.nn.BatchNorm2d(out_ch),
        torch.nn.ReLU(True),
    )


def test_generator_block_check(capsys):
    from gankit.exercises import check_generator_block

    assert check_generator_block(right_block) is right_block
    library = check_generator_block(not_done)
    assert library(16, 8)(torch.zeros(2, 16, 4, 4)).shape == (2, 8, 8, 8)
    nn = torch.nn
    with pytest.raises(AssertionError, match=r"\(3, 4, 10, 10\)"):
        check_generator_block(lambda i, o: nn.Sequential(nn.ConvTranspose2d(i, o, 3, 2, 1)))
    with pytest.raises(AssertionError, match="BatchNorm2d"):
        check_generator_block(
            lambda i, o: nn.Sequential(nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.ReLU())
        )
    with pytest.raises(AssertionError, match="bias=False"):
        check_generator_block(
            lambda i, o: nn.Sequential(
                nn.ConvTranspose2d(i, o, 4, 2, 1), nn.BatchNorm2d(o), nn.ReLU()
            )
        )
    with pytest.raises(AssertionError, match="ReLU comes last"):
        check_generator_block(
            lambda i, o: nn.Sequential(
                nn.ConvTranspose2d(i, o, 4, 2, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(o)
            )
        )


# ---------------------------------------------------------------------- lesson 03


def right_penalty(critic, x_real, x_fake, alpha):
    x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1) ** 2


def test_gradient_penalty_check(capsys):
    from gankit.exercises import check_gradient_penalty
    from gankit.losses import gradient_penalty

    penalty = check_gradient_penalty(right_penalty)
    assert "gradient penalty: correct" in capsys.readouterr().out
    # what training gets: the batch mean, with gankit's alphas (the same random numbers)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 1))
    x_real, x_fake = torch.randn(6, 1, 3, 3), torch.randn(6, 1, 3, 3)
    torch.manual_seed(3)
    mine = penalty(lambda x: D(x).squeeze(1), x_real, x_fake)
    torch.manual_seed(3)
    ref = gradient_penalty(lambda x: D(x).squeeze(1), x_real, x_fake)
    torch.testing.assert_close(mine, ref)
    assert check_gradient_penalty(not_done) is gradient_penalty

    def batch_mean(critic, x_real, x_fake, alpha):
        return right_penalty(critic, x_real, x_fake, alpha).mean()

    with pytest.raises(AssertionError, match="one penalty per sample"):
        check_gradient_penalty(batch_mean)

    def whole_batch_norm(critic, x_real, x_fake, alpha):
        x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.norm() - 1) ** 2).expand(len(x_real))

    with pytest.raises(AssertionError):
        check_gradient_penalty(whole_batch_norm)

    def no_graph(critic, x_real, x_fake, alpha):
        x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
        return (grad.flatten(1).norm(dim=1) - 1) ** 2

    with pytest.raises(AssertionError, match="create_graph=True"):
        check_gradient_penalty(no_graph)


def right_critic_loop(G, D, opt_g, opt_d, batches, latent_dim, gp_weight, penalty):
    losses_d = []
    for x_real in batches:
        b = len(x_real)
        with torch.no_grad():
            x_fake = G(torch.randn(b, latent_dim))
        loss_d = D(x_fake).mean() - D(x_real).mean()
        loss_d = loss_d + gp_weight * penalty(D, x_real, x_fake)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        losses_d.append(loss_d.detach())
    loss_g = -D(G(torch.randn(len(batches[-1]), latent_dim))).mean()
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return losses_d, loss_g.detach()


def wgan_trainer():
    config = tiny_config(loss="wgan", gp_weight=10.0, n_critic=3, d_norm="none", batch_size=24)
    return tiny_trainer(config)


def test_critic_loop_check(capsys):
    from gankit.exercises import check_critic_loop

    trainer = wgan_trainer()
    assert check_critic_loop(right_critic_loop, trainer) is right_critic_loop
    assert "critic loop: correct" in capsys.readouterr().out
    assert check_critic_loop(not_done, trainer).__name__ == "Trainer.train_step"

    def one_critic_step(G, D, opt_g, opt_d, batches, *rest):
        losses, loss_g = right_critic_loop(G, D, opt_g, opt_d, batches[:1], *rest)
        return losses * len(batches), loss_g

    with pytest.raises(AssertionError):
        check_critic_loop(one_critic_step, trainer)

    def no_penalty(G, D, opt_g, opt_d, batches, latent_dim, gp_weight, penalty):
        return right_critic_loop(G, D, opt_g, opt_d, batches, latent_dim, 0.0, penalty)

    with pytest.raises(AssertionError, match="gp_weight"):
        check_critic_loop(no_penalty, trainer)


# ---------------------------------------------------------------------- lesson 04


def test_projection_logit_check(capsys):
    from gankit.exercises import check_projection_logit

    def right(D, x, y):
        phi = D.features(x.flatten(1))
        return D.head(phi).squeeze(1) + (D.embed(y) * phi).sum(1)

    assert check_projection_logit(right) is right
    assert check_projection_logit(not_done).__name__ == "MLPDiscriminator.forward"

    def head_only(D, x, y):
        return D.head(D.features(x.flatten(1))).squeeze(1)

    with pytest.raises(AssertionError, match="class ids"):
        check_projection_logit(head_only)


def test_g_input_check(capsys):
    from gankit.exercises import check_g_input

    right = lambda G, z, y: torch.cat([z, G.embed(y)], dim=1)
    assert check_g_input(right) is right
    assert check_g_input(not_done)(*_g_and_inputs()).shape == (2, 5 + 32)
    with pytest.raises(AssertionError, match="order"):
        check_g_input(lambda G, z, y: torch.cat([G.embed(y), z], dim=1))
    with pytest.raises(AssertionError, match="concatenate"):
        check_g_input(lambda G, z, y: z)


def _g_and_inputs():
    from gankit.models import MLPGenerator

    return MLPGenerator(5, 8, (1, 4, 4), num_classes=3), torch.zeros(2, 5), torch.tensor([0, 1])
