"""Decode image files of any mode and size into uint8 tensors, and cache whole folders of them."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.functional import pil_to_tensor
from tqdm.auto import tqdm

from ..files import atomic_save

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
REASONS = ("empty", "corrupt", "too small", "too large", "unsupported")
MIN_SIDE = 8  # decode_image's defaults, also used by load_image_folder
MAX_PIXELS = (
    64_000_000  # ~8000 x 8000: larger is a scan or a decompression bomb, not a training image
)
_CACHE_VERSION = 2  # bump whenever decoding changes, so caches written by older code are re-decoded
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# Formats whose files we look for; used to tell a damaged
# image ('corrupt') from a non-image ('unsupported').
_FOLDER_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")


class BadImage(ValueError):
    """Raised by decode_image; .reason is one of: 'empty',
    'corrupt', 'too small', 'too large', 'unsupported'."""

    reason: str

    def __init__(self, reason: str, message: str):
        if reason not in REASONS:
            raise ValueError(f"unknown BadImage reason {reason!r}; expected one of {REASONS}")
        super().__init__(message)
        self.reason = reason

    def __reduce__(
        self,
    ):  # keeps the exception picklable (process pools) despite the two-argument __init__
        return (type(self), (self.reason, str(self)))


@dataclass
class LoadSummary:
    """What load_image_folder did: counts, mode
    conversions, and every skipped file with its reason."""

    # files seen (hidden ones aside): loaded + every skipped one
    total: int
    loaded: int
    # original PIL mode -> how many were converted
    converted: dict[str, int] = field(default_factory=dict)
    # reason -> relative file names, all of them: a decode failure (BadImage's reasons),
    # 'unreadable', 'dangling symlink', 'symlink loop', 'not a regular file',
    # 'not an image extension'
    skipped: dict[str, list[str]] = field(default_factory=dict)
    # the folder as the caller spelled it (not made absolute: summaries get printed in notebooks)
    root: str = ""

    def __str__(self) -> str:
        text = f"loaded {self.loaded} of {self.total} images"
        if self.root:
            text += f" from {_show(self.root)}"
        if self.converted:
            modes = ", ".join(f"{mode}: {n}" for mode, n in sorted(self.converted.items()))
            text += f"; converted {sum(self.converted.values())} ({modes})"
        if self.skipped:
            parts = []
            for reason in sorted(self.skipped):
                names = self.skipped[reason]
                shown = ", ".join(map(_show, names[:5])) + (
                    f" and {len(names) - 5} more" if len(names) > 5 else ""
                )
                parts.append(f"{reason}: {shown}")
            text += f"; skipped {sum(map(len, self.skipped.values()))} ({'; '.join(parts)})"
        return text


def decode_image(
    source: str | os.PathLike | bytes,
    size: tuple[int, int],
    channels: int = 3,
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> torch.Tensor:
    """Decode one image file (path or its bytes) to a uint8 tensor (channels, H, W), size=(H, W).

    Any PIL mode is converted to RGB (channels=3) or L (channels=1): transparency (RGBA, LA, PA,
    palette or colour-key transparency) is composited on white; CMYK, palette and 1-bit images are
    converted by Pillow; 16-bit (I;16*) images are scaled 0..65535 -> 0..255, 32-bit 'I' images by
    their likely range (0..255, 0..65535, else min..max), float 'F' images from 0..1 (else
    min..max). EXIF orientation is applied, then the image is resized (LANCZOS, antialiased) so it
    covers (H, W) keeping its aspect ratio and centre-cropped to exactly (H, W). Animated files give
    their first frame.

    Raises BadImage with .reason 'empty' (zero bytes), 'unsupported' (not an image Pillow can read,
    or a mode it cannot convert), 'corrupt' (truncated or damaged data), 'too small' (a side shorter
    than min_side) or 'too large' (more than max_pixels, or over Pillow's own decompression-bomb
    limit PIL.Image.MAX_IMAGE_PIXELS * 2 whatever max_pixels says). A missing path raises
    FileNotFoundError.
    """
    # Pillow warns (DecompressionBombWarning) above its own pixel limit; we apply max_pixels
    # ourselves, so the warning would only be noise. Note: catch_warnings is process-global state in
    # Python < 3.14; load_image_folder therefore silences it once around its thread pool instead of
    # per image.
    with _no_bomb_warning():
        image, _ = _decode(source, size, channels, min_side, max_pixels)
    return image


def load_image_folder(
    root: str | os.PathLike,
    image_size: int | tuple[int, int],
    channels: int = 3,
    *,
    cache_dir: str | os.PathLike | None = None,
    recursive: bool = True,
    progress: bool = True,
) -> tuple[torch.Tensor, LoadSummary]:
    """Decode every image under root once into a uint8 tensor (N, C, H, W) plus a LoadSummary.

    image_size is an int (square) or (H, W). Image files are recognised by extension (jpg jpeg jfif
    png bmp gif webp tif tiff, any case); hidden files and folders (names starting with '.') are not
    looked at, which also keeps the cache and macOS '._x.jpg' resource forks out. Folder symlinks
    are followed (a link back to a folder above is a loop, skipped). Files are decoded in sorted
    order of their relative paths with decode_image's defaults; every other file is skipped and
    listed by reason in the summary: a decode failure, 'unreadable', 'dangling symlink', 'symlink
    loop', 'not a regular file', 'not an image extension'. `progress` shows a tqdm bar.

    The result is cached in cache_dir (default <root>/.gankit_cache) keyed by a hash of the absolute
    root, every image file's relative path, size and mtime, image_size and channels: a changed
    folder is re-decoded (and the stale cache file for that folder and size removed), an unchanged
    one is read back without decoding. The cache only saves time: when it cannot be written (a
    read-only folder, a full disk) a warning says so and the images are returned all the same.
    Raises FileNotFoundError if root does not exist, ValueError if it holds no decodable image.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"image folder {root_path} does not exist (or is not a folder)")
    size = (
        (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    )
    _check_size_channels(size, channels)
    height, width = int(size[0]), int(size[1])
    root_abs = root_path.resolve()
    found, scan_skipped = scan_folder(root_abs, recursive)
    names = [name for name, _ in found]
    if not names:
        where = "or its subfolders " if recursive else ""
        raise ValueError(
            f"no image files in {_show(str(root_path))} {where}(looked for "
            f"{', '.join(IMAGE_EXTENSIONS)}){_skip_text(scan_skipped)}; "
            "put images there or pass the folder that holds them"
        )

    key_fields = {
        "version": _CACHE_VERSION,
        "root": str(root_abs),
        "size": [height, width],
        "channels": channels,
        "files": [[name, st.st_size, st.st_mtime_ns] for name, st in found],
        "skipped": sorted([name, reason] for reason, ns in scan_skipped.items() for name in ns),
    }
    key = hashlib.sha256(json.dumps(key_fields, separators=(",", ":")).encode()).hexdigest()
    cache_root = Path(cache_dir) if cache_dir is not None else root_abs / ".gankit_cache"
    # The prefix names the folder and size, so a re-decode can remove the stale file it replaces
    # even when several folders share one cache_dir.
    prefix = (
        f"{root_abs.name or 'root'}-{hashlib.sha256(str(root_abs).encode()).hexdigest()[:8]}-"
        f"{height}x{width}x{channels}-"
    )
    cache_file = cache_root / f"{prefix}{key[:24]}.pt"

    cached = _read_cache(cache_file, key)
    if cached is not None:
        images, summary = cached
        summary.root = str(root)
        return images, summary

    images = torch.empty((len(names), channels, height, width), dtype=torch.uint8)
    loaded = 0
    converted: dict[str, int] = {}
    skipped: dict[str, list[str]] = {reason: list(ns) for reason, ns in scan_skipped.items()}

    def decode_one(name: str) -> tuple[torch.Tensor | None, str | None]:
        try:
            return _decode(root_abs / name, (height, width), channels, MIN_SIDE, MAX_PIXELS)
        except BadImage as e:
            return None, e.reason
        except OSError as e:  # no read permission, an I/O error, gone since the scan
            return None, _os_reason(e, is_link=False)

    # Threads, not processes: Pillow releases the GIL while decoding and resizing, and threads share
    # the result tensor without pickling. Executor.map keeps the sorted order.
    workers = min(8, os.cpu_count() or 1)
    with _no_bomb_warning(), concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(decode_one, names)
        for name, (image, note) in tqdm(
            zip(names, results),
            total=len(names),
            disable=not progress,
            desc=f"decoding {root_abs.name}",
            unit="img",
        ):
            if image is None:
                skipped.setdefault(note, []).append(name)
                continue
            images[loaded] = image
            loaded += 1
            if note is not None:
                converted[note] = converted.get(note, 0) + 1

    for names_ in skipped.values():
        names_.sort()
    total = loaded + sum(map(len, skipped.values()))
    summary = LoadSummary(
        total=total, loaded=loaded, converted=converted, skipped=skipped, root=str(root)
    )
    if loaded == 0:
        reasons = "; ".join(
            f"{reason}: {len(files)} (e.g. {_show(files[0])})"
            for reason, files in sorted(skipped.items())
        )
        raise ValueError(
            f"no decodable images in {_show(str(root_path))}: saw {len(names)} image files and "
            f"skipped all of them ({reasons}); "
            "decode one with gankit.datasets.images.decode_image to see the full error"
        )
    images = images[:loaded].clone() if loaded < len(names) else images

    # A file we could not read may be readable next time (permissions fixed) with the same size and
    # mtime, so such a result is not cached.
    if len(skipped.get("unreadable", [])) == len(scan_skipped.get("unreadable", [])):
        blob = {"key": key, "images": images, "summary": dataclasses.asdict(summary)}
        if _write_cache(cache_file, blob):
            # not glob(): a folder name may hold glob characters like '['
            for stale in cache_root.iterdir():
                if stale.name.startswith(prefix) and stale.suffix == ".pt" and stale != cache_file:
                    with contextlib.suppress(OSError):
                        stale.unlink()
    return images, summary


def augment(
    x: torch.Tensor,
    *,
    flip: bool = True,
    jitter: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Augment a batch x, float (B, C, H, W) in [-1, 1],
    on x's own device; returns the same shape in [-1, 1].

    flip: each sample is mirrored left-right with probability 0.5. jitter in [0, 1]: each sample's
    brightness, contrast and (C=3 only) saturation are scaled by its own factor drawn uniformly from
    [1 - jitter, 1 + jitter], in that order, as torchvision's ColorJitter defines them (blend with
    black, with the image's mean grey, with its own greyscale), clamping after each step. Random
    numbers come from generator (which must live on x.device) when given, else the global RNG:
    B draws for the flip, then B each for brightness, contrast, saturation. With flip=False and
    jitter=0 x itself is returned.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"augment expects a float batch (B, C, H, W) in [-1, 1], got {tuple(x.shape)} {x.dtype}"
        )
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(
            "jitter must be in [0, 1] (factors are drawn from [1 - jitter, 1 + jitter]), "
            f"got {jitter}"
        )
    if generator is not None and not _same_device(generator.device, x.device):
        raise ValueError(
            f"generator lives on {generator.device} but x on {x.device}; "
            f"create it with torch.Generator(device=x.device)"
        )
    if not flip and jitter == 0:
        return x
    batch, chans = x.shape[0], x.shape[1]

    def draw() -> (
        torch.Tensor
    ):  # (B, 1, 1, 1) uniform in [0, 1), drawn in float32 so half inputs work everywhere
        return (
            torch.rand(batch, generator=generator, device=x.device).to(x.dtype).view(batch, 1, 1, 1)
        )

    if flip:
        x = torch.where(draw() < 0.5, x.flip(-1), x)
    if jitter > 0:
        # Hand-written: torchvision.transforms.v2.functional.adjust_* take one float factor per
        # call, so per-sample factors would need a Python loop over the batch; these are the same
        # formulas with a (B, 1, 1, 1) factor tensor.
        y = (x + 1) * 0.5  # [0, 1], where torchvision's formulas are defined

        def factor() -> torch.Tensor:
            return 1 + jitter * (2 * draw() - 1)

        y = (y * factor()).clamp(0, 1)  # brightness: blend with black
        mean = _grey(y).mean(dim=(1, 2, 3), keepdim=True)
        c = factor()
        y = (c * y + (1 - c) * mean).clamp(0, 1)  # contrast: blend with the sample's mean grey
        if chans == 3:
            s = factor()
            y = (s * y + (1 - s) * _grey(y)).clamp(0, 1)  # saturation: blend with its own greyscale
        x = y * 2 - 1
    return x.clamp(-1, 1)


# --- internals ------------------------------------------------------------------------------------


def _decode(
    source: str | os.PathLike | bytes,
    size: tuple[int, int],
    channels: int,
    min_side: int,
    max_pixels: int,
) -> tuple[torch.Tensor, str | None]:
    """decode_image without the warning filter; also
    returns the original mode if it was converted."""
    _check_size_channels(size, channels)
    height, width = int(size[0]), int(size[1])
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = "<bytes>", bytes(source)
        if not data:
            raise BadImage("empty", "image data is empty (0 bytes)")
        fp: str | io.BytesIO = io.BytesIO(data)
    else:
        name = os.fspath(source)
        if os.stat(name).st_size == 0:
            raise BadImage("empty", f"{name} is empty (0 bytes)")
        fp = name

    try:
        im = Image.open(fp)
    except Image.DecompressionBombError as e:
        raise BadImage("too large", f"{name}: {e}") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the path itself is wrong: the caller's problem, not the image's
    except (
        Exception
    ) as e:  # UnidentifiedImageError, or a plugin failing on a damaged header (OSError, ...)
        if _looks_like_image(fp):
            raise BadImage(
                "corrupt", f"{name} starts like an image file but its header is damaged: {e}"
            ) from None
        raise BadImage("unsupported", f"{name} is not an image file Pillow can read") from None

    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise BadImage(
                "too large",
                f"{name} is {w}x{h} = {w * h} pixels, more than max_pixels={max_pixels} "
                "(a decompression bomb or a huge scan; raise max_pixels if you trust it)",
            )
        if min(w, h) < min_side:
            raise BadImage(
                "too small", f"{name} is {w}x{h}, a side is shorter than min_side={min_side}"
            )
        try:
            # For JPEG, Pillow can decode at 1/2, 1/4 or 1/8 scale (DCT scaling); asking for at
            # least max(H, W) on both sides keeps enough pixels to cover (H, W) in either
            # orientation.
            im.draft(None, (max(height, width), max(height, width)))
            im.load()
        # Pillow plugins raise OSError, SyntaxError, ValueError, struct.error, ... on bad data
        except Exception as e:
            raise BadImage("corrupt", f"{name} could not be decoded: {e}") from None
        # a damaged EXIF block should not cost an otherwise good image its pixels
        with contextlib.suppress(Exception):
            ImageOps.exif_transpose(im, in_place=True)
        mode = im.mode
        target = "RGB" if channels == 3 else "L"
        try:
            out, changed = _to_8bit(im, target)
        except (ValueError, OSError) as e:
            raise BadImage(
                "unsupported", f"{name}: cannot convert PIL mode {mode} to {target}: {e}"
            ) from None
        out = ImageOps.fit(
            out, (width, height), method=Image.Resampling.LANCZOS
        )  # PIL wants (W, H)
        return pil_to_tensor(out).contiguous(), (mode if changed else None)


def _to_8bit(im: Image.Image, target: str) -> tuple[Image.Image, bool]:
    """Convert a loaded image to mode target ('RGB' or
    'L'); returns (image, whether anything changed)."""
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        # Hand-written: Pillow's convert('L') clips these modes at 255 instead of scaling them
        # (a 16-bit value of 1000 becomes 255, not 4), so scale with numpy.
        im = Image.fromarray(_scale_to_uint8(np.asarray(im), mode))
    elif mode == "La":  # premultiplied; Pillow converts it to LA but not straight to RGBA
        im = im.convert("LA")
    # info['transparency']: palette or colour-key transparency (what Pillow >= 10.1's
    # has_transparency_data checks)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(
            Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba
        ).convert("RGB")
    if im.mode != target:
        im = im.convert(target)
    return im, mode != target


