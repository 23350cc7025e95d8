"""Tests of gankit.metrics: the shipped classifier, FID/KID, mode coverage, callbacks.

Sample counts are kept small (500 generated or real images per set, the 10k MNIST test
split as reference) so the file runs in seconds; the thresholds are set for those counts.
Tests that need real MNIST skip when GANKIT_DATA does not hold it.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from gankit import classifier, metrics
from gankit.config import GANConfig
from gankit.data import load_mnist, resize_uint8, to_model

# samples per set in these tests (FID/KID are biased at this count; thresholds allow for it)
N = 500


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These tests run many small matrix products (KID's 100 kernel subsets). On a 2-core machine
    # shared with other jobs, torch's second OpenMP thread mostly spin-waits for a core: measured
    # here, one thread needs 15x less CPU time for KID. Restored afterwards for the rest of the
    # session.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mnist():
    """(train, test) MNIST splits, or skip when they are not under GANKIT_DATA."""
    try:
        load_mnist(False, download=False)
    except (
        Exception
    ) as e:  # FileNotFoundError, or ConfigError for a GANKIT_DATA that does not exist
        pytest.skip(
            f"real MNIST is not available under GANKIT_DATA ({type(e).__name__}); set GANKIT_DATA"
        )
    return metrics._mnist_split(True), metrics._mnist_split(False)


@pytest.fixture(scope="module")
def balanced(mnist):
    """N real train digits, N // 10 of each class, with their labels."""
    train, _ = mnist
    idx = torch.cat([torch.nonzero(train.labels == c).flatten()[: N // 10] for c in range(10)])
    return train.images[idx], train.labels[idx]


# ------------------------------------------------------------------------------------- classifier
def test_shipped_weights_are_small_and_load_without_pickle():
    assert classifier.WEIGHTS_PATH.is_file(), (
        "run `gankit metrics train-classifier` and commit the weights"
    )
    assert classifier.WEIGHTS_PATH.stat().st_size < 500_000
    model = classifier.load_classifier("cpu")
    assert not model.training
    x = torch.zeros(3, 1, 28, 28) - 1.0
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, model.feature_dim)


def test_shipped_classifier_reaches_99_percent_on_mnist_test(mnist):
    _, test = mnist
    model = classifier.load_classifier("cpu")
    assert len(test) == 10000
    assert classifier._accuracy(model, test.images, test.labels) >= 0.99


def test_missing_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="gankit metrics train-classifier"):
        classifier.load_classifier("cpu", path=tmp_path / "missing.pt")


def test_shift_augmentation_moves_whole_pixels_and_keeps_background():
    x = torch.full((64, 1, 28, 28), -1.0)
    x[:, 0, 14, 14] = 1.0  # one bright pixel in the middle
    y = classifier._shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(
        y.unique(), torch.tensor([-1.0, 1.0])
    )  # nearest sampling, background padding
    assert torch.equal(
        (y == 1.0).flatten(1).sum(1), torch.ones(64, dtype=torch.long)
    )  # the pixel survives
    rows, cols = torch.nonzero(y[:, 0] == 1.0)[:, 1:].T
    assert ((rows - 14).abs() <= 2).all() and ((cols - 14).abs() <= 2).all()
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # offsets differ per sample


# ------------------------------------------------------------------------------------------ prepare
def test_prepare_maps_uint8_to_model_range():
    x = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    x[:, :, :, 14:] = 255
    y = metrics.prepare(x)
    assert y.dtype == torch.float32 and y.shape == (4, 1, 28, 28)
    assert y[..., :14].eq(-1.0).all() and y[..., 14:].eq(1.0).all()
    assert torch.equal(metrics.prepare(x[:, 0]), y)  # (N, H, W) is read as one channel


def test_prepare_crops_32x32_resizes_other_sizes_and_converts_rgb_to_luma():
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    before = x.clone()
    assert torch.equal(metrics.prepare(x), x[..., 2:30, 2:30])  # the inverse of the 2-px padding
    # other sizes: dark left half, bright right half, both ends kept exactly, an antisymmetric edge
    halves = torch.full((2, 1, 56, 56), -1.0)
    halves[..., 28:] = 1.0
    y = metrics.prepare(halves)
    assert y.shape == (2, 1, 28, 28)
    assert y[..., :13].eq(-1.0).all() and y[..., 15:].eq(1.0).all()
    torch.testing.assert_close(y, -y.flip(-1), rtol=0, atol=1e-5)
    flat = torch.full((2, 1, 56, 56), 0.5)
    assert torch.allclose(metrics.prepare(flat), torch.full((2, 1, 28, 28), 0.5))
    red = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    red[:, 0] = 255
    assert torch.allclose(
        metrics.prepare(red), torch.full((2, 1, 28, 28), 0.299 * 2 - 1), atol=1e-6
    )
    assert torch.equal(x, before)  # input untouched


def test_prepare_rejects_wrong_ranges_and_shapes():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        metrics.prepare(torch.full((2, 1, 28, 28), 255.0))
    with pytest.raises(ValueError, match="channels"):
        metrics.prepare(torch.zeros(2, 2, 28, 28))
    with pytest.raises(TypeError):
        metrics.prepare(torch.zeros(2, 1, 28, 28, dtype=torch.int32))


def test_digits_resized_to_other_sizes_are_still_recognised(mnist):
    _, test = mnist
    x40 = resize_uint8(test.images[:N], 40)
    model = metrics.load_classifier("cpu")
    pred = model(metrics.prepare(to_model(x40))).argmax(1)
    assert (pred == test.labels[:N]).float().mean() >= 0.98


@pytest.mark.parametrize("preset", ["mlp-mnist", "dcgan-mnist", "wgan-gp-mnist", "cgan-mnist"])
def test_real_digits_prepared_as_each_preset_trains_score_near_the_28px_floor(mnist, preset):
    """Like with like: a preset's own training digits (28 px, or padded to 32 px) scored by
    mnist_quality stay within 1.5x of the FID real 28x28 training digits reach (the floor)."""
    from gankit.config import make_config
    from gankit.data import load_dataset

    n = 2000
    floor = metrics.reference_quality(n, seed=0)["fid"]
    ds = load_dataset(make_config(preset, "cpu", subset=None))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n]
    fid = metrics.mnist_quality(ds.images[idx])["fid"]
    assert fid <= 1.5 * floor, f"{preset}: real digits score FID {fid:.1f}, floor {floor:.1f}"


