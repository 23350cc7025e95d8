"""Movie posters: the "Movie Genre from its Poster" CSV, its downloader, a learnable toy stand-in, and the loader."""
from __future__ import annotations

import codecs
import csv
import difflib
import errno
import hashlib
import http.client
import io
import json
import math
import os
import re
import threading
import time
import unicodedata
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .images import BadImage, decode_image

PathLike = str | os.PathLike

GENRES: tuple[str, ...] = (
    "Action", "Adult", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama",
    "Family", "Fantasy", "Film-Noir", "Game-Show", "History", "Horror", "Music", "Musical", "Mystery", "News",
    "Reality-TV", "Romance", "Sci-Fi", "Short", "Sport", "Talk-Show", "Thriller", "War", "Western",
)

# Posters per genre in the cleaned real set (~35,000 posters, up to 3 genres each).
# Known (issue 4): Drama, Comedy, Romance, Action, Film-Noir, News, Adult, Talk-Show, Reality-TV, Game-Show.
# The others are estimates placed between Action (4,706) and Film-Noir (303); they only steer make_toy.
REAL_GENRE_COUNTS: dict[str, int] = {
    "Drama": 17677, "Comedy": 11172, "Romance": 5362, "Action": 4706,  # known
    "Thriller": 4450, "Crime": 4300, "Adventure": 3500, "Horror": 3300, "Documentary": 2800,  # estimated
    "Mystery": 2100, "Family": 1900, "Fantasy": 1850, "Sci-Fi": 1700, "Biography": 1600,  # estimated
    "Animation": 1450, "History": 1250, "Music": 1050, "War": 1000, "Musical": 830,  # estimated
    "Sport": 760, "Western": 700, "Short": 500,  # estimated
    "Film-Noir": 303, "News": 78, "Adult": 8, "Talk-Show": 6, "Reality-TV": 2, "Game-Show": 1,  # known
}

CSV_NAME = "MovieGenre.csv"
COLUMNS = ("imdbId", "Imdb Link", "Title", "IMDB Score", "Genre", "Poster")
TOY_MARKER = "toy_info.json"  # written by make_toy next to the CSV; the loader uses it to say "toy set"
POSTER_WH = (182, 268)  # (W, H) of the real posters


# ----------------------------------------------------------------------------------------------- CSV

@dataclass(frozen=True)
class PosterRecord:
    """One usable CSV row. `genres` are canonical names from GENRES (may be empty: the row had none we know)."""

    imdb_id: int
    link: str
    title: str
    score: float | None
    genres: tuple[str, ...]
    poster_url: str | None


@dataclass
class CsvReport:
    """What read_poster_csv saw. Row numbers count the header as row 1, as a spreadsheet shows them."""

    rows: int  # data rows in the file (blank lines excluded)
    kept: int  # rows returned as records: a valid, first-seen imdbId (blank genre / URL rows are kept, and reported)
    problems: dict[str, list[int]] = field(default_factory=dict)  # reason -> row numbers
    encoding: str = "latin-1"  # the encoding actually used
    notes: list[str] = field(default_factory=list)  # e.g. why another encoding than the one asked for was used

    def __str__(self) -> str:
        lines = [f"{CSV_NAME}: {self.rows} rows, {self.kept} kept (read as {self.encoding})"]
        lines += [f"  note: {n}" for n in self.notes]
        for reason, rows in sorted(self.problems.items()):
            shown = ", ".join(map(str, rows[:8])) + (f", ... (+{len(rows) - 8} more)" if len(rows) > 8 else "")
            lines.append(f"  {reason}: {len(rows)} row{'s' * (len(rows) != 1)} ({shown})")
        return "\n".join(lines)