def _scale_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """Map a 16/32-bit integer or float image to uint8 (rounded), by its mode's natural range."""
    a = np.nan_to_num(a.astype(np.float64))
    low, high = float(a.min()), float(a.max())
    if mode in _SIXTEEN_BIT_MODES:
        lo, hi = 0.0, 65535.0
    elif mode == "I" and low >= 0 and high <= 255:
        lo, hi = 0.0, 255.0
    elif (
        mode == "I" and low >= 0 and high <= 65535
    ):  # 16-bit data in a 32-bit container (older Pillow PNGs)
        lo, hi = 0.0, 65535.0
    elif mode == "F" and low >= 0 and high <= 1:
        lo, hi = 0.0, 1.0
    else:  # no natural range: stretch this image's own min..max
        lo, hi = low, max(high, low + 1e-12)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _looks_like_image(fp: str | io.BytesIO) -> bool:
    """True if the file starts with the signature of a
    format we look for (per Pillow's own checks)."""
    if isinstance(fp, io.BytesIO):
        prefix = fp.getvalue()[:64]
    else:
        with open(fp, "rb") as f:
            prefix = f.read(64)
    Image.init()
    checks = [Image.OPEN[fmt][1] for fmt in _FOLDER_FORMATS if fmt in Image.OPEN]
    return any(accept is not None and accept(prefix) for accept in checks)


