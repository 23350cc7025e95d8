"""Trainer: a step lowers the D loss, checkpoints round-trip, resume is exact, errors are clear."""

import json
import math

import pytest
import torch
from helpers import WGAN_GP, synthetic, tiny_config, tiny_trainer, without_bf16_autocast

from gankit.checkpoints import CheckpointError, load_checkpoint
from gankit.losses import d_loss_bce
from gankit.runs import RunLocked, find_run
from gankit.speed import set_memory_format, set_precision
from gankit.train import Trainer, TrainingDiverged


def params(trainer):
    ema = trainer.G_ema.state_dict().values() if trainer.G_ema is not None else ()
    return [
        p.detach().clone()
        for p in (*trainer.G.state_dict().values(), *trainer.D.state_dict().values(), *ema)
        if torch.is_tensor(p)
    ]


def test_one_discriminator_step_lowers_its_loss_on_a_fixed_batch():
    cfg = tiny_config(n_critic=2, lr_d=1e-3)  # step 0 is a D step only: G stays fixed
    t = tiny_trainer(cfg)
    x_real = torch.rand(8, 1, 28, 28) * 2 - 1
    torch.manual_seed(5)
    z = torch.randn(8, cfg.latent_dim)
    with torch.no_grad():
        x_fake = t.G(z)
        before = d_loss_bce(t.D(x_real), t.D(x_fake)).item()
    g_before = [p.clone() for p in t.G.parameters()]
    t.train_step(x_real, None)
    with torch.no_grad():
        after = d_loss_bce(t.D(x_real), t.D(t.G(z))).item()
    assert after < before
    assert all(torch.equal(a, b) for a, b in zip(g_before, t.G.parameters()))


def test_generator_steps_every_n_critic_batches():
    cfg = tiny_config(n_critic=3)
    t = tiny_trainer(cfg)
    changes = []
    for i in range(6):
        g_before = [p.clone() for p in t.G.parameters()]
        x, _ = next(t.data.epoch(0, i % 4))
        t.train_step(x, None)
        changes.append(not all(torch.equal(a, b) for a, b in zip(g_before, t.G.parameters())))
    assert changes == [False, False, True, False, False, True]


def test_history_columns_and_run_folder(tmp_path):
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "run")
    h = t.fit()
    assert list(h.columns) == ["step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "seconds"]
    assert h["step"].tolist() == [2, 4, 6, 8]
    assert h["seconds"].is_monotonic_increasing
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["latent_dim"] == 8
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch_0001.png",
        "epoch_0002.png",
    ]
    assert (run / "checkpoints" / "last.pt").exists() and (run / "history.csv").exists()
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    assert not (run / ".lock").exists()


def test_history_logs_golden_values_for_a_discriminator_without_opinion():
    """D's head zeroed and lr_d = 0: D outputs logit 0 for everything, so every logged row is
    loss_d = 2 log 2, loss_g = log 2 (non-saturating) and D(x) = D(G(z)) = 1/2 exactly."""
    t = tiny_trainer(tiny_config(lr_d=0.0))
    with torch.no_grad():
        t.D.head.weight.zero_()
        t.D.head.bias.zero_()
    h = t.fit()
    assert len(h) == 4
    for col, value in (("loss_d", 2 * math.log(2)), ("loss_g", math.log(2)), ("d_real", 0.5)):
        assert h[col].tolist() == pytest.approx([value] * 4, abs=1e-6), col
    assert h["d_fake"].tolist() == pytest.approx([0.5] * 4, abs=1e-6)


def test_the_moving_average_warms_up_then_lags_and_is_what_samples_come_from():
    cfg = tiny_config(ema_decay=0.9, n_critic=1)
    t = tiny_trainer(cfg)
    assert tiny_trainer(tiny_config()).G_ema is None  # off by default
    x, _ = next(t.data.epoch(0))
    t.train_step(x)  # the first update copies G
    g = [p.clone() for p in t.G.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(g, t.G_ema.module.parameters()))
    t.train_step(x)  # then avg += (G - avg) * (1 - min(0.9, (1 + 1) / (10 + 1)))
    keep = 2 / 11
    for old, new, avg in zip(g, t.G.parameters(), t.G_ema.module.parameters()):
        torch.testing.assert_close(avg, old + (new - old) * (1 - keep), rtol=1e-5, atol=1e-7)
    for _ in range(30):
        t.train_step(x)
    assert int(t.G_ema.n_averaged) == 32  # warm-up over: the weight of the old average is 0.9
    ema, raw = t.sample(4, seed=1), t.sample(4, seed=1, raw=True)
    assert t.G.training and t.G_ema.module.training  # sampling restores the training mode
    with torch.no_grad():
        z = t.noise(4, torch.Generator().manual_seed(1))
        assert torch.equal(ema, t.G_ema.module.eval()(z)) and torch.equal(raw, t.G.eval()(z))
    assert not torch.equal(ema, raw)
    assert all(not p.requires_grad for p in t.G_ema.parameters())


