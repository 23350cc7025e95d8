"""Nothing lost, nothing trusted blindly.

SIGKILL and resume, stale locks, rollback on divergence, bad CLI input.
"""

import dataclasses
import errno
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import needs_mnist, synthetic, tiny_config, tiny_trainer

import gankit.cli as cli
import gankit.lesson as lesson_mod
import gankit.runs as runs_mod
from gankit.checkpoints import CheckpointError, load_checkpoint
from gankit.data import Dataset
from gankit.runs import RunLocked, latest_run
from gankit.train import TrainingDiverged

REPO = Path(__file__).resolve().parent.parent


def weights(state: dict) -> list[torch.Tensor]:
    return [v for net in ("G", "D") for v in state[net].values()]


def all_finite(trainer) -> bool:
    return all(torch.isfinite(p).all() for p in (*trainer.G.parameters(), *trainer.D.parameters()))


def run_cli(argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------- SIGKILL mid-run, then --resume

# The child is the real `gankit train` (cli.main) with one addition: an on_batch_end callback that
# prints the step it finished (after that step's checkpoint), slows the run so the kill lands
# mid-run, and parks the run at step GATE so it can never finish before the kill, however slowly
# this machine runs the parent.
CHILD = r"""
import sys, time
import torch
torch.set_num_threads(1)  # as the parent: float sums must match its uninterrupted run bit for bit
import gankit.cli as cli
GATE = int(sys.argv[1])

def throttle(trainer):
    print(f"STEP {trainer.step}", flush=True)
    time.sleep(0.02)
    while trainer.step >= GATE:
        time.sleep(0.5)

throttle.order = 200  # after the run folder's callback: STEP n is printed once step n is saved
cli.attach_default_evaluation = lambda trainer: trainer.add_callback("on_batch_end", throttle)
sys.exit(cli.main(sys.argv[2:]))
"""


def kill_after_first_checkpoint(child: subprocess.Popen, root: Path, timeout: float = 120) -> None:
    """SIGKILL `child` at random in the ~5 steps after its first step checkpoint appears in `root`.

    Wherever the kill lands (a step, a log, a checkpoint being written, the sleep) the checks that
    follow hold.
    """
    deadline = (
        time.monotonic() + timeout
    )  # generous: the child only imports torch and trains 3 steps
    while child.poll() is None and time.monotonic() < deadline:
        if list(root.glob("mlp-mnist/*/checkpoints/step_*.pt")):
            time.sleep(random.uniform(0.0, 0.15))
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)


@needs_mnist
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    # smoke profile: 2 epochs x 20 steps, log every 5; checkpoints every 3 steps fall mid-epoch and
    # between logs.
    monkeypatch.setattr(
        cli, "attach_default_evaluation", lambda trainer: None
    )  # not under test; keeps it lean
    monkeypatch.setenv("GANKIT_DEVICE", "cpu")
    args = [
        "train",
        "mlp-mnist",
        "--profile",
        "smoke",
        "--seed",
        "0",
        "--quiet",
        "--checkpoint-every",
        "3",
    ]
    killed_root, ref_root = tmp_path / "killed", tmp_path / "ref"
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # as the child; also 5x faster than 2 spinning threads on a busy 2-core machine
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "33", *args, "--out", str(killed_root)],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = threading.Thread(target=kill_after_first_checkpoint, args=(child, killed_root))
    try:
        # the kill comes from this thread while the uninterrupted reference trains here
        killer.start()
        assert cli.main([*args, "--out", str(ref_root)]) == 0
        killer.join()
        out, err = child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL, f"the child was not killed mid-run:\n{err}"
        assert list(killed_root.glob("mlp-mnist/*/checkpoints/step_*.pt")), (
            f"no step checkpoint in time:\n{err}"
        )
        reached = max(int(line.split()[1]) for line in out.splitlines() if line.startswith("STEP "))
        check_resume_after_kill(killed_root, ref_root, child.pid, reached, args, capsys)
    finally:
        torch.set_num_threads(threads)
        if child.poll() is None:
            child.kill()
            child.wait()


