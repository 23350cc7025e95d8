"""Download a MovieGenre.csv's posters: concurrent, retried, checked, atomic, disk-full aware."""

from __future__ import annotations

import csv
import errno
import http.client
import io
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write, is_disk_full
from .images import BadImage, decode_image
from .posters import CSV_NAME, PathLike, PosterRecord, scan_csv


@dataclass
class DownloadResult:
    """Outcome of one CSV row. status: 'ok', 'exists', 'missing url', 'bad url', 'bad id',
    'duplicate id', 'http 404' (any code), 'timeout', 'truncated', 'empty', 'not an image',
    'bad image: <reason>', 'too large', 'refused redirect to <scheme>://', 'disk full',
    'not attempted (disk full)', 'not attempted (interrupted)', 'unterminated quote' (and the other
    CSV problems scan_csv rejects a row for), or 'error: ...'. Always one line."""

    imdb_id: int | None  # None when the row's imdbId is not a valid integer
    url: str | None
    status: str
    row: int = 0  # CSV row number (header = 1)


class DownloadInterrupted(KeyboardInterrupt):
    """Ctrl-C during a download: the manifest of the rows done so far is written; `.results` holds
    every row (those not reached say 'not attempted (interrupted)')."""

    def __init__(self, message: str, results: list[DownloadResult]):
        super().__init__(message)
        self.results = results


class RedirectRefused(urllib.error.URLError):
    """A server redirected to a scheme other than http or https (ftp://, file://, ...)."""

    def __init__(self, scheme: str):
        super().__init__(f"refused redirect to {scheme}:// (only http and https are followed)")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handler, refusing any hop that leaves http/https: urllib alone follows
    ftp:// (and a poster URL must never make us read a local file:// or an FTP server)."""

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location:
            target = urllib.parse.urljoin(req.full_url, location.strip())
            scheme = urllib.parse.urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                fp.close()
                raise RedirectRefused(scheme or "?")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _one_line(text: str) -> str:
    """text with line breaks and other control characters escaped (repr-style): a manifest cell or
    a summary line stays one line whatever a server sent."""
    return re.sub(
        r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: repr(m.group())[1:-1], text.strip()
    )


# atomic_write's temp names: .{name}.{pid}-{thread}.tmp, for the files the downloader writes
_TEMP_NAME = re.compile(r"\.([0-9]+\.jpg|manifest\.csv|MovieGenre\.csv)\.([0-9]+)-[0-9]+\.tmp")
_STALE_S = 3600  # where a pid cannot be checked, a temp file this old is a killed run's


def _pid_alive(pid: int) -> bool | None:
    """Whether a process `pid` exists; None where that cannot be asked safely (Windows, where
    os.kill(pid, 0) would stop the process)."""
    if sys.platform == "win32":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def _remove_stale_temps(out_dir: Path) -> int:
    """Delete the temp files a killed download left in out_dir (its own names only, and only when
    the process that wrote them is gone); returns how many."""
    removed = 0
    for p in out_dir.iterdir():
        m = _TEMP_NAME.fullmatch(p.name)
        if not m:
            continue
        try:
            alive = _pid_alive(int(m.group(2)))
            if alive is None:
                alive = time.time() - p.stat().st_mtime < _STALE_S
            if not alive:
                p.unlink()
                removed += 1
        except OSError:  # gone meanwhile, or not ours to delete: leave it
            pass
    return removed


class DiskFullError(OSError):
    """The disk filled up during a download: nothing
    half-written was left; `.results` holds every row."""

    def __init__(self, message: str, results: list[DownloadResult]):
        super().__init__(errno.ENOSPC, message)
        self.results = results

    def __str__(self) -> str:
        return self.strerror


_MAX_BYTES = 20 * 2**20  # a poster is ~20 KB; anything this big is not one
_USER_AGENT = "gankit-poster-downloader/1.0 (+https://github.com/; course data set)"


def _check_image(data: bytes) -> str:
    """'ok' or why these bytes are not a usable poster (decoded with
    gankit.datasets.images.decode_image)."""
    try:
        decode_image(data, (16, 16))
    except (
        BadImage
    ) as e:  # 'unsupported' means Pillow does not see an image at all (an HTML error page)
        return {"empty": "empty", "unsupported": "not an image"}.get(
            e.reason, f"bad image: {e.reason}"
        )
    return "ok"


def _fetch(
    opener, url: str, timeout: float, retries: int, backoff: float
) -> tuple[bytes | None, str]:
    """GET with retries and exponential backoff on
    5xx/408/429, timeouts, truncation, connection errors."""
    status = "error: not attempted"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with opener.open(req, timeout=timeout) as resp:
                expected = resp.headers.get("Content-Length")
                deadline, chunks, size = (
                    time.monotonic() + 4 * timeout,
                    [],
                    0,
                )  # cap a trickling server
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
        except RedirectRefused as e:
            return None, str(e.reason)  # the same answer on every try
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
            cells = [
                str(r.row),
                "" if r.imdb_id is None else str(r.imdb_id),
                r.status,
                r.url or "",
                f"{r.imdb_id}.jpg" if ok else "",
            ]
            w.writerow([_one_line(c) for c in cells])
        text.flush()
        text.detach()

    atomic_write(out_dir / "manifest.csv", write)


