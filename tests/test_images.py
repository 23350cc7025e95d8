"""gankit.datasets.images: decoding odd image files, the folder cache, and batch augmentation."""

import errno
import io
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.datasets import images
from gankit.datasets.images import BadImage, LoadSummary, augment, decode_image, load_image_folder

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def _jpeg_bytes(size=(64, 64), seed=0) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _sixteen_bit(value: int, size=(16, 16)) -> Image.Image:
    im = Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint16))
    assert im.mode == "I;16"
    return im


@pytest.fixture
def folder(tmp_path):
    """A folder with 8 decodable images in 6 modes and
    4 broken files, plus a non-image to ignore."""
    root = tmp_path / "pics"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), RED).save(root / "rgb_a.jpg")
    Image.new("RGB", (64, 64), BLUE).save(root / "rgb_b.JPG")  # upper-case extension still counts
    Image.new("RGB", (30, 50), (0, 255, 0)).save(root / "sub" / "rgb_c.jpeg")
    Image.new("L", (32, 32), 100).save(root / "gray.png")
    Image.new("RGB", (32, 32), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        root / "palette.gif"
    )
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(root / "rgba.png")
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    _sixteen_bit(1000).save(root / "deep.png")
    Image.new("RGB", (1, 1), RED).save(root / "tiny.png")
    (root / "empty.jpg").write_bytes(b"")
    jpeg = _jpeg_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "notes.png").write_text("these are my notes, not a picture\n")
    (root / "readme.txt").write_text("not decoded, but counted: not an image extension")
    return root


EXPECTED_SKIPPED = {
    "too small": ["tiny.png"],
    "empty": ["empty.jpg"],
    "corrupt": ["truncated.jpg"],
    "unsupported": ["notes.png"],
    "not an image extension": ["readme.txt"],
}
EXPECTED_ORDER = [
    "cmyk.jpg",
    "deep.png",
    "gray.png",
    "palette.gif",
    "rgb_a.jpg",
    "rgb_b.JPG",
    "rgba.png",
    "sub/rgb_c.jpeg",
]


def test_folder_shapes_counts_and_summary(folder):
    x, summary = load_image_folder(folder, 32, progress=False)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.uint8
    assert (summary.total, summary.loaded) == (13, 8)
    assert summary.converted == {"L": 1, "P": 1, "RGBA": 1, "CMYK": 1, "I;16": 1}
    assert summary.skipped == EXPECTED_SKIPPED
    text = str(summary)
    assert text.startswith(f"loaded 8 of 13 images from {folder}")
    for reason, names in EXPECTED_SKIPPED.items():
        assert f"{reason}: {names[0]}" in text
    assert "skipped 5" in text and "converted 5" in text


def test_folder_order_is_sorted_relative_paths(folder):
    x, _ = load_image_folder(folder, 16, progress=False)
    expected = torch.stack([decode_image(folder / name, (16, 16)) for name in EXPECTED_ORDER])
    assert torch.equal(x, expected)
    # a second decode (fresh cache) gives the identical tensor
    y, _ = load_image_folder(folder, 16, cache_dir=folder.parent / "other_cache", progress=False)
    assert torch.equal(x, y)


def test_folder_colours_survive_conversion(folder):
    x, _ = load_image_folder(folder, 16, progress=False)
    centre = {name: x[i, :, 8, 8].tolist() for i, name in enumerate(EXPECTED_ORDER)}
    assert centre["gray.png"] == [100, 100, 100]
    assert centre["rgba.png"] == [255, 255, 255]  # fully transparent -> white, not black
    assert centre["deep.png"] == [
        4,
        4,
        4,
    ]  # 1000 / 65535 * 255 = 3.89; Pillow's own convert clips to 255
    assert np.allclose(centre["palette.gif"], (10, 200, 30), atol=8)
    assert np.allclose(centre["cmyk.jpg"], RED, atol=12)
    assert np.allclose(centre["rgb_a.jpg"], RED, atol=12)


def test_cache_hit_does_not_decode(folder, monkeypatch):
    x, summary = load_image_folder(folder, 24, progress=False)
    assert len(list((folder / ".gankit_cache").glob("*.pt"))) == 1

    def must_not_run(*args, **kwargs):
        raise AssertionError("decoded although the cache should have been used")

    monkeypatch.setattr(images, "_decode", must_not_run)
    y, summary2 = load_image_folder(folder, 24, progress=False)
    assert torch.equal(x, y)
    assert summary2 == summary