def _key(name: str) -> str:
    """Lookup key for a genre: case, spaces, '-' and '_' ignored, so 'sci fi' and 'SCI-FI' both match Sci-Fi."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def _unknown_genre_error(name: str, vocab: Sequence[str]) -> ValueError:
    keys = {_key(v): v for v in vocab}
    close = difflib.get_close_matches(_key(name), keys, n=1, cutoff=0.6)
    hint = f" Did you mean {keys[close[0]]!r}?" if close else ""
    return ValueError(f"unknown genre {name!r}.{hint} Valid genres (case-insensitive): {', '.join(vocab)}")


def parse_genres(text: str, vocab: Sequence[str] = GENRES) -> list[str]:
    """'horror, sci-fi' or 'Horror|Sci-Fi' -> ['Horror', 'Sci-Fi'] (canonical names, first-seen order, no repeats).

    Separators are '|', ',' and ';'; matching ignores case, spaces, '-' and '_'. An unknown name raises
    ValueError listing the valid genres; so does text with no genre at all.
    """
    lookup = {_key(v): v for v in vocab}
    out: list[str] = []
    for part in re.split(r"[|,;]", text):
        if not part.strip():
            continue
        name = lookup.get(_key(part))
        if name is None:
            raise _unknown_genre_error(part.strip(), vocab)
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no genre given in {text!r}. Valid genres (case-insensitive): {', '.join(vocab)}")
    return out


def encode_genres(genres: Sequence[Sequence[str]], vocab: Sequence[str] = GENRES,
                  mode: str = "multi-hot") -> torch.Tensor:
    """Genre lists -> float32 (N, len(vocab)).

    'multi-hot': 1 for each genre present. 'normalised' (or 'normalized'): the multi-hot row divided by its
    number of genres, a probability vector. A row with no genre stays all zero in both modes (no uniform
    fill: that would claim every genre a little; zero is the "no condition" input). Names are matched like
    parse_genres; an unknown one raises ValueError.
    """
    if mode not in ("multi-hot", "normalised", "normalized"):
        raise ValueError(f"mode must be 'multi-hot' or 'normalised', got {mode!r}")
    index = {_key(v): i for i, v in enumerate(vocab)}
    out = torch.zeros(len(genres), len(vocab))
    for row, names in enumerate(genres):
        if isinstance(names, str):  # a bare 'Horror|Sci-Fi' would otherwise be read letter by letter
            names = parse_genres(names, vocab) if names.strip() else []
        for name in names:
            i = index.get(_key(name))
            if i is None:
                raise _unknown_genre_error(name, vocab)
            out[row, i] = 1.0
    if mode != "multi-hot":
        out /= out.sum(1, keepdim=True).clamp_min(1.0)
    return out


def _decode_text(raw: bytes, encoding: str, name: str) -> tuple[str, str, list[str]]:
    """Bytes -> (text, encoding used, notes). Latin-1 never fails, so catch the files it would garble."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8", errors="replace"), "utf-8", [
            f"{name} starts with a UTF-8 byte-order mark, so it was read as UTF-8, not {encoding}"]
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", errors="replace"), "utf-16", [
            f"{name} starts with a UTF-16 byte-order mark, so it was read as UTF-16, not {encoding}"]
    if b"\x00" in raw[:4096]:
        sample = raw[:4096]
        order = "utf-16-le" if sample[1::2].count(0) > len(sample) // 4 else "utf-16-be"
        if sample[::2].count(0) + sample[1::2].count(0) < len(sample) // 4:
            raise ValueError(f"{name} contains NUL bytes but is not UTF-16: it is not a text CSV")
        return raw.decode(order, errors="replace"), order, [
            f"{name} is UTF-16 without a byte-order mark (NUL bytes between letters), read as {order}"]
    try:
        latin1 = codecs.lookup(encoding).name == "iso8859-1"
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r}; the Movie Genre CSV is 'latin-1'") from None
    if latin1 and max(raw, default=0) >= 0x80:
        try:  # Latin-1 text with accents is almost never valid UTF-8; UTF-8 read as Latin-1 gives 'Ã©'
            return raw.decode("utf-8"), "utf-8", [
                f"{name} is valid UTF-8 with non-ASCII characters, so it was read as UTF-8 "
                f"(as {encoding} 'é' would have become 'Ã©')"]
        except UnicodeDecodeError:
            pass
        if re.search(rb"[\x80-\x9f]", raw):  # C1 controls in Latin-1 are Windows-1252 punctuation (’ “ ” …)
            try:
                return raw.decode("cp1252"), "cp1252", [
                    f"{name} has bytes 0x80-0x9F (Windows-1252 quotes and dashes), so it was read as cp1252"]
            except UnicodeDecodeError:
                pass
    try:
        return raw.decode(encoding), encoding, []
    except UnicodeDecodeError as e:
        raise ValueError(f"cannot read {name} as {encoding}: byte 0x{raw[e.start]:02x} at offset {e.start} "
                         f"is invalid. The Movie Genre CSV is Latin-1: use encoding='latin-1'") from None


