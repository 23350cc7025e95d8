"""Movie posters: the "Movie Genre from its Poster" CSV, its genres, and the loader.

The downloader is in gankit.datasets.download, the toy stand-in set in gankit.datasets.toy_posters.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import math
import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..files import atomic_write, is_disk_full
from .images import BadImage, decode_image

PathLike = str | os.PathLike

GENRES: tuple[str, ...] = (
    "Action",
    "Adult",
    "Adventure",
    "Animation",
    "Biography",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Film-Noir",
    "Game-Show",
    "History",
    "Horror",
    "Music",
    "Musical",
    "Mystery",
    "News",
    "Reality-TV",
    "Romance",
    "Sci-Fi",
    "Short",
    "Sport",
    "Talk-Show",
    "Thriller",
    "War",
    "Western",
)

# Posters per genre in the cleaned real set (~35,000 posters, up to 3 genres each). Known: Drama,
# Comedy, Romance, Action, Film-Noir, News, Adult, Talk-Show, Reality-TV, Game-Show. The others are
# estimates placed between Action (4,706) and Film-Noir (303); they only steer make_toy.
REAL_GENRE_COUNTS: dict[str, int] = {
    "Drama": 17677,
    "Comedy": 11172,
    "Romance": 5362,
    "Action": 4706,  # known
    "Thriller": 4450,
    "Crime": 4300,
    "Adventure": 3500,
    "Horror": 3300,
    "Documentary": 2800,  # estimated
    "Mystery": 2100,
    "Family": 1900,
    "Fantasy": 1850,
    "Sci-Fi": 1700,
    "Biography": 1600,  # estimated
    "Animation": 1450,
    "History": 1250,
    "Music": 1050,
    "War": 1000,
    "Musical": 830,  # estimated
    "Sport": 760,
    "Western": 700,
    "Short": 500,  # estimated
    "Film-Noir": 303,
    "News": 78,
    "Adult": 8,
    "Talk-Show": 6,
    "Reality-TV": 2,
    "Game-Show": 1,  # known
}

CSV_NAME = "MovieGenre.csv"
COLUMNS = ("imdbId", "Imdb Link", "Title", "IMDB Score", "Genre", "Poster")
TOY_MARKER = (
    "toy_info.json"  # written by make_toy next to the CSV; the loader uses it to say "toy set"
)
POSTER_WH = (182, 268)  # (W, H) of the real posters


# ---------------------------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class PosterRecord:
    """One usable CSV row. `genres` are canonical names from
    GENRES (may be empty: the row had none we know)."""

    imdb_id: int
    link: str
    title: str
    score: float | None
    genres: tuple[str, ...]
    poster_url: str | None


@dataclass
class CsvReport:
    """What read_poster_csv saw. Row numbers count the
    header as row 1, as a spreadsheet shows them."""

    rows: int  # data rows in the file (blank lines excluded)
    # rows returned as records: a valid, first-seen imdbId (blank genre / URL rows are kept,
    # and reported)
    kept: int
    problems: dict[str, list[int]] = field(default_factory=dict)  # reason -> row numbers
    encoding: str = "latin-1"  # the encoding actually used
    notes: list[str] = field(
        default_factory=list
    )  # e.g. why another encoding than the one asked for was used

    def __str__(self) -> str:
        lines = [f"{CSV_NAME}: {self.rows} rows, {self.kept} kept (read as {self.encoding})"]
        lines += [f"  note: {n}" for n in self.notes]
        for reason, rows in sorted(self.problems.items()):
            shown = ", ".join(map(str, rows[:8])) + (
                f", ... (+{len(rows) - 8} more)" if len(rows) > 8 else ""
            )
            lines.append(f"  {reason}: {len(rows)} row{'s' * (len(rows) != 1)} ({shown})")
        return "\n".join(lines)


def _key(name: str) -> str:
    """Lookup key for a genre: case, spaces, '-' and '_'
    ignored, so 'sci fi' and 'SCI-FI' both match Sci-Fi."""
    return re.sub(r"[\s_\-]+", "", name).lower()


def _unknown_genre_error(name: str, vocab: Sequence[str]) -> ValueError:
    keys = {_key(v): v for v in vocab}
    close = difflib.get_close_matches(_key(name), keys, n=1, cutoff=0.6)
    hint = f" Did you mean {keys[close[0]]!r}?" if close else ""
    return ValueError(
        f"unknown genre {name!r}.{hint} Valid genres (case-insensitive): {', '.join(vocab)}"
    )


def parse_genres(text: str, vocab: Sequence[str] = GENRES) -> list[str]:
    """'horror, sci-fi' or 'Horror|Sci-Fi' -> ['Horror',
    'Sci-Fi'] (canonical names, first-seen order, no repeats).

    Separators are '|', ',' and ';'; matching ignores case, spaces, '-' and '_'. An unknown name
    raises ValueError listing the valid genres; so does text with no genre at all.
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
        raise ValueError(
            f"no genre given in {text!r}. Valid genres (case-insensitive): {', '.join(vocab)}"
        )
    return out


