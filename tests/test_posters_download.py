"""gankit.datasets.download.download_posters against a fault-injecting HTTP server on 127.0.0.1."""

import contextlib
import csv
import errno
import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from gankit.datasets import posters
from gankit.datasets.download import DiskFullError, download_posters, download_summary
from gankit.datasets.images import decode_image
from gankit.datasets.posters import COLUMNS

SLOW_S, TIMEOUT_S = 1.0, 0.3


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 60), (seed * 40 % 256, 90, 200)).save(buf, "JPEG")
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    hits: Counter  # set per server

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code, body=b"", ctype="image/jpeg", length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.hits[path] += 1
            n = self.server.hits[path]
        kind = path.strip("/").split("/")[0]
        if kind == "ok":
            self._send(200, _jpeg(len(path)))
        elif kind == "missing":
            self._send(404, b"<html>not found</html>", "text/html")
        elif kind == "flaky":  # 500 the first time, fine on the retry
            self._send(500, b"oops", "text/plain") if n == 1 else self._send(200, _jpeg(7))
        elif kind == "broken":  # always 500: retries run out
            self._send(500, b"oops", "text/plain")
        elif kind == "slow":
            time.sleep(SLOW_S)
            with contextlib.suppress(OSError):  # the client gave up long ago
                self._send(200, _jpeg(3))
        elif kind == "truncated":
            body = _jpeg(5)
            self._send(200, body[:300], length=len(body))
            self.close_connection = True
        elif kind == "zero":
            self._send(200, b"")
        elif kind == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Amazon sign in</body></html>", "text/html")
        elif kind == "redirect":  # /redirect/<where>/...: one hop to another scheme or path
            where = path.split("/")[2]
            target = {
                "ftp": f"ftp://127.0.0.1:{self.server.server_port}/x.jpg",
                "file": "file:///etc/passwd",
                "ok": "/ok/201.jpg",
                "hop": "/redirect/ftp/again.jpg",  # http -> http -> ftp: every hop is checked
            }[where]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif kind == "badstatus":  # a broken server: a status line http.client cannot parse
            self.wfile.write(b"HTTZ/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            self.close_connection = True
        else:
            self._send(400, b"bad test path", "text/plain")


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.hits, srv.lock = Counter(), threading.Lock()
    srv.handle_error = lambda *a: (
        None
    )  # broken pipes from the slow handler after the client timed out
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _csv(tmp_path: Path, base: str) -> Path:
    rows = [
        ("101", "ok/101.jpg"),
        ("102", "ok/102.jpg?x=1,2"),  # a comma inside the quoted URL
        ("103", "missing/103.jpg"),
        ("104", "flaky/104.jpg"),
        ("105", "broken/105.jpg"),
        ("106", "slow/106.jpg"),
        ("107", "truncated/107.jpg"),
        ("108", "zero/108.jpg"),
        ("109", "html/109.jpg"),
        ("110", None),  # no Poster URL
        ("../111", "ok/111.jpg"),  # must never become a file name
        ("101", "ok/101b.jpg"),  # duplicate id
    ]
    path = tmp_path / "src" / "MovieGenre.csv"
    path.parent.mkdir()
    with open(path, "w", encoding="latin-1", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for imdb_id, url in rows:
            w.writerow(
                [
                    imdb_id,
                    f"http://www.imdb.com/title/tt{imdb_id}",
                    "Café",
                    "7.1",
                    "Drama",
                    f"{base}/{url}" if url else "",
                ]
            )
    return path


EXPECTED = {
    2: (101, "ok"),
    3: (102, "ok"),
    4: (103, "http 404"),
    5: (104, "ok"),
    6: (105, "http 500"),
    7: (106, "timeout"),
    8: (107, "truncated"),
    9: (108, "empty"),
    10: (109, "not an image"),
    11: (110, "missing url"),
    12: (None, "bad id"),
    13: (101, "duplicate id"),
}


def _leftovers(out: Path) -> list[str]:
    return sorted(
        p.name for p in out.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")
    )


def _run(csv_path, out, **kw):
    return download_posters(
        csv_path, out, workers=6, timeout=TIMEOUT_S, retries=2, backoff=0.01, progress=False, **kw
    )


def test_download_every_fault_and_resume(tmp_path, server):
    base = f"http://127.0.0.1:{server.server_port}"
    csv_path, out = _csv(tmp_path, base), tmp_path / "out"
    results = _run(csv_path, out)
    assert {r.row: (r.imdb_id, r.status) for r in results} == EXPECTED
    assert [r.row for r in results] == sorted(EXPECTED)  # CSV order, one per row
    assert results[1].url == f"{base}/ok/102.jpg?x=1,2"
    assert download_summary(results) == (
        "12 rows: 3 ok, 1 bad id, 1 duplicate id, 1 empty, 1 http 404, "
        "1 http 500, 1 missing url, 1 not an image, 1 timeout, 1 truncated"
    )
    # retry policy: no retry on 404, one on a single 500,
    # all on a persistent 500 / timeout / truncation
    hits = server.hits
    assert hits["/missing/103.jpg"] == 1 and hits["/flaky/104.jpg"] == 2
    assert hits["/broken/105.jpg"] == hits["/truncated/107.jpg"] == 3
    assert hits["/zero/108.jpg"] == hits["/html/109.jpg"] == 1
    assert "/ok/111.jpg" not in hits and "/ok/101b.jpg" not in hits

    assert sorted(p.name for p in out.glob("*.jpg")) == ["101.jpg", "102.jpg", "104.jpg"]
    for p in out.glob("*.jpg"):
        assert decode_image(p, (8, 8)).shape == (3, 8, 8)
    assert _leftovers(out) == []
    assert (out / "MovieGenre.csv").read_bytes() == csv_path.read_bytes()  # ready for load_posters
    with open(out / "manifest.csv", newline="") as f:
        manifest = list(csv.DictReader(f))
    assert [(int(m["row"]), m["imdbId"], m["status"], m["file"]) for m in manifest] == [
        (row, "" if i is None else str(i), s, f"{i}.jpg" if s == "ok" else "")
        for row, (i, s) in EXPECTED.items()
    ]

    # second run: valid files are kept, a zero-byte leftover is fetched again, failures are retried
    (out / "101.jpg").write_bytes(b"")
    before = hits.copy()
    again = _run(csv_path, out)
    status = {r.row: r.status for r in again}
    assert status[2] == "ok" and status[3] == status[5] == "exists"
    assert (
        hits["/ok/102.jpg"] == before["/ok/102.jpg"]
        and hits["/ok/101.jpg"] == before["/ok/101.jpg"] + 1
    )
    assert {row: s for row, s in status.items() if row not in (2, 3, 5)} == {
        row: s for row, (_, s) in EXPECTED.items() if row not in (2, 3, 5)
    }
    assert _leftovers(out) == []


def test_disk_full_stops_cleanly(tmp_path, server, monkeypatch):
    base = f"http://127.0.0.1:{server.server_port}"
    csv_path, out = _csv(tmp_path, base), tmp_path / "out"
    calls, lock = [0], threading.Lock()
    real_fsync = posters.os.fsync

    def fsync(
        fd,
    ):  # the first file fits, then the disk is full (the manifest cannot be written either)
        with lock:
            calls[0] += 1
            if calls[0] > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(posters.os, "fsync", fsync)
    with pytest.raises(DiskFullError) as e:
        _run(csv_path, out)
    msg = str(e.value)
    assert "disk full" in msg and "1 saved" in msg and "run the same command again" in msg
    assert e.value.errno == errno.ENOSPC
    status = Counter(r.status for r in e.value.results)
    assert (
        [r.row for r in e.value.results] == sorted(EXPECTED)
        and status["ok"] == 1
        and status["disk full"] >= 1
    )
    for r in e.value.results:  # every row has its real outcome, or says the full disk stopped it
        assert r.status in (EXPECTED[r.row][1], "disk full", "not attempted (disk full)"), r
    assert len(list(out.glob("*.jpg"))) == 1 and _leftovers(out) == []
    (saved,) = out.glob("*.jpg")
    assert decode_image(saved, (8, 8)).shape == (3, 8, 8)
    assert not (out / "manifest.csv").exists()

    monkeypatch.setattr(posters.os, "fsync", real_fsync)  # space freed: the same command resumes
    results = _run(csv_path, out)
    assert Counter(r.status for r in results)["exists"] == 1
    assert {r.row: r.status for r in results if r.status != "exists"} == {
        row: s for row, (_, s) in EXPECTED.items() if row != int(saved.stem) - 99
    }


def _csv_of(tmp_path: Path, base: str, urls: list[str]) -> Path:
    """A MovieGenre.csv with ids 201, 202, ... fetching base/url each."""
    path = tmp_path / "src" / "MovieGenre.csv"
    path.parent.mkdir(exist_ok=True)
    with open(path, "w", encoding="latin-1", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i, url in enumerate(urls):
            w.writerow([201 + i, "l", "T", "7.0", "Drama", f"{base}/{url}"])
    return path


def _manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_redirects_to_other_schemes_are_refused_on_every_hop(tmp_path, server):
    base = f"http://127.0.0.1:{server.server_port}"
    urls = ["redirect/ok/a.jpg", "redirect/ftp/b.jpg", "redirect/file/c.jpg", "redirect/hop/d.jpg"]
    out = tmp_path / "out"
    results = _run(_csv_of(tmp_path, base, urls), out)
    status = [r.status for r in results]
    assert status[0] == "ok"
    assert status[1:] == [
        "refused redirect to ftp:// (only http and https are followed)",
        "refused redirect to file:// (only http and https are followed)",
        "refused redirect to ftp:// (only http and https are followed)",
    ]
    assert server.hits["/redirect/ftp/b.jpg"] == 1  # refused, not retried
    assert server.hits["/redirect/ftp/again.jpg"] == 1
    assert sorted(p.name for p in out.glob("*.jpg")) == ["201.jpg"]
    assert [m["status"] for m in _manifest(out)] == status


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path, server):
    base = f"http://127.0.0.1:{server.server_port}"
    out = tmp_path / "out"
    out.mkdir()
    dead = 99_999_999  # above any pid_max: no such process
    stale = [
        f".201.jpg.{dead}-1.tmp",
        f".manifest.csv.{dead}-7.tmp",
        f".MovieGenre.csv.{dead}-2.tmp",
    ]
    kept = [
        "notes.tmp",  # not a name the downloader makes
        f".other.txt.{dead}-1.tmp",
        ".202.jpg.1-1.tmp",  # pid 1 is alive: maybe another download into the same folder
    ]
    for name in stale + kept:
        (out / name).write_bytes(b"partial")
    _run(_csv_of(tmp_path, base, ["ok/a.jpg"]), out)
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".tmp") == sorted(kept)


def test_ctrl_c_writes_the_manifest_and_says_how_to_resume(tmp_path, server, monkeypatch):
    from gankit.datasets import download

    base = f"http://127.0.0.1:{server.server_port}"
    out = tmp_path / "out"
    csv_path = _csv_of(tmp_path, base, [f"ok/{i}.jpg" for i in range(6)])
    real = download.as_completed

    def interrupted_after_two(futures):
        for i, fut in enumerate(real(futures)):
            if i == 2:
                raise KeyboardInterrupt
            yield fut

    monkeypatch.setattr(download, "as_completed", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt) as e:
        download_posters(csv_path, out, workers=1, timeout=TIMEOUT_S, progress=False)
    msg = str(e.value)
    assert "run the same command again" in msg and "--resume" not in msg and "\n" not in msg
    manifest = _manifest(out)
    assert [int(m["row"]) for m in manifest] == list(range(2, 8))  # one row per CSV row
    done = [m for m in manifest if m["status"] == "ok"]
    assert len(done) >= 2 and all((out / m["file"]).is_file() for m in done)
    assert {m["status"] for m in manifest} <= {"ok", "not attempted (interrupted)"}
    assert e.value.results and len(e.value.results) == 6

    monkeypatch.setattr(download, "as_completed", real)  # the same command finishes the job
    again = download_posters(csv_path, out, workers=1, timeout=TIMEOUT_S, progress=False)
    assert Counter(r.status for r in again) == {"exists": len(done), "ok": 6 - len(done)}


def test_a_broken_status_line_stays_on_one_line(tmp_path, server):
    base = f"http://127.0.0.1:{server.server_port}"
    out = tmp_path / "out"
    results = _run(_csv_of(tmp_path, base, ["badstatus/a.jpg", "ok/b.jpg"]), out)
    assert results[0].status == "error: BadStatusLine: HTTZ/1.1 200 OK"  # the line break cut
    for r in results:
        assert "\n" not in r.status and "\r" not in r.status
    for m in _manifest(out):
        assert all("\n" not in v and "\r" not in v for v in m.values()), m
    assert "\n" not in download_summary(results)


def test_unterminated_quote_gives_one_manifest_row_per_line(tmp_path, server):
    base = f"http://127.0.0.1:{server.server_port}"
    src = tmp_path / "MovieGenre.csv"
    src.write_text(
        ",".join(COLUMNS)
        + f'\n301,l,"Open quote,7.0,Drama,{base}/ok/301.jpg\n302,l,T,7.0,Drama,{base}/ok/302.jpg\n',
        encoding="latin-1",
    )
    out = tmp_path / "out"
    results = _run(src, out)
    assert [(r.row, r.imdb_id, r.status) for r in results] == [
        (2, 301, "unterminated quote"),
        (3, 302, "ok"),
    ]
    assert [m["row"] for m in _manifest(out)] == ["2", "3"]
