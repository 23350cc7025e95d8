"""Checks for the lessons' your-turn cells: a learner's function against closed forms and gankit.

Each `check_*` runs the learner's function on fixed inputs, raises `AssertionError` with a hint
when it is wrong, and returns the function the rest of the lesson should use: the learner's when
it passes, the library's (said out loud) when the learner has not written it yet (it raises
`NotImplementedError`, as in the student version of a lesson). So a skipped exercise never stops
a lesson, and a wrong one stops it at the check, with the reason.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from .losses import d_loss_bce, g_loss_non_saturating


def _attempt(name: str, fn: Callable, library: Callable, check: Callable[[Callable], None]):
    try:
        check(fn)
    except NotImplementedError:
        print(f"{name}: not written yet; the lesson goes on with the library's {library.__name__}")
        return library
    print(f"{name}: correct")
    return fn


def _close(got: Any, want: torch.Tensor, what: str, hint: str, tol: float = 1e-5) -> None:
    if not torch.is_tensor(got):
        raise AssertionError(f"{what}: expected a tensor, got {type(got).__name__}")
    if got.shape != want.shape:
        shape = tuple(got.shape)
        raise AssertionError(f"{what}: shape should be {tuple(want.shape)}, got {shape}. {hint}")
    if not torch.isfinite(got).all():
        raise AssertionError(f"{what} is not finite ({got.tolist()}). {hint}")
    if not torch.allclose(got.detach().float(), want.float(), rtol=tol, atol=tol):
        got_list = got.detach().tolist()
        raise AssertionError(f"{what}: expected {want.tolist()}, got {got_list}. {hint}")


def check_d_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable:
    """fn(d_real, d_fake) -> scalar: D's loss -log D(x) - log(1 - D(G(z))), batch means."""

    def check(f: Callable) -> None:
        zeros = torch.zeros(5)
        _close(
            f(zeros, zeros),
            torch.tensor(2 * math.log(2)),
            "at D = 1/2 everywhere (logits 0) the loss",
            "Each term is -log(1/2) = log 2; average over the batch, then add the two terms.",
        )
        g = torch.Generator().manual_seed(0)
        d_real, d_fake = torch.randn(7, generator=g) * 3, torch.randn(7, generator=g) * 3
        _close(
            f(d_real, d_fake),
            d_loss_bce(d_real, d_fake),
            "on random logits the loss",
            "Real images have target 1, fakes target 0; the inputs are logits (apply the sigmoid "
            "once, or use binary_cross_entropy_with_logits).",
        )
        big = torch.tensor([40.0, -40.0])
        _close(
            f(-big, big),
            d_loss_bce(-big, big),
            "for confident wrong logits (-40 / +40) the loss",
            "log(sigmoid(x)) overflows; use F.binary_cross_entropy_with_logits or F.softplus.",
            tol=1e-3,
        )

    return _attempt("D loss", fn, d_loss_bce, check)