# ---------------------------------------------------------------------------------------- FID / KID
def test_fid_of_a_set_against_itself_is_zero_and_kid_of_two_real_halves_is_near_zero(mnist):
    _, test = mnist
    q = metrics.mnist_quality(test.images[:N], reference=test.images[:N])
    assert q["n_samples"] == q["n_reference"] == q["kid_subset_size"] == N
    assert abs(q["fid"]) < 1e-3  # real digits vs uniform noise: about 1200
    # KID is not 0 for a set against itself: its unbiased estimator leaves out k(x, x) within a set
    # but not across the two sets. Two disjoint halves of real digits: 0 within noise.
    q = metrics.mnist_quality(test.images[:N], reference=test.images[N : 2 * N])
    assert abs(q["kid_mean"]) < 2.0  # uniform noise: about 1400, one repeated digit: about 200


def test_real_digits_score_far_better_than_noise_or_one_repeated_digit(mnist):
    train, _ = mnist
    real = metrics.reference_quality(N)
    noise = metrics.mnist_quality(
        torch.rand(N, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    )
    one = metrics.mnist_quality(train.images[:1].expand(N, -1, -1, -1))
    assert real["n_reference"] == noise["n_reference"] == 10000 and real["n_samples"] == N
    assert real["kid_subset_size"] == N  # min(1000, N)
    assert 0 <= real["fid"] < noise["fid"] / 10 and real["fid"] < one["fid"] / 10
    assert real["kid_mean"] < noise["kid_mean"] / 10 and real["kid_mean"] < one["kid_mean"] / 10
    assert real["mean_confidence"] > 0.95 and real["classes_covered"] == 10


def test_kid_is_repeatable_and_leaves_the_global_rng_alone(mnist):
    _, test = mnist
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = metrics.mnist_quality(test.images[-N:])
    assert torch.equal(torch.rand(3), expected)
    b = metrics.mnist_quality(test.images[-N:])
    assert a == b


# --------------------------------------------------------------------------- coverage, conditioning
def test_one_repeated_three_covers_one_class_with_kl_log10(mnist):
    _, test = mnist
    model = metrics.load_classifier("cpu")
    threes = test.images[test.labels == 3][:20]
    three = threes[model(to_model(threes)).argmax(1) == 3][:1]  # a '3' the classifier reads as 3
    q = metrics.mnist_quality(three.expand(1000, -1, -1, -1))
    assert q["classes_covered"] == 1
    assert q["class_hist"][3] == 1.0 and sum(q["class_hist"]) == pytest.approx(1.0)
    assert q["kl_uniform"] == pytest.approx(math.log(10), abs=1e-9)


def test_balanced_real_digits_cover_all_classes_with_kl_near_zero(balanced):
    images, _ = balanced
    q = metrics.mnist_quality(images)
    assert "cond_accuracy" not in q  # no labels asked for
    assert q["classes_covered"] == 10
    assert 0 <= q["kl_uniform"] < 0.01
    assert all(abs(p - 0.1) < 0.02 for p in q["class_hist"])


def test_cond_accuracy_is_high_for_true_labels_and_chance_for_shuffled(balanced):
    images, labels = balanced
    model = metrics.load_classifier("cpu")
    expected = (model(to_model(images)).argmax(1) == labels).float().mean().item()
    q = metrics.mnist_quality(images, labels)
    assert q["cond_accuracy"] == pytest.approx(expected) and q["cond_accuracy"] >= 0.99
    shuffled = labels[torch.randperm(N, generator=torch.Generator().manual_seed(0))]
    q = metrics.mnist_quality(images, shuffled)
    assert 0.05 < q["cond_accuracy"] < 0.17  # chance is 0.1; binomial sd at N=500 is 0.013


def test_each_batch_is_classified_once_with_the_same_numbers(balanced, monkeypatch):
    """FID, KID and the class histogram share one pass
    of the classifier per batch (it was three)."""
    images, labels = balanced
    model = metrics.load_classifier("cpu")
    before = metrics.mnist_quality(
        images, labels, classifier=model, reference=images[:200], batch_size=100
    )
    calls = []
    features = model.features
    monkeypatch.setattr(model, "features", lambda x: calls.append(len(x)) or features(x))
    after = metrics.mnist_quality(
        images, labels, classifier=model, reference=images[:200], batch_size=100
    )
    assert calls == [100] * 2 + [100] * (
        N // 100
    )  # the reference's 2 batches, then the samples', once each
    assert after == before


def test_mismatched_labels_and_too_few_samples_are_refused():
    with pytest.raises(ValueError, match="labels"):
        metrics.mnist_quality(
            torch.zeros(4, 1, 28, 28),
            torch.zeros(3, dtype=torch.long),
            reference=torch.zeros(4, 1, 28, 28),
            classifier=metrics.load_classifier("cpu"),
        )
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mnist_quality(torch.zeros(1, 1, 28, 28))


# ---------------------------------------------------------------------------------------- callbacks
class FakeTrainer:
    """The parts of gankit.train.Trainer the callbacks use; samples are real test digits."""

    def __init__(
        self, config: GANConfig, pool: torch.Tensor, pool_labels: torch.Tensor, epoch: int = 1
    ):
        self.config, self.device = config, torch.device("cpu")
        self.epoch, self.step, self.elapsed = epoch, 100 * epoch, 12.5
        self.pool, self.pool_labels = pool, pool_labels
        self.evaluations: list[dict] = []
        self.history = [
            {
                "step": self.step,
                "epoch": epoch,
                "loss_d": 1.2,
                "loss_g": 0.8,
                "d_real": 0.5,
                "d_fake": -0.4,
                "seconds": self.elapsed,
            }
        ]
        self.sample_calls: list[tuple] = []

    def sample(self, n, labels=None, *, temperature=1.0, seed=None):
        self.sample_calls.append((n, labels, seed))
        if labels is None:
            return to_model(self.pool[:n])
        order = torch.cat([torch.nonzero(self.pool_labels == c).flatten() for c in range(10)])
        by_class = {c: order[self.pool_labels[order] == c].tolist() for c in range(10)}
        idx = [by_class[int(c)][i // 10] for i, c in enumerate(labels)]
        return to_model(self.pool[idx])

    def log_metrics(self, values):
        assert all(isinstance(v, float) for v in values.values()), values
        self.evaluations.append(
            {"step": self.step, "epoch": self.epoch, "seconds": self.elapsed, **values}
        )


def test_evaluate_callback_logs_one_evaluation_with_all_keys(mnist):
    _, test = mnist
    trainer = FakeTrainer(
        GANConfig(preset="cgan-mnist", num_classes=10), test.images, test.labels, epoch=2
    )
    cb = metrics.EvaluateCallback(every=2, n_samples=N)
    assert cb.event == "on_epoch_end"
    cb(trainer)
    assert len(trainer.evaluations) == 1
    ((n, labels, seed),) = trainer.sample_calls
    assert n == N and torch.equal(labels, torch.arange(N) % 10) and seed == 0
    ev = trainer.evaluations[0]
    keys = {
        "fid",
        "kid_mean",
        "kid_std",
        "kl_uniform",
        "classes_covered",
        "mean_confidence",
        "cond_accuracy",
        "n_samples",
        "n_reference",
        "kid_subset_size",
        "eval_seconds",
    } | {f"class_hist_{i}" for i in range(10)}
    assert keys <= set(ev)
    assert ev["n_samples"] == N and ev["cond_accuracy"] > 0.95 and ev["classes_covered"] == 10
    assert cb.last is not None and len(cb.last["class_hist"]) == 10


def test_evaluate_callback_leaves_trainings_random_numbers_alone(mnist):
    # A run must train identically with or without
    # evaluation (torchmetrics draws from the global RNG).
    _, test = mnist
    trainer = FakeTrainer(GANConfig(preset="mlp-mnist"), test.images, test.labels, epoch=1)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    metrics.EvaluateCallback(every=1, n_samples=N)(trainer)
    assert torch.equal(torch.rand(3), expected)


def test_evaluate_callback_skips_off_epochs_and_unconditional_models_get_no_labels(mnist):
    _, test = mnist
    trainer = FakeTrainer(GANConfig(preset="mlp-mnist"), test.images, test.labels, epoch=3)
    metrics.EvaluateCallback(every=2, n_samples=N)(trainer)
    assert trainer.evaluations == []
    metrics.EvaluateCallback(every=3, n_samples=N)(trainer)
    assert trainer.sample_calls[0][1] is None and "cond_accuracy" not in trainer.evaluations[0]


def test_evaluate_callback_refuses_poster_runs():
    trainer = SimpleNamespace(epoch=1, config=GANConfig(dataset="posters", channels=3, cond_dim=28))
    with pytest.raises(ValueError, match="MNIST"):
        metrics.EvaluateCallback()(trainer)


def _has_tensorboard() -> bool:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_tensorboard(), reason="tensorboard is installed")
def test_tensorboard_callback_without_tensorboard_says_what_to_install():
    with pytest.raises(ImportError, match="pip install tensorboard"):
        metrics.TensorBoardCallback()


class RecordingWriter:
    """Stands in for torch's SummaryWriter where tensorboard is not installed."""

    def __init__(self, log_dir=None):
        self.log_dir, self.scalars, self.flushes, self.closed = log_dir, [], 0, False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        self.flushes += 1

    def close(self):
        self.closed = True


class RecordsOnlyTrainer:
    """A trainer whose `history` (a DataFrame of every record) must not be read on each log."""

    def __init__(self):
        self.step, self.run_dir = 0, None
        self.records: list[dict] = []
        self.evaluations: list[dict] = []

    @property
    def history(self):
        raise AssertionError("TensorBoardCallback rebuilt the whole history on a log")

    def log(self, step):
        self.step = step
        self.records.append(
            dict(
                step=step,
                epoch=step / 100,
                loss_d=1.0 + step,
                loss_g=0.5,
                d_real=0.6,
                d_fake=0.4,
                seconds=step / 10,
            )
        )


def written_scalars(cb, log_dir) -> list[tuple[str, float, int]]:
    """(tag, value, step) as the callback's writer
    holds them, or as read back from the event file."""
    if isinstance(cb.writer, RecordingWriter):
        return cb.writer.scalars
    cb.writer.flush()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(tag, e.value, e.step) for tag in events.Tags()["scalars"] for e in events.Scalars(tag)]


def test_tensorboard_callback_writes_only_the_newest_record_and_new_evaluations(tmp_path):
    # A real SummaryWriter where tensorboard is installed, else a stand-in (never a silent skip).
    writer_cls = None if _has_tensorboard() else RecordingWriter
    cb = metrics.TensorBoardCallback(tmp_path, writer_cls=writer_cls)
    trainer = RecordsOnlyTrainer()  # its `history` raises: each log may read only records[-1]
    for step in (10, 20, 30):
        trainer.log(step)
        if step == 20:
            trainer.evaluations.append({"step": 20, "epoch": 0.2, "fid": 3.0, "note": "text"})
        cb(trainer)
    scalars = written_scalars(cb, tmp_path)
    cb.close()
    loss_d = sorted((step, value) for tag, value, step in scalars if tag == "train/loss_d")
    assert loss_d == [(10, 11.0), (20, 21.0), (30, 31.0)]  # each record once, at its step
    assert [s for s in scalars if s[0].startswith("quality/")] == [("quality/fid", 3.0, 20)]
    assert {tag for tag, _, _ in scalars if tag.startswith("train/")} == {
        f"train/{name}" for name in metrics.TensorBoardCallback.SCALARS
    }
