"""In-memory uint8 data sets, and a device-resident batch source that replaces a DataLoader."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import ConfigError, GANConfig, cache_root, data_root, progress_mode
from .datasets.images import augment, load_image_folder
from .datasets.posters import load_posters
from .datasets.toy_posters import poster_root
from .files import atomic_write, is_disk_full

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def to_model(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float32 in [-1, 1], the range of the generator's Tanh.

    Always a new tensor: a float input is copied, never rescaled in place (`x.float()` is `x`
    itself for float32, so the in-place ops below would otherwise change the caller's tensor).
    """
    return x.to(torch.float32, copy=True).div_(127.5).sub_(1.0)


def to_display(x: torch.Tensor) -> torch.Tensor:
    """Model-space images in [-1, 1] -> [0, 1] for plotting and saving (clamped)."""
    return x.detach().add(1.0).div(2.0).clamp(0.0, 1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model-space images in [-1, 1] -> uint8 in [0,
    255] (what `gankit sample --out x.npz` stores)."""
    return to_display(x).mul(255.0).round().to(torch.uint8)


@dataclass
class Dataset:
    """A whole data set in memory: images uint8 (N, C, H, W), optional labels and their names."""

    images: torch.Tensor
    labels: torch.Tensor | None = None  # int64 (N,) class ids, or float (N, G) multi-hot
    label_names: list[str] = field(default_factory=list)
    name: str = ""
    summary: str = ""  # what was loaded and what was skipped (never silently dropped)

    def __len__(self) -> int:
        return self.images.shape[0]


def mnist_missing_error(root: Path, name: str, cause: Exception | None) -> FileNotFoundError:
    raw = root / name / "raw"
    files = "\n  ".join(str(raw / f) for f in MNIST_FILES)
    why = f" (download failed: {cause})" if cause else ""
    return FileNotFoundError(
        f"{name} is not under GANKIT_DATA={str(root)!r} and could not be downloaded{why}.\n"
        f"Expected these four files (the originals, .gz or unpacked):\n  {files}\n"
        f"Set GANKIT_DATA to the folder that contains {name}/raw, "
        "or go online once so torchvision can download it."
    )


def _gz_size(gz: Path) -> int:
    """The unpacked size a gzip file records in its last 4 bytes (modulo 2**32)."""
    with open(gz, "rb") as f:
        if f.seek(0, os.SEEK_END) < 18:  # shorter than a gzip header and trailer: damaged
            return -1
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def _gunzip(gz: Path, dst: Path) -> None:
    """Unpack gz to dst atomically, stamped with gz's mtime so a changed .gz is unpacked again."""
    import gzip
    import zlib

    class Damaged(Exception):
        pass

    def write(f) -> None:
        with gzip.open(gz, "rb") as src:
            while True:
                try:
                    chunk = src.read(1 << 20)
                except (OSError, EOFError, zlib.error) as e:  # not gzip, truncated, bad CRC
                    raise Damaged(str(e) or type(e).__name__) from None
                if not chunk:
                    return
                f.write(chunk)

    try:
        atomic_write(dst, write)
    except Damaged as e:
        raise ValueError(
            f"cannot unpack {gz}: it is not a whole gzip file ({e}); replace it with the original "
            f"or put the unpacked {dst.name} beside it"
        ) from None
    st = gz.stat()
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _check_idx(raw: Path) -> None:
    """Check the four idx headers (magic, sizes, image and label counts) for a one-line error
    naming the bad file, where torchvision would fail with an assertion or a reshape error."""
    counts = {}
    for fname in MNIST_FILES:
        path, ndim = raw / fname, 3 if "images" in fname else 1
        with open(path, "rb") as f:
            head = f.read(4 + 4 * ndim)
        dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        why = ""
        if len(head) < 4 + 4 * ndim or head[:4] != bytes([0, 0, 8, ndim]):
            why = f"it does not start with the idx header 00 00 08 0{ndim}"
        elif ndim == 3 and dims[1:] != [28, 28]:
            why = f"its images are {dims[1]}x{dims[2]}, not 28x28"
        elif path.stat().st_size != len(head) + math.prod(dims):
            why = f"its size {path.stat().st_size} bytes does not match its header {dims}"
        if why:
            raise ValueError(
                f"{path} is not an MNIST idx file: {why}; replace it with the original"
            )
        counts[fname] = dims[0]
    for split in ("train", "t10k"):
        n_img, n_lab = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if n_img != n_lab:
            raise ValueError(
                f"{raw}: {split}-images has {n_img} images but {split}-labels has {n_lab} labels; "
                "the two files come from different data sets: replace them with the originals"
            )


def _mnist_folder(root: Path, name: str) -> Path:
    """The root torchvision should read {name}/raw from.

    `root` itself when the four files are there unpacked. When some are only there as .gz, they are
    unpacked once into cache_root()/unpacked/{name}/raw and that root is returned: torchvision
    would re-check a .gz against the original's MD5, so re-compressed files (Debian's
    dataset-mnist / dataset-fashion-mnist packages) make it download, which fails offline; and a
    data folder may be shared or read-only, so nothing is written into it.
    """
    raw = root / name / "raw"
    if all((raw / f).is_file() for f in MNIST_FILES):
        _check_idx(raw)
        return root
    if not all((raw / f).is_file() or (raw / f"{f}.gz").is_file() for f in MNIST_FILES):
        return root  # incomplete: torchvision downloads, or mnist_missing_error explains
    out_root = cache_root() / "unpacked"
    out = out_root / name / "raw"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for fname in MNIST_FILES:
            src, gz, dst = raw / fname, raw / f"{fname}.gz", out / fname
            if src.is_file():  # this one is unpacked in the data folder: link it beside the rest
                if not (dst.is_file() and dst.samefile(src)):
                    dst.unlink(missing_ok=True)
                    try:
                        dst.symlink_to(src.resolve())
                    except OSError:  # no symlinks here (Windows without developer mode)
                        atomic_write(dst, src.read_bytes())
                continue
            st = gz.stat()
            fresh = (
                dst.is_file()
                and dst.stat().st_mtime_ns == st.st_mtime_ns
                and dst.stat().st_size % 2**32 == _gz_size(gz)
            )
            if not fresh:
                _gunzip(gz, dst)
    except OSError as e:
        if is_disk_full(e):
            raise
        raise ConfigError(
            f"cannot unpack {name}'s .gz files from {raw} into {out} ({e.strerror or e}); set "
            "GANKIT_CACHE to a writable folder, or unpack them beside the .gz (gunzip -k)"
        ) from None
    _check_idx(out)
    return out_root


def load_mnist(
    train: bool = True,
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    fashion: bool = False,
) -> Dataset:
    """MNIST (or Fashion-MNIST) via torchvision: images uint8 (N, 1, 28, 28), labels int64 (N,).

    Reads GANKIT_DATA/MNIST/raw (FashionMNIST/raw): the four idx files unpacked, or their .gz in
    any compression (unpacked once under GANKIT_CACHE, see _mnist_folder); downloads them with
    torchvision when they are missing and `download` is set.
    """
    from torchvision import datasets

    root = data_root(root)
    cls = datasets.FashionMNIST if fashion else datasets.MNIST
    name = cls.__name__
    folder = _mnist_folder(root, name)
    try:
        ds = cls(str(folder), train=train, download=False)
    except RuntimeError:
        if not download:
            raise mnist_missing_error(root, name, None) from None
        try:
            ds = cls(str(root), train=train, download=True)
        except Exception as e:  # offline: urllib errors, or torchvision's own RuntimeError
            raise mnist_missing_error(root, name, e) from None
    images = ds.data.unsqueeze(1).contiguous()  # torchvision keeps the raw uint8 (N, 28, 28)
    split = "train" if train else "test"
    return Dataset(
        images,
        ds.targets.long(),
        [str(c) for c in ds.classes],
        f"{name} {split}",
        f"{name} {split}: {len(images)} images 28x28, 10 classes",
    )


def load_cifar10(
    train: bool = True, root: str | os.PathLike | None = None, *, download: bool = True
) -> Dataset:
    """CIFAR-10 via torchvision: images uint8 (N, 3, 32, 32), labels int64 (N,)."""
    from torchvision import datasets

    root = data_root(root)
    try:
        ds = datasets.CIFAR10(str(root), train=train, download=download)
    except Exception as e:
        raise FileNotFoundError(
            f"CIFAR-10 is not under GANKIT_DATA={str(root)!r} (expected cifar-10-batches-py/) "
            "and could not "
            f"be downloaded ({e}). Put the extracted folder there or go online once."
        ) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return Dataset(
        images,
        torch.tensor(ds.targets),
        list(ds.classes),
        "CIFAR-10",
        f"CIFAR-10 {'train' if train else 'test'}: {len(images)} images 32x32",
    )


def resize_uint8(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 batch (N, C, H, W) with antialiasing; a no-op at the same size."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == size:
        return images
    out = [
        F.interpolate(
            chunk.float(), size=size, mode="bilinear", antialias=True, align_corners=False
        )
        for chunk in images.split(8192)
    ]  # chunks bound the float copy's memory
    return torch.cat(out).round_().clamp_(0, 255).to(torch.uint8)


def load_dataset(
    config: GANConfig,
    root: str | os.PathLike | None = None,
    *,
    train: bool = True,
    progress: bool | None = None,
) -> Dataset:
    """The training set a config asks for, at config.image_size and config.channels.

    progress=None: decoding bars only where training shows a live bar (progress_mode:
    $GANKIT_PROGRESS unset or "bar"); an executed notebook (GANKIT_PROGRESS=epochs) would keep a
    frozen "0%" line."""
    if progress is None:
        progress = progress_mode(True) == "bar"
    if config.dataset in ("mnist", "fashion-mnist"):
        ds = load_mnist(train, root, fashion=config.dataset == "fashion-mnist")
    elif config.dataset == "cifar10":
        ds = load_cifar10(train, root)
    elif config.dataset == "folder":
        if not config.data_path:
            raise ConfigError(
                "dataset='folder' needs data_path (the image folder); pass --data PATH"
            )
        images, summary = load_image_folder(
            config.data_path, config.image_size, config.channels, progress=progress
        )
        ds = Dataset(images, None, [], Path(config.data_path).name, str(summary))
    elif config.dataset == "posters":
        if config.data_path:
            path, is_toy = Path(config.data_path), False
        else:  # the real set under GANKIT_DATA/posters, else the toy set where gankit may write
            path, is_toy = poster_root(data_root(root), toy_dir=cache_root() / "posters-toy")
        pd_ = load_posters(
            path,
            (config.image_size, config.image_size),
            top_k=config.top_k,
            encoding=config.genre_encoding,
            progress=progress,
        )
        ds = Dataset(
            pd_.images, pd_.genres, pd_.names, "posters-toy" if is_toy else "posters", pd_.summary
        )
    else:  # GANConfig validates dataset names; this guards new ones added without a loader
        raise ConfigError(f"no loader for dataset {config.dataset!r}")

    if ds.images.shape[1] != config.channels:
        if config.channels == 3 and ds.images.shape[1] == 1:
            ds.images = ds.images.expand(-1, 3, -1, -1).contiguous()
        elif (
            config.channels == 1 and ds.images.shape[1] == 3
        ):  # ITU-R 601 luma, as PIL's convert('L')
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            ds.images = (ds.images.float() * w).sum(1, keepdim=True).round().to(torch.uint8)
    if config.dataset in ("mnist", "fashion-mnist") and config.image_size == 32:
        # 28 -> 32 by 2 px of background each side (as LeNet-5 did), not by resizing: the digits
        # keep their 28x28 pixels, and metrics.prepare crops them back losslessly, so a 32-pixel
        # run is scored against the test set exactly as a 28-pixel one.
        ds.images = F.pad(ds.images, (2, 2, 2, 2))
        ds.summary += "; padded to 32x32 (2 px of background each side)"
    # 28 is the only non-power-of-two size the models accept, and they take it as is.
    ds.images = resize_uint8(ds.images, config.image_size)
    if config.subset and config.subset < len(ds):
        ds.summary += f"; training on the first {config.subset} of them ({config.profile} profile)"
        ds.images = ds.images[: config.subset]
        if ds.labels is not None:
            ds.labels = ds.labels[: config.subset]
    if len(ds) == 0:
        raise ValueError(f"the data set {ds.name!r} is empty; {ds.summary}")
    return ds


class BatchSource:
    """Shuffled batches served from a uint8 tensor that lives on the training device.

    Every epoch's order is a permutation drawn from its own torch.Generator seeded with
    (seed, epoch), so it does not move when other code consumes random numbers, and a run
    resumed mid-epoch replays exactly the batches it had left (`epoch(e, start=k)`).

    With several training processes (gankit.distributed) `batch_size` is the global batch and
    rank r of `world_size` gets its r-th slice of batch_size // world_size samples: the ranks'
    slices, concatenated in rank order, are the batch one process would train on.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        seed: int = 0,
        drop_last: bool = True,
        augment: bool = False,
        steps_per_epoch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size or not 0 <= rank < world_size:
            raise ValueError(
                f"rank {rank} of {world_size} processes cannot take an equal share of "
                f"batch_size={batch_size}: use a batch size divisible by {world_size}"
            )
        if world_size > 1 and not drop_last:
            raise ValueError("several processes need drop_last=True (equal shares of each batch)")
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        n = images.shape[0]
        if n == 0:
            raise ValueError("the data set is empty: nothing to train on")
        if batch_size > n and drop_last:
            raise ValueError(
                f"batch_size={batch_size} is larger than the data set ({n} images): "
                "with drop_last there "
                f"would be no batch at all. Use batch_size <= {n} or more data."
            )
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = None if labels is None else labels.to(self.device)
        self.batch_size, self.seed, self.drop_last = batch_size, seed, drop_last
        self.augment = augment
        self.rank, self.world_size = rank, world_size
        full = n // batch_size if drop_last else -(-n // batch_size)
        self.batches_per_epoch = min(full, steps_per_epoch) if steps_per_epoch else full

    def __len__(self) -> int:
        return self.batches_per_epoch

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.images.shape[0], generator=g).to(self.device)

    def epoch(
        self, epoch: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Yield (x in [-1, 1] float (B, C, H, W), labels
        or None) for batches start.. of `epoch`."""
        perm = self.permutation(epoch)
        for i in range(start, self.batches_per_epoch):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            if self.world_size > 1:  # this rank's share of the global batch
                idx = idx.view(self.world_size, -1)[self.rank]
            x = to_model(self.images[idx])
            if self.augment:
                x = augment(x, flip=True, jitter=0.1 if x.shape[1] == 3 else 0.0)
            yield x, (None if self.labels is None else self.labels[idx])