def _check_size_channels(size: tuple[int, int], channels: int) -> None:
    if len(size) != 2 or not all(isinstance(s, (int, np.integer)) and s > 0 for s in size):
        raise ValueError(f"size must be (H, W) with positive ints, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")


@contextlib.contextmanager
def _no_bomb_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _show(name: str) -> str:
    """A file name as a summary shows it: as is, or repr-escaped when it holds a line break, a tab
    or another unprintable character, so a summary stays one line."""
    return name if name.isprintable() else repr(name)


def _skip_text(skipped: dict[str, list[str]]) -> str:
    if not skipped:
        return ""
    parts = "; ".join(f"{r}: {len(ns)} (e.g. {_show(ns[0])})" for r, ns in sorted(skipped.items()))
    return f"; skipped {sum(map(len, skipped.values()))} other files ({parts})"


def _os_reason(e: OSError, is_link: bool) -> str:
    """Why a file could not be looked at, as a LoadSummary reason."""
    if e.errno == errno.ELOOP:
        return "symlink loop"
    if is_link and isinstance(e, FileNotFoundError):
        return "dangling symlink"
    return "unreadable"


def scan_folder(
    root: Path, recursive: bool
) -> tuple[list[tuple[str, os.stat_result]], dict[str, list[str]]]:
    """(image files as (relative POSIX path, stat), reason -> other files) under root, both sorted;
    hidden files and folders are left out, folder symlinks followed unless they loop back."""
    found: list[tuple[str, os.stat_result]] = []
    skipped: dict[str, list[str]] = {}

    def visit(folder: Path, rel: str, above: frozenset) -> None:
        try:
            with os.scandir(folder) as it:
                entries = [e for e in it if not e.name.startswith(".")]
        except OSError as e:
            skipped.setdefault(_os_reason(e, is_link=False), []).append(rel or ".")
            return
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat()  # follows symlinks
            except OSError as e:
                skipped.setdefault(_os_reason(e, entry.is_symlink()), []).append(name)
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    if (st.st_dev, st.st_ino) in above:
                        skipped.setdefault("symlink loop", []).append(name)
                    else:
                        visit(Path(entry.path), name, above | {(st.st_dev, st.st_ino)})
            elif not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                skipped.setdefault("not an image extension", []).append(name)
            elif not stat.S_ISREG(st.st_mode):  # a FIFO would block the reader forever
                skipped.setdefault("not a regular file", []).append(name)
            else:
                found.append((name, st))

    st = root.stat()
    visit(root, "", frozenset({(st.st_dev, st.st_ino)}))
    for names in skipped.values():
        names.sort()
    return sorted(found, key=lambda item: item[0]), skipped