def test_checkpoint_round_trip(tmp_path):
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "run")
    t.fit(1)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    for key in ("G", "D", "opt_g", "opt_d", "step", "config", "fixed_noise", "rng", "version"):
        assert key in ckpt
    t2 = Trainer.from_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.pt", run_dir=None, progress=False
    )
    assert t2.step == t.step == 4 and t2.epoch == 1
    assert all(torch.equal(a, b) for a, b in zip(params(t), params(t2)))
    assert torch.equal(t2.fixed_noise, t.fixed_noise)


@pytest.mark.parametrize(
    "kind",
    [
        dict(),
        dict(preset="dcgan-mnist", model="dcgan", image_size=32, g_width=8, d_width=8),
        WGAN_GP | dict(n_critic=3),
        dict(preset="cgan-mnist", num_classes=10),
        dict(precision="bf16"),
        WGAN_GP | dict(n_critic=3, precision="bf16"),
        dict(ema_decay=0.9),
        dict(
            preset="dcgan-mnist", model="dcgan", image_size=32, g_width=8, d_width=8, ema_decay=0.9
        ),
    ],
    ids=["mlp", "dcgan", "wgan-gp", "cgan", "mlp-bf16", "wgan-gp-bf16", "mlp-ema", "dcgan-ema"],
)
@pytest.mark.filterwarnings("ignore:.*no native bf16 units")  # emulated bf16 is slow, not wrong
def test_exact_resume_mid_epoch(tmp_path, kind):
    """N steps, save, load, N more == 2N straight (CPU, same seed); the save falls mid-epoch."""
    cfg = tiny_config(checkpoint_every=3, **kind)
    straight = tiny_trainer(cfg, run_dir=tmp_path / "a")
    straight.fit(2)

    first = tiny_trainer(cfg, run_dir=tmp_path / "b")
    first.fit(1)  # 4 steps; a step checkpoint was written at step 3
    ckpt = tmp_path / "b" / "checkpoints" / "step_00000003.pt"
    torch.manual_seed(999)  # whatever happens in between must not matter
    _ = torch.randn(100)
    images, labels = synthetic(64, cfg.channels, cfg.image_size, cfg.num_classes)
    resumed = tiny_trainer(cfg, run_dir=tmp_path / "c", images=images, labels=labels)
    resumed.resume(ckpt)
    assert resumed.step == 3 and resumed.batch_in_epoch == 3
    resumed.fit(2)
    assert resumed.step == straight.step == 8
    assert all(torch.equal(a, b) for a, b in zip(params(straight), params(resumed)))
    cols = ["step", "loss_d", "loss_g", "d_real", "d_fake"]
    assert resumed.history[cols].equals(straight.history[cols])


CONV = dict(preset="dcgan-mnist", model="dcgan", image_size=32, g_width=8, d_width=8)


def test_conv_models_train_in_channels_last_with_the_same_result():
    """channels_last (the CPU conv default) changes the layout only: same step to float rounding."""
    fast, plain = tiny_trainer(tiny_config(**CONV)), tiny_trainer(tiny_config(**CONV))
    assert fast.memory_format is torch.channels_last
    set_memory_format(plain, torch.contiguous_format)
    assert all(torch.equal(a, b) for a, b in zip(params(fast), params(plain)))
    for t in (fast, plain):
        torch.manual_seed(0)  # the same latents for both
        x, y = next(t.data.epoch(0))
        for _ in range(3):
            t.train_step(x, y)
    assert fast.G.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.G.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(params(fast), params(plain)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not all(
        torch.equal(a, b) for a, b in zip(params(fast), params(tiny_trainer(tiny_config(**CONV))))
    )
    assert fast.sample(4, seed=0).is_contiguous()  # callers get plain NCHW images
    assert tiny_trainer(tiny_config()).memory_format is torch.contiguous_format  # MLPs keep theirs


def test_channels_first_checkpoint_resumes_in_channels_last(tmp_path):
    """A checkpoint older than the channels_last default loads; Adam's moments follow the layout."""
    old = tiny_trainer(tiny_config(**CONV))
    set_memory_format(old, torch.contiguous_format)
    old.fit(1)
    old.save_checkpoint(tmp_path / "old.pt")
    new = tiny_trainer(tiny_config(**CONV))
    new.resume(tmp_path / "old.pt")
    assert all(torch.equal(a, b) for a, b in zip(params(old), params(new)))
    for p, state in new.opt_d.state.items():
        assert (
            state["exp_avg"].stride() == p.stride() and state["exp_avg_sq"].stride() == p.stride()
        )
    new.fit(2)
    assert new.step == 8 and all(torch.isfinite(p).all() for p in params(new))


def test_metrics_logged_after_fit_keep_the_run_finished(tmp_path):
    """Lesson 04 scores its poster runs after training: the run must still read as finished."""
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "run")
    t.log_metrics({"fid": 9.0})  # before fit: in progress
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "running"
    t.fit(1)
    t.log_metrics({"genre_roc_auc": 0.8})
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (
        doc["status"] == "finished"
        and doc["final"]["genre_roc_auc"] == 0.8
        and len(doc["evaluations"]) == 2
    )


