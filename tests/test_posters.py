"""gankit.datasets.posters: MovieGenre.csv reader, genre parsing/encoding, toy set, loader."""

import csv
import errno
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gankit.datasets import posters
from gankit.datasets.images import BadImage, decode_image
from gankit.datasets.posters import (
    COLUMNS,
    GENRES,
    REAL_GENRE_COUNTS,
    encode_genres,
    load_posters,
    parse_genres,
    read_poster_csv,
)
from gankit.datasets.toy_posters import make_toy, poster_root

HEADER = ",".join(COLUMNS) + "\n"
N_TOY, BROKEN = 240, 0.02  # 5 rows of each faulty kind


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    make_toy(root, N_TOY, seed=3, broken=BROKEN)
    return root


def _info(root: Path) -> dict:
    return json.loads((root / posters.TOY_MARKER).read_text())


def _raw_rows(root: Path) -> list[list[str]]:
    with open(root / "MovieGenre.csv", encoding="latin-1", newline="") as f:
        return list(csv.reader(f))[1:]


def _write(path: Path, text: str, encoding: str = "latin-1") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------------------------------- genres


def test_genre_vocabulary_and_counts():
    assert len(GENRES) == 28 and list(GENRES) == sorted(GENRES)
    assert set(REAL_GENRE_COUNTS) == set(GENRES)
    # the counts issue 4 gives verbatim
    known = (
        REAL_GENRE_COUNTS["Drama"],
        REAL_GENRE_COUNTS["Comedy"],
        REAL_GENRE_COUNTS["Game-Show"],
    )
    assert known == (17677, 11172, 1)
    ranked = sorted(REAL_GENRE_COUNTS, key=REAL_GENRE_COUNTS.get, reverse=True)
    assert ranked[:4] == ["Drama", "Comedy", "Romance", "Action"]
    assert ranked[-6:] == ["Film-Noir", "News", "Adult", "Talk-Show", "Reality-TV", "Game-Show"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(GENRES), min_size=1, max_size=6, unique=True), st.data())
def test_parse_genres_roundtrips_any_case_and_separator(names, data):
    def scramble(name):
        return "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in name)

    seps = [data.draw(st.sampled_from(["|", ",", ", ", " | ", ";", " ,  "])) for _ in names]
    text = "".join(scramble(n) + s for n, s in zip(names, seps))[: -len(seps[-1])]
    assert parse_genres(text) == names
    assert parse_genres(text + "|" + scramble(names[0])) == names  # a repeat is dropped, order kept


def test_parse_genres_lenient_spelling_and_errors():
    assert parse_genres("horror, sci-fi") == ["Horror", "Sci-Fi"]
    assert parse_genres("SCI FI|film_noir") == ["Sci-Fi", "Film-Noir"]
    with pytest.raises(ValueError, match="Did you mean 'Horror'") as e:
        parse_genres("Horor")
    assert "Action, Adult, Adventure" in str(e.value) and "Western" in str(e.value)
    with pytest.raises(ValueError, match="no genre given"):
        parse_genres(" , |")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.sampled_from(GENRES), max_size=5), min_size=1, max_size=8))
def test_encode_genres_properties(rows):
    hot = encode_genres(rows)
    assert hot.shape == (len(rows), len(GENRES)) and hot.dtype == torch.float32
    assert set(hot.unique().tolist()) <= {0.0, 1.0}
    assert hot.sum(1).tolist() == [float(len(set(r))) for r in rows]
    for i, r in enumerate(rows):
        assert sorted(GENRES[j] for j in hot[i].nonzero().flatten()) == sorted(set(r))
    norm = encode_genres(rows, mode="normalised")
    for i, r in enumerate(rows):
        assert norm[i].sum().item() == pytest.approx(1.0 if r else 0.0)
        assert torch.equal(norm[i] > 0, hot[i] > 0)


def test_encode_genres_golden_and_errors():
    vocab = ["Drama", "Horror", "Sci-Fi"]
    assert encode_genres([["Horror", "drama"], [], ["Sci-Fi"]], vocab, "normalised").tolist() == [
        [0.5, 0.5, 0.0],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0],
    ]
    assert encode_genres(["Horror|Sci-Fi"], vocab).tolist() == [
        [0.0, 1.0, 1.0]
    ]  # a string row is parsed
    with pytest.raises(ValueError, match="unknown genre 'Western'"):
        encode_genres([["Western"]], vocab)
    with pytest.raises(ValueError, match="mode"):
        encode_genres([["Drama"]], vocab, "one-hot")


