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
        raise AssertionError(f"{what}: shape should be {tuple(want.shape)}, got {shape}")
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
        t = copy.copy(trainer)
        t.G, t.D, t.opt_g, t.opt_d, t.one_d_call = G, D, opt_g, opt_d, False
        t.device = x_real.device
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