def test_cache_invalidated_when_a_file_is_added(folder, monkeypatch):
    x, _ = load_image_folder(folder, 24, progress=False)
    calls = []
    real = images._decode
    monkeypatch.setattr(images, "_decode", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    Image.new("RGB", (24, 24), (7, 8, 9)).save(folder / "zz_new.png")
    y, summary = load_image_folder(folder, 24, progress=False)
    assert len(calls) == 13 and (summary.total, summary.loaded) == (14, 9)
    assert torch.equal(y[:8], x) and y[8, :, 0, 0].tolist() == [7, 8, 9]
    assert (
        len(list((folder / ".gankit_cache").glob("*.pt"))) == 1
    )  # the stale cache file was removed
    # a different size is a different cache entry, not a stale one
    load_image_folder(folder, 12, progress=False)
    assert len(list((folder / ".gankit_cache").glob("*.pt"))) == 2


def test_channels_1_and_non_square(folder):
    x, _ = load_image_folder(folder, 16, channels=1, progress=False)
    assert x.shape == (8, 1, 16, 16) and x.dtype == torch.uint8
    assert x[EXPECTED_ORDER.index("gray.png"), 0, 8, 8] == 100
    assert x[EXPECTED_ORDER.index("rgba.png"), 0, 8, 8] == 255
    y, _ = load_image_folder(folder, (96, 64), progress=False)
    assert y.shape == (8, 3, 96, 64)


def test_not_recursive_skips_subfolders(folder):
    x, summary = load_image_folder(folder, 16, recursive=False, progress=False)
    assert (x.shape[0], summary.total) == (7, 12)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "list.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no image files in .*nothing"):
        load_image_folder(tmp_path / "nothing", 16, progress=False)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_folder(tmp_path / "missing", 16, progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.png").write_text("text")
    with pytest.raises(ValueError) as info:
        load_image_folder(bad, 16, progress=False)
    message = str(info.value)
    assert str(bad) in message and "saw 2 image files" in message
    assert "empty: 1 (e.g. a.jpg)" in message and "unsupported: 1 (e.g. b.png)" in message


@pytest.mark.parametrize("target", ["torch.save", "os.replace"])
def test_failing_cache_write_warns_and_leaves_no_temp_file(folder, monkeypatch, target):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    module, name = target.split(".")
    monkeypatch.setattr({"torch": torch, "os": os}[module], name, disk_full)
    cache = folder.parent / "cache"
    with pytest.warns(UserWarning) as info:  # the cache only saves time: warn, load all the same
        x, _ = load_image_folder(folder, 16, cache_dir=cache, progress=False)
    assert x.shape == (8, 3, 16, 16) and len(info) == 1
    message = str(info[0].message)
    assert str(cache) in message and "No space left on device" in message
    assert list(cache.iterdir()) == []


def test_decode_covers_then_centre_crops():
    # 120x40 image: blue | red | blue in thirds; covering a square keeps only the red centre
    im = Image.new("RGB", (120, 40), BLUE)
    im.paste(RED, (40, 0, 80, 40))
    out = decode_image(_png_bytes(im), (20, 20))
    assert out.shape == (3, 20, 20) and out.dtype == torch.uint8
    # interior columns only: the resampling filter reaches a pixel or two past the crop edge
    assert (out[0, :, 2:-2] >= 250).all() and (out[2, :, 2:-2] <= 5).all()
    assert (out[2] <= 40).all()
    tall = decode_image(
        _png_bytes(im), (96, 64)
    )  # (H, W): scaled to 288x96, centre 64 columns are red
    assert tall.shape == (3, 96, 64) and (tall[0, :, 2:-2] >= 250).all()


def test_decode_applies_exif_orientation():
    im = Image.new("RGB", (40, 20), RED)  # stored wide: red top half, blue bottom half
    im.paste(BLUE, (0, 10, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display": top goes right
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=95)
    out = decode_image(buf.getvalue(), (40, 20))
    assert np.allclose(out[:, 20, 2].tolist(), BLUE, atol=30)
    assert np.allclose(out[:, 20, 17].tolist(), RED, atol=30)


def test_decode_alpha_and_palette_transparency_composite_on_white():
    im = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    im.paste(
        (255, 0, 0, 255), (10, 0, 20, 20)
    )  # left half transparent black, right half opaque red
    out = decode_image(_png_bytes(im), (20, 20))
    assert out[:, 5, 2].tolist() == [255, 255, 255] and out[:, 5, 17].tolist() == [255, 0, 0]
    gray = decode_image(_png_bytes(im), (20, 20), channels=1)
    assert (
        gray.shape == (1, 20, 20) and gray[0, 5, 2] == 255 and gray[0, 5, 17] == 76
    )  # ITU-R 601 luma of red
    pal = Image.new("P", (16, 16), 1)
    pal.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
    pal.info["transparency"] = 1
    assert decode_image(_png_bytes(pal), (16, 16))[:, 8, 8].tolist() == [255, 255, 255]
    la = Image.new("LA", (16, 16), (0, 0))
    assert decode_image(_png_bytes(la), (8, 8), channels=1)[0, 4, 4] == 255


@pytest.mark.parametrize("value,expected", [(0, 0), (1000, 4), (32896, 128), (65535, 255)])
def test_decode_sixteen_bit_scales_to_eight_bit(value, expected):
    out = decode_image(_png_bytes(_sixteen_bit(value)), (8, 8))
    assert (out == expected).all()


def test_decode_float_and_one_bit_modes(tmp_path):
    f = Image.fromarray(np.full((16, 16), 0.5, dtype=np.float32))
    f.save(tmp_path / "f.tif")
    assert (decode_image(tmp_path / "f.tif", (8, 8)) == 128).all()
    one = Image.new("1", (16, 16), 1)
    assert (decode_image(_png_bytes(one), (8, 8), channels=1) == 255).all()


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"just some text\n" * 4, "unsupported"),
        (_jpeg_bytes()[:600], "corrupt"),
        (_png_bytes(Image.new("RGB", (1, 1))), "too small"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "corrupt"),  # a PNG signature and nothing after it
    ],
)
def test_decode_bad_sources(data, reason):
    with pytest.raises(BadImage) as info:
        decode_image(data, (8, 8))
    assert info.value.reason == reason and isinstance(info.value, ValueError)