# ---------------------------------------------------------------------------------------------- CSV


def test_missing_columns_error_names_missing_and_found(tmp_path):
    path = _write(tmp_path / "MovieGenre.csv", "imdbId,Title,Genre\n1,A,Drama\n")
    with pytest.raises(ValueError) as e:
        read_poster_csv(path)
    msg = str(e.value)
    assert "missing column(s) 'Imdb Link', 'IMDB Score', 'Poster'" in msg
    assert "found columns 'imdbId', 'Title', 'Genre'" in msg


def test_problem_rows_are_reported_with_row_numbers(tmp_path):
    text = (
        HEADER
        + "\n".join(
            [
                "11,l,Blank genre,7.0,,http://x/11.jpg",  # row 2
                "../etc,l,Traversal,7.0,Drama,http://x/a.jpg",  # row 3
                "12a,l,Letters,7.0,Drama,http://x/b.jpg",  # row 4
                # row 5: keeps Drama, once
                "13,l,Unknown,7.0,Drama|Cyberpunk|drama,http://x/13.jpg",
                "11,l,Duplicate,5.0,Comedy,http://x/11b.jpg",  # row 6
                "14,l,No url,n/a,Horror,",  # row 7
                "-5,l,Negative,7.0,Drama,http://x/c.jpg",  # row 8
                "0,l,Zero,7.0,Drama,http://x/d.jpg",  # row 9
                "15,l,Local file,6.5,War,file:///etc/passwd",  # row 10
            ]
        )
        + "\n"
    )
    records, report = read_poster_csv(_write(tmp_path / "MovieGenre.csv", text))
    assert report.problems == {
        "blank genre": [2],
        "bad id": [3, 4, 8, 9],
        "unknown genre": [5],
        "duplicate id": [6],
        "missing poster url": [7],
        "bad score": [7],
        "bad poster url": [10],
    }
    assert (report.rows, report.kept) == (9, 4)
    by_id = {r.imdb_id: r for r in records}
    assert list(by_id) == [11, 13, 14, 15]
    assert (
        by_id[11].title == "Blank genre" and by_id[11].genres == ()
    )  # first of the duplicates wins
    assert by_id[13].genres == ("Drama",)
    assert by_id[14].poster_url is None and by_id[14].score is None
    text_report = str(report)
    assert "bad id: 4 rows (3, 4, 8, 9)" in text_report and "duplicate id: 1 row (6)" in text_report


@pytest.mark.parametrize(
    "encoding, used, note",
    [
        ("latin-1", "latin-1", None),
        ("utf-8-sig", "utf-8", "byte-order mark"),
        ("utf-16", "utf-16", "UTF-16"),
        ("utf-16-le", "utf-16-le", "without a byte-order mark"),
        ("utf-8", "utf-8", "'Ã©'"),
        ("cp1252", "cp1252", "Windows-1252"),
    ],
)
def test_other_encodings_are_detected_and_explained(tmp_path, encoding, used, note):
    title = "Amélie’s Café" if encoding == "cp1252" else "Amélie, Café"
    text = HEADER + f'1,l,"{title}",8.3,Comedy|Romance,http://x/1.jpg\n'
    records, report = read_poster_csv(_write(tmp_path / "MovieGenre.csv", text, encoding))
    assert records[0].title == title and records[0].genres == ("Comedy", "Romance")
    assert report.encoding == used
    assert (note in " ".join(report.notes)) if note else report.notes == []


def test_wrong_explicit_encoding_says_to_use_latin1(tmp_path):
    path = _write(tmp_path / "MovieGenre.csv", HEADER + "1,l,Café,8.3,Drama,http://x/1.jpg\n")
    with pytest.raises(ValueError, match="encoding='latin-1'"):
        read_poster_csv(path, encoding="utf-8")


