"""gankit.bench.kernels: FLOP counts vs closed forms, rate probes, the kernel-only replay of a step.

No timing asserts: speed is measured by `gankit bench`, not tested.
"""

import pytest
import torch
import torch.nn as nn
from helpers import WGAN_GP, synthetic, tiny_config

from gankit.bench.kernels import KernelReplay, RateProbe, _own_copy, count_flops, kernel_ops
from gankit.bench.throughput import GankitLoop
from gankit.data import Dataset
from gankit.losses import gradient_penalty


@pytest.fixture(autouse=True)
def one_thread():
    n = (
        torch.get_num_threads()
    )  # what is computed, not how fast: one thread keeps them quick on a busy CPU
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_flops_of_a_linear_layer_match_the_closed_form():
    lin = nn.Linear(30, 20)
    x = torch.randn(8, 30)
    assert count_flops(lambda: lin(x)) == 2 * 8 * 30 * 20
    # backward: the weight gradient, plus the input gradient when the input needs one
    assert count_flops(lambda: lin(x).sum().backward()) == 2 * (2 * 8 * 30 * 20)
    xg = x.clone().requires_grad_(True)
    assert count_flops(lambda: lin(xg).sum().backward()) == 3 * (2 * 8 * 30 * 20)


def test_flops_of_a_convolution_match_the_closed_form():
    conv = nn.Conv2d(3, 8, 4, 2, 1, bias=False)
    x = torch.randn(2, 3, 16, 16)
    assert (
        count_flops(lambda: conv(x)) == 2 * 2 * 8 * 8 * 8 * 3 * 4 * 4
    )  # 2 * B * Cout * Hout * Wout * Cin * k * k


def test_flops_are_counted_through_a_gradient_penalty():
    # FlopCounterMode's module hooks break autograd.grad(create_graph=True); count_flops must not
    lin = nn.Linear(10, 1)
    critic = lambda x: lin(x.flatten(1)).squeeze(1)
    x_real, x_fake = torch.randn(4, 10), torch.randn(4, 10)
    flops = count_flops(lambda: gradient_penalty(critic, x_real, x_fake).backward())
    assert flops >= 2 * 4 * 10 * 1 * 2  # at least the forward and the input gradient


def test_rate_probes_count_their_flops():
    assert RateProbe("matmul", torch.device("cpu")).flops == 2 * 2048**3
    assert RateProbe("conv", torch.device("cpu")).flops == 2 * 64 * 128 * 16 * 16 * 128 * 3 * 3
    with pytest.raises(ValueError, match="matmul"):
        RateProbe("fft", torch.device("cpu"))


def test_replay_records_the_kernels_of_a_linear_layer():
    lin = nn.Linear(30, 20)
    x = torch.randn(8, 30)  # no input gradient: forward addmm, then the weight gradient's mm
    replay = KernelReplay(lambda: lin(x).sum().backward(), 8, torch.device("cpu"))
    assert replay.kernels() == {"aten.addmm.default": 1, "aten.mm.default": 1}
    assert count_flops(replay.one_cycle) == 2 * (2 * 8 * 30 * 20)
    with pytest.raises(ValueError, match="nothing to replay"):
        KernelReplay(lambda: torch.ones(3) * 2, 1, torch.device("cpu"))


GAN_STEPS = [
    dict(),
    dict(preset="cgan-mnist", num_classes=10),
    dict(
        preset="dcgan-mnist", model="dcgan", image_size=32, g_width=8, d_width=8
    ),  # batch norm, channels_last
    WGAN_GP | dict(n_critic=2),  # the penalty's double backward
]


@pytest.mark.parametrize("kind", GAN_STEPS, ids=["mlp", "cgan", "dcgan", "wgan-gp"])
def test_replay_runs_every_matmul_and_convolution_of_a_training_cycle(kind):
    config = tiny_config(**kind)
    images, labels = synthetic(64, config.channels, config.image_size, config.num_classes)
    loop = GankitLoop(config, Dataset(images, labels), torch.device("cpu"))
    replay = KernelReplay(loop.one_cycle, config.batch_size * config.n_critic, torch.device("cpu"))
    assert (
        count_flops(replay.one_cycle) == count_flops(loop.one_cycle) > 0
    )  # no matmul or convolution missed
    kernels = replay.kernels()
    if torch.ops.aten._fused_adam_ in kernel_ops() and loop.trainer.opt_d.param_groups[0].get(
        "fused"
    ):
        assert (
            kernels["aten._fused_adam_.default"] == config.n_critic + 1
        )  # each D step and the G step
    if (
        config.preset == "dcgan-mnist"
    ):  # the recorded inputs keep the Trainer's layout, so the same kernels run
        convs = [
            args[0] for func, args, _ in replay.calls if func is torch.ops.aten.convolution.default
        ]
        assert convs and all(x.is_contiguous(memory_format=torch.channels_last) for x in convs)


def test_replayed_inputs_keep_their_strides():
    x = torch.randn(4, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    w = torch.randn(6, 8)
    args = _own_copy((x, [w.t(), 2.0], {"k": w}))
    assert (
        args[0].stride() == x.stride()
        and args[1][0].stride() == w.t().stride()
        and args[1][1] == 2.0
    )
    assert args[0].data_ptr() != x.data_ptr() and torch.equal(args[2]["k"], w)


def test_replay_leaves_the_recorded_run_alone():
    config = tiny_config(preset="cgan-mnist", num_classes=10)
    images, labels = synthetic(64, 1, 28, 10)
    loop = GankitLoop(config, Dataset(images, labels), torch.device("cpu"))
    replay = KernelReplay(loop.one_cycle, config.batch_size, torch.device("cpu"))
    t = loop.trainer
    before = [p.detach().clone() for p in (*t.G.parameters(), *t.D.parameters())]
    moments = [v.clone() for s in t.opt_d.state.values() for v in s.values() if torch.is_tensor(v)]
    assert replay.run(3) == 3 * config.batch_size
    assert all(torch.equal(a, b) for a, b in zip(before, (*t.G.parameters(), *t.D.parameters())))
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            moments, [v for s in t.opt_d.state.values() for v in s.values() if torch.is_tensor(v)]
        )
    )