def test_decode_too_large_and_pillow_bomb_limit(monkeypatch):
    big = _png_bytes(Image.new("RGB", (20, 20)))
    with pytest.raises(BadImage) as info:
        decode_image(big, (8, 8), max_pixels=399)
    assert info.value.reason == "too large" and "400 pixels" in str(info.value)
    assert decode_image(big, (8, 8), max_pixels=400).shape == (3, 8, 8)
    # Pillow's own limit: a warning above MAX_IMAGE_PIXELS (silenced: we apply max_pixels
    # ourselves), an error above twice that (reported as too large)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(big, (8, 8)).shape == (3, 8, 8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)
    with pytest.raises(BadImage) as info:
        decode_image(big, (8, 8))
    assert info.value.reason == "too large"


def test_decode_missing_path_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        decode_image(tmp_path / "nope.jpg", (8, 8))
    with pytest.raises(ValueError, match="channels"):
        decode_image(_jpeg_bytes(), (8, 8), channels=4)


def test_summary_str_shortens_long_lists():
    summary = LoadSummary(
        total=10, loaded=3, converted={}, skipped={"corrupt": [f"{i}.jpg" for i in range(7)]}
    )
    assert str(summary) == (
        "loaded 3 of 10 images; skipped 7 (corrupt: 0.jpg, 1.jpg, 2.jpg, 3.jpg, 4.jpg and 2 more)"
    )


def _batch(b=64, c=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, size, size, generator=g) * 2 - 1