def test_toy_csv_roundtrip(toy):
    raw = _raw_rows(toy)
    info = _info(toy)
    records, report = read_poster_csv(toy / "MovieGenre.csv")
    k = len(info["duplicate"])
    assert k == round(BROKEN * N_TOY) == 5
    assert (report.rows, report.kept, report.encoding, report.notes) == (
        N_TOY,
        N_TOY - k,
        "latin-1",
        [],
    )
    assert set(report.problems) == {"blank genre", "missing poster url", "duplicate id"}
    assert len(report.problems["duplicate id"]) == k
    blank_rows = [
        i + 2 for i, row in enumerate(raw) if row[4] == "" and int(row[0]) in info["blank_genre"]
    ]
    assert report.problems["blank genre"] == blank_rows and len(blank_rows) == k
    assert len(report.problems["missing poster url"]) == k
    first = {}
    for row in raw:
        first.setdefault(int(row[0]), row)
    assert [r.imdb_id for r in records] == list(first)
    for rec in records:
        row = first[rec.imdb_id]
        assert (rec.link, rec.title, rec.score) == (row[1], row[2], float(row[3]))
        assert "|".join(rec.genres) == row[4] and rec.poster_url == (row[5] or None)
    assert any("é" in r.title for r in records) and any("," in r.title for r in records)
    assert any("," in (r.poster_url or "") for r in records)


# ------------------------------------------------------------------------------------------ toy set


def test_make_toy_writes_the_real_format(toy):
    data = (toy / "MovieGenre.csv").read_bytes()
    assert data.startswith(HEADER.encode())
    assert b"\xe9" in data  # é as one Latin-1 byte ...
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # ... so the file is not UTF-8
    assert (
        b'"https://images.example.invalid/images/M/tt' in data
        and b'_CR0,0,182,268_AL_.jpg"' in data
    )
    info = _info(toy)
    files = sorted(toy.glob("*.jpg"))
    assert len(files) == N_TOY - len(info["duplicate"]) - len(info["no_poster"])
    assert sorted(int(p.stem) for p in files if p.stat().st_size == 0) == sorted(info["zero_byte"])
    modes = {}
    for p in files:
        if p.stat().st_size and int(p.stem) not in info["truncated"]:
            with Image.open(p) as im:
                assert im.size == (182, 268) and im.format == "JPEG"
                modes[int(p.stem)] = im.mode
    assert (
        sorted(i for i, m in modes.items() if m == "L") == sorted(info["grayscale"])
        and info["grayscale"]
    )
    for i in info["truncated"]:
        with pytest.raises(BadImage) as e:
            decode_image(toy / f"{i}.jpg", (64, 64))
        assert e.value.reason == "corrupt"


def test_toy_genre_frequencies_follow_the_real_ranking(toy):
    counts = dict.fromkeys(GENRES, 0)
    for row in _raw_rows(toy):
        for g in filter(None, row[4].split("|")):
            counts[g] += 1
    ranked = sorted(GENRES, key=counts.get, reverse=True)
    assert ranked[:2] == ["Drama", "Comedy"]
    real_rank = sorted(GENRES, key=REAL_GENRE_COUNTS.get, reverse=True)
    # the common half of the real ranking covers most of the toy's genre labels
    assert sum(counts[g] for g in real_rank[:8]) > 0.6 * sum(counts.values())
    assert counts["Game-Show"] + counts["Reality-TV"] + counts["Talk-Show"] <= 1


def test_make_toy_is_deterministic(tmp_path):
    def digest(root):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}

    a, b, c = (
        make_toy(tmp_path / name, 25, seed=s, broken=0.04).parent
        for name, s in (("a", 7), ("b", 7), ("c", 8))
    )
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    make_toy(
        c, 25, seed=7, broken=0.04
    )  # regenerating a toy folder in place replaces it completely
    assert digest(c) == digest(a)


def test_make_toy_never_overwrites_a_real_set(tmp_path):
    _write(tmp_path / "MovieGenre.csv", HEADER + "1,l,Real,7.0,Drama,http://x/1.jpg\n")
    with pytest.raises(FileExistsError, match="did not write"):
        make_toy(tmp_path, 10)
    assert b"Real" in (tmp_path / "MovieGenre.csv").read_bytes()


# ------------------------------------------------------------------------------------------ loading