def _scan_csv(path: PathLike, encoding: str = "latin-1"):
    """Parse every row: (records as (row, PosterRecord), rejects as (row, raw id, url, reason), report)."""
    path = Path(path)
    text, used, notes = _decode_text(path.read_bytes(), encoding, path.name)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path} is empty: expected a header row with columns {', '.join(COLUMNS)}")
    found = [h.strip() for h in header]
    where: dict[str, int] = {}
    for col in COLUMNS:  # exact name first, then case-insensitive
        hits = [i for i, h in enumerate(found) if h == col] or [i for i, h in enumerate(found) if _key(h) == _key(col)]
        if hits:
            where[col] = hits[0]
    missing = [c for c in COLUMNS if c not in where]
    if missing:
        raise ValueError(f"{path.name} is missing column(s) {', '.join(map(repr, missing))}; found columns "
                         f"{', '.join(map(repr, found))}. The 'Movie Genre from its Poster' format has "
                         f"{', '.join(COLUMNS)}")
    lookup = {_key(g): g for g in GENRES}
    problems: dict[str, list[int]] = {}
    records: list[tuple[int, PosterRecord]] = []
    rejects: list[tuple[int, str, str | None, str]] = []
    seen: set[int] = set()
    n_rows = 0
    for row_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line: not a data row
        n_rows += 1
        get = lambda col: cells[where[col]].strip() if where[col] < len(cells) else ""  # noqa: E731
        if len(cells) != len(found):
            problems.setdefault("wrong number of fields", []).append(row_no)
        raw_id, url = get("imdbId"), get("Poster") or None
        # The id becomes a file name: digits only, so '../etc', '12a', '-3' or '1e5' cannot escape out_dir.
        if not re.fullmatch(r"[0-9]{1,12}", raw_id) or int(raw_id) == 0:
            problems.setdefault("bad id", []).append(row_no)
            rejects.append((row_no, raw_id, url, "bad id"))
            continue
        imdb_id = int(raw_id)
        if imdb_id in seen:
            problems.setdefault("duplicate id", []).append(row_no)
            rejects.append((row_no, raw_id, url, "duplicate id"))
            continue
        seen.add(imdb_id)
        genres: list[str] = []
        for part in get("Genre").split("|"):
            if part.strip():
                name = lookup.get(_key(part))
                if name is None:
                    problems.setdefault("unknown genre", []).append(row_no)
                elif name not in genres:
                    genres.append(name)
        if not get("Genre"):
            problems.setdefault("blank genre", []).append(row_no)
        if url is None:
            problems.setdefault("missing poster url", []).append(row_no)
        elif not url.lower().startswith(("http://", "https://")):
            problems.setdefault("bad poster url", []).append(row_no)
        score = None
        if get("IMDB Score"):
            try:
                score = float(get("IMDB Score"))
                if not math.isfinite(score):
                    raise ValueError
            except ValueError:
                score = None
                problems.setdefault("bad score", []).append(row_no)
        records.append((row_no, PosterRecord(imdb_id, get("Imdb Link"), get("Title"), score, tuple(genres), url)))
    for rows in problems.values():
        rows[:] = sorted(set(rows))  # a row with two unknown genres is listed once
    return records, rejects, CsvReport(n_rows, len(records), problems, used, notes)


def read_poster_csv(path: PathLike, *, encoding: str = "latin-1") -> tuple[list[PosterRecord], CsvReport]:
    """Read MovieGenre.csv -> (records, report).

    Kept: every row with a valid imdbId (a positive integer) seen for the first time; its genres are the
    known ones (unknown names are reported, not silently dropped) and may be empty. Rejected and reported:
    bad ids, later duplicates of an id. Reported but kept: blank genre, unknown genre, missing or non-http
    poster URL, unparseable score (-> None). Missing columns raise ValueError naming what was missing and
    found. Latin-1 decodes anything, so files that are evidently UTF-8 / UTF-16 / cp1252 are read as such
    and the report says so.
    """
    records, _, report = _scan_csv(path, encoding)
    return [r for _, r in records], report


# ------------------------------------------------------------------------------------------ download

@dataclass
class DownloadResult:
    """Outcome of one CSV row. status: 'ok', 'exists', 'missing url', 'bad url', 'bad id', 'duplicate id',
    'http 404' (any code), 'timeout', 'truncated', 'empty', 'not an image', 'bad image: <reason>',
    'too large', 'disk full', 'not attempted (disk full)', or 'error: ...'."""

    imdb_id: int | None  # None when the row's imdbId is not a valid integer
    url: str | None
    status: str
    row: int = 0  # CSV row number (header = 1)


class DiskFullError(OSError):
    """The disk filled up during a download: nothing half-written was left; `.results` holds every row."""

    def __init__(self, message: str, results: list[DownloadResult]):
        super().__init__(errno.ENOSPC, message)
        self.results = results

    def __str__(self) -> str:
        return self.strerror