@pytest.mark.filterwarnings("ignore:.*no native bf16 units")
def test_bf16_precision_runs_forward_passes_in_bf16_and_is_recorded(tmp_path):
    """precision="bf16": D's layers compute in bf16, weights and gradients stay fp32, the update
    matches the fp32 one up to Adam's first-step bound, and config.json / the checkpoint say how the
    run was trained."""
    fp32 = tiny_trainer(tiny_config())
    bf16 = tiny_trainer(tiny_config(precision="bf16"), run_dir=tmp_path / "run")
    seen = []
    bf16.D.features[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    assert all(torch.equal(a, b) for a, b in zip(params(fp32), params(bf16)))  # the same start
    x, y = next(fp32.data.epoch(0))
    torch.manual_seed(0)
    fp32.train_step(x, y)
    torch.manual_seed(0)
    bf16.train_step(x, y)
    assert seen and set(seen) == {torch.bfloat16}
    assert all(
        p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in bf16.G.parameters()
    )
    diffs = [(a - b).abs().max().item() for a, b in zip(params(fp32), params(bf16))]
    # Adam's first update is lr * g / (|g| + eps): at most lr per weight, whatever the precision
    # of g; so one step apart the runs differ by at most 2 lr, and they differ (bf16 rounds the
    # gradients)
    assert 0 < max(diffs) <= 2 * bf16.config.lr_d + 1e-7
    assert bf16.sample(4).dtype == torch.float32  # sampling and evaluation stay fp32
    bf16.save_checkpoint()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16"
    assert (
        load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["config"]["precision"]
        == "bf16"
    )


def test_unknown_or_unavailable_precision_says_what_to_use(monkeypatch):
    from gankit.config import ConfigError

    with pytest.raises(ConfigError, match="precision='fp16' is not one of fp32, bf16"):
        tiny_config(precision="fp16")
    t = tiny_trainer(tiny_config())
    with pytest.raises(ConfigError, match="precision='half' is not one of"):
        set_precision(t, "half")

    without_bf16_autocast(monkeypatch)
    with pytest.raises(
        ConfigError, match=r"precision='bf16' is not available on cpu .*use precision='fp32'"
    ):
        set_precision(t, "bf16")
    assert t.config.precision == "fp32"  # refused, not half-applied
    # a bf16-trained model on such a device: built and sampled (fp32) without complaint, refused
    # only to train
    b = tiny_trainer(tiny_config(precision="bf16"))
    assert b.sample(2).shape[0] == 2
    with pytest.raises(ConfigError, match="precision='bf16' is not available"):
        b.fit(1)
    assert b.step == 0


@pytest.mark.filterwarnings("ignore:.*no native bf16 units")
def test_set_precision_leaves_a_shared_config_alone():
    """gankit bench builds its default loop and its bf16 variant from one config object: switching
    the variant must not switch the default loop too."""
    cfg = tiny_config()
    default, variant = tiny_trainer(cfg), tiny_trainer(cfg)
    set_precision(variant, "bf16")
    assert (
        variant.config.precision == "bf16"
        and default.config.precision == "fp32"
        and cfg.precision == "fp32"
    )
    seen = []
    default.D.features[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    default.train_step(*next(default.data.epoch(0)))
    assert set(seen) == {torch.float32}


def test_keep_last_k_checkpoints(tmp_path):
    t = tiny_trainer(
        tiny_config(checkpoint_every=1, keep_checkpoints=2, epochs=1), run_dir=tmp_path / "r"
    )
    t.fit()
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("*.pt"))
    assert names == ["last.pt", "step_00000003.pt", "step_00000004.pt"]


def test_truncated_checkpoint_gives_clear_error_and_keeps_others(tmp_path):
    t = tiny_trainer(tiny_config(checkpoint_every=2), run_dir=tmp_path / "r")
    t.fit(1)
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"last.pt.*truncated or corrupted.*step_00000004.pt"):
        load_checkpoint(last)
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000004.pt")["step"] == 4