def check_g_loss(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """fn(d_fake) -> scalar: the non-saturating G loss -log D(G(z)) on logits, batch mean."""

    def check(f: Callable) -> None:
        _close(
            f(torch.zeros(4)),
            torch.tensor(math.log(2)),
            "at D(G(z)) = 1/2 the loss",
            "-log(1/2) = log 2.",
        )
        d_fake = torch.tensor([-6.0, -1.0, 0.5, 3.0], requires_grad=True)
        loss = f(d_fake)
        _close(
            loss,
            g_loss_non_saturating(d_fake.detach()),
            "on logits (-6, -1, 0.5, 3) the loss",
            "Minimise -log D(G(z)) = softplus(-d_fake): the fakes' target is 1 here.",
        )
        (grad,) = torch.autograd.grad(loss, d_fake)
        want = -torch.sigmoid(-d_fake.detach()) / 4  # d softplus(-d) / dd, averaged over 4
        _close(
            grad,
            want,
            "its gradient with respect to the logits",
            "At d = -6 (D confidently rejects) the non-saturating loss must still push hard: "
            "the gradient is about -1/B, not 0 as for log(1 - D(G(z))).",
        )

    return _attempt("G loss", fn, g_loss_non_saturating, check)


def check_gan_step(fn: Callable, trainer: Any) -> Callable:
    """fn(G, D, opt_g, opt_d, x_real, latent_dim) -> (loss_d, loss_g): one D step then one G step,
    compared with the library's `Trainer.d_step` + `Trainer.g_step` on CPU copies of `trainer`'s
    networks, optimizers and a fixed batch, with the same random numbers (noise drawn with
    torch.randn(batch, latent_dim): first for the D step, then for the G step)."""

    def library(G, D, opt_g, opt_d, x_real, latent_dim):  # the Trainer's two steps, as a function
        t = _stepping(trainer, G, D, opt_g, opt_d, x_real.device)
        return t.d_step(x_real)[0], t.g_step(x_real)

    library.__name__ = "Trainer.d_step + Trainer.g_step"

    def check(f: Callable) -> None:
        x_real, _ = next(trainer.data.epoch(0))
        x_real = x_real[:16].float().cpu().contiguous()  # on the CPU, whatever trains the lesson
        runs = []
        for step in (f, library):
            G, D = copy.deepcopy(trainer.G).cpu(), copy.deepcopy(trainer.D).cpu()
            for p in (*G.parameters(), *D.parameters()):  # stale gradients: zero_grad matters
                p.grad = torch.ones_like(p)
            opt_g, opt_d = _copy_optimizer(trainer.opt_g, G), _copy_optimizer(trainer.opt_d, D)
            torch.manual_seed(0)
            losses = step(G, D, opt_g, opt_d, x_real, trainer.config.latent_dim)
            runs.append((losses, G, D))
        (mine, G1, D1), (ref, G2, D2) = runs
        if not (isinstance(mine, tuple) and len(mine) == 2):
            raise AssertionError("return (loss_d, loss_g), two scalar tensors")
        _close(mine[0], ref[0].detach(), "loss_d", "Score a real batch and a fake batch with D.")
        if not _same(D1, D2):
            raise AssertionError(
                "D's weights after your steps differ from the library's: zero D's gradients "
                "before backward, detach the fakes (or make them under torch.no_grad()) so that "
                "the D step does not touch G, and call opt_d.step() once."
            )
        if not _same(G1, G2):
            raise AssertionError(
                "G's weights differ: draw fresh noise for the G step, minimise the "
                "non-saturating loss through D, zero G's gradients and call opt_g.step() once "
                "(D's weights must not change in the G step)."
            )
        _close(mine[1], ref[1].detach(), "loss_g", "G's loss goes through D on fresh noise.")

    return _attempt("GAN step", fn, library, check)


def _stepping(trainer: Any, G: nn.Module, D: nn.Module, opt_g: Any, opt_d: Any, device: Any) -> Any:
    """A shallow copy of `trainer` whose d_step and g_step train these networks with these
    optimizers on `device`: the library's algorithm, run on the check's copies. One process: the
    networks train unwrapped; real and fake are scored in two calls, as a learner writes them."""
    t = copy.copy(trainer)
    t.G = t.G_train = G
    t.D = t.D_train = D
    t.opt_g, t.opt_d, t.one_d_call, t.device = opt_g, opt_d, False, device
    return t


def _copy_optimizer(opt: torch.optim.Optimizer, module: nn.Module) -> torch.optim.Optimizer:
    """The same optimizer (class, settings, state) over a copied module's parameters."""
    new = type(opt)(module.parameters(), **opt.defaults)
    new.load_state_dict(copy.deepcopy(opt.state_dict()))  # load_state_dict shares tensors
    return new


def _same(a: nn.Module, b: nn.Module) -> bool:
    """The same weights up to float rounding. Adam's first step is about lr * sign(gradient), so a
    gradient within rounding of 0 can move a weight either way: a handful of such weights (under
    0.1%) may differ; a wrong step moves nearly all of them."""
    pairs = list(zip(a.state_dict().values(), b.state_dict().values()))
    off = sum(int((~torch.isclose(x, y, rtol=1e-5, atol=1e-6)).sum()) for x, y in pairs)
    return off <= 1e-3 * sum(x.numel() for x, _ in pairs)


# ---------------------------------------------------------------------- lesson 02: DCGAN


def transposed_output_size(n: int, kernel: int, stride: int, padding: int) -> int:
    """The side of ConvTranspose2d's output for an n x n input: (n - 1) s - 2p + k."""
    return (n - 1) * stride - 2 * padding + kernel


def check_transposed_size(fn: Callable[[int, int, int, int], int]) -> Callable:
    """fn(n, kernel, stride, padding) -> the output side of a transposed convolution, compared
    with what torch's ConvTranspose2d returns."""

    def check(f: Callable) -> None:
        cases = [
            (1, 4, 1, 0),
            (4, 4, 2, 1),
            (16, 4, 2, 1),
            (7, 3, 2, 1),
            (5, 5, 3, 2),
            (3, 2, 2, 0),
        ]
        for n, k, s, p in cases:
            conv = nn.ConvTranspose2d(1, 1, k, s, p)
            want = conv(torch.zeros(1, 1, n, n)).shape[-1]
            got = f(n, k, s, p)
            if got != want:
                raise AssertionError(
                    f"n={n}, kernel={k}, stride={s}, padding={p}: ConvTranspose2d gives {want}, "
                    f"your function {got}. A transposed convolution spreads each input pixel over "
                    "a k x k patch, patches s apart: (n - 1) s + k, minus the padding on both "
                    "sides."
                )

    return _attempt("transposed convolution size", fn, transposed_output_size, check)


def check_generator_block(fn: Callable[[int, int], nn.Module]) -> Callable:
    """fn(in_ch, out_ch) -> a module (B, in_ch, s, s) -> (B, out_ch, 2s, 2s): one DCGAN generator
    stage (transposed convolution k=4, s=2, p=1 without bias, batch norm, ReLU)."""
    from .models import up_block

    def library(in_ch: int, out_ch: int) -> nn.Module:
        return nn.Sequential(*up_block(in_ch, out_ch))

    library.__name__ = "up_block"

    def check(f: Callable) -> None:
        block = f(8, 4)
        if not isinstance(block, nn.Module):
            raise AssertionError(f"return an nn.Module (e.g. nn.Sequential), got {type(block)}")
        out = block.train()(torch.randn(3, 8, 5, 5, generator=torch.Generator().manual_seed(0)))
        if tuple(out.shape) != (3, 4, 10, 10):
            raise AssertionError(
                f"(3, 8, 5, 5) should become (3, 4, 10, 10), got {tuple(out.shape)}: kernel 4, "
                "stride 2, padding 1 doubles the side; out_ch sets the channels"
            )
        kinds = [type(m) for m in block.modules()]
        for kind, why in [
            (nn.ConvTranspose2d, "the upsampling layer"),
            (nn.BatchNorm2d, "batch norm after the convolution (Radford et al.'s guideline)"),
            (nn.ReLU, "a ReLU (the generator's hidden activation)"),
        ]:
            if kind not in kinds:
                raise AssertionError(f"the block needs {kind.__name__}: {why}")
        conv = next(m for m in block.modules() if isinstance(m, nn.ConvTranspose2d))
        if conv.bias is not None:
            raise AssertionError("bias=False: batch norm's shift makes the convolution's bias moot")
        if (out < 0).any():
            raise AssertionError("the ReLU comes last: the block's outputs are >= 0")
        want = sum(p.numel() for p in library(8, 4).parameters())
        got = sum(p.numel() for p in block.parameters())
        if got != want:
            raise AssertionError(f"{got} parameters, expected {want} (4x4 kernels, one BN)")

    return _attempt("generator block", fn, library, check)


# ---------------------------------------------------------------------- lesson 03: WGAN-GP


def check_gradient_penalty(fn: Callable) -> Callable:
    """fn(critic, x_real, x_fake, alpha) -> (B,) per-sample penalties (||grad f(x_hat)|| - 1)^2 at
    x_hat = alpha x_real + (1 - alpha) x_fake. Checked on a linear critic (closed form), against
    gankit's gradient_penalty, sample by sample, and through backward (create_graph).

    Returns the penalty for training (`train_or_load(..., penalty=...)`): (critic, x_real, x_fake,
    y) -> the batch mean, with alpha ~ U[0, 1] per sample drawn as gankit's is."""
    from .losses import gradient_penalty

    def check(f: Callable) -> None:
        g = torch.Generator().manual_seed(0)
        x_real, x_fake = torch.randn(4, 1, 3, 3, generator=g), torch.randn(4, 1, 3, 3, generator=g)
        alpha = torch.rand(4, 1, 1, 1, generator=g)
        linear = nn.Sequential(nn.Flatten(), nn.Linear(9, 1))
        with torch.no_grad():
            linear[1].weight.copy_(torch.full((1, 9), 0.5))  # ||w|| = 1.5: penalty (1.5 - 1)^2
        out = f(lambda x: linear(x).squeeze(1), x_real, x_fake, alpha)
        _close(
            out,
            torch.full((4,), 0.25),
            "for the linear critic f(x) = w.x + b with ||w|| = 1.5 the penalties",
            "Its gradient is w at every x_hat: (1.5 - 1)^2 = 0.25 for each of the 4 samples. "
            "Return one penalty per sample, shape (B,), not their mean.",
        )
        critic = nn.Sequential(nn.Flatten(), nn.Linear(9, 6), nn.Tanh(), nn.Linear(6, 1))

        def f_critic(x):
            return critic(x).squeeze(1)

        want = gradient_penalty(f_critic, x_real, x_fake, alpha=alpha, reduction="none")
        out = f(f_critic, x_real, x_fake, alpha)
        _close(
            out,
            want.detach(),
            "for a small MLP critic the penalties",
            "Mix x_hat = alpha x_real + (1 - alpha) x_fake, make it require grad, take "
            "torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True), then the norm of "
            "each sample's gradient over all its pixels (flatten(1)), minus 1, squared.",
        )
        alone = torch.cat(
            [f(f_critic, x_real[i : i + 1], x_fake[i : i + 1], alpha[i : i + 1]) for i in range(4)]
        )
        _close(
            alone,
            want.detach(),
            "each sample's penalty computed alone",
            "A sample's penalty must not depend on the rest of the batch (the gradient norm is "
            "per sample; no batch norm in the critic).",
        )
        critic.zero_grad()
        mean = f(f_critic, x_real, x_fake, alpha).mean()
        if mean.requires_grad:
            mean.backward()
        mine = [p.grad for p in critic.parameters()]
        critic.zero_grad()
        want.mean().backward()
        if any(m is None for m in mine[:-1]):
            raise AssertionError(
                "no gradient reached the critic's weights: the penalty must be differentiable, "
                "so pass create_graph=True to torch.autograd.grad"
            )
        for m, w in zip(mine, [p.grad for p in critic.parameters()]):
            if w is not None:
                _close(m, w, "the critic's weight gradients of your penalty", "create_graph=True.")

    def learner_penalty(f: Callable) -> Callable:
        def penalty(critic, x_real, x_fake, y=None):
            shape = (x_real.shape[0], *([1] * (x_real.dim() - 1)))
            alpha = torch.rand(shape, device=x_real.device, dtype=x_real.dtype)  # as gankit's
            scored = critic if y is None else (lambda x: critic(x, y))
            return f(scored, x_real, x_fake.detach(), alpha).mean()

        penalty.__name__ = getattr(f, "__name__", "my_gradient_penalty")
        return penalty

    chosen = _attempt("gradient penalty", fn, gradient_penalty, check)
    return gradient_penalty if chosen is gradient_penalty else learner_penalty(fn)


def check_critic_loop(fn: Callable, trainer: Any) -> Callable:
    """fn(G, D, opt_g, opt_d, batches, latent_dim, gp_weight, penalty) -> (losses_d, loss_g): one
    round of WGAN-GP's Algorithm 1: a critic step on each of the n_critic real batches, then one G
    step. Compared with the library's `Trainer.train_step` on n_critic batches, on CPU copies of
    `trainer`'s networks, with the same random numbers (for each critic step: the noise
    torch.randn(batch, latent_dim), then the penalty's alphas; then the G step's noise).

    Both rounds step plain SGD optimizers, not the trainer's Adam: Adam's first steps are about
    lr * sign(gradient), so float-rounding differences between two correct rounds (the order of
    D's calls, say) flip the sign of near-zero gradients and move weights by 2 lr; with SGD a
    weight moves in proportion to its gradient, and two correct rounds agree to rounding."""
    from .losses import gradient_penalty

    n_critic = trainer.config.n_critic

    def library(G, D, opt_g, opt_d, batches, latent_dim, gp_weight, penalty):
        t = _stepping(trainer, G, D, opt_g, opt_d, batches[0].device)
        return [t.d_step(x)[0] for x in batches], t.g_step(batches[-1])

    library.__name__ = "Trainer.train_step"

    def check(f: Callable) -> None:
        x, _ = next(trainer.data.epoch(0))
        x = x.float().cpu().contiguous()
        size = min(8, len(x) // n_critic)
        batches = [x[i * size : (i + 1) * size] for i in range(n_critic)]
        runs = []
        for step in (f, library):
            G, D = copy.deepcopy(trainer.G).cpu(), copy.deepcopy(trainer.D).cpu()
            for p in (*G.parameters(), *D.parameters()):  # stale gradients: zero_grad matters
                p.grad = torch.ones_like(p)
            opt_g, opt_d = (
                torch.optim.SGD(G.parameters(), 0.01),
                torch.optim.SGD(D.parameters(), 0.01),
            )
            torch.manual_seed(0)
            out = step(G, D, opt_g, opt_d, batches, trainer.config.latent_dim,
                       trainer.objective.penalty_weight, gradient_penalty)  # fmt: skip
            runs.append((out, G, D))
        (mine, G1, D1), (ref, G2, D2) = runs
        if not (isinstance(mine, tuple) and len(mine) == 2 and len(mine[0]) == n_critic):
            raise AssertionError(
                f"return (losses_d, loss_g): a list of {n_critic} critic losses and G's loss"
            )
        for i, (a, b) in enumerate(zip(mine[0], ref[0])):
            _close(
                a,
                b.detach(),
                f"critic step {i + 1}'s loss",
                "L_D = mean D(fake) - mean D(real) + gp_weight * penalty(D, real, fake); draw "
                "z = torch.randn(batch, latent_dim) first, make the fakes without gradients.",
            )
        if not _same(D1, D2):
            raise AssertionError(
                f"the critic's weights after your {n_critic} steps differ from the library's: "
                "one critic step per real batch, each with zero_grad, backward and opt_d.step()"
            )
        if not _same(G1, G2):
            raise AssertionError(
                "G's weights differ: after the critic steps, one G step on fresh noise that "
                "minimises -mean D(G(z)), with zero_grad and opt_g.step() (D unchanged)"
            )
        _close(mine[1], ref[1].detach(), "loss_g", "G's loss is -mean D(G(z)) on fresh noise.")

    return _attempt("critic loop", fn, library, check)


# ---------------------------------------------------------------------- lesson 04: conditioning


def check_projection_logit(fn: Callable) -> Callable:
    """fn(D, x, y) -> (B,): a projection discriminator's logit computed from its parts, head(phi(x))
    + <embed(y), phi(x)> with phi = D.features(x.flatten(1)), for class ids and for multi-hot
    genre vectors; compared with D(x, y)."""
    from .models import MLPDiscriminator

    def library(D: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return D(x, y)

    library.__name__ = "MLPDiscriminator.forward"

    def check(f: Callable) -> None:
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(5, 1, 4, 4, generator=g)
        genres = [[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 1, 0]]
        classes = torch.tensor([0, 1, 2, 1, 0])
        for kind, D, y in [
            ("class ids", MLPDiscriminator((1, 4, 4), 6, num_classes=3), classes),
            ("multi-hot genres", MLPDiscriminator((1, 4, 4), 6, cond_dim=4), torch.tensor(genres)),
        ]:  # fmt: skip
            with torch.no_grad():
                got, want = f(D, x, y), D(x, y)
            _close(
                got,
                want,
                f"with {kind} the logits",
                "phi = D.features(x.flatten(1)); logit = D.head(phi).squeeze(1) + "
                "(D.embed(y) * phi).sum(1). A multi-hot vector's embedding is the sum of its "
                "genres' embeddings (D.embed does that).",
            )

    return _attempt("projection logit", fn, library, check)


def check_g_input(fn: Callable) -> Callable:
    """fn(G, z, y) -> what a conditional MLP generator's first layer reads: [z, embed(y)]."""

    def library(G: nn.Module, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, G.embed(y)], dim=1)

    library.__name__ = "torch.cat([z, G.embed(y)], dim=1)"

    def check(f: Callable) -> None:
        from .models import MLPGenerator

        torch.manual_seed(0)
        G = MLPGenerator(5, 8, (1, 4, 4), num_classes=3)
        z, y = (
            torch.randn(4, 5, generator=torch.Generator().manual_seed(2)),
            torch.tensor([0, 2, 1, 2]),
        )
        got = f(G, z, y)
        if not torch.is_tensor(got) or tuple(got.shape) != (4, 5 + G.embed.table.embedding_dim):
            shape = tuple(got.shape) if torch.is_tensor(got) else type(got).__name__
            raise AssertionError(
                f"expected (B, latent_dim + embed_dim) = (4, {5 + G.embed.table.embedding_dim}), "
                f"got {shape}: concatenate z and the label's embedding along dim 1"
            )
        with torch.no_grad():
            _close(
                G.net(got).view(4, 1, 4, 4),
                G(z, y),
                "G's image from your input",
                "z first, then G.embed(y): the order the first layer was built for.",
            )

    return _attempt("G input", fn, library, check)
