"""Lesson 02's RGB data: an image folder through load_dataset, then augmented device batches."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import make_config
from gankit.data import BatchSource, load_dataset, to_model

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _stripes(size=(96, 32)) -> Image.Image:
    """A wide image: left third red, middle third green, right third blue."""
    w, h = size
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 3] = RED
    a[:, w // 3 : 2 * w // 3] = GREEN
    a[:, 2 * w // 3 :] = BLUE
    return Image.fromarray(a)


@pytest.fixture
def rgb_folder(tmp_path):
    """Six decodable images in five modes and four sizes, plus one truncated JPEG."""
    root = tmp_path / "cats"
    root.mkdir()
    Image.new("RGB", (80, 80), RED).save(root / "a_red.jpg", quality=100)
    Image.new("L", (40, 40), 100).save(root / "b_grey.png")
    Image.new("RGB", (50, 50), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        root / "c_palette.gif"
    )
    Image.new("RGBA", (32, 32), (0, 0, 255, 0)).save(
        root / "d_transparent.png"
    )  # fully transparent blue
    _stripes().save(root / "e_wide.png")
    Image.new("RGB", (16, 24), BLUE).save(
        root / "f_small_tall.bmp"
    )  # smaller than the target: upscaled
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG", quality=95)
    (root / "g_broken.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return root


def _folder_config(root, size=32, **kw):
    return make_config(
        "dcgan-mnist",
        "smoke",
        dataset="folder",
        data_path=str(root),
        channels=3,
        image_size=size,
        subset=None,
        **kw,
    )


def test_folder_loads_as_uint8_rgb_and_counts_the_corrupt_file(rgb_folder):
    ds = load_dataset(_folder_config(rgb_folder))
    assert ds.images.shape == (6, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels is None and ds.name == "cats"
    assert "loaded 6 of 7 images" in ds.summary
    assert "skipped 1 (corrupt: g_broken.jpg)" in ds.summary
    # the white image (transparency on white) is exactly Tanh's upper end in model space
    assert to_model(ds.images[3]).eq(1.0).all()


def test_every_mode_becomes_the_right_rgb(rgb_folder):
    images = load_dataset(_folder_config(rgb_folder)).images  # sorted by file name: a..f
    centre = (
        images[:, :, 8:24, 8:24].float().mean((2, 3))
    )  # (N, 3) mean colour away from resize borders

    def close(row, rgb, tol):
        return torch.allclose(centre[row], torch.tensor(rgb, dtype=torch.float32), atol=tol)

    assert close(0, RED, 3)  # JPEG: within rounding of pure red
    assert close(1, (100, 100, 100), 0)  # grey L -> three equal channels
    assert close(2, (10, 200, 30), 2)  # palette -> its colour
    assert close(3, (255, 255, 255), 0)  # transparency composited on white, not black or blue
    assert close(
        4, GREEN, 0
    )  # wide image: covered then centre-cropped (only the green third), not squashed
    assert close(5, BLUE, 0)  # small tall image upscaled to cover 32x32


def test_image_size_64_is_a_separate_cached_decode(rgb_folder):
    small = load_dataset(_folder_config(rgb_folder, 32)).images
    big = load_dataset(_folder_config(rgb_folder, 64)).images
    assert big.shape == (6, 3, 64, 64)
    again = load_dataset(_folder_config(rgb_folder, 32)).images  # read back from the cache
    assert torch.equal(small, again)
    cached = sorted(p.name for p in (rgb_folder / ".gankit_cache").iterdir())
    assert len(cached) == 2 and "32x32x3" in cached[0] and "64x64x3" in cached[1]


def test_folder_without_data_path_is_a_clear_error():
    with pytest.raises(ValueError, match="data_path"):
        load_dataset(make_config("dcgan-mnist", "smoke", dataset="folder", channels=3))


def _left_dark_right_bright(n: int, channels: int) -> torch.Tensor:
    """n identical achromatic images (uint8): left half 40, right half 215."""
    images = torch.full((n, channels, 8, 8), 40, dtype=torch.uint8)
    images[..., 4:] = 215
    return images


def test_augmented_batches_flip_some_samples_and_jitter_rgb():
    images = _left_dark_right_bright(64, 3)
    stored = images.clone()
    torch.manual_seed(0)
    src = BatchSource(images, None, 32, augment=True)
    x = torch.cat([b for b, _ in src.epoch(0)])
    assert x.shape == (64, 3, 8, 8) and x.dtype == torch.float32
    # Brightness and contrast factors are > 0, so they
    # keep which half is brighter: the order tells a flip.
    flipped = x[..., :4].mean((1, 2, 3)) > x[..., 4:].mean((1, 2, 3))
    assert 0 < int(flipped.sum()) < 64  # per sample, not per batch
    unflipped = torch.where(flipped[:, None, None, None], x.flip(-1), x)
    assert unflipped.std(0).max() > 0.01  # colour jitter: each sample got its own factors
    assert (unflipped - to_model(stored)).abs().max() <= 0.25  # jitter 0.1 only nudges values
    assert torch.equal(
        src.images, stored
    )  # augmentation works on the batch, never on the stored data


def test_grey_batches_are_only_flipped_and_no_augment_is_exact():
    images = _left_dark_right_bright(64, 1)
    original, mirrored = to_model(images[:1]), to_model(images[:1]).flip(-1)
    torch.manual_seed(1)
    x = torch.cat([b for b, _ in BatchSource(images, None, 32, augment=True).epoch(0)])
    is_original = (x == original).flatten(1).all(1)
    is_mirror = (x == mirrored).flatten(1).all(1)
    assert bool((is_original | is_mirror).all())  # one channel: no colour jitter, just mirrors
    assert 0 < int(is_mirror.sum()) < 64
    plain = torch.cat([b for b, _ in BatchSource(images, None, 32, augment=False).epoch(0)])
    assert bool((plain == original).flatten(1).all(1).all())


def test_folder_config_trains_through_batch_source(rgb_folder):
    config = _folder_config(rgb_folder, augment=True, batch_size=4)
    ds = load_dataset(config)
    src = BatchSource(ds.images, None, config.batch_size, augment=config.augment)
    assert len(src) == 1  # 6 images, batch 4, drop_last
    ((x, y),) = list(src.epoch(0))
    assert x.shape == (4, 3, 32, 32) and y is None