_MAX_BYTES = 20 * 2**20  # a poster is ~20 KB; anything this big is not one
_USER_AGENT = "gankit-poster-downloader/1.0 (+https://github.com/; course data set)"


def _atomic_write(path: Path, data: bytes | Callable[[io.BufferedWriter], None]) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: `path` is whole or absent."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _is_disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _check_image(data: bytes) -> str:
    """'ok' or why these bytes are not a usable poster (decoded with gankit.images.decode_image)."""
    try:
        decode_image(data, (16, 16))
    except BadImage as e:  # 'unsupported' means Pillow does not see an image at all (an HTML error page)
        return {"empty": "empty", "unsupported": "not an image"}.get(e.reason, f"bad image: {e.reason}")
    return "ok"


def _fetch(opener, url: str, timeout: float, retries: int, backoff: float) -> tuple[bytes | None, str]:
    """GET with retries and exponential backoff on 5xx/408/429, timeouts, truncation, connection errors."""
    status = "error: not attempted"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with opener.open(req, timeout=timeout) as resp:
                expected = resp.headers.get("Content-Length")
                deadline, chunks, size = time.monotonic() + 4 * timeout, [], 0  # cap a trickling server
                while chunk := resp.read(65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > _MAX_BYTES:
                        return None, "too large"
                    if time.monotonic() > deadline:
                        raise TimeoutError("body too slow")
                if expected and expected.isdigit() and int(expected) != size:
                    raise http.client.IncompleteRead(b"", int(expected) - size)
                return b"".join(chunks), "ok"
        except urllib.error.HTTPError as e:
            status = f"http {e.code}"
            if e.code < 500 and e.code not in (408, 429):
                return None, status  # 404 and friends will not change on retry
        except TimeoutError:
            status = "timeout"
        except http.client.IncompleteRead:
            status = "truncated"
        except urllib.error.URLError as e:
            status = "timeout" if isinstance(e.reason, TimeoutError) else f"error: {e.reason}"
        except (ConnectionError, http.client.HTTPException) as e:
            status = f"error: {type(e).__name__}: {e}"
    return None, status


def _valid_file(path: Path) -> bool:
    try:
        return path.stat().st_size > 0 and _check_image(path.read_bytes()) == "ok"
    except OSError:
        return False


def _write_manifest(out_dir: Path, results: list[DownloadResult]) -> None:
    def write(f):
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        w = csv.writer(text)
        w.writerow(["row", "imdbId", "status", "url", "file"])
        for r in results:
            ok = r.status in ("ok", "exists")
            w.writerow([r.row, "" if r.imdb_id is None else r.imdb_id, r.status, r.url or "",
                        f"{r.imdb_id}.jpg" if ok else ""])
        text.flush()
        text.detach()
    _atomic_write(out_dir / "manifest.csv", write)


def download_summary(results: Sequence[DownloadResult]) -> str:
    """One line for the command line: '12 rows: 3 ok, 2 exists, 1 http 404, ...' (most common first)."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{len(results)} rows: {parts or 'none'}"


def download_posters(csv_path: PathLike, out_dir: PathLike, *, workers: int = 16, timeout: float = 10.0,
                     retries: int = 3, backoff: float = 0.5, progress: bool = True) -> list[DownloadResult]:
    """Fetch every poster of a MovieGenre.csv into out_dir/{imdbId}.jpg; one DownloadResult per CSV row.

    Concurrent (`workers` threads), resumable (a file already there that decodes is 'exists'; a broken one is
    fetched again), `timeout` seconds per socket operation, up to `retries` retries after 5xx / timeouts /
    connection errors with backoff * 2**k sleeps (never after 404). Each file is decoded before it is
    written; writes are atomic, so a failure never leaves a {imdbId}.jpg or temp file behind. Writes
    out_dir/manifest.csv (row, imdbId, status, url, file) and copies the CSV to out_dir/MovieGenre.csv so
    the folder is ready for load_posters. A full disk stops the run: DiskFullError (an OSError) with a
    message saying what was saved; run again after freeing space to resume.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, rejects, _ = _scan_csv(csv_path)
    results: dict[int, DownloadResult] = {row: DownloadResult(int(raw) if reason == "duplicate id" else None,
                                                              url, reason, row) for row, raw, url, reason in rejects}
    todo: list[tuple[int, PosterRecord]] = []
    for row, rec in records:
        if rec.poster_url is None:
            results[row] = DownloadResult(rec.imdb_id, None, "missing url", row)
        elif not rec.poster_url.lower().startswith(("http://", "https://")):
            results[row] = DownloadResult(rec.imdb_id, rec.poster_url, "bad url", row)  # no file:// reads
        else:
            todo.append((row, rec))

    opener = urllib.request.build_opener()
    stop = threading.Event()

    def work(rec: PosterRecord) -> str:
        target = out_dir / f"{rec.imdb_id}.jpg"
        if stop.is_set():
            return "not attempted (disk full)"
        if _valid_file(target):
            return "exists"
        data, status = _fetch(opener, rec.poster_url, timeout, retries, backoff)
        if data is None:
            return status
        status = _check_image(data)
        if status != "ok":
            return status
        if stop.is_set():
            return "not attempted (disk full)"
        try:
            _atomic_write(target, data)
        except OSError as e:
            return "disk full" if _is_disk_full(e) else f"error: {e}"
        return "ok"

    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(todo), desc="posters", unit="file")
        except ImportError:
            pass
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(work, rec): (row, rec) for row, rec in todo}
        for fut in as_completed(futures):
            row, rec = futures[fut]
            try:
                status = "not attempted (disk full)" if fut.cancelled() else fut.result()
            except Exception as e:  # a bug or an odd URL must not lose the other rows' outcomes
                status = f"error: {type(e).__name__}: {e}"
            results[row] = DownloadResult(rec.imdb_id, rec.poster_url, status, row)
            if status == "disk full" and not stop.is_set():
                stop.set()
                for f in futures:
                    f.cancel()
            if bar is not None:
                bar.update()
    finally:  # also on Ctrl-C: drop the queue, let running downloads finish (their writes are atomic)
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    ordered = [results[row] for row in sorted(results)]
    disk_full = any(r.status == "disk full" for r in ordered)
    try:
        _write_manifest(out_dir, ordered)
        src, dst = Path(csv_path), out_dir / CSV_NAME
        if src.resolve() != dst.resolve() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
            _atomic_write(dst, src.read_bytes())
        manifest_note = f"see {out_dir / 'manifest.csv'}"
    except OSError as e:
        if not _is_disk_full(e):
            raise
        disk_full, manifest_note = True, "the manifest could not be written either"
    if disk_full:
        saved = sum(r.status == "ok" for r in ordered)
        left = sum(r.status in ("disk full", "not attempted (disk full)") for r in ordered)
        raise DiskFullError(f"disk full while saving posters to {out_dir}: {saved} saved this run, {left} not "
                            f"saved, no partial files left ({manifest_note}). Free some space and run the "
                            "same command again: files already there are kept.", ordered)
    return ordered


