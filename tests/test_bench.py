"""gankit.bench: that the gankit and tutorial loops train the same networks on the same batch.

No timing asserts: speed is measured by `gankit bench`, not tested.
"""

import pytest
import torch
import torch.nn as nn
from helpers import WGAN_GP, needs_mnist, synthetic, tiny_config, tiny_trainer

from gankit.bench.kernels import count_flops
from gankit.bench.throughput import (
    GankitLoop,
    speed_variants,
    table,
    to_markdown,
    verdict,
    wait_policy_note,
)
from gankit.bench.tutorial import TutorialLoop
from gankit.config import GANConfig
from gankit.data import Dataset
from gankit.models import build_models
from gankit.speed import cpu_supports_bf16, load_optimizer_state, scores_per_sample


@pytest.fixture(autouse=True)
def one_thread():
    # these tests check what is computed, not how fast: one thread keeps them quick on a shared,
    # busy CPU (small ops on two oversubscribed threads can be 50x slower)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TutorialImages(torch.utils.data.Dataset):
    """What torchvision's MNIST does per item: uint8 -> PIL image -> ToTensor + Normalize."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i, 0].numpy(), mode="L")
        return self.tf(img), (self.labels[i] if self.labels is not None else 0)


def loops(config: GANConfig, n: int = 64):
    images, labels = synthetic(n, config.channels, config.image_size, config.num_classes)
    g = GankitLoop(config, Dataset(images, labels), torch.device("cpu"))
    t = TutorialLoop(config, TutorialImages(images, labels), torch.device("cpu"))
    return g, t


@pytest.mark.parametrize(
    "kind",
    [
        dict(),
        dict(preset="cgan-mnist", num_classes=10),
        WGAN_GP | dict(n_critic=2),
    ],
    ids=["mlp", "cgan", "wgan-gp"],
)
def test_both_loops_train_the_same_networks_on_the_same_batch(kind):
    config = tiny_config(**kind)
    g, t = loops(config)
    (gG, gD), (tG, tD) = g.networks, t.networks
    for a, b in ((gG, tG), (gD, tD)):
        assert type(a) is type(b)
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed: same initial weights too
    assert t.loader.batch_size == config.batch_size == g.trainer.data.batch_size
    imgs, _ = next(iter(t.loader))
    x, _ = next(g.trainer.data.epoch(0))
    assert imgs.shape == x.shape and imgs.dtype == x.dtype
    assert (
        imgs.min() >= -1 and imgs.max() <= 1 and x.min() >= -1 and x.max() <= 1
    )  # the same [-1, 1] range

    before = [
        p.detach().clone()
        for p in (*gG.parameters(), *gD.parameters(), *tG.parameters(), *tD.parameters())
    ]
    assert g.run(2) == t.run(2) == 2 * config.n_critic * config.batch_size
    after = [*gG.parameters(), *gD.parameters(), *tG.parameters(), *tD.parameters()]
    assert all(
        not torch.equal(a, b) for a, b in zip(before, after)
    )  # every tensor of G and D trained
    assert len(t.losses_d) == 2 * config.n_critic and len(t.losses_g) == 2  # .item() on every step
    assert g.trainer.step == 2 * config.n_critic


def test_both_loops_do_the_same_work_per_image():
    g, t = loops(tiny_config())
    fg, ft = count_flops(g.one_cycle), count_flops(t.one_cycle)
    assert fg > 0 and abs(fg - ft) / ft < 0.05


def test_tutorial_loop_uses_sigmoid_and_bce_loss_with_default_optimizers():
    _, t = loops(tiny_config())
    assert isinstance(t.D.sigmoid, nn.Sigmoid) and isinstance(t.criterion, nn.BCELoss)
    assert not t.opt_d.param_groups[0]["fused"] and not t.opt_d.param_groups[0]["foreach"]
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert torch.equal(t.D(x), torch.sigmoid(t.D_logits(x)))  # the probabilities of gankit's logits


def test_speed_variants_on_a_cpu():
    mlp = speed_variants(torch.device("cpu"), tiny_config())
    assert (
        "torch.compile" not in mlp and "channels_last off" not in mlp
    )  # channels_last is for convolutions
    assert ("bf16 autocast" in mlp) == cpu_supports_bf16()
    cfg = tiny_config(model="dcgan", image_size=32, g_width=8, d_width=8)
    conv = speed_variants(torch.device("cpu"), cfg)
    t = tiny_trainer(cfg)
    assert t.D.features[0].weight.is_contiguous(
        memory_format=torch.channels_last
    )  # the default for convolutions
    conv["channels_last off"](t)
    assert t.D.features[0].weight.is_contiguous() and t.G.net[0].weight.is_contiguous()
    x, y = next(t.data.epoch(0))
    t.train_step(x, y)  # trains in the old layout
    cuda = speed_variants(
        torch.device("cuda"), cfg
    )  # no default change on CUDA: the variant turns it on
    assert "channels_last" in cuda and "channels_last off" not in cuda and "torch.compile" in cuda


def test_bf16_autocast_variant_trains_in_bf16():
    """The wrapped step really runs its matmuls in bf16 (and still updates fp32 weights)."""
    cfg = tiny_config()
    t = tiny_trainer(cfg)
    seen = []
    t.D.features[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = t.G.net[0].weight.detach().clone()
    speed_variants(torch.device("cuda"), cfg)[
        "bf16 autocast"
    ]  # exists for CUDA whatever this machine has
    if not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16; the variant is not offered here")
    speed_variants(torch.device("cpu"), cfg)["bf16 autocast"](t)
    x, y = next(t.data.epoch(0))
    t.train_step(x, y)
    assert torch.bfloat16 in seen and t.G.net[0].weight.dtype == torch.float32
    assert not torch.equal(before, t.G.net[0].weight)


@pytest.mark.parametrize(
    "load, policy, advice",
    [
        (5.0, None, "OMP_WAIT_POLICY=PASSIVE set"),  # busy, spinning threads: advise PASSIVE
        (0.5, "passive", "unset it"),  # idle, sleeping threads: advise the default
        (0.5, None, None),
        (5.0, "PASSIVE", None),
        (0.5, "ACTIVE", None),
    ],
)
def test_wait_policy_note_fits_the_load(load, policy, advice):
    note = wait_policy_note(load, 2, policy)
    if advice is None:
        assert note is None
    else:
        assert advice in note and f"load average {load:.1f} on 2 CPUs" in note


def test_bench_refuses_smoke_sizes_before_measuring(capsys):
    from gankit.bench.throughput import main
    from gankit.config import ConfigError

    with pytest.raises(ConfigError, match="'cpu' or 'full'"):
        main(device="cpu", presets=["mlp-mnist"], profile="smoke")
    assert "gankit bench on" not in capsys.readouterr().out  # it stopped before timing anything


def test_joint_discriminator_call_only_without_batch_statistics():
    mlp = build_models(tiny_config())[1]
    critic = build_models(
        tiny_config(model="dcgan", image_size=32, d_width=8, g_width=8, d_norm="layer")
    )[1]
    bn = build_models(
        tiny_config(model="dcgan", image_size=32, d_width=8, g_width=8, d_norm="batch")
    )[1]
    assert scores_per_sample(mlp) and scores_per_sample(critic)
    assert not scores_per_sample(bn)
    assert not scores_per_sample(
        nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    )  # randomness: not per sample


@pytest.mark.parametrize(
    "kind", [dict(), dict(preset="cgan-mnist", num_classes=10)], ids=["mlp", "cgan"]
)
def test_joint_discriminator_step_equals_two_separate_calls(kind):
    config = tiny_config(**kind)
    a, b = tiny_trainer(config), tiny_trainer(config)
    b.one_d_call = False
    assert a.one_d_call
    x, y = next(a.data.epoch(0))
    for t in (a, b):
        torch.manual_seed(1)
        t.train_step(x, y)
    for p, q in zip((*a.G.parameters(), *a.D.parameters()), (*b.G.parameters(), *b.D.parameters())):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a._sums, b._sums, rtol=1e-5, atol=1e-6)


def test_loading_optimizer_state_keeps_the_kernel_choice():
    t = tiny_trainer(tiny_config())
    x, y = next(t.data.epoch(0))
    t.train_step(x, y)
    state = t.opt_d.state_dict()
    fused = t.opt_d.param_groups[0]["fused"]
    state["param_groups"] = [
        {**g, "fused": None, "foreach": None} for g in state["param_groups"]
    ]  # an older run
    load_optimizer_state(t.opt_d, state)
    assert t.opt_d.param_groups[0]["fused"] == fused
    t.train_step(x, y)  # and it still steps


def test_table_states_each_target():
    rows = [
        dict(
            preset="mlp-mnist",
            loop="gankit",
            widths="28px, h=256",
            batch=64,
            n_critic=1,
            **{
                "MFLOP/img": 11.3,
                "img/s": 2000.0,
                "vs tutorial": 2.1,
                "GFLOP/s": 22.6,
                "rate kind": "matmul",
                "of device rate": 0.5,
                "repeats": 9,
            },
        ),
        dict(
            preset="dcgan-mnist",
            loop="gankit",
            widths="32px, w=32",
            batch=64,
            n_critic=1,
            **{
                "MFLOP/img": 104.0,
                "img/s": 200.0,
                "vs tutorial": 0.97,
                "GFLOP/s": 20.8,
                "rate kind": "conv",
                "of device rate": 0.85,
                "repeats": 9,
            },
        ),
    ]
    assert verdict(rows[0]) == "met: >= 2x tutorial"
    assert verdict(rows[1]) == "met: >= 80% conv rate; MISSED: >= tutorial"
    # the default loop's row carries what its kernels alone
    # reach: a missed target shows whether it is reachable
    assert (
        verdict({**rows[0], "vs tutorial": 1.5, "ceiling": 2.31})
        == "MISSED: >= 2x tutorial (kernels alone: 2.31x)"
    )
    assert verdict({**rows[1], "of device rate": 0.7, "ceiling": 0.76}) == (
        "MISSED: >= 80% conv rate (kernels alone: 76%); MISSED: >= tutorial"
    )
    assert verdict({**rows[1], "loop": "kernels only"}) == ""  # the bound itself has no target
    md = to_markdown(table(rows))
    assert (
        md.splitlines()[0].startswith("| preset | loop |")
        and "| 2.10x |" in md
        and "85% of conv" in md
    )


def test_bench_pins_the_malloc_thresholds_where_glibc_allows():
    import platform
    import sys

    from gankit.bench.throughput import pin_malloc_thresholds

    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert (
        pin_malloc_thresholds() == glibc
    )  # mallopt accepted both values on glibc; elsewhere nothing is changed


@needs_mnist
def test_a_preset_is_measured_beside_its_kernels_alone():
    from gankit.bench.throughput import Settings, measure_preset

    tiny = Settings(repeats=1, chunk_s=0.01, warmup_s=0.01, budget_s=0.1, min_repeats=1)
    rows = measure_preset(
        "mlp-mnist", torch.device("cpu"), tiny, profile="cpu", variants=False, log=lambda s: None
    )
    assert [r["loop"] for r in rows] == ["gankit", "tutorial", "kernels only"]
    gankit, tutorial, kernels = rows
    assert kernels["MFLOP/img"] == gankit["MFLOP/img"]  # the replay is the gankit step's own work
    assert gankit["ceiling"] == kernels["vs tutorial"] and "ceiling" not in tutorial
    assert f"kernels alone: {kernels['vs tutorial']:.2f}x" in verdict(gankit)
    without = measure_preset(
        "mlp-mnist",
        torch.device("cpu"),
        tiny,
        profile="cpu",
        variants=False,
        ceiling=False,
        log=lambda s: None,
    )
    assert [r["loop"] for r in without] == ["gankit", "tutorial"] and "ceiling" not in without[0]