def check_resume_after_kill(
    killed_root: Path, ref_root: Path, pid: int, reached: int, args: list[str], capsys
):
    (run,) = (killed_root / "mlp-mnist").iterdir()
    lock = run / ".lock"
    assert lock.read_text().split() == [
        str(pid),
        socket.gethostname(),
    ]  # left behind by the dead run
    assert (
        json.loads((run / "metrics.json").read_text())["status"] == "running"
    )  # all a SIGKILL leaves to say
    saved = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    # The callback prints STEP n after step n's checkpoints, so a kill between the two leaves
    # last.pt one step ahead of the last line printed (seen once: saved 6, reached 5); otherwise at
    # most 2 steps are lost.
    assert 3 <= saved <= reached + 1 and reached <= 33 and reached - saved < 3
    capsys.readouterr()

    assert (
        cli.main([*args, "--out", str(killed_root), "--resume"]) == 0
    )  # the stale lock does not block it
    out = capsys.readouterr().out
    assert f"resumed at step {saved} " in out and f"-> {run}" in out

    ref_run = next((ref_root / "mlp-mnist").iterdir())
    a, b = (
        load_checkpoint(ref_run / "checkpoints" / "last.pt"),
        load_checkpoint(run / "checkpoints" / "last.pt"),
    )
    assert a["step"] == b["step"] == 40
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))
    hist_a, hist_b = pd.read_csv(ref_run / "history.csv"), pd.read_csv(run / "history.csv")
    assert hist_b["step"].tolist() == list(range(5, 41, 5))  # no gap, no step logged twice
    cols = ["step", "loss_d", "loss_g", "d_real", "d_fake"]
    assert hist_b[cols].equals(hist_a[cols])
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    assert not lock.exists()
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "last.pt",
        "step_00000033.pt",
        "step_00000036.pt",
        "step_00000039.pt",
    ]  # keep-last-3; the kill's temp file is gone


# ------------------------------------------------------------------- locks


def test_lock_of_a_dead_or_zombie_process_is_taken_over(tmp_path):
    if not Path("/proc/self/stat").exists():
        pytest.skip("zombie detection reads /proc")
    run = tmp_path / "r"
    t = tiny_trainer(tiny_config(epochs=1), run_dir=run)
    child = subprocess.Popen(
        ["true"]
    )  # exits at once; not reaped until wait(): a zombie, pid still taken
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(child.pid, 0)  # os.kill alone would call it alive
        (run / ".lock").write_text(f"{child.pid} {socket.gethostname()}")
        t.fit()
    finally:
        child.wait()
    assert t.step == 4 and not (run / ".lock").exists()


def test_lock_from_another_machine_is_refused_with_the_way_out(tmp_path):
    run = tmp_path / "r"
    t = tiny_trainer(tiny_config(epochs=1), run_dir=run)
    (run / ".lock").write_text("4242 colab-vm-that-was-cut-off")
    with pytest.raises(
        RunLocked,
        match=r"pid 4242 on another machine \(colab-vm-that-was-cut-off\).*delete .*\.lock",
    ):
        t.fit()
    assert (
        t.step == 0 and not (run / "metrics.json").exists()
    )  # a refused run writes nothing into the folder
    (run / ".lock").unlink()
    t.fit()
    assert t.step == 4


def test_empty_lock_is_stale_only_once_old(tmp_path):
    run = tmp_path / "r"
    t = tiny_trainer(tiny_config(epochs=1), run_dir=run)
    (run / ".lock").write_text("")  # its writer may be between creating and writing it
    with pytest.raises(RunLocked):
        t.fit()
    old = time.time() - 60
    os.utime(run / ".lock", (old, old))  # a writer killed right after creating it, a minute ago
    t.fit()
    assert t.step == 4


# ------------------------------------------------------------------- checkpoints on disk


