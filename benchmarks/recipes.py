"""What each sampling recipe contributes, measured inside the same training runs (matched controls).

For each MNIST preset and seed, one run trains with the preset's settings on the chosen profile.
After every epoch the same fixed noise is sampled from several versions of the generator of that
very run, and each is scored with gankit's classifier FID on 2,000 samples:

  raw G, eval mode       G itself, batch norm on its running statistics (what G trains into)
  raw G, batch stats     G itself, batch norm on the statistics of the sampled batch
  EMA 0.999 / EMA 0.99   moving averages of G's weights with a warm-up (gankit.train.ema_of)

Because averaging and sampling do not touch training (no random numbers, no weights), every arm
sees the same trajectory: the differences are the recipes' own. Usage:

    python benchmarks/recipes.py [--profile cpu] [--seeds 0 1 2] [--presets mlp-mnist dcgan-mnist]
        [--out benchmarks/recipes.csv]

It prints a Markdown table (final and best FID per arm, mean and spread over seeds).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import pandas as pd
import torch

from gankit.bench.throughput import to_markdown
from gankit.lesson import setup
from gankit.metrics import mnist_quality, reference_quality
from gankit.train import ema_of

N_EVAL = 2000
DECAYS = (0.999, 0.99)


def evaluate(trainer, averages, rows, seed, preset, t_start) -> None:
    labels = None
    if trainer.config.num_classes:
        labels = torch.arange(N_EVAL) % trainer.config.num_classes
    z = trainer.noise(N_EVAL, torch.Generator().manual_seed(1234))
    arms = {"raw G, eval mode": trainer.G}
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in trainer.G.modules()):
        arms["raw G, batch stats"] = copy.deepcopy(trainer.G).train()  # a copy: G's stats stay
    arms.update({f"EMA {d}": avg.module for d, avg in averages.items()})
    for arm, G in arms.items():
        was = G.training
        if arm != "raw G, batch stats":
            G.eval()
        with torch.no_grad():
            ys = labels.split(500) if labels is not None else [None] * 4
            x = torch.cat([G(zz) if y is None else G(zz, y) for zz, y in zip(z.split(500), ys)])
        G.train(was)
        q = mnist_quality(x, labels)
        rows.append(
            {
                "preset": preset,
                "seed": seed,
                "epoch": trainer.epoch,
                "step": trainer.step,
                "train_seconds": round(trainer.elapsed, 1),
                "wall_seconds": round(time.perf_counter() - t_start, 1),
                "arm": arm,
                "fid": q["fid"],
                "classes_covered": int(q["classes_covered"]),
                **({"cond_accuracy": q["cond_accuracy"]} if "cond_accuracy" in q else {}),
            }
        )


def run(preset: str, seed: int, profile: str, rows: list) -> None:
    trainer = setup(preset, profile=profile, run_dir=None, progress=False, seed=seed)
    averages = {d: ema_of(trainer.G, d) for d in DECAYS}
    n_critic = trainer.config.n_critic

    def update(t) -> None:
        if t.step % n_critic == 0:  # a G step just happened
            for avg in averages.values():
                avg.update_parameters(t.G)

    t_start = time.perf_counter()
    trainer.add_callback("on_batch_end", update)
    trainer.add_callback(
        "on_epoch_end", lambda t: evaluate(t, averages, rows, seed, preset, t_start)
    )
    trainer.fit()
    last = [r for r in rows if r["preset"] == preset and r["seed"] == seed][-len(averages) - 2 :]
    print(
        f"{preset} seed {seed}: {trainer.step} steps, {trainer.elapsed:.0f} s; "
        + "; ".join(f"{r['arm']} FID {r['fid']:.1f}" for r in last if r["epoch"] == trainer.epoch),
        flush=True,
    )


def summary(df: pd.DataFrame) -> str:
    final = df[df["epoch"] == df.groupby(["preset", "seed"])["epoch"].transform("max")]
    best = df.groupby(["preset", "seed", "arm"])["fid"].min().rename("best").reset_index()
    both = final.merge(best, on=["preset", "seed", "arm"])
    g = both.groupby(["preset", "arm"])
    table = pd.DataFrame(
        {
            "final FID (mean)": g["fid"].mean().round(1),
            "final FID (min-max)": g["fid"].agg(lambda s: f"{s.min():.1f}-{s.max():.1f}"),
            "best epoch FID (mean)": g["best"].mean().round(1),
            "classes (min)": g["classes_covered"].min(),
            "seeds": g["seed"].nunique(),
        }
    )
    return to_markdown(table.reset_index())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--presets",
        nargs="+",
        default=["mlp-mnist", "dcgan-mnist", "wgan-gp-mnist", "cgan-mnist"],
    )
    ap.add_argument("--out", default="benchmarks/recipes.csv")  # and the table beside it (.md)
    args = ap.parse_args()
    print(f"floor: real digits, {N_EVAL} samples, FID {reference_quality(N_EVAL)['fid']:.2f}")
    rows: list = []
    for preset in args.presets:
        for seed in args.seeds:
            run(preset, seed, args.profile, rows)
            pd.DataFrame(rows).to_csv(args.out, index=False)
    df = pd.DataFrame(rows)
    print(summary(df))
    Path(args.out).with_suffix(".md").write_text(summary(df) + "\n")


if __name__ == "__main__":
    main()