# --------------------------------------------------------------------------------------------- toy set

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


# genre -> (background RGB, accent RGB, motif). Palettes differ in hue/brightness so mean colour alone
# already separates the common genres; motifs add shape cues a conv net can use at 64x64.
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
    "Film-Noir": ((25, 25, 25), (225, 225, 225), _p(_m_diagonals, step=(12, 16), width=(4, 6), slope=0.4)),
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

_WORDS = ("Night", "Last", "Café", "Señor", "Amélie", "River", "Noël", "Über", "Crème", "Façade", "Blood",
          "Star", "Mañana", "Garçon", "Home", "Love", "War", "Ghost", "Dream", "Città", "Summer", "Dark",
          "Øresund", "Return", "Glass", "Fire", "Côte", "Secret", "Island", "Ångström", "King", "Heart")


_FOLD = str.maketrans({"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "ß": "ss"})


def _toy_title(r: np.random.Generator) -> str:
    words = [_WORDS[i] for i in r.integers(0, len(_WORDS), r.integers(1, 4))]
    title = " ".join(words)
    if r.random() < 0.08:
        title = f"{words[0]}, {title}"  # commas in titles must survive quoting
    if r.random() < 0.04:
        title = f'The "{title}"'
    return f"{title} ({int(r.integers(1920, 2017))})"


def _draw_poster(genres: Sequence[str], title: str, r: np.random.Generator, font, grain: np.ndarray) -> Image.Image:
    w, h = POSTER_WH
    img = Image.new("RGB", (w, h))
    # One full-height column per genre: decode_image centre-crops to the target aspect, which at 64x64
    # cuts the top and bottom of a 182x268 poster but never its sides, so every genre's cue survives.
    k = len(genres)
    cuts = [0] + sorted(int(w * (i + r.uniform(-0.1, 0.1)) / k) for i in range(1, k)) + [w]
    jitter = lambda col: tuple(int(v) for v in np.clip(np.array(col) + r.integers(-18, 19, 3), 0, 255))  # noqa
    for name, x0, x1 in zip(genres, cuts[:-1], cuts[1:]):
        bg, accent, motif = _STYLE[name]
        part = Image.new("RGB", (x1 - x0, h), jitter(bg))
        motif(ImageDraw.Draw(part), x1 - x0, h, jitter(accent), r)
        img.paste(part, (x0, 0))
    d = ImageDraw.Draw(img)
    top = r.random() < 0.3  # title block at the bottom (mostly) or top, like real posters
    y = int(r.integers(6, 20)) if top else h - int(r.integers(34, 48))
    d.rectangle([6, y, w - 6, y + 26], fill=tuple(int(v) for v in r.integers(0, 60, 3)))
    # Pillow's bundled font has no accented letters: draw the title's ASCII fold (é -> e), as a printed credit would
    shown = unicodedata.normalize("NFKD", title.translate(_FOLD)).encode("ascii", "ignore").decode()
    d.text((10, y + 5), shown[:24], fill=(240, 240, 240), font=font)
    px = np.asarray(img, dtype=np.float32)
    px *= np.linspace(1.06, 0.86, h, dtype=np.float32)[:, None, None]  # soft top-to-bottom lighting
    y, x = r.integers(0, grain.shape[0] - h + 1), r.integers(0, grain.shape[1] - w + 1)
    px += grain[y:y + h, x:x + w]  # film grain: a window of one shared noise field (fresh noise costs 3x)
    return Image.fromarray(np.clip(px, 0, 255, out=px).astype(np.uint8))


def make_toy(out_dir: PathLike, n: int = 2000, seed: int = 0, *, broken: float = 0.01) -> Path:
    """Write a synthetic poster set in exactly the real format; returns the path of its MovieGenre.csv.

    n CSV rows (Latin-1; quoted Poster URLs, some with commas; Latin-1 titles) and {imdbId}.jpg posters of
    182x268 (W x H), ~5% grayscale. Each poster has one full-height column per genre (1-3 genres, drawn
    in proportion to REAL_GENRE_COUNTS), each in its genre's palette and motif, plus a title block,
    lighting and noise. `broken` is the fraction of rows made faulty in each of five ways: zero-byte
    file, truncated file, blank Genre, blank Poster (no file), duplicated row. The ids of each are listed
    in toy_info.json (which also marks the folder as the toy set). Deterministic for a seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / CSV_NAME).exists() and not (out_dir / TOY_MARKER).exists():
        raise FileExistsError(f"{out_dir} already holds a {CSV_NAME} that make_toy did not write (a real poster "
                              "set?); make the toy set in another folder")
    if (out_dir / TOY_MARKER).exists():  # regenerating a toy folder: drop its old files (never a real set's)
        (out_dir / CSV_NAME).unlink(missing_ok=True)  # first, so a half-regenerated folder is not "complete"
        for p in out_dir.glob("*.jpg"):
            if p.stem.isdigit():
                p.unlink()
    r = np.random.default_rng(seed)
    k = int(round(broken * n))
    if n < 1 or 5 * k > n:
        raise ValueError(f"make_toy needs n >= 1 and broken <= 0.2 (got n={n}, broken={broken})")
    ids = (100000 + np.cumsum(r.integers(1, 400, n))).tolist()
    r.shuffle(ids)
    faulty = r.permutation(np.arange(1, n))[: 5 * k].tolist()  # row 0 stays good: duplicates copy earlier rows
    zero, trunc, no_genre, no_url, dup = (set(faulty[i * k:(i + 1) * k]) for i in range(5))
    faulty_set = set(faulty)
    counts = np.array([REAL_GENRE_COUNTS[g] for g in GENRES], dtype=np.float64)
    p = counts / counts.sum()
    try:
        font = ImageFont.load_default(13)
    except TypeError:  # Pillow < 10.1 has only its small bitmap font
        font = ImageFont.load_default()
    grain = r.standard_normal((POSTER_WH[1] + 97, POSTER_WH[0] + 89, 3), dtype=np.float32) * 6.0
    info: dict[str, list[int]] = {"zero_byte": [], "truncated": [], "blank_genre": [], "no_poster": [],
                                  "duplicate": [], "grayscale": []}
    rows, good = [], []  # good: rows with no fault, the ones a duplicate may copy
    for i in range(n):
        if i in dup:  # an exact copy of an earlier row, as the real file has
            rows.append(rows[good[int(r.integers(0, len(good)))]])
            info["duplicate"].append(int(rows[-1][0]))
            continue
        if i not in faulty_set:
            good.append(i)
        imdb_id = ids[i]
        genres = [GENRES[j] for j in r.choice(len(GENRES), size=int(r.choice([1, 2, 3], p=[0.3, 0.35, 0.35])),
                                              replace=False, p=p)]
        title = _toy_title(r)
        url = (f"https://images.example.invalid/images/M/tt{imdb_id}@._V1_UX182_CR0,0,182,268_AL_.jpg"
               if r.random() < 0.5 else f"https://images.example.invalid/images/M/tt{imdb_id}.jpg")
        score = f"{np.clip(r.normal(6.3, 1.1), 1.0, 9.8):.1f}"
        img = _draw_poster(genres, title, r, font, grain)
        if i in no_genre:
            genres = []
            info["blank_genre"].append(imdb_id)
        rows.append((str(imdb_id), f"http://www.imdb.com/title/tt{imdb_id}", title, score, "|".join(genres),
                     "" if i in no_url else url))
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
    (out_dir / TOY_MARKER).write_text(json.dumps({"generator": "gankit.posters.make_toy", "seed": seed, "n": n,
                                                  "broken": broken, **info}, indent=1))
    csv_path = out_dir / CSV_NAME
    _atomic_write(csv_path, text.getvalue().encode("latin-1"))  # written last: its presence means "complete"
    return csv_path


# ------------------------------------------------------------------------------------------- loading

@dataclass
class PosterData:
    """Posters in memory: images uint8 (N, 3, H, W); genres float (N, G) multi-hot or normalised."""

    images: torch.Tensor
    genres: torch.Tensor
    names: list[str]  # the G genre names, in GENRES order (after top_k)
    ids: list[int]
    summary: str  # what was loaded, skipped and why; whether it is the toy set (no machine paths)
    is_toy: bool = False
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows; loaded + sum(skipped) = CSV rows
    from_cache: bool = False

    def __len__(self) -> int:
        return self.images.shape[0]


_CACHE_VERSION = 1


def _poster_file(root: Path, imdb_id: int) -> Path | None:
    for p in (root / f"{imdb_id}.jpg", root / "images" / f"{imdb_id}.jpg"):
        if p.is_file():
            return p
    return None


def _decode_all(root: Path, records: list[PosterRecord], size: tuple[int, int], progress: bool):
    """Decode every record with genres and a poster: (images (N, 3, H, W) uint8, ids, genre lists, skipped)."""
    def one(rec: PosterRecord) -> torch.Tensor | str:
        if not rec.genres:
            return "no genre"
        path = _poster_file(root, rec.imdb_id)
        if path is None:
            return "no poster file"
        try:
            return decode_image(path, size, 3)
        except BadImage as e:
            return f"bad image ({e.reason})"

    out = torch.empty(len(records), 3, *size, dtype=torch.uint8)  # filled in place: no second copy via stack
    ids, genres, skipped = [], [], {}
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        done = pool.map(one, records)
        if progress:
            try:
                from tqdm.auto import tqdm
                done = tqdm(done, total=len(records), desc="decoding posters", unit="img")
            except ImportError:
                pass
        for rec, result in zip(records, done):
            if isinstance(result, str):
                skipped[result] = skipped.get(result, 0) + 1
            else:
                out[len(ids)] = result
                ids.append(rec.imdb_id)
                genres.append(rec.genres)
    return out[: len(ids)], ids, genres, skipped


def load_posters(root: PathLike, image_size: tuple[int, int] = (64, 64), *, top_k: int | None = None,
                 encoding: str = "multi-hot", cache_dir: PathLike | None = None, cache: bool = True,
                 progress: bool = True) -> PosterData:
    """Load a poster folder (MovieGenre.csv + {imdbId}.jpg, or the posters in an images/ subfolder).

    image_size is (H, W). decode_image scales a poster to cover it and centre-crops, so (64, 64) keeps
    the middle 182x182 of a 182x268 poster and (96, 64) keeps nearly all of it (the aspect option). Grayscale
    posters become RGB. Every CSV row is either loaded or counted in `skipped` by reason (bad id,
    duplicate id, no genre, no poster file, bad image (<reason>), no genre in top-K). top_k keeps the K
    genres most frequent among the loaded posters (ties: GENRES order). encoding: 'multi-hot' or
    'normalised' (see encode_genres). Decoding happens once: the result is cached as a uint8 tensor in
    cache_dir (default root/.gankit-cache) keyed by the CSV bytes, the poster files' sizes and mtimes, and
    image_size; top_k and encoding are applied after the cache, so one cache serves them all.
    """
    if encoding not in ("multi-hot", "normalised", "normalized"):
        raise ValueError(f"encoding must be 'multi-hot' or 'normalised', got {encoding!r}")
    root = Path(root)
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise FileNotFoundError(f"no {CSV_NAME} in {root}: a poster folder holds {CSV_NAME} and the "
                                "{imdbId}.jpg posters. Get them with `gankit posters download CSV --out DIR` "
                                "or make a toy set with `gankit posters make-toy DIR`")
    size = (int(image_size[0]), int(image_size[1]))
    scanned, rejects, report = _scan_csv(csv_path)
    records = [rec for _, rec in scanned]
    is_toy = (root / TOY_MARKER).is_file()

    h = hashlib.sha256(f"v{_CACHE_VERSION} {size}".encode())
    h.update(csv_path.read_bytes())
    for rec in records:
        p = _poster_file(root, rec.imdb_id)
        st = p.stat() if p else None
        h.update(f"{rec.imdb_id}:{p.relative_to(root) if p else '-'}:{st and st.st_size}:{st and st.st_mtime_ns};"
                 .encode())
    # one cache file per folder and size: the name's middle part tells folders sharing a cache_dir apart
    prefix = f"posters-{size[0]}x{size[1]}-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]}"
    cache_path = Path(cache_dir or root / ".gankit-cache") / f"{prefix}-{h.hexdigest()[:20]}.pt"
    blob, from_cache = None, False
    if cache and cache_path.is_file():
        try:
            blob = torch.load(cache_path, weights_only=True)
            from_cache = blob.get("version") == _CACHE_VERSION
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable poster cache {cache_path} ({e}); decoding again")
    if not from_cache:
        images, ids, genre_lists, skipped = _decode_all(root, records, size, progress)
        blob = {"version": _CACHE_VERSION, "images": images, "ids": torch.tensor(ids, dtype=torch.int64),
                "genres": encode_genres(genre_lists).to(torch.uint8), "skipped": skipped}
        if cache:
            try:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                for old in cache_path.parent.glob(f"{prefix}-*.pt"):
                    old.unlink(missing_ok=True)  # superseded: the CSV or the posters changed
                _atomic_write(cache_path, lambda f: torch.save(blob, f))
            except OSError as e:  # the data is in memory; the cache only saves time next run
                why = "the disk is full" if _is_disk_full(e) else str(e)
                warnings.warn(f"could not write the poster cache {cache_path} ({why}); no partial file was "
                              "left, and the posters will be decoded again next time")

    images, hot, ids = blob["images"], blob["genres"].float(), blob["ids"].tolist()
    skipped = dict(blob["skipped"])
    for *_, reason in rejects:
        skipped[reason] = skipped.get(reason, 0) + 1
    names = list(GENRES)
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        order = sorted(range(len(GENRES)), key=lambda j: (-hot[:, j].sum().item(), j))
        keep = sorted(order[:top_k])
        names = [GENRES[j] for j in keep]
        hot = hot[:, keep]
        has = hot.sum(1) > 0
        if (~has).any():
            skipped[f"no genre in top-{top_k}"] = int((~has).sum())
            images, hot = images[has], hot[has]
            ids = [i for i, ok in zip(ids, has.tolist()) if ok]
    genres = encode_genres([[names[j] for j in row.nonzero().flatten().tolist()] for row in hot], names, encoding)

    what = "toy set (synthetic posters made by make_toy)" if is_toy else "poster set"
    skip_text = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))
    summary = (f"{what}: {len(ids)} of {report.rows} CSV rows loaded as {size[0]}x{size[1]} (H x W) RGB, "
               f"{len(names)} genres ({encoding}); skipped {sum(skipped.values())}"
               + (f": {skip_text}" if skip_text else "")
               + "".join(f"\nnote: {n}" for n in report.notes))
    return PosterData(images, genres, names, ids, summary, is_toy, skipped, from_cache)


def poster_root(data_root: PathLike, *, seed: int = 0, n_toy: int = 2000,
                toy_dir: PathLike | None = None) -> tuple[Path, bool]:
    """(folder, is_toy): data_root/posters when it holds MovieGenre.csv and posters, else the toy set at
    toy_dir (default data_root/posters-toy), generated with make_toy(seed, n_toy) on first use (or when
    seed/n changed)."""
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
