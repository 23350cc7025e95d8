"""Several processes on the one Trainer: torchrun + DDP, with gloo on this CPU (2 processes).

The worker (tests/ddp_worker.py) trains under torchrun and saves what rank 0 holds; the tests
compare it with single-process references built from the same inputs. The CLI tests run the real
`torchrun -m gankit train` and `gankit sample`.
"""

import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import assert_refused, needs_mnist, run_cli_err

from gankit import distributed
from gankit.checkpoints import load_checkpoint
from gankit.losses import gradient_penalty

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
SMOKE = ["train", "mlp-mnist", "--profile", "smoke", "--seed", "0", "--quiet"]


def child_env() -> dict[str, str]:
    """One thread per process (two processes on two cores), gankit and tests/ importable."""
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "GANKIT_DEVICE": "cpu"}


def torchrun(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TORCHRUN, *args], cwd=REPO, env=child_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def gankit(*args: str, procs: int = 1) -> subprocess.CompletedProcess:
    """`gankit ARGS` in one process, or under torchrun on 2; fails the test if it fails."""
    if procs == 2:
        done = torchrun("-m", "gankit", *args)
    else:
        cmd = [sys.executable, "-m", "gankit", *args]
        done = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp") / "results.pt"
    done = torchrun(str(TESTS / "ddp_worker.py"), str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out, weights_only=False)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker's processes: the same float sums
    yield
    torch.set_num_threads(threads)


def single_process_trainer(**kw):
    from ddp_worker import make_trainer

    return make_trainer(distributed.World(), **kw)


# ------------------------------------------------------------------ what DDP computes