def test_load_posters_on_toy(toy):
    info = _info(toy)
    data = load_posters(toy, progress=False, cache_dir=toy / "cache")
    k = round(BROKEN * N_TOY)
    assert data.skipped == {
        "bad image (corrupt)": k,
        "bad image (empty)": k,
        "duplicate id": k,
        "no genre": k,
        "no poster file": k,
    }
    n = N_TOY - 5 * k
    assert data.images.shape == (n, 3, 64, 64) and data.images.dtype == torch.uint8
    assert data.genres.shape == (n, 28) and data.genres.dtype == torch.float32
    assert data.names == list(GENRES) and len(data.ids) == n and data.is_toy
    assert "toy set" in data.summary and f"{n} of {N_TOY} CSV rows" in data.summary
    assert str(toy) not in data.summary  # summaries get printed in committed notebooks
    csv_genres = {int(r[0]): set(filter(None, r[4].split("|"))) for r in _raw_rows(toy)}
    for i, imdb_id in enumerate(data.ids):
        assert {GENRES[j] for j in data.genres[i].nonzero().flatten()} == csv_genres[imdb_id]
    gray = [data.ids.index(i) for i in info["grayscale"] if i in data.ids]
    assert gray and all(
        torch.equal(data.images[j, 0], data.images[j, 2]) for j in gray
    )  # gray -> RGB

    again = load_posters(toy, progress=False, cache_dir=toy / "cache")
    assert again.from_cache and not data.from_cache
    assert (
        torch.equal(again.images, data.images)
        and again.ids == data.ids
        and again.summary == data.summary
    )


def test_load_posters_top_k_normalised_and_tall(toy):
    full = load_posters(toy, progress=False, cache_dir=toy / "cache")
    top = load_posters(toy, top_k=3, encoding="normalised", progress=False, cache_dir=toy / "cache")
    assert top.from_cache  # top_k and encoding are applied after the cache
    freq = full.genres.sum(0)
    best = sorted(range(28), key=lambda j: (-freq[j].item(), j))[:3]
    assert top.names == [GENRES[j] for j in sorted(best)] and "Drama" in top.names
    dropped = int((full.genres[:, best].sum(1) == 0).sum())
    assert top.skipped["no genre in top-3"] == dropped > 0
    assert len(top.ids) == len(full.ids) - dropped and top.genres.shape == (len(top.ids), 3)
    assert torch.allclose(top.genres.sum(1), torch.ones(len(top.ids)))
    assert sum(top.skipped.values()) + len(top.ids) == N_TOY

    tall = load_posters(toy, (96, 64), progress=False, cache_dir=toy / "cache")
    assert tall.images.shape == (len(full.ids), 3, 96, 64) and not tall.from_cache


def test_load_posters_images_subfolder_and_cache_invalidation(toy, tmp_path):
    root = tmp_path / "real"
    (root / "images").mkdir(parents=True)
    keep = [r for r in _raw_rows(toy)[:30]]
    with open(root / "MovieGenre.csv", "w", encoding="latin-1", newline="") as f:
        csv.writer(f).writerows([COLUMNS, *keep])
    for row in keep:
        if (toy / f"{row[0]}.jpg").exists():
            shutil.copy(toy / f"{row[0]}.jpg", root / "images" / f"{row[0]}.jpg")
    a = load_posters(root, (32, 32), progress=False)
    assert not a.is_toy and "toy" not in a.summary and len(a.ids) > 15
    assert (root / ".gankit-cache").is_dir()  # default cache place
    victim = root / "images" / f"{a.ids[0]}.jpg"
    victim.write_bytes(b"")  # a poster changed on disk: the cache must not be trusted
    b = load_posters(root, (32, 32), progress=False)
    assert not b.from_cache and len(b.ids) == len(a.ids) - 1 and a.ids[0] not in b.ids
    assert b.skipped["bad image (empty)"] == a.skipped.get("bad image (empty)", 0) + 1


