"""A learnable toy stand-in for the movie-poster set, in exactly the real format (CSV + JPEGs)."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..files import atomic_write
from .posters import COLUMNS, CSV_NAME, GENRES, POSTER_WH, REAL_GENRE_COUNTS, TOY_MARKER, PathLike


def _m_vbands(d, w, h, c, r, n=(1, 3), width=(0.12, 0.22)):
    for _ in range(r.integers(*n)):
        x, hw = r.uniform(0.15, 0.85) * w, r.uniform(*width) * w / 2
        d.rectangle([x - hw, 0, x + hw, h], fill=c)


def _m_columns(d, w, h, c, r):
    k = int(r.integers(4, 7))
    for i in range(k):
        x = (i + 0.5) * w / k
        d.rectangle([x - w / (5 * k), h * 0.15, x + w / (5 * k), h], fill=c)


def _m_hlines(d, w, h, c, r, step=(10, 15), width=(3, 5)):
    s, y = int(r.integers(*step)), r.uniform(0, 6)
    lw = int(r.integers(*width))
    while y < h:
        d.rectangle([0, y, w, y + lw], fill=c)
        y += s


def _m_diagonals(d, w, h, c, r, step=(26, 36), width=(10, 15), slope=1.0):
    s, lw, x = int(r.integers(*step)), int(r.integers(*width)), -h - r.uniform(0, 20)
    while x < w + h:
        d.polygon([(x, h), (x + lw, h), (x + lw + h * slope, 0), (x + h * slope, 0)], fill=c)
        x += s


def _m_tape(d, w, h, c, r):
    y, lw = r.uniform(0.3, 0.7) * h, r.uniform(14, 22)
    d.polygon([(0, y + 25), (0, y + 25 + lw), (w, y - 25 + lw), (w, y - 25)], fill=c)
    d.polygon([(0, y - 20), (0, y - 20 + lw / 2), (w, y + 20 + lw / 2), (w, y + 20)], fill=c)


def _m_circles(d, w, h, c, r, n=(2, 4), radius=(12, 30), outline=None):
    for _ in range(r.integers(*n)):
        x, y, rad = r.uniform(0, w), r.uniform(0, h), r.uniform(*radius)
        d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=c, outline=outline, width=3)


def _m_rings(d, w, h, c, r, cross=False):
    x, y = r.uniform(0.35, 0.65) * w, r.uniform(0.3, 0.7) * h
    for rad in range(int(r.integers(10, 16)), int(max(w, h) * 0.6), 16):
        d.ellipse([x - rad, y - rad, x + rad, y + rad], outline=c, width=4)
    if cross:
        d.rectangle([x - 2, 0, x + 2, h], fill=c)
        d.rectangle([0, y - 2, w, y + 2], fill=c)


def _m_grid(d, w, h, c, r, step=(18, 26)):
    s = int(r.integers(*step))
    for x in np.arange(r.uniform(0, s), w, s):
        d.line([(x, 0), (x, h)], fill=c, width=2)
    for y in np.arange(r.uniform(0, s), h, s):
        d.line([(0, y), (w, y)], fill=c, width=2)


def _m_peaks(d, w, h, c, r, n=(2, 4), up=True):
    for _ in range(r.integers(*n)):
        x, hw, ht = r.uniform(0, w), r.uniform(25, 50), r.uniform(0.4, 0.8) * h
        base, tip = (h, h - ht) if up else (0, ht)
        d.polygon([(x - hw, base), (x + hw, base), (x, tip)], fill=c)


def _m_chevrons(d, w, h, c, r):
    y = r.uniform(-10, 10)
    while y < h + 40:
        d.line([(0, y), (w / 2, y - 30), (w, y)], fill=c, width=9)
        y += 30


def _m_checker(d, w, h, c, r, cell=(14, 22)):
    s = int(r.integers(*cell))
    for i, x in enumerate(range(0, w, s)):
        for j, y in enumerate(range(0, h, s)):
            if (i + j) % 2:
                d.rectangle([x, y, x + s - 1, y + s - 1], fill=c)


def _m_waves(d, w, h, c, r):
    xs = np.linspace(0, w, 24)
    for y0 in np.arange(r.uniform(5, 15), h, 18):
        ph = r.uniform(0, 6.3)
        d.line(list(zip(xs, y0 + 6 * np.sin(xs / 12 + ph))), fill=c, width=4)


def _m_frame(d, w, h, c, r):
    m = r.uniform(0.12, 0.2) * w
    d.rectangle([m, m, w - m, h - m], outline=c, width=7)
    d.ellipse([w * 0.35, h * 0.25, w * 0.65, h * 0.7], fill=c)


def _m_sun(d, w, h, c, r):
    x, y, rad = r.uniform(0.3, 0.7) * w, h * r.uniform(0.45, 0.6), r.uniform(22, 34)
    d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=(250, 225, 120))
    d.rectangle([0, y + rad * 0.3, w, h], fill=c)


def _m_orb(d, w, h, c, r):
    x, y, rad = r.uniform(0.4, 0.6) * w, r.uniform(0.4, 0.6) * h, r.uniform(0.3, 0.42) * min(w, h)
    d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=c)


def _m_diamonds(d, w, h, c, r):
    for _ in range(r.integers(8, 14)):
        x, y, s = r.uniform(0, w), r.uniform(0, h), r.uniform(4, 9)
        d.polygon([(x, y - 2 * s), (x + s, y), (x, y + 2 * s), (x - s, y)], fill=c)


def _p(f, **kw):
    return lambda d, w, h, c, r: f(d, w, h, c, r, **kw)


# genre -> (background RGB, accent RGB, motif). Palettes differ in hue/brightness so mean colour
# alone already separates the common genres; motifs add shape cues a conv net can use at 64x64.
_STYLE: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], Callable]] = {
    "Action": ((225, 95, 25), (50, 35, 30), _m_chevrons),
    "Adult": ((235, 130, 185), (120, 30, 90), _p(_m_circles, n=(12, 20), radius=(4, 7))),
    "Adventure": ((125, 150, 60), (240, 225, 160), _m_peaks),
    "Animation": ((175, 80, 230), (255, 235, 60), _p(_m_circles, n=(5, 9), radius=(8, 18))),
    "Biography": ((175, 145, 105), (70, 45, 25), _m_frame),
    "Comedy": ((250, 215, 40), (255, 120, 20), _m_diagonals),
    "Crime": ((62, 58, 55), (235, 200, 30), _m_tape),
    "Documentary": ((115, 135, 135), (235, 235, 235), _m_grid),
    "Drama": ((60, 50, 115), (195, 170, 215), _m_hlines),
    "Family": ((150, 215, 120), (255, 255, 235), _p(_m_circles, n=(10, 16), radius=(6, 10))),
    "Fantasy": ((20, 115, 90), (235, 195, 60), _m_diamonds),
    "Film-Noir": (
        (25, 25, 25),
        (225, 225, 225),
        _p(_m_diagonals, step=(12, 16), width=(4, 6), slope=0.4),
    ),
    "Game-Show": ((0, 170, 200), (255, 80, 160), _m_checker),
    "History": ((125, 80, 40), (225, 185, 90), _m_columns),
    "Horror": ((110, 10, 12), (15, 5, 5), _m_vbands),
    "Music": ((200, 40, 120), (250, 240, 250), _m_waves),
    "Musical": ((235, 150, 95), (120, 20, 60), _p(_m_peaks, up=False)),
    "Mystery": ((20, 65, 75), (150, 230, 200), _m_rings),
    "News": ((230, 230, 230), (200, 20, 30), _p(_m_hlines, step=(20, 26), width=(6, 9))),
    "Reality-TV": ((255, 120, 0), (20, 20, 120), _p(_m_checker, cell=(24, 30))),
    "Romance": ((235, 115, 145), (255, 225, 235), _m_orb),
    "Sci-Fi": ((20, 55, 160), (60, 225, 245), _p(_m_circles, outline=(200, 250, 255))),
    "Short": ((200, 195, 230), (90, 80, 140), _p(_m_checker, cell=(8, 12))),
    "Sport": ((40, 140, 55), (245, 245, 245), _p(_m_grid, step=(34, 44))),
    "Talk-Show": ((90, 170, 250), (250, 250, 120), _p(_m_circles, n=(1, 3), radius=(30, 40))),
    "Thriller": ((28, 30, 36), (130, 225, 60), _p(_m_rings, cross=True)),
    "War": ((95, 100, 55), (200, 90, 30), _p(_m_circles, n=(6, 10), radius=(10, 22))),
    "Western": ((215, 160, 90), (110, 60, 25), _m_sun),
}

_WORDS = (
    "Night",
    "Last",
    "Café",
    "Señor",
    "Amélie",
    "River",
    "Noël",
    "Über",
    "Crème",
    "Façade",
    "Blood",
    "Star",
    "Mañana",
    "Garçon",
    "Home",
    "Love",
    "War",
    "Ghost",
    "Dream",
    "Città",
    "Summer",
    "Dark",
    "Øresund",
    "Return",
    "Glass",
    "Fire",
    "Côte",
    "Secret",
    "Island",
    "Ångström",
    "King",
    "Heart",
)


_FOLD = str.maketrans({"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "ß": "ss"})


def _toy_title(r: np.random.Generator) -> str:
    words = [_WORDS[i] for i in r.integers(0, len(_WORDS), r.integers(1, 4))]
    title = " ".join(words)
    if r.random() < 0.08:
        title = f"{words[0]}, {title}"  # commas in titles must survive quoting
    if r.random() < 0.04:
        title = f'The "{title}"'
    return f"{title} ({int(r.integers(1920, 2017))})"


def _draw_poster(
    genres: Sequence[str], title: str, r: np.random.Generator, font, grain: np.ndarray
) -> Image.Image:
    w, h = POSTER_WH
    img = Image.new("RGB", (w, h))
    # One full-height column per genre: decode_image centre-crops to the target aspect, which at
    # 64x64 cuts the top and bottom of a 182x268 poster but never its sides, so every genre's cue
    # survives.
    k = len(genres)
    cuts = [0] + sorted(int(w * (i + r.uniform(-0.1, 0.1)) / k) for i in range(1, k)) + [w]
    jitter = lambda col: tuple(
        int(v) for v in np.clip(np.array(col) + r.integers(-18, 19, 3), 0, 255)
    )
    for name, x0, x1 in zip(genres, cuts[:-1], cuts[1:]):
        bg, accent, motif = _STYLE[name]
        part = Image.new("RGB", (x1 - x0, h), jitter(bg))
        motif(ImageDraw.Draw(part), x1 - x0, h, jitter(accent), r)
        img.paste(part, (x0, 0))
    d = ImageDraw.Draw(img)
    top = r.random() < 0.3  # title block at the bottom (mostly) or top, like real posters
    y = int(r.integers(6, 20)) if top else h - int(r.integers(34, 48))
    d.rectangle([6, y, w - 6, y + 26], fill=tuple(int(v) for v in r.integers(0, 60, 3)))
    # Pillow's bundled font has no accented letters: draw the title's ASCII fold (é -> e), as a
    # printed credit would
    shown = unicodedata.normalize("NFKD", title.translate(_FOLD)).encode("ascii", "ignore").decode()
    d.text((10, y + 5), shown[:24], fill=(240, 240, 240), font=font)
    px = np.asarray(img, dtype=np.float32)
    px *= np.linspace(1.06, 0.86, h, dtype=np.float32)[:, None, None]  # soft top-to-bottom lighting
    y, x = r.integers(0, grain.shape[0] - h + 1), r.integers(0, grain.shape[1] - w + 1)
    px += grain[
        y : y + h, x : x + w
    ]  # film grain: a window of one shared noise field (fresh noise costs 3x)
    return Image.fromarray(np.clip(px, 0, 255, out=px).astype(np.uint8))


def make_toy(out_dir: PathLike, n: int = 2000, seed: int = 0, *, broken: float = 0.01) -> Path:
    """Write a synthetic poster set in exactly the real
    format; returns the path of its MovieGenre.csv.

    n CSV rows (Latin-1; quoted Poster URLs, some with commas; Latin-1 titles) and {imdbId}.jpg
    posters of 182x268 (W x H), ~5% grayscale. Each poster has one full-height column per genre (1-3
    genres, drawn in proportion to REAL_GENRE_COUNTS), each in its genre's palette and motif, plus a
    title block, lighting and noise. `broken` is the fraction of rows made faulty in each of five
    ways: zero-byte file, truncated file, blank Genre, blank Poster (no file), duplicated row. The
    ids of each are listed in toy_info.json (which also marks the folder as the toy set).
    Deterministic for a seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / CSV_NAME).exists() and not (out_dir / TOY_MARKER).exists():
        raise FileExistsError(
            f"{out_dir} already holds a {CSV_NAME} that make_toy did not write (a real poster "
            "set?); make the toy set in another folder"
        )
    if (
        out_dir / TOY_MARKER
    ).exists():  # regenerating a toy folder: drop its old files (never a real set's)
        (out_dir / CSV_NAME).unlink(
            missing_ok=True
        )  # first, so a half-regenerated folder is not "complete"
        for p in out_dir.glob("*.jpg"):
            if p.stem.isdigit():
                p.unlink()
    r = np.random.default_rng(seed)
    k = round(broken * n)
    if n < 1 or 5 * k > n:
        raise ValueError(f"make_toy needs n >= 1 and broken <= 0.2 (got n={n}, broken={broken})")
    ids = (100000 + np.cumsum(r.integers(1, 400, n))).tolist()
    r.shuffle(ids)
    faulty = r.permutation(np.arange(1, n))[
        : 5 * k
    ].tolist()  # row 0 stays good: duplicates copy earlier rows
    zero, trunc, no_genre, no_url, dup = (set(faulty[i * k : (i + 1) * k]) for i in range(5))
    faulty_set = set(faulty)
    counts = np.array([REAL_GENRE_COUNTS[g] for g in GENRES], dtype=np.float64)
    p = counts / counts.sum()
    try:
        font = ImageFont.load_default(13)
    except TypeError:  # Pillow < 10.1 has only its small bitmap font
        font = ImageFont.load_default()
    grain = r.standard_normal((POSTER_WH[1] + 97, POSTER_WH[0] + 89, 3), dtype=np.float32) * 6.0
    info: dict[str, list[int]] = {
        "zero_byte": [],
        "truncated": [],
        "blank_genre": [],
        "no_poster": [],
        "duplicate": [],
        "grayscale": [],
    }
    rows, good = [], []  # good: rows with no fault, the ones a duplicate may copy
    for i in range(n):
        if i in dup:  # an exact copy of an earlier row, as the real file has
            rows.append(rows[good[int(r.integers(0, len(good)))]])
            info["duplicate"].append(int(rows[-1][0]))
            continue
        if i not in faulty_set:
            good.append(i)
        imdb_id = ids[i]
        genres = [
            GENRES[j]
            for j in r.choice(
                len(GENRES), size=int(r.choice([1, 2, 3], p=[0.3, 0.35, 0.35])), replace=False, p=p
            )
        ]
        title = _toy_title(r)
        url = (
            f"https://images.example.invalid/images/M/tt{imdb_id}@._V1_UX182_CR0,0,182,268_AL_.jpg"
            if r.random() < 0.5
            else f"https://images.example.invalid/images/M/tt{imdb_id}.jpg"
        )
        score = f"{np.clip(r.normal(6.3, 1.1), 1.0, 9.8):.1f}"
        img = _draw_poster(genres, title, r, font, grain)
        if i in no_genre:
            genres = []
            info["blank_genre"].append(imdb_id)
        rows.append(
            (
                str(imdb_id),
                f"http://www.imdb.com/title/tt{imdb_id}",
                title,
                score,
                "|".join(genres),
                "" if i in no_url else url,
            )
        )
        if i in no_url:
            info["no_poster"].append(imdb_id)
            continue  # no URL, so no file could have been downloaded
        gray = r.random() < 0.05
        buf = io.BytesIO()
        (img.convert("L") if gray else img).save(buf, "JPEG", quality=88)
        data = buf.getvalue()
        if i in zero:
            data = b""
            info["zero_byte"].append(imdb_id)
        elif i in trunc:
            data = data[: len(data) // 2]
            info["truncated"].append(imdb_id)
        elif gray:
            info["grayscale"].append(imdb_id)
        (out_dir / f"{imdb_id}.jpg").write_bytes(data)
    text = io.StringIO(newline="")
    csv.writer(text, lineterminator="\n").writerows([COLUMNS, *rows])
    (out_dir / TOY_MARKER).write_text(
        json.dumps(
            {
                "generator": "gankit.datasets.posters.make_toy",
                "seed": seed,
                "n": n,
                "broken": broken,
                **info,
            },
            indent=1,
        )
    )
    csv_path = out_dir / CSV_NAME
    atomic_write(
        csv_path, text.getvalue().encode("latin-1")
    )  # written last: its presence means "complete"
    return csv_path


def poster_root(
    data_root: PathLike, *, seed: int = 0, n_toy: int = 2000, toy_dir: PathLike | None = None
) -> tuple[Path, bool]:
    """(folder, is_toy): data_root/posters when it holds MovieGenre.csv and posters, else the toy
    set at toy_dir (default data_root/posters-toy), generated with make_toy(seed, n_toy) on first
    use (or when seed/n changed)."""
    data_root = Path(data_root)
    real = data_root / "posters"
    if (real / CSV_NAME).is_file() and (any(real.glob("*.jpg")) or any(real.glob("images/*.jpg"))):
        return real, False
    toy = Path(toy_dir) if toy_dir is not None else data_root / "posters-toy"
    try:
        info = json.loads((toy / TOY_MARKER).read_text())
        current = (toy / CSV_NAME).is_file() and (info.get("seed"), info.get("n")) == (seed, n_toy)
    except (OSError, ValueError):
        current = False
    if not current:
        make_toy(toy, n_toy, seed)
    return toy, True