def test_last_pt_is_written_before_the_step_checkpoint(tmp_path, monkeypatch):
    order = []
    real = runs_mod.atomic_save
    monkeypatch.setattr(
        runs_mod, "atomic_save", lambda obj, path: (order.append(path.name), real(obj, path))
    )
    tiny_trainer(tiny_config(epochs=1, checkpoint_every=2), run_dir=tmp_path / "r").fit()
    # step 4 is also the epoch's end, which writes last.pt once more
    assert order == ["last.pt", "step_00000002.pt", "last.pt", "step_00000004.pt", "last.pt"]


def test_resume_falls_back_to_the_newest_readable_step_checkpoint(tmp_path, capsys):
    cfg = tiny_config(checkpoint_every=1)
    run = tmp_path / "mlp-mnist" / "20260101-000000"  # a runs root's layout, for latest_run
    tiny_trainer(cfg, run_dir=run).fit(1)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # e.g. a sync client that copied half of it
    t = tiny_trainer(cfg, run_dir=run)
    assert t.resume() and t.step == 4  # step_00000004.pt holds the same state as last.pt did
    assert "last.pt' is truncated or corrupted" in capsys.readouterr().out
    last.unlink()
    (run / "checkpoints" / "step_00000004.pt").unlink()
    assert (
        latest_run("mlp-mnist", tmp_path) == run
    )  # step checkpoints alone still make a resumable run
    t = tiny_trainer(cfg, run_dir=run)
    assert t.resume() and t.step == 3


def test_corrupted_checkpoint_message_is_one_line():
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(Path(__file__))  # not a zip/pickle at all
    assert "\n" not in str(e.value) and "test_robustness.py' is truncated or corrupted" in str(
        e.value
    )


# ------------------------------------------------------------------- divergence: stop or roll back


def nan_at(trainer, steps):
    """Wrap the objective's d_loss to return NaN on the batches that start at `steps`, once each."""
    inner, left = trainer.objective.d_loss, set(steps)

    def d_loss(d_real, d_fake):
        loss = inner(d_real, d_fake)
        if trainer.step in left:
            left.discard(trainer.step)
            return loss * float("nan")  # NaN gradients: one optimizer step makes every D weight NaN
        return loss

    trainer.objective = dataclasses.replace(trainer.objective, d_loss=d_loss)


def test_rollback_reloads_the_last_good_checkpoint_with_halved_learning_rates(tmp_path, capsys):
    cfg = tiny_config(on_diverge="rollback", checkpoint_every=2)  # 2 epochs x 4 steps, log every 2
    t = tiny_trainer(cfg, run_dir=tmp_path / "r")
    nan_at(
        t, [4]
    )  # the batch that makes step 5; detected at the log of step 6, after the checkpoint of step 4
    history = t.fit()

    # Golden run: the same seed trained to step 4, then both learning rates halved, then on to
    # the end.
    ref = tiny_trainer(cfg)
    ref.fit(1)
    for opt in (ref.opt_g, ref.opt_d):
        for group in opt.param_groups:
            group["lr"] *= 0.5
    ref.fit(2)
    assert t.step == ref.step == 8 and all_finite(t)
    assert all(
        torch.equal(x, y) for x, y in zip(t.G.state_dict().values(), ref.G.state_dict().values())
    )
    assert all(
        torch.equal(x, y) for x, y in zip(t.D.state_dict().values(), ref.D.state_dict().values())
    )
    assert history["step"].tolist() == [2, 4, 6, 8] and np.isfinite(history["loss_d"]).all()
    assert [g["lr"] for g in (*t.opt_g.param_groups, *t.opt_d.param_groups)] == [
        cfg.lr_g / 2,
        cfg.lr_d / 2,
    ]
    (event,) = t.events
    assert (
        event["event"] == "rollback"
        and (event["step"], event["to_step"]) == (6, 4)
        and event["lr_d"] == cfg.lr_d / 2
    )
    assert "loss_d" in event["reason"] and "rolled back to step 4" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["events"] == t.events
    # the lowered rates and the event travel with the checkpoint, so a resumed run keeps them
    resumed = tiny_trainer(cfg, run_dir=tmp_path / "r")
    resumed.objective = t.objective  # the test's NaN-injecting loss, as the checkpoint records it
    assert resumed.resume() and resumed.events == t.events
    assert resumed.opt_d.param_groups[0]["lr"] == cfg.lr_d / 2