def test_cache_write_failure_warns_and_leaves_no_partial_file(toy, tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(posters.os, "fsync", full_disk)
    with pytest.warns(UserWarning, match="the disk is full"):
        data = load_posters(toy, (16, 16), progress=False, cache_dir=tmp_path / "c")
    assert len(data.ids) > 0 and list((tmp_path / "c").iterdir()) == []


def test_damaged_cache_is_rebuilt(toy, tmp_path):
    load_posters(toy, (16, 16), progress=False, cache_dir=tmp_path)
    (cache_file,) = tmp_path.glob("*.pt")
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable poster cache"):
        data = load_posters(toy, (16, 16), progress=False, cache_dir=tmp_path)
    assert not data.from_cache and data.images.shape[1:] == (3, 16, 16)


def test_missing_csv_error_says_what_to_do(tmp_path, toy):
    with pytest.raises(FileNotFoundError, match="posters make-toy"):
        load_posters(tmp_path)
    with pytest.raises(ValueError, match="'multi-hot' or 'normalised'"):
        load_posters(toy, encoding="one-hot")


def test_two_folders_can_share_a_cache_dir(toy, tmp_path):
    other = tmp_path / "other"
    make_toy(other, 12, seed=5, broken=0.0)
    for root in (toy, other, toy, other):
        data = load_posters(root, (8, 8), progress=False, cache_dir=tmp_path / "shared")
    assert (
        data.from_cache
        and load_posters(toy, (8, 8), progress=False, cache_dir=tmp_path / "shared").from_cache
    )
    assert len(list((tmp_path / "shared").glob("*.pt"))) == 2


def test_poster_root_prefers_real_set_and_makes_toy_once(tmp_path):
    path, is_toy = poster_root(tmp_path, n_toy=12, seed=1)
    assert (path, is_toy) == (tmp_path / "posters-toy", True)
    stamp = (path / "MovieGenre.csv").stat().st_mtime_ns
    assert poster_root(tmp_path, n_toy=12, seed=1) == (path, True)
    assert (path / "MovieGenre.csv").stat().st_mtime_ns == stamp  # not regenerated
    real = tmp_path / "posters"
    real.mkdir()
    shutil.copy(path / "MovieGenre.csv", real / "MovieGenre.csv")
    assert poster_root(tmp_path, n_toy=12, seed=1) == (
        path,
        True,
    )  # a CSV without posters is not a set
    for p in list(path.glob("*.jpg"))[:3]:
        shutil.copy(p, real / p.name)
    assert poster_root(tmp_path) == (real, False)


# ---------------------------------------------------------------------------------------- learnable


def _auc(score: torch.Tensor, label: torch.Tensor) -> float:
    """ROC-AUC by the Mann-Whitney rank statistic (no ties expected on continuous scores)."""
    ranks = score.argsort().argsort().double() + 1
    pos = label.bool()
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_genre_is_learnable_from_mean_colour(toy):
    """Logistic regression on 3 numbers (mean R, G, B) must beat chance on held-out toy posters."""
    data = load_posters(toy, progress=False, cache_dir=toy / "cache")
    x = data.images.float().mean((2, 3)) / 255.0
    x = torch.cat([x, torch.ones(len(x), 1)], 1)
    half = len(x) // 2
    aucs = {}
    for name in ("Drama", "Comedy", "Romance", "Action"):
        y = data.genres[:, GENRES.index(name)]
        w = torch.zeros(4, requires_grad=True)
        opt = torch.optim.LBFGS([w], max_iter=100)

        def closure(opt=opt, w=w, y=y):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(x[:half] @ w, y[:half])
            loss.backward()
            return loss

        opt.step(closure)
        aucs[name] = _auc((x[half:] @ w).detach(), y[half:])
    assert max(aucs.values()) > 0.75, aucs


# ------------------------------------------------------------------------------------ damaged CSVs


def test_unterminated_quote_is_reported_and_does_not_swallow_the_next_row(tmp_path):
    text = (
        HEADER
        + '21,l,"Broken title,7.0,Drama,http://x/21.jpg\n'  # line 2: the quote never closes
        + "22,l,Next,7.0,Comedy,http://x/22.jpg\n"  # line 3: must still be its own row
        + '23,l,"Fine, quoted",6.0,War,http://x/23.jpg\n'  # line 4
        + '24,l,"Two\nlines",6.0,War,http://x/24.jpg\n'  # lines 5-6: a legal quoted newline
        + '25,l,Last,6.0,War,"http://x/25.jpg\n'  # line 7: unterminated at the end of the file
    )
    path = _write(tmp_path / "MovieGenre.csv", text)
    records, report = read_poster_csv(path)
    assert [r.imdb_id for r in records] == [22, 23, 24]
    assert records[2].title == "Two\nlines"
    assert report.problems == {"unterminated quote": [2, 7]}
    assert (report.rows, report.kept) == (5, 3)
    assert "unterminated quote: 2 rows (2, 7)" in str(report)
    scanned, rejects, _ = posters.scan_csv(path)
    assert [row for row, _ in scanned] == [3, 4, 5]
    assert rejects == [(2, "21", None, "unterminated quote"), (7, "25", None, "unterminated quote")]


def test_field_over_the_csv_limit_is_reported_not_a_crash(tmp_path):
    huge = "x" * (csv.field_size_limit() + 10)
    text = (
        HEADER
        + f'31,l,"{huge}",7.0,Drama,http://x/31.jpg\n'  # line 2: one huge (closed) field
        + "32,l,Next,7.0,Comedy,http://x/32.jpg\n"
        + f'33,l,"{huge}\n'  # line 4: an unterminated quote that swallows past the limit
        + "34,l,After,7.0,Comedy,http://x/34.jpg\n"
    )
    records, report = read_poster_csv(_write(tmp_path / "MovieGenre.csv", text))
    assert [r.imdb_id for r in records] == [32, 34]
    assert report.problems == {
        f"field over {csv.field_size_limit()} characters": [2],
        "unterminated quote": [4],
    }
    assert report.rows == 4


def test_a_folder_given_as_the_csv_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError) as e:
        read_poster_csv(tmp_path)
    text = str(e.value)
    assert "folder" in text and str(tmp_path / "MovieGenre.csv") in text and "\n" not in text


