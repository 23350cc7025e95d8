"""The 2-D ring of lessons 01 and 03: data, measures, and the course's Trainer on points."""

import math

import pytest
import torch

from gankit import losses
from gankit.toy import (
    STD,
    PointSource,
    Snapshots,
    g_loss_gradient,
    ring,
    ring_centres,
    ring_quality,
    surface,
    toy_trainer,
)


def test_ring_has_eight_centres_on_the_circle_and_tight_modes():
    c = ring_centres()
    assert c.shape == (8, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.full((8,), 2.0))
    torch.testing.assert_close(c[0], torch.tensor([2.0, 0.0]))
    points = ring(8000, seed=1)
    nearest = torch.cdist(points, c).min(1).values
    assert nearest.mean() < 3 * STD  # around the centres, not between them
    assert torch.equal(points, ring(8000, seed=1)) and not torch.equal(points, ring(8000, seed=2))


def test_ring_quality_golden_values():
    c = ring_centres()
    assert ring_quality(c.repeat(10, 1)) == {"modes_covered": 8, "high_quality": 1.0}
    one = ring_quality(c[3].repeat(100, 1))
    assert one == {"modes_covered": 1, "high_quality": 1.0}
    between = (c[0] + c[1]) / 2  # halfway between two modes: far from both
    assert ring_quality(between.repeat(50, 1)) == {"modes_covered": 0, "high_quality": 0.0}
    mixed = torch.cat([c[:2].repeat(5, 1), between.repeat(10, 1)])  # half good, 2 modes
    assert ring_quality(mixed) == {"modes_covered": 2, "high_quality": 0.5}


def test_point_source_replays_epochs_and_refuses_bad_points():
    src = PointSource(ring(100), 16, seed=3)
    assert len(src) == 6
    a = [x for x, _ in src.epoch(2)]
    b = [x for x, _ in src.epoch(2, start=4)]
    assert all(torch.equal(x, y) for x, y in zip(a[4:], b))
    assert not torch.equal(a[0], next(src.epoch(3))[0])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        PointSource(torch.zeros(10, 3), 4)


def test_the_course_trainer_learns_the_ring_in_seconds():
    t = toy_trainer(seed=0, epochs=10)
    snaps = Snapshots(every=500)
    t.add_callback(snaps)
    t.fit()
    assert t.step == 1000 and [f["step"] for f in snaps.frames] == [0, 500, 1000]
    start, end = snaps.frames[0], snaps.frames[-1]
    assert start["high_quality"] < 0.05  # the untrained G: a blob, far from the ring
    assert end["high_quality"] > 0.3 and end["modes_covered"] >= 4
    values = surface(t)[2]
    assert values.shape == (101, 101) and values.min() >= 0 and values.max() <= 1  # D(x) for BCE


def test_generator_push_ratio_is_the_closed_form():
    t = toy_trainer(seed=0, n_critic=1000, steps_per_epoch=40, epochs=1)  # D alone: no G step
    t.fit()
    fake = t.sample(64, seed=1)
    ns = g_loss_gradient(t, fake, losses.g_loss_non_saturating).norm(dim=1)
    mm = g_loss_gradient(t, fake, losses.g_loss_minimax).norm(dim=1)
    d = torch.sigmoid(t.D(fake)).detach()
    torch.testing.assert_close(ns / mm, (1 - d) / d, rtol=1e-3, atol=0)  # e^{-logit}
    assert d.mean() < 0.2 and (ns / mm).median() > math.e  # D confident: minimax saturates


def test_wgan_critics_clipped_and_penalised_on_the_ring():
    def grad_norms(**recipe):
        t = toy_trainer(loss="wgan", n_critic=1000, steps_per_epoch=100, epochs=2, **recipe)
        t.fit()
        plane = torch.rand(500, 2, generator=torch.Generator().manual_seed(0)) * 6 - 3
        plane.requires_grad_(True)
        (grad,) = torch.autograd.grad(t.D(plane).sum(), plane)
        return grad.norm(dim=1)

    clipped = grad_norms(clip_value=0.01, optimizer="rmsprop", lr_d=5e-5)
    penalised = grad_norms(gp_weight=10.0)
    assert clipped.max() < 0.05  # K far below 1
    assert (penalised.median() - 1).abs() < 0.2  # pushed towards 1