def test_rollback_without_a_run_folder_returns_to_the_start(capsys):
    t = tiny_trainer(tiny_config(on_diverge="rollback", epochs=1))
    nan_at(t, [0])
    t.fit()
    assert t.step == 4 and all_finite(t) and t.events[0]["to_step"] == 0


def test_rollback_gives_up_after_three_halvings(tmp_path, capsys):
    t = tiny_trainer(tiny_config(on_diverge="rollback"), run_dir=tmp_path / "r")
    inner = (
        t.objective.d_loss
    )  # NaN on the batch of step 6 every time it is trained, whatever the learning rate
    nan_loss = lambda d_real, d_fake: inner(d_real, d_fake) * (float("nan") if t.step == 5 else 1.0)
    t.objective = dataclasses.replace(t.objective, d_loss=nan_loss)
    with pytest.raises(
        TrainingDiverged, match=r"step 6: loss_d.*Already rolled back 3 times.*0\.125"
    ):
        t.fit()
    assert [e["to_step"] for e in t.events] == [4, 4, 4]
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and len(metrics["events"]) == 3
    assert not (tmp_path / "r" / ".lock").exists()


def test_a_diverged_state_never_overwrites_the_last_good_checkpoint(tmp_path):
    # Checkpoints every step but logs every 4: the NaN of step 6 reaches the checkpoint before
    # any log.
    t = tiny_trainer(tiny_config(checkpoint_every=1, log_every=4), run_dir=tmp_path / "r")
    nan_at(t, [5])
    with pytest.raises(
        TrainingDiverged,
        match=r"step 6: losses since the last log, G weights, D weights became NaN/Inf; "
        r"the last good checkpoint is .*last\.pt",
    ):
        t.fit()
    folder = tmp_path / "r" / "checkpoints"
    for path in folder.glob("*.pt"):
        ckpt = load_checkpoint(path)
        assert ckpt["step"] <= 5 and all(torch.isfinite(w).all() for w in weights(ckpt))
    assert load_checkpoint(folder / "last.pt")["step"] == 5
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["status"] == "diverged"


def test_stop_message_points_to_the_rollback_option(tmp_path):
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "r")
    nan_at(t, [0])
    with pytest.raises(
        TrainingDiverged,
        match=r"step 2: loss_d.*became NaN/Inf; no checkpoint was written yet.*"
        r"on_diverge='rollback'",
    ):
        t.fit()


# ------------------------------------------------------------------- an interrupted run says so


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_fit_left_by_an_exception_marks_the_run_interrupted(tmp_path, error):
    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "r")

    def stop(trainer):
        if trainer.step == 3:
            raise error("stopped by the test")

    t.add_callback("on_batch_end", stop)
    with pytest.raises(error):
        t.fit()
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "r" / ".lock").exists()


# ------------------------------------------------------------------- bad input on the command line


@pytest.fixture
def checkpoint(tmp_path):
    tiny_trainer(tiny_config(epochs=1), run_dir=tmp_path / "run").fit()
    return tmp_path / "run" / "checkpoints" / "last.pt"


def test_sample_from_a_good_checkpoint_works(checkpoint, tmp_path, capsys):
    code, out, _ = run_cli(["sample", checkpoint, "--n", 5, "--out", tmp_path / "s.npz"], capsys)
    assert code == 0 and "wrote 5 samples of mlp-mnist" in out
    images = np.load(tmp_path / "s.npz")["images"]
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.uint8


