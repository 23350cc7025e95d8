"""Lesson 04: GAN tricks (minibatch discrimination, feature matching), genre metrics, sampling.

`gankit sample` is tested end to end.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import synthetic, tiny_config, tiny_trainer
from PIL import Image

from gankit.checkpoints import CheckpointError, load_checkpoint
from gankit.cli import main
from gankit.config import ConfigError, make_config
from gankit.datasets.posters import GENRES
from gankit.datasets.toy_posters import make_toy
from gankit.genre_metrics import conditioning_report, genre_scores, split_indices
from gankit.lesson import setup
from gankit.models import DCGANDiscriminator, MLPDiscriminator, build_models
from gankit.train import Trainer
from gankit.tricks import (
    FeatureMatching,
    MinibatchDiscrimination,
    add_minibatch_discrimination,
    discriminator_features,
    feature_matching_loss,
)


# ------------------------------------------------------------------------- minibatch discrimination
def naive_minibatch_features(
    f: torch.Tensor, T: torch.Tensor, kernels: int, kernel_dim: int
) -> torch.Tensor:
    """The paper's definition, pair by pair: the reference the vectorised module must match."""
    m = (f @ T).view(f.shape[0], kernels, kernel_dim)
    o = torch.zeros(f.shape[0], kernels)
    for i in range(f.shape[0]):
        for j in range(f.shape[0]):
            if i != j:
                o[i] += torch.exp(-(m[i] - m[j]).abs().sum(1))
    return torch.cat([f, o], 1)


@pytest.mark.parametrize("n,a,b,c", [(5, 7, 3, 2), (2, 16, 100, 4)])
def test_minibatch_discrimination_matches_naive_loop(n, a, b, c):
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(a, b, c, init_std=0.3)
    f = torch.randn(n, a)
    out = mbd(f)
    assert out.shape == (n, a + b)
    torch.testing.assert_close(
        out, naive_minibatch_features(f, mbd.T.detach(), b, c), rtol=1e-5, atol=1e-6
    )
    assert torch.equal(out[:, :a], f)  # the input features pass through unchanged


def test_minibatch_discrimination_sees_the_rest_of_the_batch():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(8, 10, 4, init_std=0.3)
    f = torch.randn(6, 8)
    g = f.clone()
    g[3] += 1.0  # change one other sample
    a, b = mbd(f), mbd(g)
    assert not torch.allclose(
        a[0], b[0]
    )  # sample 0's batch features move: that is the trick's point
    # identical samples are maximally similar: each o_b = (N - 1) * exp(0)
    same = mbd(f[:1].expand(4, -1))
    torch.testing.assert_close(same[:, 8:], torch.full((4, 10), 3.0))
    # alone in its batch, a sample has nobody to compare with
    assert torch.equal(mbd(f[:1])[:, 8:], torch.zeros(1, 10))


def test_minibatch_discrimination_is_differentiable_and_vectorised_at_batch_64():
    mbd = MinibatchDiscrimination(512, 100, 4)
    f = torch.randn(64, 512, requires_grad=True)
    mbd(f).sum().backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and mbd.T.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["mlp", "dcgan"])