def test_unreadable_poster_file_is_skipped_and_counted(toy, monkeypatch):
    real = posters.decode_image
    victim = _raw_rows(toy)[0][0]

    def decode(path, *args, **kwargs):
        if Path(path).stem == victim:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(posters, "decode_image", decode)
    cache = toy.parent / "unreadable-cache"
    data = load_posters(toy, (8, 8), progress=False, cache_dir=cache)
    assert data.skipped["unreadable poster file"] == 1 and int(victim) not in data.ids
    assert len(data.ids) + sum(data.skipped.values()) == N_TOY
    assert not cache.exists()  # readable again after a chmod, with the same size and mtime

    monkeypatch.setattr(posters, "decode_image", real)
    assert int(victim) in load_posters(toy, (8, 8), progress=False, cache_dir=cache).ids


@pytest.mark.parametrize(
    ("mode", "progress", "bar"),
    [("bar", True, True), ("epochs", True, False), ("bar", False, False), ("none", True, False)],
)
def test_decoding_bar_follows_the_training_progress_mode(monkeypatch, mode, progress, bar):
    """A live decoding bar where training shows one; none in executed notebooks
    (GANKIT_PROGRESS=epochs, where a widget bar is saved as a frozen '0%' line) and none with
    --quiet (progress=False)."""
    import gankit.lesson as lesson

    asked = []

    def fake_load(config, progress):  # what setup asks the loader for, then stop
        asked.append(progress)
        raise RuntimeError("stop")

    monkeypatch.setattr(lesson, "load_dataset", fake_load)
    monkeypatch.setenv("GANKIT_PROGRESS", mode)
    with pytest.raises(RuntimeError, match="stop"):
        lesson.setup("mlp-mnist", profile="smoke", run_dir=None, progress=progress)
    assert asked == [bar]


@pytest.mark.parametrize(("mode", "bar"), [("bar", True), ("epochs", False), ("none", False)])
def test_load_dataset_called_directly_follows_the_progress_mode(monkeypatch, mode, bar):
    """Lesson 04 calls load_dataset itself: its decoding bar follows GANKIT_PROGRESS too."""
    import gankit.data as data

    asked = []

    def fake_posters(path, size, *, top_k, encoding, progress):
        asked.append(progress)
        raise RuntimeError("stop")

    monkeypatch.setattr(data, "load_posters", fake_posters)
    monkeypatch.setenv("GANKIT_PROGRESS", mode)
    config = data.GANConfig(preset="poster-cgan", dataset="posters", data_path="x", cond_dim=28)
    with pytest.raises(RuntimeError, match="stop"):
        data.load_dataset(config)
    assert asked == [bar]