def test_augment_flip_is_per_sample_and_reproducible():
    x = _batch()
    y = augment(x, generator=torch.Generator().manual_seed(1))
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert (flipped | kept).all() and 10 < flipped.sum() < 54  # p=0.5 per sample, not all or none
    assert torch.equal(y, augment(x, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(y, augment(x, generator=torch.Generator().manual_seed(2)))


def test_augment_identity_and_validation():
    x = _batch()
    assert torch.equal(augment(x, flip=False, jitter=0.0), x)
    with pytest.raises(ValueError, match="jitter"):
        augment(x, jitter=1.5)
    with pytest.raises(ValueError, match="float batch"):
        augment(x[0])


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_jitter_matches_torchvision_and_is_per_sample(channels):
    import torchvision.transforms.functional as TF

    x = _batch(c=channels)
    y = augment(x, flip=False, jitter=0.8, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype and not torch.equal(y, x)
    # Parity with torchvision's ColorJitter formulas, one sample at a time, with the factors 1 + j
    # (2u - 1) replayed from the same generator (B draws each: brightness, contrast, saturation)
    u = torch.rand(3 * len(x), generator=torch.Generator().manual_seed(0))
    bright, contrast, saturation = (1 + 0.8 * (2 * u - 1)).split(len(x))
    expected = []
    for i, image in enumerate((x + 1) / 2):
        image = TF.adjust_brightness(image, bright[i].item())
        image = TF.adjust_contrast(image, contrast[i].item())
        if channels == 3:
            image = TF.adjust_saturation(image, saturation[i].item())
        expected.append(image * 2 - 1)
    torch.testing.assert_close(y, torch.stack(expected), rtol=0, atol=1e-6)
    # mid-grey input: contrast and saturation leave a flat
    # grey alone, brightness scales 0.5 by b in [0.2, 1.8]
    grey = torch.zeros(32, channels, 4, 4)
    out = augment(grey, flip=False, jitter=0.8, generator=torch.Generator().manual_seed(0))
    level = (out + 1) / 2
    assert torch.allclose(
        level, level[:, :1, :1, :1].expand_as(level), atol=1e-6
    )  # flat per sample
    per_sample = level[:, 0, 0, 0]
    assert (per_sample >= 0.1 - 1e-6).all() and (per_sample <= 0.9 + 1e-6).all()
    assert per_sample.unique().numel() > 16  # each sample drew its own factor


def test_augment_generator_draw_order_golden():
    # flip=False: the first B draws are brightness factors
    # 1 + j * (2u - 1), applied to a flat 0.5 image
    grey = torch.zeros(4, 3, 2, 2)
    out = augment(grey, flip=False, jitter=0.5, generator=torch.Generator().manual_seed(3))
    u = torch.rand(4, generator=torch.Generator().manual_seed(3))
    expected = (0.5 * (1 + 0.5 * (2 * u - 1))) * 2 - 1
    # atol 1e-4: torchvision's luma weights sum to 0.9999,
    # so saturation moves a flat grey very slightly
    assert torch.allclose(out[:, 0, 0, 0], expected, atol=1e-4)


# ------------------------------------------------------------------------- what a folder may hold


def test_links_loops_and_unreadable_files_are_skipped_and_counted(folder, monkeypatch):
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    (folder / "loop_a.jpg").symlink_to(folder / "loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to(folder / "loop_a.jpg")
    (folder / "sub" / "up").symlink_to(folder)  # a folder link back to an ancestor
    Image.new("RGB", (16, 16), RED).save(folder / "locked.png")
    real_open = Image.open

    def open_(fp, *args, **kwargs):  # as a non-root user without read permission would see it
        if str(fp).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(images.Image, "open", open_)
    x, summary = load_image_folder(folder, 16, progress=False)
    assert x.shape[0] == 8
    assert summary.skipped["dangling symlink"] == ["dangling.jpg"]
    assert summary.skipped["symlink loop"] == ["loop_a.jpg", "loop_b.jpg", "sub/up"]
    assert summary.skipped["unreadable"] == ["locked.png"]
    assert summary.loaded + sum(map(len, summary.skipped.values())) == summary.total
    assert "dangling symlink: dangling.jpg" in str(summary)


def test_folder_symlinks_are_followed(folder, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    Image.new("RGB", (16, 16), BLUE).save(other / "linked.png")
    (folder / "more").symlink_to(other)
    _, summary = load_image_folder(folder, 16, progress=False)
    assert summary.loaded == 9 and "symlink loop" not in summary.skipped


def test_read_only_folder_loads_without_a_cache_and_warns_once(folder, monkeypatch):
    def read_only(obj, path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(images, "atomic_save", read_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, summary = load_image_folder(folder, 16, progress=False)
    assert x.shape[0] == 8 and summary.loaded == 8
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "Read-only file system" in messages[0]
    assert "cache_dir=" not in messages[0] and "\n" not in messages[0]
    assert not (folder / ".gankit_cache").exists() or not any((folder / ".gankit_cache").iterdir())


def test_jfif_loads_and_unknown_extensions_are_counted(folder):
    Image.new("RGB", (16, 16), RED).save(folder / "photo.jfif", "JPEG")
    Image.new("RGB", (16, 16), RED).save(folder / "UPPER.JFIF", "JPEG")
    (folder / "photo.jpg~").write_bytes(b"an editor's backup")
    x, summary = load_image_folder(folder, 16, progress=False)
    assert x.shape[0] == 10 and summary.loaded == 10
    assert summary.skipped["not an image extension"] == ["photo.jpg~", "readme.txt"]
    assert summary.total == summary.loaded + sum(map(len, summary.skipped.values()))
    assert "not an image extension: photo.jpg~, readme.txt" in str(summary)


def test_a_newline_in_a_file_name_keeps_the_summary_on_one_line(folder):
    (folder / "bad\nname.jpg").write_bytes(b"")
    (folder / "odd\tname.txt").write_text("x")
    _, summary = load_image_folder(folder, 16, progress=False)
    assert summary.skipped["empty"] == ["bad\nname.jpg", "empty.jpg"]  # the names themselves
    text = str(summary)
    assert "\n" not in text and "\t" not in text
    assert "'bad\\nname.jpg'" in text and "'odd\\tname.txt'" in text