def download_summary(results: Sequence[DownloadResult]) -> str:
    """One line for the command line: '12 rows: 3 ok,
    2 exists, 1 http 404, ...' (most common first)."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(
        f"{n} {_one_line(status)}"
        for status, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return f"{len(results)} rows: {parts or 'none'}"


def download_posters(
    csv_path: PathLike,
    out_dir: PathLike,
    *,
    workers: int = 16,
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 0.5,
    progress: bool = True,
) -> list[DownloadResult]:
    """Fetch every poster of a MovieGenre.csv into
    out_dir/{imdbId}.jpg; one DownloadResult per CSV row.

    Concurrent (`workers` threads), resumable (a file already there that decodes is 'exists'; a
    broken one is fetched again), `timeout` seconds per socket operation, up to `retries` retries
    after 5xx / timeouts / connection errors with backoff * 2**k sleeps (never after 404). Each file
    is decoded before it is written; writes are atomic, so a failure never leaves a {imdbId}.jpg or
    temp file behind. Writes out_dir/manifest.csv (row, imdbId, status, url, file) and copies the
    CSV to out_dir/MovieGenre.csv so the folder is ready for load_posters. A full disk stops the
    run: DiskFullError (an OSError) with a message saying what was saved; run again after freeing
    space to resume.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, rejects, _ = scan_csv(csv_path)
    _remove_stale_temps(out_dir)
    results: dict[int, DownloadResult] = {
        row: DownloadResult(
            int(raw) if reason != "bad id" and re.fullmatch(r"[0-9]{1,12}", raw) else None,
            url,
            reason,
            row,
        )
        for row, raw, url, reason in rejects
    }
    todo: list[tuple[int, PosterRecord]] = []
    for row, rec in records:
        if rec.poster_url is None:
            results[row] = DownloadResult(rec.imdb_id, None, "missing url", row)
        elif not rec.poster_url.lower().startswith(("http://", "https://")):
            results[row] = DownloadResult(
                rec.imdb_id, rec.poster_url, "bad url", row
            )  # no file:// reads
        else:
            todo.append((row, rec))

    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    stop = threading.Event()
    why_stopped = ["disk full"]  # or "interrupted": what rows not started yet are marked with

    def work(rec: PosterRecord) -> str:
        target = out_dir / f"{rec.imdb_id}.jpg"
        if stop.is_set():
            return f"not attempted ({why_stopped[0]})"
        if _valid_file(target):
            return "exists"
        data, status = _fetch(opener, rec.poster_url, timeout, retries, backoff)
        if data is None:
            return status
        status = _check_image(data)
        if status != "ok":
            return status
        if stop.is_set():
            return f"not attempted ({why_stopped[0]})"
        try:
            atomic_write(target, data)
        except OSError as e:
            return "disk full" if is_disk_full(e) else f"error: {e}"
        return "ok"

    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="posters", unit="file")
        except ImportError:
            pass

    def record(fut, row: int, rec: PosterRecord) -> str:
        try:
            status = "not attempted (disk full)" if fut.cancelled() else fut.result()
        except Exception as e:  # a bug or an odd URL must not lose the other rows' outcomes
            status = f"error: {type(e).__name__}: {e}"
        results[row] = DownloadResult(rec.imdb_id, rec.poster_url, _one_line(status), row)
        return status

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures: dict = {}
    interrupted = False
    try:
        futures = {pool.submit(work, rec): (row, rec) for row, rec in todo}
        for fut in as_completed(futures):
            status = record(fut, *futures[fut])
            if status == "disk full" and not stop.is_set():
                stop.set()
                for f in futures:
                    f.cancel()
            if bar is not None:
                bar.update()
    except KeyboardInterrupt:
        interrupted, why_stopped[0] = True, "interrupted"
    finally:
        # also on Ctrl-C: drop the queue, let running downloads finish (their writes are atomic)
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    if interrupted:
        for fut, (row, rec) in futures.items():
            if row not in results and fut.done() and not fut.cancelled():
                record(fut, row, rec)  # finished while the pool shut down: its file is there
        for row, rec in todo:
            if row not in results:
                results[row] = DownloadResult(
                    rec.imdb_id, rec.poster_url, "not attempted (interrupted)", row
                )
        ordered = [results[row] for row in sorted(results)]
        done = sum(r.status != "not attempted (interrupted)" for r in ordered)
        try:
            _write_manifest(out_dir, ordered)
            note = f"the manifest of the {done} rows done is in {out_dir / 'manifest.csv'}"
        except OSError as e:
            note = f"the manifest could not be written ({e.strerror or e})"
        raise DownloadInterrupted(
            f"download interrupted after {done} of {len(ordered)} rows ({note}); run the same "
            "command again to resume: posters already saved are kept",
            ordered,
        ) from None
    ordered = [results[row] for row in sorted(results)]
    disk_full = any(r.status == "disk full" for r in ordered)
    try:
        _write_manifest(out_dir, ordered)
        src, dst = Path(csv_path), out_dir / CSV_NAME
        if src.resolve() != dst.resolve() and (
            not dst.exists() or dst.read_bytes() != src.read_bytes()
        ):
            atomic_write(dst, src.read_bytes())
        manifest_note = f"see {out_dir / 'manifest.csv'}"
    except OSError as e:
        if not is_disk_full(e):
            raise
        disk_full, manifest_note = True, "the manifest could not be written either"
    if disk_full:
        saved = sum(r.status == "ok" for r in ordered)
        left = sum(r.status in ("disk full", "not attempted (disk full)") for r in ordered)
        raise DiskFullError(
            f"disk full while saving posters to {out_dir}: {saved} saved this run, {left} not "
            f"saved, no partial files left ({manifest_note}). Free some space and run the "
            "same command again: files already there are kept.",
            ordered,
        )
    return ordered
