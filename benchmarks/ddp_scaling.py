"""Training speed on 1 and 2 processes (torchrun + DDP, gloo on CPUs; NCCL on GPUs).

    python benchmarks/ddp_scaling.py [--presets mlp-mnist dcgan-mnist] [--epochs 1] [--repeats 2]

For each preset it trains `gankit train PRESET --profile cpu --epochs E` as
  - 1 process, all threads (what `gankit train` does),
  - 1 process, 1 thread,
  - 2 processes x 1 thread (`torchrun --nproc_per_node=2`), the same global batch,
and reads the training time from the run's checkpoint (the Trainer's clock: data, steps and logging,
without evaluation or checkpoint writing). Runs one after another, so the machine must be quiet.
Writes benchmarks/ddp_scaling.csv and prints a Markdown table of steps/s and ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from gankit.checkpoints import load_checkpoint
from gankit.distributed import torchrun_command

HERE = Path(__file__).resolve().parent


def run(preset: str, epochs: int, procs: int, threads: int | None, root: Path) -> dict:
    """Train once; (steps, training seconds) from the run's last checkpoint."""
    argv = ["train", preset, "--profile", "cpu", "--epochs", str(epochs), "--quiet"]
    argv += ["--out", str(root), "--device", "cpu"]
    cmd = torchrun_command(procs, argv) if procs > 1 else [sys.executable, "-m", "gankit", *argv]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    (run_dir,) = (root / preset).iterdir()
    ckpt = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    return {"steps": ckpt["step"], "seconds": ckpt["elapsed"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="*", default=["mlp-mnist", "dcgan-mnist"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2, help="runs per setup; the fastest is kept")
    args = p.parse_args()
    setups = [
        ("1 process", 1, None),
        ("1 process, 1 thread", 1, 1),
        ("2 processes x 1 thread", 2, 1),
    ]
    rows = []
    for preset in args.presets:
        for name, procs, threads in setups:
            best = None
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    r = run(preset, args.epochs, procs, threads, Path(tmp))
                if best is None or r["seconds"] < best["seconds"]:
                    best = r
            rate = best["steps"] / best["seconds"]
            rows.append({"preset": preset, "setup": name, **best, "steps_per_s": rate})
            print(
                f"{preset:12s} {name:24s} {best['steps']} steps {best['seconds']:.1f} s", flush=True
            )
    df = pd.DataFrame(rows)
    base = df[df.setup == "1 process"].set_index("preset").steps_per_s
    df["vs_1_process"] = df.steps_per_s / df.preset.map(base)
    df.to_csv(HERE / "ddp_scaling.csv", index=False)
    print(f"\n{os.cpu_count()} CPU cores, torch {torch.__version__}, {args.epochs} epoch(s)\n")
    print(
        "| preset | setup | steps | seconds | steps/s | vs 1 process |\n|---|---|---|---|---|---|"
    )
    for r in df.itertuples():  # by hand: pandas' to_markdown needs tabulate, not a dependency
        print(
            f"| {r.preset} | {r.setup} | {r.steps} | {r.seconds:.1f} | {r.steps_per_s:.1f} | "
            f"{r.vs_1_process:.2f}x |"
        )


if __name__ == "__main__":
    main()
