"""Data: ranges, the device-resident batch source, MNIST loading and its offline error."""

import pytest
import torch
from helpers import needs_mnist, synthetic

from gankit.config import make_config
from gankit.data import (
    BatchSource,
    load_dataset,
    load_mnist,
    resize_uint8,
    to_display,
    to_model,
    to_uint8,
)


def test_model_and_display_ranges():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8)
    m = to_model(x)
    assert m.tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    assert to_display(m).tolist() == pytest.approx([0.0, (128 / 127.5) / 2, 1.0], abs=1e-6)
    assert torch.equal(to_uint8(m), x)
    assert to_display(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]


def test_to_model_returns_a_new_tensor_and_leaves_its_argument_alone():
    x = torch.tensor([0.0, 127.5, 255.0])
    before = x.clone()
    m = to_model(x)
    assert torch.equal(x, before)  # the caller's float tensor is not rescaled in place
    assert m.data_ptr() != x.data_ptr()
    assert m.tolist() == [-1.0, 0.0, 1.0]
    # uint8 and float inputs holding the same pixel values map to the same [-1, 1] values
    u = torch.tensor([0, 51, 128, 255], dtype=torch.uint8)
    assert torch.equal(to_model(u), to_model(u.float()))
    assert to_model(u).tolist() == pytest.approx([-1.0, -0.6, 128 / 127.5 - 1, 1.0], abs=1e-6)


def test_batches_are_in_model_range_and_cover_the_epoch():
    images, labels = synthetic(50, classes=10)
    src = BatchSource(images, labels, 8, drop_last=False)
    seen, sizes = [], []
    perm = src.permutation(0)
    for i, (x, y) in enumerate(src.epoch(0)):
        idx = perm[8 * i : 8 * (i + 1)]  # each batch is its slice of the epoch's permutation
        assert x.dtype == torch.float32 and torch.equal(x, images[idx].float() / 127.5 - 1)
        sizes.append(len(x))
        seen.append(y)
    assert sizes == [8] * 6 + [
        2
    ]  # the last partial batch is served, not lost, when drop_last=False
    assert sorted(torch.cat(seen).tolist()) == sorted(labels.tolist())
    assert len(BatchSource(images, labels, 8)) == 6  # drop_last drops the 2 leftover images


def test_epoch_order_is_its_own_and_reproducible():
    images, _ = synthetic(40)
    src = BatchSource(images, None, 8, seed=1)
    a = torch.cat([x for x, _ in src.epoch(3)])
    torch.manual_seed(123)
    torch.rand(1000)  # other randomness must not move the data order
    b = torch.cat([x for x, _ in src.epoch(3)])
    assert torch.equal(a, b)
    c = torch.cat([x for x, _ in src.epoch(4)])
    assert not torch.equal(a, c)
    tail = torch.cat([x for x, _ in src.epoch(3, start=2)])
    assert torch.equal(tail, a[16:])


def test_batch_larger_than_dataset_and_empty_are_clear_errors():
    images, _ = synthetic(5)
    with pytest.raises(ValueError, match=r"batch_size=8 is larger than the data set \(5 images"):
        BatchSource(images, None, 8)
    with pytest.raises(ValueError, match="empty"):
        BatchSource(images[:0], None, 8)


def test_resize_uint8_keeps_range_and_size():
    images, _ = synthetic(3, size=28)
    out = resize_uint8(images, 32)
    assert out.shape == (3, 1, 32, 32) and out.dtype == torch.uint8
    assert resize_uint8(images, 28) is images  # same size: a no-op
    # black left half, white right half: both ends kept exactly, one symmetric edge between them
    halves = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    halves[..., 14:] = 255
    out = resize_uint8(halves, 32)
    assert out[..., :15].eq(0).all() and out[..., 17:].eq(255).all()
    assert torch.equal(out.int() + out.flip(-1).int(), torch.full((1, 1, 32, 32), 255))


@needs_mnist
def test_mnist_loads_in_range_at_28_and_32():
    ds = load_mnist(train=False)
    assert ds.images.shape == (10000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.unique().tolist() == list(range(10))
    cfg = make_config("dcgan-mnist", "smoke")
    d32 = load_dataset(cfg)
    assert d32.images.shape[1:] == (1, 32, 32) and len(d32) == cfg.subset
    x, _ = next(BatchSource(d32.images, None, 64).epoch(0))
    assert x.min().item() == -1.0 and x.max().item() == 1.0  # MNIST spans the whole Tanh range


def test_missing_mnist_offline_names_gankit_data_and_the_four_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(download=False)
    text = str(e.value)
    assert "GANKIT_DATA" in text and str(tmp_path) in text
    for f in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert f in text
