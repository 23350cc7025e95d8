"""Time to quality: training seconds until MNIST generators reach classifier-FID thresholds
and all ten digits.

    GANKIT_DATA=/path/to/data python benchmarks/time_to_quality.py \\
        [--budget 180] [--every 15] [--samples 1000]

For mlp-mnist and dcgan-mnist (cpu-profile sizes on a CPU, the preset itself on a GPU) it trains
  gankit        gankit's Trainer (gankit.bench.GankitLoop: Trainer.fit over device-resident
                batches);
  tutorial      the same networks, batch and hyperparameters in the tutorial-style loop
                (gankit.bench.tutorial.TutorialLoop: torchvision transforms through a DataLoader,
                Sigmoid + BCELoss, default Adam, .item() every step);
  PyTorch-GAN   (mlp-mnist only) the popular MLP GAN as published in eriklindernoren/PyTorch-GAN
                implementations/gan/gan.py: its own networks (G 100-128-256-512-1024-784 with
                BatchNorm1d(eps=0.8), D 784-512-256-1 + Sigmoid), G step before D step, D loss
                halved, latent noise from np.random.normal, the same data pipeline as `tutorial`.
Runs take turns of `--every` seconds of training, so all of them see the same machine load, and
each keeps its own RNG state between turns. After each turn the run's generator draws `--samples`
images from fixed noise (eval mode) and gankit.metrics.mnist_quality scores them: FID on the
shipped MNIST classifier's features against the 10000 MNIST test images, and the classes covered
(digits with at least a 2% share of the predictions). Evaluation time is not counted as training.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from gankit.bench.throughput import GankitLoop, default_threads, speed_variants, to_markdown
from gankit.bench.tutorial import TutorialLoop, synchronize, tutorial_dataset
from gankit.config import make_config, resolve_device, seed_everything
from gankit.data import load_dataset
from gankit.metrics import mnist_quality, reference_quality

FID_THRESHOLDS = (
    600.0,
    400.0,
    200.0,
)  # untrained generators score ~700-900; real digits ~2.6 (reference_quality)


class PyTorchGANLoop:
    """eriklindernoren/PyTorch-GAN implementations/gan/gan.py, rewritten as a loop object (same
    layers and order)."""

    name = "PyTorch-GAN gan.py"
    latent_dim = 100

    def __init__(
        self, dataset: torch.utils.data.Dataset, device: torch.device, seed: int = 0
    ) -> None:
        seed_everything(seed)

        def block(n_in: int, n_out: int, normalize: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
            if normalize:
                layers.append(nn.BatchNorm1d(n_out, 0.8))  # as published: the positional 0.8 is eps
            return layers + [nn.LeakyReLU(0.2, inplace=True)]

        self.G = nn.Sequential(
            *block(100, 128, normalize=False),
            *block(128, 256),
            *block(256, 512),
            *block(512, 1024),
            nn.Linear(1024, 784),
            nn.Tanh(),
            nn.Unflatten(1, (1, 28, 28)),
        )
        self.D = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 256),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(256, 1),
            nn.Sigmoid(),
        )
        self.G.to(device)
        self.D.to(device)
        self.device = device
        self.loss = nn.BCELoss()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
        self._it = iter(self.loader)
        self.losses: list[tuple[float, float]] = []

    def run(self, cycles: int) -> int:
        n = 0
        for _ in range(cycles):
            try:
                imgs, _ = next(self._it)
            except StopIteration:
                self._it = iter(self.loader)
                imgs, _ = next(self._it)
            b = imgs.size(0)
            n += b
            valid = torch.ones(b, 1, device=self.device)
            fake = torch.zeros(b, 1, device=self.device)
            real_imgs = imgs.to(self.device)
            self.opt_g.zero_grad()
            z = torch.tensor(
                np.random.normal(0, 1, (b, self.latent_dim)),
                dtype=torch.float32,
                device=self.device,
            )
            gen_imgs = self.G(z)
            g_loss = self.loss(self.D(gen_imgs), valid)
            g_loss.backward()
            self.opt_g.step()
            self.opt_d.zero_grad()
            real_loss = self.loss(self.D(real_imgs), valid)
            fake_loss = self.loss(self.D(gen_imgs.detach()), fake)
            d_loss = (real_loss + fake_loss) / 2
            d_loss.backward()
            self.opt_d.step()
            self.losses.append((d_loss.item(), g_loss.item()))
        synchronize(self.device)
        return n


class Run:
    """One training run advanced in turns, with its own RNG state and its evaluations."""

    def __init__(
        self, preset: str, name: str, loop: Any, G: nn.Module, latent_dim: int, seed: int
    ) -> None:
        self.preset, self.name, self.loop, self.G, self.latent_dim = (
            preset,
            name,
            loop,
            G,
            latent_dim,
        )
        seed_everything(seed)
        self.rng = (torch.get_rng_state(), np.random.get_state())
        self.seconds, self.images, self.cycles = 0.0, 0, 1
        self.evals: list[dict[str, Any]] = []

    def train_for(self, seconds: float) -> None:
        torch.set_rng_state(self.rng[0])
        np.random.set_state(self.rng[1])
        spent = 0.0
        while spent < seconds:
            t = time.perf_counter()
            self.images += self.loop.run(self.cycles)
            dt = time.perf_counter() - t
            spent += dt
            self.cycles = max(1, round(self.cycles * 0.5 / max(dt, 1e-6)))  # calls of ~0.5 s
        self.seconds += spent
        self.rng = (torch.get_rng_state(), np.random.get_state())

    @torch.no_grad()
    def evaluate(self, noise: torch.Tensor) -> dict[str, Any]:
        was = self.G.training
        self.G.eval()  # batch norm on running statistics, as when sampling after training
        try:
            x = torch.cat([self.G(z) for z in noise.split(500)])
        finally:
            self.G.train(was)
        q = mnist_quality(x)
        row = {
            "preset": self.preset,
            "run": self.name,
            "seconds": round(self.seconds, 1),
            "images": self.images,
            "fid": q["fid"],
            "kid": q["kid_mean"],
            "classes": q["classes_covered"],
            "kl_uniform": q["kl_uniform"],
            "min_share": min(q["class_hist"]),
            "confidence": q["mean_confidence"],
        }
        self.evals.append(row)
        return row


RUN_KINDS = ("gankit", "tutorial", "pytorch-gan", "gankit-bf16")


def build_runs(
    preset: str, device: torch.device, seed: int, kinds: Sequence[str] = RUN_KINDS[:3]
) -> list[Run]:
    """The runs of one preset: gankit, tutorial, PyTorch-GAN gan.py (mlp-mnist only) and, when asked
    for and offered on this device, gankit under bf16 autocast (gankit.bench.speed_variants)."""
    profile = "cpu" if device.type == "cpu" else "full"
    config = make_config(preset, profile, seed=seed)
    runs = []
    if "gankit" in kinds:
        g = GankitLoop(config, load_dataset(config), device)
        runs.append(Run(preset, "gankit", g, g.trainer.G, config.latent_dim, seed))
    if "gankit-bf16" in kinds:
        wrap = speed_variants(device, config).get("bf16 autocast")
        if wrap is None:
            print(
                f"  {preset}: bf16 autocast is not offered on this device (no native bf16); "
                "run skipped"
            )
        else:
            g = GankitLoop(config, load_dataset(config), device, wrap)
            runs.append(
                Run(preset, "gankit + bf16 autocast", g, g.trainer.G, config.latent_dim, seed)
            )
    if "tutorial" in kinds:
        t = TutorialLoop(config, tutorial_dataset(config), device)
        runs.append(Run(preset, "tutorial", t, t.G, config.latent_dim, seed))
    if "pytorch-gan" in kinds and preset == "mlp-mnist":
        p = PyTorchGANLoop(tutorial_dataset(config), device, seed)
        runs.append(Run(preset, p.name, p, p.G, p.latent_dim, seed))
    return runs


def first_time(evals: list[dict[str, Any]], ok) -> str:
    hit = next((e for e in evals if ok(e)), None)
    return f"{hit['seconds']:.0f} s" if hit else "not reached"


def summary(evals: pd.DataFrame) -> pd.DataFrame:
    """One row per run: when each FID threshold and full
    coverage were first reached, and the final numbers."""
    rows = []
    for (preset, name), group in evals.groupby(["preset", "run"], sort=False):
        e = group.to_dict("records")
        last = e[-1]
        row = {
            "preset": preset,
            "run": name,
            "img/s": round(last["images"] / max(last["seconds"], 1e-9)),
        }
        for th in FID_THRESHOLDS:
            row[f"FID <= {th:g}"] = first_time(e, lambda x, th=th: x["fid"] <= th)
        row["10 classes"] = first_time(e, lambda x: x["classes"] == 10)
        row["trained"] = f"{last['seconds']:.0f} s"
        row["final FID"] = round(last["fid"], 1)
        row["final classes"] = last["classes"]
        row["smallest class share"] = f"{last['min_share']:.1%}"
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    # the first paragraph, one line
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--presets", nargs="*", default=["mlp-mnist", "dcgan-mnist"])
    p.add_argument("--budget", type=float, default=180.0, help="training seconds per run")
    p.add_argument("--every", type=float, default=15.0, help="training seconds between evaluations")
    p.add_argument("--samples", type=int, default=1000, help="generated images per evaluation")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: the CPUs available)"
    )
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--runs",
        default="gankit,tutorial,pytorch-gan",
        help=f"comma-separated, from {', '.join(RUN_KINDS)} "
        "(gankit-bf16: gankit under bf16 autocast)",
    )
    p.add_argument("--out", default=None, help="write the Markdown summary here")
    p.add_argument("--csv", default=None, help="write every evaluation here")
    p.add_argument(
        "--from-csv", default=None, help="only summarise the evaluations of an earlier run's --csv"
    )
    args = p.parse_args(argv)
    if args.from_csv:
        df = summary(pd.read_csv(args.from_csv))
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(df.to_string(index=False))
        if args.out:
            Path(args.out).write_text(to_markdown(df) + "\n")
        return 0
    kinds = [k.strip() for k in args.runs.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(RUN_KINDS))
    if unknown:
        p.error(f"unknown run kind(s) {', '.join(unknown)}; use {', '.join(RUN_KINDS)}")
    device = resolve_device(args.device)
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    noise_g = torch.Generator().manual_seed(1234)  # the evaluation noise, the same for every run
    ref = reference_quality(args.samples)
    print(
        f"{threads} torch threads on {device}; {args.samples} samples per evaluation; "
        "real MNIST train digits "
        f"at that count: FID {ref['fid']:.2f}, {ref['classes_covered']} classes",
        flush=True,
    )
    t_start = time.perf_counter()
    all_runs: list[Run] = []
    for preset in args.presets:
        runs = build_runs(preset, device, args.seed, kinds)
        noise = {
            r.name: torch.randn(args.samples, r.latent_dim, generator=noise_g).to(device)
            for r in runs
        }
        turns = math.ceil(args.budget / args.every)
        for turn in range(turns):
            for r in runs[turn % len(runs) :] + runs[: turn % len(runs)]:  # rotate who goes first
                r.train_for(min(args.every, args.budget - r.seconds))
                e = r.evaluate(noise[r.name])
                print(
                    f"  {preset:12s} {r.name:20s} {e['seconds']:6.1f} s  {e['images']:7d} img  "
                    f"FID {e['fid']:7.2f}  "
                    f"classes {e['classes']:2d}  min share {e['min_share']:.1%}",
                    flush=True,
                )
        all_runs += runs
    evals = pd.DataFrame([e for r in all_runs for e in r.evals])
    df = summary(evals)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False))
    note = (
        f"{threads} torch threads on {device}, torch {torch.__version__}, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, 1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end; budget {args.budget:g} s of training "
        f"per run, evaluated every ~{args.every:g} s of training on {args.samples} samples "
        "(FID on the MNIST "
        f"classifier's features vs the 10000 test digits; real train digits score "
        f"{ref['fid']:.2f} at this "
        f"count); times are the first evaluation that met the condition "
        f"(resolution ~{args.every:g} s); "
        f"took {time.perf_counter() - t_start:.0f} s in all."
    )
    print(note)
    if args.out:
        cmd = "python benchmarks/time_to_quality.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        Path(args.out).write_text(f"Command: `{cmd.strip()}`\n\n{note}\n\n{to_markdown(df)}\n")
    if args.csv:
        evals.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