def test_add_minibatch_discrimination_widens_the_head(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        D, x = MLPDiscriminator((1, 28, 28), 16, num_classes=10), torch.randn(5, 1, 28, 28)
        width = 16
    else:
        D, x = DCGANDiscriminator(32, 1, 8, num_classes=10), torch.randn(5, 1, 32, 32)
        width = 4 * 8 * 4 * 4  # (B, 4w, 4, 4) flattened
    y = torch.arange(5)
    add_minibatch_discrimination(D, kernels=12, kernel_dim=3)
    assert D(x, y).shape == (5,)
    assert D.head[-1].in_features == width + 12
    x2 = x.clone()
    x2[4] = -x2[4]
    assert not torch.allclose(D(x, y)[0], D(x2, y)[0])  # scores now depend on the other samples


def test_config_switch_builds_it_and_refuses_a_gradient_penalty():
    cfg = make_config("cgan-mnist", "smoke", minibatch_disc=True, hidden_dim=16)
    _, D = build_models(cfg)
    assert any(isinstance(m, MinibatchDiscrimination) for m in D.modules())
    with pytest.raises(ConfigError, match="gradient penalty"):
        build_models(make_config("poster-cgan", "smoke", minibatch_disc=True))
    with pytest.raises(TypeError, match="head"):
        add_minibatch_discrimination(nn.Linear(3, 1))


# ------------------------------------------------------------------------------- feature matching
def test_feature_matching_loss_closed_form():
    f_real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    f_fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # mean (1, 1)
    assert feature_matching_loss(f_real, f_fake).item() == pytest.approx(1.0 + 4.0)
    assert feature_matching_loss(f_real, f_real.flip(0)).item() == 0.0  # same mean, other order
    assert feature_matching_loss(f_real, f_real + 0.1).item() > 0


@pytest.mark.parametrize("mode", ["concat", "projection"])
def test_feature_matching_term_on_a_discriminator(mode):
    torch.manual_seed(0)
    cfg = tiny_config(preset="cgan-mnist", num_classes=10, cond_mode=mode)
    trainer = tiny_trainer(cfg)
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    y = torch.arange(8) % 10
    feats = discriminator_features(trainer.D, x, y)
    assert feats.shape == (8, cfg.hidden_dim)
    term = FeatureMatching(2.0)
    assert term(trainer.D, x, x.clone(), y).item() == 0.0
    x_fake = (x * 0.5).requires_grad_(True)
    loss = term(trainer.D, x, x_fake, y)
    assert loss.item() > 0
    loss.backward()
    assert x_fake.grad.abs().sum() > 0  # the gradient reaches the generator's output


def test_setup_turns_the_options_into_tricks(toy_root):
    common = dict(
        profile="smoke",
        data_path=str(toy_root),
        device="cpu",
        run_dir=None,
        progress=False,
        epochs=1,
        steps_per_epoch=1,
        batch_size=16,
        subset=None,
    )
    trainer = setup("poster-cgan", feature_matching=0.5, **common)
    assert (
        isinstance(trainer.objective.g_extra, FeatureMatching)
        and trainer.objective.g_extra.weight == 0.5
    )
    trainer.fit()  # the term runs inside a WGAN-GP generator step
    trainer = setup(
        "poster-cgan",
        minibatch_disc=True,
        loss="bce",
        gp_weight=0.0,
        n_critic=1,
        d_norm="batch",
        **common,
    )
    assert trainer.objective.g_extra is None and isinstance(
        trainer.D.head[1], MinibatchDiscrimination
    )
    trainer.fit()  # and minibatch discrimination in a DCGAN discriminator
    assert len(trainer.history) == 1
    with pytest.raises(ValueError, match="> 0"):
        FeatureMatching(0.0)


def test_feature_matching_survives_a_checkpoint(tmp_path):
    """A resumed or reloaded run trains with its original objective: the term follows the config."""
    images, labels = synthetic(64, classes=10)
    cfg = tiny_config(preset="cgan-mnist", num_classes=10, feature_matching=0.5, epochs=1)
    straight = tiny_trainer(cfg.replace(epochs=2), images=images, labels=labels)
    assert isinstance(straight.objective.g_extra, FeatureMatching)
    straight.fit()
    first = tiny_trainer(cfg, run_dir=tmp_path / "r", images=images, labels=labels)
    first.fit()
    source = tiny_trainer(cfg, images=images, labels=labels).data
    again = Trainer.from_checkpoint(
        tmp_path / "r" / "checkpoints" / "last.pt", source, device="cpu", progress=False
    )
    assert (
        isinstance(again.objective.g_extra, FeatureMatching)
        and again.objective.g_extra.weight == 0.5
    )
    again.fit(2)
    for a, b in zip(straight.G.parameters(), again.G.parameters()):
        assert torch.equal(a, b)  # without the term after reloading, the G weights would differ


def test_checkpoint_with_minibatch_discrimination_needs_the_same_option(tmp_path):
    images, labels = synthetic(64, classes=10)
    cfg = tiny_config(preset="cgan-mnist", num_classes=10, minibatch_disc=True, epochs=1)
    tiny_trainer(cfg, run_dir=tmp_path / "r", images=images, labels=labels).fit()
    plain = tiny_trainer(cfg.replace(minibatch_disc=False), images=images, labels=labels)
    with pytest.raises(CheckpointError, match="minibatch_disc: saved True vs now False"):
        plain.resume(tmp_path / "r" / "checkpoints" / "last.pt")


# ---------------------------------------------------------------------------------- genre metrics
def test_split_indices_disjoint_and_complete():
    tr, te = split_indices(100, 0.2, seed=1)
    assert len(te) == 20 and len(tr) == 80
    assert sorted(torch.cat([tr, te]).tolist()) == list(range(100))
    assert torch.equal(split_indices(100, 0.2, seed=1)[1], te)


def test_genre_scores_perfect_and_shuffled():
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(2000, 5, generator=g) < 0.3).float()
    names = ["a", "b", "c", "d", "e"]
    perfect = genre_scores(target * 0.8 + 0.1, target, names)
    assert np.allclose(perfect["auc"], 1.0) and np.allclose(perfect["ap"], 1.0)
    shuffled = genre_scores(target[torch.randperm(2000, generator=g)], target, names)
    assert np.allclose(shuffled["auc"], 0.5, atol=0.03)
    assert np.allclose(
        shuffled["ap"], shuffled["prevalence"], atol=0.05
    )  # chance AP is the genre's frequency
    rare = target.clone()
    rare[:, 2] = 0
    rare[:3, 2] = 1
    assert "c" not in genre_scores(rare, rare, names, min_positives=10)["genre"].tolist()


