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
    # padded, not resized: the 28x28 digits sit unchanged inside 2 px of background
    d28 = load_dataset(make_config("mlp-mnist", "smoke"))
    assert torch.equal(d32.images[:, :, 2:30, 2:30], d28.images[: len(d32)])
    assert d32.images[:, :, :2].eq(0).all() and d32.images[:, :, :, 30:].eq(0).all()
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


def _idx(dims: tuple[int, ...], data: bytes) -> bytes:
    """An idx file (the MNIST format): magic 0x00 0x00 0x08 (uint8) ndim, big-endian dims, data."""
    head = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return head + data


def _write_gz_mnist(root, name: str, n_train: int = 6, n_test: int = 4) -> None:
    """The four files gzip-compressed by us, so their bytes (and md5) differ from the originals,
    as Debian's re-compressed dataset-mnist / dataset-fashion-mnist packages do."""
    import gzip

    raw = root / name / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        pixels = bytes((i * 7 + j) % 256 for i in range(n) for j in range(28 * 28))
        labels = bytes(i % 10 for i in range(n))
        (raw / f"{split}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx((n, 28, 28), pixels), mtime=0)
        )
        (raw / f"{split}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx((n,), labels), mtime=0)
        )


@pytest.fixture
def offline(monkeypatch):
    """Any download attempt fails at once, as on a machine without network."""
    import urllib.error
    import urllib.request

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", no_network)


@pytest.mark.parametrize("fashion", [False, True])
def test_recompressed_gz_files_load_offline(tmp_path, monkeypatch, offline, fashion):
    name = "FashionMNIST" if fashion else "MNIST"
    data, cache = tmp_path / "data", tmp_path / "cache"
    _write_gz_mnist(data, name)
    monkeypatch.setenv("GANKIT_DATA", str(data))
    monkeypatch.setenv("GANKIT_CACHE", str(cache))
    before = sorted(p.name for p in (data / name / "raw").iterdir())
    ds = load_mnist(train=True, fashion=fashion)
    assert ds.images.shape == (6, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert ds.images[1, 0, 0, :3].tolist() == [7, 8, 9]
    test = load_mnist(train=False, fashion=fashion, download=False)
    assert len(test) == 4 and test.name == f"{name} test"
    # the shared data folder is only read: the unpacked copies live under GANKIT_CACHE
    assert sorted(p.name for p in (data / name / "raw").iterdir()) == before
    assert sorted(p.name for p in (cache / "unpacked" / name / "raw").iterdir()) == sorted(
        n.removesuffix(".gz") for n in before
    )


def test_damaged_gz_is_a_clear_error(tmp_path, monkeypatch, offline):
    data = tmp_path / "data"
    _write_gz_mnist(data, "FashionMNIST")
    bad = data / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:20])  # truncated
    monkeypatch.setenv("GANKIT_DATA", str(data))
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError) as e:
        load_mnist(train=False, fashion=True)
    text = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz" in text and "\n" not in text
    assert list((tmp_path / "cache" / "unpacked" / "FashionMNIST" / "raw").glob("*.tmp")) == []


def test_missing_fashion_mnist_hint_names_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(download=False, fashion=True)
    text = str(e.value)
    assert "the folder that contains FashionMNIST/raw" in text and "contains MNIST/raw" not in text
    assert str(tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte") in text


def test_gz_unpacked_once_again_when_changed_and_mixed_with_unpacked(
    tmp_path, monkeypatch, offline
):
    import gzip

    data, cache = tmp_path / "data", tmp_path / "cache"
    _write_gz_mnist(data, "MNIST")
    raw = data / "MNIST" / "raw"
    # one file unpacked already, three still .gz
    gz = raw / "train-labels-idx1-ubyte.gz"
    (raw / "train-labels-idx1-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    monkeypatch.setenv("GANKIT_DATA", str(data))
    monkeypatch.setenv("GANKIT_CACHE", str(cache))
    assert load_mnist(train=True).labels.tolist() == [0, 1, 2, 3, 4, 5]
    unpacked = cache / "unpacked" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    stamp = unpacked.stat().st_mtime_ns
    load_mnist(train=False)
    assert unpacked.stat().st_mtime_ns == stamp  # unchanged .gz: not unpacked again
    new = gzip.compress(_idx((4,), bytes([9, 9, 9, 9])))
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(new)
    assert load_mnist(train=False).labels.tolist() == [9, 9, 9, 9]