def encode_genres(
    genres: Sequence[Sequence[str]], vocab: Sequence[str] = GENRES, mode: str = "multi-hot"
) -> torch.Tensor:
    """Genre lists -> float32 (N, len(vocab)).

    'multi-hot': 1 for each genre present. 'normalised' (or 'normalized'): the multi-hot row divided
    by its number of genres, a probability vector. A row with no genre stays all zero in both modes
    (no uniform fill: that would claim every genre a little; zero is the "no condition" input).
    Names are matched like parse_genres; an unknown one raises ValueError.
    """
    if mode not in ("multi-hot", "normalised", "normalized"):
        raise ValueError(f"mode must be 'multi-hot' or 'normalised', got {mode!r}")
    index = {_key(v): i for i, v in enumerate(vocab)}
    out = torch.zeros(len(genres), len(vocab))
    for row, names in enumerate(genres):
        if isinstance(
            names, str
        ):  # a bare 'Horror|Sci-Fi' would otherwise be read letter by letter
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
    """Bytes -> (text, encoding used, notes). Latin-1
    never fails, so catch the files it would garble."""
    if raw.startswith(codecs.BOM_UTF8):
        return (
            raw[3:].decode("utf-8", errors="replace"),
            "utf-8",
            [
                f"{name} starts with a UTF-8 byte-order mark, "
                f"so it was read as UTF-8, not {encoding}"
            ],
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return (
            raw.decode("utf-16", errors="replace"),
            "utf-16",
            [
                f"{name} starts with a UTF-16 byte-order mark, "
                f"so it was read as UTF-16, not {encoding}"
            ],
        )
    if b"\x00" in raw[:4096]:
        sample = raw[:4096]
        order = "utf-16-le" if sample[1::2].count(0) > len(sample) // 4 else "utf-16-be"
        if sample[::2].count(0) + sample[1::2].count(0) < len(sample) // 4:
            raise ValueError(f"{name} contains NUL bytes but is not UTF-16: it is not a text CSV")
        return (
            raw.decode(order, errors="replace"),
            order,
            [
                f"{name} is UTF-16 without a byte-order mark (NUL bytes between letters), "
                f"read as {order}"
            ],
        )
    try:
        latin1 = codecs.lookup(encoding).name == "iso8859-1"
    except LookupError:
        raise ValueError(
            f"unknown text encoding {encoding!r}; the Movie Genre CSV is 'latin-1'"
        ) from None
    if latin1 and max(raw, default=0) >= 0x80:
        try:
            # Latin-1 text with accents is almost never valid UTF-8;
            # UTF-8 read as Latin-1 gives 'Ã©'
            return (
                raw.decode("utf-8"),
                "utf-8",
                [
                    f"{name} is valid UTF-8 with non-ASCII characters, so it was read as UTF-8 "
                    f"(as {encoding} 'é' would have become 'Ã©')"
                ],
            )
        except UnicodeDecodeError:
            pass
        if re.search(
            rb"[\x80-\x9f]", raw
        ):  # C1 controls in Latin-1 are Windows-1252 punctuation (’ “ ” …)
            try:
                return (
                    raw.decode("cp1252"),
                    "cp1252",
                    [
                        f"{name} has bytes 0x80-0x9F (Windows-1252 quotes and dashes), "
                        "so it was read as cp1252"
                    ],
                )
            except UnicodeDecodeError:
                pass
    try:
        return raw.decode(encoding), encoding, []
    except UnicodeDecodeError as e:
        raise ValueError(
            f"cannot read {name} as {encoding}: byte 0x{raw[e.start]:02x} at offset {e.start} "
            f"is invalid. The Movie Genre CSV is Latin-1: use encoding='latin-1'"
        ) from None


class _Lines:
    """The lines of a text, fed one by one to csv.reader; `pos` (lines handed out) can be set back,
    so a record that swallowed lines (an unterminated quote) can be parsed again line by line."""

    def __init__(self, text: str):
        self.lines = list(io.StringIO(text, newline=""))  # split at \n, \r\n or \r, kept as is
        self.pos = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _records(lines: _Lines, n_columns: int | None = None, free_column: int | None = None):
    """Yield (line number, cells or None, why) for each CSV record from lines.pos on; line numbers
    count from 1, the header included.

    A record that runs over several lines (an open quote) is accepted only when it has n_columns
    cells and its line breaks are all inside column free_column (a title may hold one); otherwise
    it is an unterminated quote: it is yielded as (line, None, 'unterminated quote') and the lines
    it swallowed are read again as rows of their own. A field longer than csv.field_size_limit()
    is reported the same way, instead of aborting the whole file.
    """
    reader = csv.reader(lines)
    while lines.pos < len(lines.lines):
        start = lines.pos
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            quotes = "".join(lines.lines[start : start + 1]).count('"') % 2
            if lines.pos - start > 1 or quotes:
                why = "unterminated quote"
            elif "field larger than field limit" in str(e):
                why = f"field over {csv.field_size_limit()} characters"
            else:
                why = f"unreadable line ({e})"
            lines.pos = start + 1  # the csv reader keeps no state between records
            yield start + 1, None, why
            continue
        if n_columns is not None:
            broken = [i for i, c in enumerate(cells) if "\n" in c or "\r" in c]
            if broken and (len(cells) != n_columns or any(i != free_column for i in broken)):
                lines.pos = start + 1
                yield start + 1, None, "unterminated quote"
                continue
        yield start + 1, cells, ""


def _id_on_line(line: str, column: int) -> str:
    """The id cell of a line that is not a whole record (unterminated quote), read on its own."""
    try:
        cells = next(csv.reader([line]), [])
    except csv.Error:  # a field over the limit: the id column comes before it, split by hand
        cells = line.split(",", column + 1)
    return cells[column].strip().strip('"') if column < len(cells) else ""


def scan_csv(path: PathLike, encoding: str = "latin-1"):
    """Parse every row: (records as (row, PosterRecord),
    rejects as (row, raw id, url, reason), report).

    Rows are numbered by the line they start on (the header is line 1), so every data line of the
    file is either one record or one reject, even when a quote is left open.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder, not a CSV file: pass the CSV inside it, e.g. {path / CSV_NAME}"
        )
    text, used, notes = _decode_text(path.read_bytes(), encoding, path.name)
    lines = _Lines(text)
    _, header, why = next(_records(lines), (1, [], ""))
    if not header:
        raise ValueError(
            f"{path} is empty: expected a header row with columns {', '.join(COLUMNS)}"
            if not why
            else f"{path}: the header row is unreadable ({why}); expected the columns "
            f"{', '.join(COLUMNS)}"
        )
    found = [h.strip() for h in header]
    where: dict[str, int] = {}
    for col in COLUMNS:  # exact name first, then case-insensitive
        hits = [i for i, h in enumerate(found) if h == col] or [
            i for i, h in enumerate(found) if _key(h) == _key(col)
        ]
        if hits:
            where[col] = hits[0]
    missing = [c for c in COLUMNS if c not in where]
    if missing:
        raise ValueError(
            f"{path.name} is missing column(s) {', '.join(map(repr, missing))}; found columns "
            f"{', '.join(map(repr, found))}. The 'Movie Genre from its Poster' format has "
            f"{', '.join(COLUMNS)}"
        )
    lookup = {_key(g): g for g in GENRES}
    problems: dict[str, list[int]] = {}
    records: list[tuple[int, PosterRecord]] = []
    rejects: list[tuple[int, str, str | None, str]] = []
    seen: set[int] = set()
    n_rows = 0
    for row_no, cells, why in _records(lines, len(found), where["Title"]):
        if cells is None:  # reported with what can be read of its line: the id, if it is one
            n_rows += 1
            problems.setdefault(why, []).append(row_no)
            rejects.append(
                (row_no, _id_on_line(lines.lines[row_no - 1], where["imdbId"]), None, why)
            )
            continue
        if not any(c.strip() for c in cells):
            continue  # blank line: not a data row
        n_rows += 1
        get = lambda col, cells=cells: cells[where[col]].strip() if where[col] < len(cells) else ""
        if len(cells) != len(found):
            problems.setdefault("wrong number of fields", []).append(row_no)
        raw_id, url = get("imdbId"), get("Poster") or None
        # The id becomes a file name: digits only, so '../etc',
        # '12a', '-3' or '1e5' cannot escape out_dir.
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
        records.append(
            (
                row_no,
                PosterRecord(imdb_id, get("Imdb Link"), get("Title"), score, tuple(genres), url),
            )
        )
    for rows in problems.values():
        rows[:] = sorted(set(rows))  # a row with two unknown genres is listed once
    return records, rejects, CsvReport(n_rows, len(records), problems, used, notes)


def read_poster_csv(
    path: PathLike, *, encoding: str = "latin-1"
) -> tuple[list[PosterRecord], CsvReport]:
    """Read MovieGenre.csv -> (records, report).

    Kept: every row with a valid imdbId (a positive integer) seen for the first time; its genres are
    the known ones (unknown names are reported, not silently dropped) and may be empty. Rejected and
    reported: bad ids, later duplicates of an id. Reported but kept: blank genre, unknown genre,
    missing or non-http poster URL, unparseable score (-> None). Missing columns raise ValueError
    naming what was missing and found. Latin-1 decodes anything, so files that are evidently UTF-8 /
    UTF-16 / cp1252 are read as such and the report says so.
    """
    records, _, report = scan_csv(path, encoding)
    return [r for _, r in records], report


# ------------------------------------------------------------------------------------------ loading


@dataclass
class PosterData:
    """Posters in memory: images uint8 (N, 3, H, W); genres float (N, G) multi-hot or normalised."""

    images: torch.Tensor
    genres: torch.Tensor
    names: list[str]  # the G genre names, in GENRES order (after top_k)
    ids: list[int]
    summary: str  # what was loaded, skipped and why; whether it is the toy set (no machine paths)
    is_toy: bool = False
    skipped: dict[str, int] = field(
        default_factory=dict
    )  # reason -> rows; loaded + sum(skipped) = CSV rows
    from_cache: bool = False

    def __len__(self) -> int:
        return self.images.shape[0]


_CACHE_VERSION = 1


def poster_file(root: Path, imdb_id: int) -> Path | None:
    for p in (root / f"{imdb_id}.jpg", root / "images" / f"{imdb_id}.jpg"):
        if p.is_file():
            return p
    return None


def _decode_all(root: Path, records: list[PosterRecord], size: tuple[int, int], progress: bool):
    """Decode every record with genres and a poster: (images
    (N, 3, H, W) uint8, ids, genre lists, skipped)."""

    def one(rec: PosterRecord) -> torch.Tensor | str:
        if not rec.genres:
            return "no genre"
        path = poster_file(root, rec.imdb_id)
        if path is None:
            return "no poster file"
        try:
            return decode_image(path, size, 3)
        except BadImage as e:
            return f"bad image ({e.reason})"
        except OSError:  # no read permission, vanished since poster_file looked, I/O error
            return "unreadable poster file"

    out = torch.empty(
        len(records), 3, *size, dtype=torch.uint8
    )  # filled in place: no second copy via stack
    ids, genres, skipped = [], [], {}
    with ThreadPoolExecutor(
        max_workers=min(8, os.cpu_count() or 1)
    ) as pool:  # Pillow decodes without the GIL
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


def load_posters(
    root: PathLike,
    image_size: tuple[int, int] = (64, 64),
    *,
    top_k: int | None = None,
    encoding: str = "multi-hot",
    cache_dir: PathLike | None = None,
    cache: bool = True,
    progress: bool = True,
) -> PosterData:
    """Load a poster folder (MovieGenre.csv + {imdbId}.jpg, or the posters in an images/ subfolder).

    image_size is (H, W). decode_image scales a poster to cover it and centre-crops, so (64, 64)
    keeps the middle 182x182 of a 182x268 poster and (96, 64) keeps nearly all of it (the aspect
    option). Grayscale posters become RGB. Every CSV row is either loaded or counted in `skipped` by
    reason (bad id, duplicate id, no genre, no poster file, bad image (<reason>), no genre in
    top-K). top_k keeps the K genres most frequent among the loaded posters (ties: GENRES order).
    encoding: 'multi-hot' or 'normalised' (see encode_genres). Decoding happens once: the result is
    cached as a uint8 tensor in cache_dir (default root/.gankit-cache) keyed by the CSV bytes, the
    poster files' sizes and mtimes, and image_size; top_k and encoding are applied after the cache,
    so one cache serves them all.
    """
    if encoding not in ("multi-hot", "normalised", "normalized"):
        raise ValueError(f"encoding must be 'multi-hot' or 'normalised', got {encoding!r}")
    root = Path(root)
    csv_path = root / CSV_NAME
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"no {CSV_NAME} in {root}: a poster folder holds {CSV_NAME} and the "
            "{imdbId}.jpg posters. Get them with `gankit posters download CSV --out DIR` "
            "or make a toy set with `gankit posters make-toy DIR`"
        )
    size = (int(image_size[0]), int(image_size[1]))
    scanned, rejects, report = scan_csv(csv_path)
    records = [rec for _, rec in scanned]
    is_toy = (root / TOY_MARKER).is_file()

    h = hashlib.sha256(f"v{_CACHE_VERSION} {size}".encode())
    h.update(csv_path.read_bytes())
    for rec in records:
        p = poster_file(root, rec.imdb_id)
        st = p.stat() if p else None
        h.update(
            (
                f"{rec.imdb_id}:{p.relative_to(root) if p else '-'}:"
                f"{st and st.st_size}:{st and st.st_mtime_ns};"
            ).encode()
        )
    # one cache file per folder and size: the name's
    # middle part tells folders sharing a cache_dir apart
    root_hash = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    prefix = f"posters-{size[0]}x{size[1]}-{root_hash}"
    cache_path = Path(cache_dir or root / ".gankit-cache") / f"{prefix}-{h.hexdigest()[:20]}.pt"
    blob, from_cache = None, False
    if cache and cache_path.is_file():
        try:
            blob = torch.load(cache_path, weights_only=True)
            from_cache = blob.get("version") == _CACHE_VERSION
        except Exception as e:  # a damaged cache is rebuilt, never trusted
            warnings.warn(
                f"ignoring unreadable poster cache {cache_path} ({e}); decoding again", stacklevel=2
            )
    if not from_cache:
        images, ids, genre_lists, skipped = _decode_all(root, records, size, progress)
        blob = {
            "version": _CACHE_VERSION,
            "images": images,
            "ids": torch.tensor(ids, dtype=torch.int64),
            "genres": encode_genres(genre_lists).to(torch.uint8),
            "skipped": skipped,
        }
        # a poster we could not read may be readable next time with the same size and mtime
        if cache and "unreadable poster file" not in skipped:
            try:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                for old in cache_path.parent.glob(f"{prefix}-*.pt"):
                    old.unlink(missing_ok=True)  # superseded: the CSV or the posters changed
                atomic_write(cache_path, lambda f: torch.save(blob, f))
            except OSError as e:  # the data is in memory; the cache only saves time next run
                why = "the disk is full" if is_disk_full(e) else str(e)
                warnings.warn(
                    f"could not write the poster cache {cache_path} ({why}); no partial file was "
                    "left, and the posters will be decoded again next time",
                    stacklevel=2,
                )

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
    genres = encode_genres(
        [[names[j] for j in row.nonzero().flatten().tolist()] for row in hot], names, encoding
    )

    what = "toy set (synthetic posters made by make_toy)" if is_toy else "poster set"
    skip_text = ", ".join(
        f"{v} {k}" for k, v in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    summary = (
        f"{what}: {len(ids)} of {report.rows} CSV rows loaded as {size[0]}x{size[1]} (H x W) RGB, "
        f"{len(names)} genres ({encoding}); skipped {sum(skipped.values())}"
        + (f": {skip_text}" if skip_text else "")
        + "".join(f"\nnote: {n}" for n in report.notes)
    )
    return PosterData(images, genres, names, ids, summary, is_toy, skipped, from_cache)