class _PixelReader(nn.Module):
    """A stand-in genre classifier that reads genre j from pixel (0, 0, j) of the image."""

    num_genres, feature_dim = 6, 6

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def features(self, x):
        return x[:, 0, 0, :6].clamp_min(0)

    def forward(self, x):
        return self.scale * x[:, 0, 0, :6]


def test_conditioning_report_ceiling_generated_and_chance():
    g = torch.Generator().manual_seed(0)
    genres = (torch.rand(600, 6, generator=g) < 0.4).float()
    images = -torch.ones(600, 3, 8, 8)
    images[:, 0, 0, :6] = genres * 2 - 1  # posters that show their genres
    report = conditioning_report(
        _PixelReader(), images, genres, images.clone(), [f"g{i}" for i in range(6)]
    )
    s = report["summary"]
    assert s["mean ROC-AUC"].iloc[0] == pytest.approx(1.0) and s["mean ROC-AUC"].iloc[
        1
    ] == pytest.approx(1.0)
    assert abs(s["mean ROC-AUC"].iloc[2] - 0.5) < 0.06
    assert list(report["per_genre"].columns[:3]) == ["genre", "positives", "prevalence"]
    with pytest.raises(ValueError, match="each of the 600"):
        conditioning_report(
            _PixelReader(), images, genres, images[:10], [f"g{i}" for i in range(6)]
        )


# ---------------------------------------------------------------------------- `gankit sample` CLI
@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy(root, n=70, seed=0, broken=0.0)
    return root


@pytest.fixture(scope="module")
def poster_checkpoint(toy_root, tmp_path_factory):
    """A poster-cgan checkpoint smoke-trained 2 steps on 70 toy posters (setup() end to end)."""
    run = tmp_path_factory.mktemp("run")
    trainer = setup(
        "poster-cgan",
        profile="smoke",
        data_path=str(toy_root),
        device="cpu",
        run_dir=run,
        progress=False,
        epochs=1,
        steps_per_epoch=2,
        batch_size=16,
        subset=None,
    )
    trainer.fit()
    assert trainer.config.label_names == GENRES
    return run / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def digit_checkpoint(tmp_path_factory):
    images, labels = synthetic(64, classes=10)
    run = tmp_path_factory.mktemp("cgan")
    trainer = tiny_trainer(
        tiny_config(preset="cgan-mnist", num_classes=10), run_dir=run, images=images, labels=labels
    )
    trainer.fit()
    return run / "checkpoints" / "last.pt"