def _read_cache(path: Path, key: str) -> tuple[torch.Tensor, LoadSummary] | None:
    if not path.exists():
        return None
    try:
        data = torch.load(
            path, map_location="cpu", weights_only=True
        )  # weights_only: never unpickle code
        if data.get("key") != key:
            return None
        return data["images"], LoadSummary(**data["summary"])
    except Exception as e:  # unreadable or foreign file: decoding again is always safe
        warnings.warn(
            f"ignoring unreadable image cache {path} ({e}); decoding the folder again", stacklevel=3
        )
        return None


def _write_cache(path: Path, obj: dict) -> bool:
    """torch.save obj to path atomically (gankit.files.atomic_save); True if it was written.

    The cache only saves time, so a failure (read-only folder, full disk) is one warning, and the
    images are used without it.
    """
    try:
        atomic_save(obj, path)
    except OSError as e:
        why = e.strerror or str(e)
        warnings.warn(
            f"could not write the image cache {_show(str(path))} ({why}); loading without it, so "
            f"the folder is decoded again on every run (make {_show(str(path.parent))} writable, "
            "or free some space, to keep a cache)",
            stacklevel=3,
        )
        return False
    return True


def _grey(y: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B, 1, H, W) luma with
    torchvision's ITU-R 601 weights (C=1 passes through)."""
    if y.shape[1] == 1:
        return y
    r, g, b = y.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _same_device(a: torch.device, b: torch.device) -> bool:
    # torch.Generator(device='cuda').device may carry no index while tensors say cuda:0.
    return a.type == b.type and (a.index or 0) == (b.index or 0)