@pytest.mark.parametrize(
    "case, expected",
    [
        ("n0", r"--n must be at least 1, got 0"),
        ("missing", r"checkpoint '.*nowhere\.pt' does not exist"),
        ("truncated", r"checkpoint '.*last\.pt' is truncated or corrupted"),
        ("jpg", r"--out must end in \.png or \.npz, got 'samples\.jpg'"),
    ],
)
def test_sample_bad_input_exits_2_with_one_line(checkpoint, tmp_path, capsys, case, expected):
    n, path, out = 4, checkpoint, tmp_path / "samples.png"
    if case == "n0":
        n = 0
    elif case == "missing":
        path = tmp_path / "nowhere.pt"
    elif case == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    else:
        out = tmp_path / "samples.jpg"
    code, _, err = run_cli(["sample", path, "--n", n, "--out", out], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("gankit sample: error: ")
    assert re.search(expected, err), err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["mlp-mnsit"], r"unknown preset 'mlp-mnsit'.*Did you mean 'mlp-mnist'\?"),
        (["mlp-mnist", "--checkpoint-every", "-1"], r"--checkpoint-every must be >= 0"),
        (["mlp-mnist", "--epochs", "0"], r"epochs must be >= 1, got 0"),
        (["mlp-mnist", "--device", "gpu"], r"unknown device 'gpu'"),
    ],
    ids=["misspelt-preset", "checkpoint-every", "epochs", "device"],
)
def test_train_bad_input_exits_2_before_making_a_run_folder(tmp_path, capsys, argv, expected):
    code, _, err = run_cli(
        ["train", *argv, "--profile", "smoke", "--out", tmp_path / "runs"], capsys
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("gankit train: error: ")
    assert re.search(expected, err), err
    assert not (tmp_path / "runs").exists()


def test_train_with_unloadable_data_leaves_no_empty_run_folder(tmp_path, capsys, monkeypatch):
    def missing(config, *a, **k):
        raise FileNotFoundError("MNIST is not under GANKIT_DATA='/nowhere'")

    monkeypatch.setattr(lesson_mod, "load_dataset", missing)
    code, _, err = run_cli(
        ["train", "mlp-mnist", "--profile", "smoke", "--out", tmp_path / "runs"], capsys
    )
    assert code == 2 and "MNIST is not under GANKIT_DATA" in err
    assert list((tmp_path / "runs" / "mlp-mnist").iterdir()) == []


def test_on_diverge_setting_is_checked():
    with pytest.raises(ValueError, match="on_diverge='roll-back' is not one of stop, rollback"):
        tiny_config(on_diverge="roll-back")
    assert tiny_config().on_diverge == "stop"  # rolling back changes the run; the user asks for it


def test_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(
    tmp_path, capsys, monkeypatch
):
    images, labels = synthetic(256)
    monkeypatch.setattr(
        lesson_mod,
        "load_dataset",
        lambda config, *a, **k: Dataset(images, labels, name="synthetic"),
    )
    monkeypatch.setattr(cli, "attach_default_evaluation", lambda trainer: None)
    real_save = torch.save

    def save(
        obj, f, *a, **k
    ):  # a disk that fills up at step 6: part of the file lands, then ENOSPC
        if isinstance(obj, dict) and obj.get("step", 0) >= 6:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    argv = [
        "train",
        "mlp-mnist",
        "--profile",
        "smoke",
        "--out",
        tmp_path,
        "--quiet",
        "--checkpoint-every",
        3,
        "--on-diverge",
        "rollback",
    ]  # 256 images: 2 epochs x 4 steps
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no space left on device while writing" in err and "free space and resume" in err
    (run,) = (tmp_path / "mlp-mnist").iterdir()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "last.pt",
        "step_00000003.pt",
    ]  # no .tmp
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4  # the epoch's end, intact
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    assert json.loads((run / "config.json").read_text())["on_diverge"] == "rollback"
    assert not (run / ".lock").exists()

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    code, out, _ = run_cli([*argv, "--resume"], capsys)
    assert code == 0 and "resumed at step 4 " in out
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 8