def test_sample_genres_png_and_npz(poster_checkpoint, tmp_path, capsys):
    png = tmp_path / "x.png"
    assert (
        main(
            [
                "sample",
                str(poster_checkpoint),
                "--genres",
                "Horror,Sci-Fi",
                "--n",
                "8",
                "--out",
                str(png),
            ]
        )
        == 0
    )
    size = load_checkpoint(poster_checkpoint)["config"]["image_size"]
    assert (
        Image.open(png).size == (3 * (size + 2) + 2,) * 2
    )  # 8 posters: a 3x3 grid with 2 px padding
    npz = tmp_path / "x.npz"
    # case and spacing do not matter, '|' works like ','
    assert (
        main(
            [
                "sample",
                str(poster_checkpoint),
                "--genres",
                " horror | SCI-FI ",
                "--n",
                "4",
                "--out",
                str(npz),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    data = np.load(npz)
    assert data["images"].shape == (4, 3, size, size) and data["images"].dtype == np.uint8
    chosen = [str(n) for n in data["genre_names"][data["genres"][0].astype(bool)]]
    assert chosen == ["Horror", "Sci-Fi"] and (data["genres"] == data["genres"][0]).all()
    again = tmp_path / "y.npz"
    main(
        [
            "sample",
            str(poster_checkpoint),
            "--genres",
            "Horror,Sci-Fi",
            "--n",
            "4",
            "--out",
            str(again),
            "--seed",
            "3",
        ]
    )
    assert np.array_equal(
        np.load(again)["images"], data["images"]
    )  # same seed, same genres: same posters


def test_sample_unknown_genre_lists_the_valid_ones(poster_checkpoint, tmp_path, capsys):
    rc = main(
        [
            "sample",
            str(poster_checkpoint),
            "--genres",
            "Horror,Horor",
            "--n",
            "2",
            "--out",
            str(tmp_path / "x.png"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "unknown genre 'Horor'" in err and "Did you mean 'Horror'" in err
    assert all(g in err for g in GENRES) and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
    assert (
        main(["sample", str(poster_checkpoint), "--n", "2", "--out", str(tmp_path / "x.png")]) == 2
    )
    assert "pass --genres" in capsys.readouterr().err


def test_sample_labels_on_the_digit_model(digit_checkpoint, tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert (
        main(["sample", str(digit_checkpoint), "--labels", "3,3,7", "--n", "7", "--out", str(out)])
        == 0
    )
    data = np.load(out)
    assert data["labels"].tolist() == [3, 3, 7, 3, 3, 7, 3]  # cycled to --n
    assert data["images"].shape == (7, 1, 28, 28)
    rc = main(["sample", str(digit_checkpoint), "--labels", "3,10", "--n", "2", "--out", str(out)])
    assert rc == 2 and "0..9" in capsys.readouterr().err
    rc = main(["sample", str(digit_checkpoint), "--labels", "three", "--n", "2", "--out", str(out)])
    assert rc == 2 and "comma-separated integers" in capsys.readouterr().err


def test_sample_refuses_the_other_kind_of_condition(
    digit_checkpoint, poster_checkpoint, tmp_path, capsys
):
    out = tmp_path / "x.png"
    rc = main(
        ["sample", str(digit_checkpoint), "--genres", "Horror", "--n", "2", "--out", str(out)]
    )
    assert rc == 2 and "not genres: use --labels" in capsys.readouterr().err
    rc = main(["sample", str(poster_checkpoint), "--labels", "3", "--n", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "not class ids: use --genres" in err and "Sci-Fi" in err
    assert not out.exists()


@pytest.mark.parametrize("n", ["0", "-3"])
def test_sample_needs_at_least_one(digit_checkpoint, tmp_path, capsys, n):
    rc = main(["sample", str(digit_checkpoint), "--n", n, "--out", str(tmp_path / "x.png")])
    assert rc == 2 and "--n must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------- widgets
def test_genre_picker_draws_on_change(poster_checkpoint):
    pytest.importorskip("ipywidgets")
    from gankit.train import Trainer
    from gankit.widgets import genre_picker

    trainer = Trainer.from_checkpoint(poster_checkpoint, run_dir=None, progress=False)
    box = genre_picker(trainer, n=4, genres=("Horror",), show=False)
    first = box.images.clone()
    assert first.shape == (4, 3, trainer.config.image_size, trainer.config.image_size)
    box.controls["genres"].value = ("Comedy", "Romance")
    assert not torch.equal(box.images, first)
    assert (
        box.condition[0, GENRES.index("Comedy")] == 1
        and box.condition[0, GENRES.index("Horror")] == 0
    )
    box.controls["seed"].value = 5
    box.controls[
        "temperature"
    ].value = 0.0  # T = 0: every sample is the mean latent, so all are alike
    assert torch.allclose(box.images[0], box.images[1])
    box.controls["genres"].value = ()
    assert "choose at least one genre" in box.children[-2].value


def test_picker_shows_the_grid_as_a_png_without_output_capture(digit_checkpoint):
    """The grid is a PNG Image widget (no Output widget: nbclient can hang on captured output)."""
    widgets = pytest.importorskip("ipywidgets")
    import io

    from gankit.train import Trainer
    from gankit.viz import png_grid
    from gankit.widgets import digit_picker

    trainer = Trainer.from_checkpoint(digit_checkpoint, run_dir=None, progress=False)
    box = digit_picker(trainer, n=4, digit=3)
    caption, picture = box.children[-2:]
    assert isinstance(picture, widgets.Image) and not any(
        isinstance(c, widgets.Output) for c in box.children
    )
    assert picture.value == png_grid(box.images) and "class 3" in caption.value
    box.controls["digit"].value = 7
    assert "class 7" in caption.value and picture.value == png_grid(box.images)
    shown = Image.open(io.BytesIO(picture.value))
    side = 2 * 28 + 3 * 2  # a 2x2 grid with 2-pixel padding, enlarged by a whole factor
    assert (
        shown.size[0] % side == 0
        and shown.size[0] == shown.size[1]
        and 420 - side < shown.size[0] <= 420
    )
