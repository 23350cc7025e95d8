"""What the command line writes: whole or absent on a full disk, sized to the disk, refused in one
line when --out cannot be written, options refused before any work, a readable final line, and a
locked run left untouched by a refused --resume."""

import contextlib
import errno
import io
import os
import resource
import shutil
import signal
import socket
import subprocess
from collections import namedtuple

import numpy as np
import pytest
import torch
from helpers import assert_refused, needs_mnist, run_cli_err, tiny_config, tiny_trainer

from gankit import files
from gankit.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real checkpoint of a tiny unconditional MLP (28x28, latent_dim 8)."""
    run = tmp_path_factory.mktemp("ckpt") / "r"
    tiny_trainer(tiny_config(), run_dir=run).fit(1)
    return run / "checkpoints" / "last.pt"


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Writes past `nbytes` into any file fail (EFBIG), as they would on a full disk."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the signal kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)


class FillingFile:
    """An open file whose writes fail with ENOSPC once `room` bytes are written."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def disk_fills(monkeypatch, room: int = 1000, only: str = "") -> None:
    """gankit.files' writes to files whose name holds `only` find a disk with `room` bytes left."""
    real = open

    def fake_open(path, mode="r", *args, **kwargs):
        f = real(path, mode, *args, **kwargs)
        return FillingFile(f, room) if "w" in mode and only in str(path) else f

    monkeypatch.setattr(files, "open", fake_open, raising=False)


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write into: chmod 555, or for root (whom modes do not stop) chattr +i."""
    folder = tmp_path / "ro"
    folder.mkdir()
    root = os.geteuid() == 0
    if root and (not shutil.which("chattr") or subprocess.run(["chattr", "+i", folder]).returncode):
        pytest.skip("running as root on a file system without chattr +i")
    if not root:
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", folder]) if root else folder.chmod(0o755)


# ------------------------------------------------------- 4. sample: whole or absent, sized to disk
@pytest.mark.parametrize("suffix", [".png", ".npz"])
def test_sample_on_a_full_disk_leaves_no_file(checkpoint, tmp_path, capsys, suffix):
    out = tmp_path / "out" / f"s{suffix}"
    out.parent.mkdir()
    with file_size_limit(4096):
        code, err = run_cli_err(["sample", checkpoint, "--n", "64", "--out", out], capsys)
    assert_refused(code, err, str(out))
    assert list(out.parent.iterdir()) == []  # neither a partial file nor a temp file


@pytest.mark.parametrize("suffix", [".png", ".npz"])
def test_sample_refuses_an_n_that_cannot_fit(checkpoint, tmp_path, capsys, suffix):
    out = tmp_path / f"s{suffix}"
    code, err = run_cli_err(["sample", checkpoint, "--n", 10**12, "--out", out], capsys)
    assert_refused(code, err, "--n", ".npz" if suffix == ".png" else "free")
    assert not out.exists()


def test_sample_checks_the_free_space_of_the_output_folder(
    checkpoint, tmp_path, capsys, monkeypatch
):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    out = tmp_path / "s.npz"
    code, err = run_cli_err(["sample", checkpoint, "--n", "100", "--out", out], capsys)
    assert_refused(code, err, "--n 100", "78.4 KB", "1.0 KB free")  # 100 x 784 bytes
    assert not out.exists()


def test_sample_writes_in_batches_the_samples_of_one_draw(checkpoint, tmp_path, capsys):
    from gankit.data import to_uint8
    from gankit.train import Trainer

    out = tmp_path / "s.npz"
    assert main(["sample", str(checkpoint), "--n", "1100", "--out", str(out), "--seed", "3"]) == 0
    images = np.load(out)["images"]
    assert images.shape == (1100, 1, 28, 28) and images.dtype == np.uint8
    trainer = Trainer.from_checkpoint(checkpoint, device="cpu", run_dir=None, progress=False)
    assert np.array_equal(images, to_uint8(trainer.sample(1100, seed=3)).numpy())


# ------------------------------------------------------------- 5. a full disk during a checkpoint
def test_a_full_disk_in_torch_save_is_the_oserror_naming_the_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    files.atomic_save({"w": torch.zeros(10)}, path)  # the last good one
    disk_fills(monkeypatch)
    with pytest.raises(OSError) as e:
        files.atomic_save({"w": torch.randn(100_000)}, path)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    assert torch.load(path, weights_only=True)["w"].shape == (10,)  # intact
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


@needs_mnist
def test_train_on_a_full_disk_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    disk_fills(monkeypatch, only=".pt.")  # config.json, metrics.json and the rest still fit
    argv = ["train", "mlp-mnist", "--profile", "smoke", "--out", tmp_path, "--quiet", "--epochs", 1]
    code, err = run_cli_err(argv, capsys)
    line = assert_refused(code, err, "no space left on device while writing", "last.pt")
    assert line.endswith("free space and resume (the same command with --resume)")
    (run,) = (tmp_path / "mlp-mnist").iterdir()
    assert not list((run / "checkpoints").glob("*"))


# --------------------------------------------------------------- 6. --out, --device, option values
def out_cases(tmp_path, read_only, kind: str):
    """--out values that cannot be written: (path, what the error says)."""
    (tmp_path / "file").write_text("x")
    cases = {
        "existing file": (tmp_path / "file", "is a file, not a folder"),
        "under a file": (tmp_path / "file" / "sub", "is a file, not a folder"),
        "read-only": (read_only / "sub", "is read-only"),
    }
    if kind == "file":  # an output file: the folder it goes in is what cannot be made
        cases = {k: (p / "x.png", why) for k, (p, why) in cases.items() if k != "existing file"}
        (tmp_path / "dir.png").mkdir()
        cases["folder named like the file"] = (tmp_path / "dir.png", "is a folder, not a file")
    return cases


@pytest.mark.parametrize("case", ["existing file", "under a file", "read-only"])
def test_train_out_that_cannot_be_written(tmp_path, read_only, capsys, case):
    out, why = out_cases(tmp_path, read_only, "folder")[case]
    code, err = run_cli_err(["train", "mlp-mnist", "--profile", "smoke", "--out", out], capsys)
    assert_refused(code, err, "--out", why)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ro"]  # nothing made


@pytest.mark.parametrize("case", ["under a file", "read-only", "folder named like the file"])
def test_sample_out_that_cannot_be_written(checkpoint, tmp_path, read_only, capsys, case):
    out, why = out_cases(tmp_path, read_only, "file")[case]
    code, err = run_cli_err(["sample", checkpoint, "--n", 4, "--out", out], capsys)
    assert_refused(code, err, "--out", why)


@pytest.fixture
def empty_csv(tmp_path):
    csv = tmp_path / "MovieGenre.csv"
    csv.write_text("imdbId,Imdb Link,Title,IMDB Score,Genre,Poster\n")
    return csv


@pytest.mark.parametrize(
    "case", ["existing file", "under a file", "read-only", "manifest.csv is a folder"]
)
def test_posters_download_out_that_cannot_be_written(tmp_path, read_only, empty_csv, capsys, case):
    if case == "manifest.csv is a folder":
        out, why = tmp_path / "posters", "manifest.csv' is a folder, not a file"
        (out / "manifest.csv").mkdir(parents=True)
    else:
        out, why = out_cases(tmp_path, read_only, "folder")[case]
    code, err = run_cli_err(["posters", "download", empty_csv, "--out", out], capsys)
    assert_refused(code, err, "--out", why)


def test_sample_on_a_device_that_is_missing(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, err = run_cli_err(
        ["sample", checkpoint, "--n", 4, "--out", tmp_path / "x.png", "--device", "cuda"], capsys
    )
    assert_refused(code, err, "'cuda'", "CUDA is not available")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "option, value",
    [("--retries", "-1"), ("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "nan")]
    + [("--timeout", "inf"), ("--workers", "0")],
)
def test_download_options_that_would_fail_every_row_are_refused(
    tmp_path, empty_csv, capsys, option, value
):
    argv = ["posters", "download", empty_csv, "--out", tmp_path / "p", f"{option}={value}"]
    assert_refused(*run_cli_err(argv, capsys), f"argument {option}", repr(value))
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("value", [str(10**30), str(2**63), "-1"])
@pytest.mark.parametrize("cmd", ["sample", "train"])
def test_seeds_outside_64_bits_are_refused(checkpoint, tmp_path, capsys, cmd, value):
    if cmd == "sample":
        argv = ["sample", checkpoint, "--n", 4, "--out", tmp_path / "x.png"]
    else:
        argv = ["train", "mlp-mnist", "--profile", "smoke", "--out", tmp_path / "runs"]
    assert_refused(*run_cli_err([*argv, f"--seed={value}"], capsys), "--seed", "0..2**63-1", value)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "runs").exists()


def test_the_largest_seed_works(checkpoint, tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert (
        main(["sample", str(checkpoint), "--n", "2", "--out", str(out), "--seed", str(2**63 - 1)])
        == 0
    )


# ------------------------------------------------------------ 7. help text and the final line
def test_report_help_explains_out(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out OUT folder for progress-YYYY-MM-DD" in text


def test_an_evaluation_reads_as_one_line():
    from gankit.cli import format_evaluation

    values = {"step": 1200, "epoch": 3, "seconds": 50.1, "n_samples": 2000, "n_reference": 10000}
    values.update(fid=31.24, kid_mean=0.01234, kid_std=0.0011, kl_uniform=0.0412)
    values.update(classes_covered=10.0, mean_confidence=0.934, eval_seconds=4.2)
    values.update({f"class_hist_{i}": 0.1 for i in range(10)})
    assert format_evaluation(values) == (
        "FID 31.2 (2000 samples), KID 0.0123 (sd 0.0011), classes 10/10, KL to uniform 0.041, "
        "confidence 0.93, 4 s (epoch 3, step 1200)"
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`gankit train mlp-mnist --profile smoke --epochs 1` into a new runs root: (root, stdout)."""
    root = tmp_path_factory.mktemp("runs")
    argv = ["train", "mlp-mnist", "--profile", "smoke", "--out", str(root), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main([*argv, "--epochs", "1", "--seed", "1"]) == 0
    return root, out.getvalue()


@needs_mnist
def test_train_prints_the_final_evaluation_as_a_readable_line(trained):
    (line,) = [ln for ln in trained[1].splitlines() if ln.startswith("final evaluation")]
    assert line.startswith("final evaluation: FID ") and "samples), KID " in line
    assert "{" not in line and "class_hist" not in line


# ------------------------------------------------------------- 8. a refused --resume writes nothing
@needs_mnist
def test_a_resume_refused_by_a_live_lock_changes_nothing_in_the_run(trained, capsys):
    root = trained[0]
    (run,) = (root / "mlp-mnist").iterdir()
    (run / ".lock").write_text(f"1 {socket.gethostname()}")  # pid 1 on this machine: alive
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    argv = ["train", "mlp-mnist", "--profile", "smoke", "--out", root, "--quiet", "--resume"]
    code, err = run_cli_err([*argv, "--epochs", "2", "--seed", "1"], capsys)
    assert_refused(code, err, "in use by another training process (pid 1)")
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    assert after == before  # config.json, metrics.json, checkpoints and the lock: byte-identical
    assert [p.name for p in (root / "mlp-mnist").iterdir()] == [run.name]  # no new run either