def test_two_processes_equal_one_process_on_their_concatenated_batches_and_noise(
    worker, one_thread
):
    ref = single_process_trainer()
    # The worker's ranks draw their noise from their own streams; one process draws the same
    # numbers by taking each draw's first half from rank 0's stream and the rest from rank 1's,
    # and trains on the whole batches, which are the ranks' shares concatenated (BatchSource).
    streams = [
        torch.Generator().manual_seed(distributed.noise_seed(ref.config.seed, r)) for r in (0, 1)
    ]

    def both_ranks_noise(n, generator=None):
        if generator is not None:  # the fixed grid noise: the same on every rank
            return torch.randn(n, ref.config.latent_dim, generator=generator)
        return torch.cat([torch.randn(n // 2, ref.config.latent_dim, generator=g) for g in streams])

    ref.noise = both_ranks_noise
    ref.fit()
    assert ref.step == 8
    for net in ("G", "D"):
        ddp, one = worker["parity"][net], getattr(ref, net).state_dict()
        assert ddp.keys() == one.keys()
        for k in one:  # gradients averaged over ranks vs one mean: the same up to float rounding
            torch.testing.assert_close(ddp[k], one[k], rtol=1e-5, atol=1e-6)
    cols = ["step", "loss_d", "loss_g", "d_real", "d_fake"]  # the history is the global batch's
    pd.testing.assert_frame_equal(worker["history"][cols], ref.history[cols], rtol=1e-5)
    # ... and not by accident: a single process on its own noise ends elsewhere
    other = single_process_trainer()
    other.fit()
    assert not torch.allclose(
        other.G.state_dict()["net.0.weight"], ref.G.state_dict()["net.0.weight"], atol=1e-4
    )


def test_gradient_penalty_under_ddp_is_per_sample_and_its_gradients_reach_D(worker, one_thread):
    from ddp_worker import penalty_inputs, with_fixed_inputs

    ref = single_process_trainer(loss="wgan", gp_weight=10.0, d_norm="none")
    for k, v in ref.D.state_dict().items():  # the same critic the ranks started from
        assert torch.equal(v, worker["penalty_D0"][k])
    x_real, x_fake, alpha = penalty_inputs()  # the worker's; each rank had 4 of the 8
    penalty = gradient_penalty(ref.D, x_real, x_fake, alpha=alpha, reduction="none")
    # each rank's 4 per-sample penalties are the single process's for the same 4 samples
    torch.testing.assert_close(torch.cat(worker["penalty"]), penalty.detach())
    with_fixed_inputs(ref, x_fake, alpha)
    ref.d_step(x_real)  # the D step on all 8: critic scores + 10 x penalty
    grads = [p.grad for p in ref.D.parameters()]
    assert sum(g is not None for g in worker["penalty_grads"]) == len(grads)
    for ddp, one in zip(worker["penalty_grads"], grads):
        # DDP's mean of the ranks' gradients is the whole batch's, penalty included
        torch.testing.assert_close(ddp, one, rtol=1e-5, atol=1e-7)
    # ... and the penalty's part of them is there: without it the gradients are others
    ref.D.load_state_dict(worker["penalty_D0"])
    ref.objective = dataclasses.replace(ref.objective, penalty=None)
    ref.d_step(x_real)
    assert not torch.allclose(next(ref.D.parameters()).grad, worker["penalty_grads"][0])


def test_every_objective_and_trick_trains_with_the_ranks_in_step(worker):
    from ddp_worker import VARIANTS

    assert set(worker["variants"]) == set(VARIANTS)
    for name, (rank0, rank1) in worker["variants"].items():
        assert rank0 == rank1, f"{name}: the ranks' weights or optimizer states differ"


# ------------------------------------------------------------------ the CLI under torchrun


THROTTLE = r"""
import os, sys, time
import torch
import gankit.cli as cli
from gankit import distributed
GATE, PIDS = int(sys.argv[1]), sys.argv[2]

def throttle(trainer):
    if trainer.step == 1:
        with open(f"{PIDS}.{trainer.world.rank}", "w") as f:
            f.write(str(os.getpid()))
    if trainer.world.is_main:
        print(f"STEP {trainer.step}", flush=True)
    time.sleep(0.02)
    while trainer.step >= GATE:  # parked: the run can never finish before the kill
        time.sleep(0.5)

throttle.order = 200  # after the run folder's callback: STEP n is printed once step n is saved
cli.attach_default_evaluation = lambda trainer: trainer.add_callback("on_batch_end", throttle)
sys.exit(cli.main(sys.argv[3:]))
"""


@needs_mnist
def test_sigkill_a_two_process_run_then_resume_on_two_equals_an_uninterrupted_run(tmp_path):
    args = [*SMOKE, "--checkpoint-every", "3"]
    ref_root, killed_root = tmp_path / "ref", tmp_path / "killed"
    gankit(*args, "--out", str(ref_root), procs=2)
    (tmp_path / "throttle.py").write_text(THROTTLE)
    pids = tmp_path / "pid"
    child = subprocess.Popen(
        [*TORCHRUN, str(tmp_path / "throttle.py"), "33", str(pids), *args,
         "--out", str(killed_root)],
        cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while child.poll() is None and time.monotonic() < deadline:
            if list(killed_root.glob("mlp-mnist/*/checkpoints/step_*.pt")):
                time.sleep(random.uniform(0.0, 0.15))  # anywhere in the next few steps
                break
            time.sleep(0.01)
        rank0 = int((tmp_path / "pid.0").read_text())
        os.kill(rank0, signal.SIGKILL)  # the writer; torchrun then stops rank 1
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0, f"the run was not killed mid-run:\n{err[-2000:]}"
    (run,) = (killed_root / "mlp-mnist").iterdir()
    assert (run / ".lock").read_text().split() == [str(rank0), socket.gethostname()]
    saved = load_checkpoint(run / "checkpoints" / "last.pt")
    reached = max(int(ln.split()[1]) for ln in out.splitlines() if ln.startswith("STEP "))
    assert 3 <= saved["step"] <= reached + 1 < 40 and len(saved["ranks"]) == 2

    done = gankit(*args, "--out", str(killed_root), "--resume", procs=2)
    assert f"resumed at step {saved['step']} " in done.stdout and "process(es)" not in done.stdout
    (ref_run,) = (ref_root / "mlp-mnist").iterdir()
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (ref_run, run))
    assert a["step"] == b["step"] == 40
    for net in ("G", "D", "opt_g", "opt_d"):  # bit for bit: the checksums cover every tensor
        assert a["checksum"].split()[:4] == b["checksum"].split()[:4], net
    for r in (0, 1):  # each rank's noise stream continued exactly
        assert torch.equal(a["ranks"][r]["rng"]["torch"], b["ranks"][r]["rng"]["torch"])
    cols = ["step", "loss_d", "loss_g", "d_real", "d_fake"]
    hist_a, hist_b = pd.read_csv(ref_run / "history.csv"), pd.read_csv(run / "history.csv")
    assert hist_b[cols].equals(hist_a[cols])
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
    assert not (run / ".lock").exists()

    # A checkpoint of two processes samples in one: the same images as from the reference run.
    grids = [tmp_path / "killed.npz", tmp_path / "ref.npz"]
    for r, grid in zip((run, ref_run), grids):
        gankit("sample", str(r / "checkpoints" / "last.pt"), "--n", "16", "--out", str(grid))
    import numpy as np

    x, y = (np.load(g)["images"] for g in grids)
    assert x.shape[0] == 16 and np.array_equal(x, y)


@needs_mnist
def test_a_checkpoint_continues_on_another_number_of_processes_and_says_so(
    tmp_path, monkeypatch, capfd
):
    root = str(tmp_path / "runs")
    gankit(*SMOKE, "--epochs", "1", "--out", root)  # one process
    for key, value in child_env().items():
        monkeypatch.setenv(key, value)
    # from Python, as a lesson would: torchrun under the hood
    options = [*SMOKE[2:], "--epochs", "2", "--out", root, "--resume"]
    assert distributed.train("mlp-mnist", 2, *options) == 0
    two = capfd.readouterr().out
    assert "written by 1 process(es) and continues on 2" in two
    assert "batch: 64 global = 2 processes x 32" in two
    (run,) = (tmp_path / "runs" / "mlp-mnist").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert (config["world_size"], config["batch_size"], config["batch_per_rank"]) == (2, 64, 32)
    one = gankit(*SMOKE, "--epochs", "3", "--out", root, "--resume")
    assert "written by 2 process(es) and continues on 1" in one.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    changes = [(e["from"], e["to"]) for e in metrics["events"] if e["event"] == "process_count"]
    assert changes == [(1, 2), (2, 1)] and metrics["status"] == "finished"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 60


@needs_mnist
def test_a_run_folder_locked_by_another_job_stops_every_rank_with_one_line(tmp_path):
    root = tmp_path / "runs"
    gankit(*SMOKE, "--epochs", "1", "--out", str(root))
    (run,) = (root / "mlp-mnist").iterdir()
    (run / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}")  # this live process
    done = torchrun("-m", "gankit", *SMOKE, "--epochs", "2", "--out", str(root), "--resume")
    assert done.returncode != 0
    ours = [ln for ln in done.stderr.splitlines() if ln.startswith("gankit train: error:")]
    assert len(ours) == 1 and f"in use by another training process (pid {os.getpid()})" in ours[0]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 20  # nothing trained


# ------------------------------------------------------------------ refusals, before any process
# group exists (torchrun's environment, set by hand: nothing is started)


def test_a_process_count_that_does_not_divide_the_batch_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    code, err = run_cli_err([*SMOKE, "--out", "unused"], capsys)
    assert_refused(code, err, "batch_size=64 does not split over 3 processes", "divisible by 3")
    monkeypatch.setenv("RANK", "2")  # the other ranks stop with the same error, silently
    code, err = run_cli_err([*SMOKE, "--out", "unused"], capsys)
    assert code == 2 and err == ""


def test_nccl_without_cuda_and_sync_bn_on_cpus_are_refused(monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: NCCL is possible")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, err = run_cli_err([*SMOKE, "--backend", "nccl", "--out", "unused"], capsys)
    assert_refused(code, err, "NCCL backend needs CUDA GPUs", "--backend gloo")
    code, err = run_cli_err([*SMOKE, "--sync-bn", "--out", "unused"], capsys)
    assert_refused(code, err, "sync_bn needs CUDA GPUs")
    monkeypatch.delenv("WORLD_SIZE")
    code, err = run_cli_err([*SMOKE, "--backend", "gloo", "--out", "unused"], capsys)
    assert_refused(code, err, "--backend is for several processes", "torchrun")


def test_batch_shares_concatenate_to_the_single_process_batches():
    from helpers import synthetic

    from gankit.data import BatchSource

    images, _ = synthetic(40)
    one = BatchSource(images, None, 8, seed=4)
    ranks = [BatchSource(images, None, 8, seed=4, rank=r, world_size=2) for r in (0, 1)]
    for e in (0, 1):
        for (x, _), (a, _), (b, _) in zip(one.epoch(e, 2), *(s.epoch(e, 2) for s in ranks)):
            assert torch.equal(torch.cat([a, b]), x)
    with pytest.raises(ValueError, match="divisible by 3"):
        BatchSource(images, None, 8, rank=0, world_size=3)