def test_checkpoint_from_other_preset_or_architecture_says_what_differs(tmp_path):
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "r")
    t.fit(1)
    other = tiny_trainer(tiny_config(preset="cgan-mnist"))
    with pytest.raises(CheckpointError, match="preset 'mlp-mnist'"):
        other.resume(tmp_path / "r" / "checkpoints" / "last.pt")
    wider = tiny_trainer(tiny_config(hidden_dim=32))
    with pytest.raises(CheckpointError, match="hidden_dim: saved 16 vs now 32"):
        wider.resume(tmp_path / "r" / "checkpoints" / "last.pt")


def test_checkpoint_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


def test_divergence_is_detected_and_names_the_step(tmp_path):
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "r")
    t.fit(1)
    with torch.no_grad():
        for p in t.D.parameters():
            p.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"step 6.*last good checkpoint"):
        t.fit(2)


def test_second_live_trainer_on_same_run_folder_is_refused(tmp_path):
    run = tmp_path / "r"
    t = tiny_trainer(tiny_config(), run_dir=run)
    (run / ".lock").write_text("1")  # pid 1 is always alive
    with pytest.raises(RunLocked, match="in use by another training process"):
        t.fit(1)
    (run / ".lock").write_text("999999999")  # a dead process: stale lock is taken over
    t.fit(1)


def test_sample_is_seeded_and_scaled_by_temperature():
    t = tiny_trainer(tiny_config())
    a, b = t.sample(6, seed=1), t.sample(6, seed=1)
    assert torch.equal(a, b) and a.shape == (6, 1, 28, 28)
    cold = t.sample(6, seed=1, temperature=0.0)
    assert torch.allclose(cold, cold[:1].expand_as(cold), atol=1e-5)  # T = 0: every sample is G(0)


def test_uniform_latent_pitfall_is_an_option_not_a_default():
    t = tiny_trainer(tiny_config(latent="uniform"))
    torch.manual_seed(4)
    z = t.noise(20000)
    torch.manual_seed(4)
    assert torch.equal(z, torch.rand(20000, t.config.latent_dim))  # U[0, 1) instead of N(0, I)
    assert math.isclose(z.mean().item(), 0.5, abs_tol=0.01)
    assert math.isclose(z.var().item(), 1 / 12, abs_tol=0.003)
    assert tiny_config().latent == "normal"
    assert math.isclose(tiny_trainer(tiny_config()).noise(20000).mean().item(), 0.0, abs_tol=0.02)


def test_train_or_load_reuses_only_a_finished_run_with_the_same_config(tmp_path, monkeypatch):
    from helpers import synthetic

    import gankit.lesson as lesson_mod

    images, labels = synthetic(64)

    class FakeDataset:  # setup() without MNIST: the synthetic images stand in
        def __init__(self):
            self.images, self.labels, self.label_names, self.summary = (
                images,
                labels,
                [],
                "synthetic",
            )

    monkeypatch.setattr(lesson_mod, "load_dataset", lambda config, **kw: FakeDataset())
    cfg = tiny_config()
    a = lesson_mod.train_or_load(cfg, runs=tmp_path, progress=False)
    assert a.epoch == 2 and a.run_dir.parent == tmp_path / "mlp-mnist"
    b = lesson_mod.train_or_load(cfg, load=True, runs=tmp_path, progress=False)
    assert b.run_dir == a.run_dir and b.step == a.step  # loaded, not retrained
    assert b.history["loss_d"].equals(a.history["loss_d"])
    c = lesson_mod.train_or_load(cfg.replace(lr_g=1e-3), load=True, runs=tmp_path, progress=False)
    assert c.run_dir != a.run_dir  # another config: a new run, trained
    assert len(list((tmp_path / "mlp-mnist").iterdir())) == 2
    # a run written before the config had a precision field was trained in fp32: it is still found
    saved = json.loads((a.run_dir / "config.json").read_text())
    del saved["precision"]
    (a.run_dir / "config.json").write_text(json.dumps(saved))
    assert find_run(cfg, tmp_path) == a.run_dir
    assert find_run(cfg.replace(precision="bf16"), tmp_path) is None
