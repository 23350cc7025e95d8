"""`gankit bench`: each preset's training throughput beside a tutorial loop (tutorial.py), in FLOPs.

For every preset it times the real `Trainer` (device-resident batches, `Trainer.fit`) and
`TutorialLoop`, the same networks and batch trained the way popular tutorials write it, in
alternating repeats so that both see the same machine load, together with two rate probes
(a large fp32 matmul and a convolution) that give the fraction of the device's speed a loop
achieves, and the Trainer step's own matmul, convolution and optimizer kernels replayed with
nothing between them (`gankit.bench.kernels.KernelReplay`): the speed no loop doing this step can
pass here, which tells overhead a loop could still remove from the limits of the device. FLOPs come
from torch.utils.flop_counter (matmuls and convolutions, backward included; element-wise work is not
counted).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from ..config import ConfigError, GANConfig, make_config, resolve_device, seed_everything
from ..data import BatchSource, Dataset, load_dataset
from ..models import build_models
from ..speed import cpu_supports_bf16, memory_format_for, set_memory_format, set_precision
from ..train import Trainer
from .kernels import KernelReplay, RateProbe, count_flops
from .tutorial import TutorialLoop, synchronize, tutorial_dataset

PRESET_ORDER = ("mlp-mnist", "dcgan-mnist", "wgan-gp-mnist", "cgan-mnist", "poster-cgan")
MLP_SPEEDUP_TARGET = 2.0  # the speed goal: MLP presets at least 2x the tutorial loop
CONV_FRACTION_TARGET = 0.8  # conv presets at >= 80% of the measured convolution rate


@dataclass
class Settings:
    """How long to measure each preset: after `warmup_s` per loop, `repeats` rounds in which every
    loop trains a chunk of about `chunk_s` (at least one D+G cycle); fewer rounds (not below
    `min_repeats`) when one round would take longer than `budget_s / repeats` (the poster preset on
    a CPU)."""

    repeats: int = 9
    chunk_s: float = 0.5
    warmup_s: float = 1.0
    budget_s: float = 20.0
    min_repeats: int = 3


FULL = Settings()
QUICK = Settings(repeats=3, chunk_s=0.25, warmup_s=0.3, budget_s=3.0, min_repeats=1)


def default_threads() -> int:
    """The CPUs this process may use (affinity-aware), which is what torch.set_num_threads gets."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def pin_malloc_thresholds() -> bool:
    """Fix malloc's mmap and trim thresholds for this process; True if that worked (Linux, glibc).

    glibc raises both thresholds whenever a large block is freed, so whether a loop's allocations
    cost page faults, and so its speed, depended on what had run before it in the process. Pinned
    high, no loop pays those faults, whatever ran before it (this favours the tutorial loop; the
    measurements are in benchmarks/README.md).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
        return (
            libc.mallopt(m_mmap_threshold, 32 << 20) == 1
            and libc.mallopt(m_trim_threshold, 1 << 30) == 1
        )
    except (OSError, AttributeError):  # another C library (musl) has no mallopt
        return False


# ------------------------------------------------------- gankit's loop (the baseline: tutorial.py)
class GankitLoop:
    """The library's own loop: `Trainer.fit` over a device-resident `BatchSource`, no run folder."""

    name = "gankit"

    def __init__(
        self,
        config: GANConfig,
        dataset: Dataset,
        device: torch.device,
        wrap: Callable[[Trainer], None] | None = None,
    ) -> None:
        seed_everything(config.seed)
        source = BatchSource(
            dataset.images,
            dataset.labels if config.conditional else None,
            config.batch_size,
            device=device,
            seed=config.seed,
            augment=config.augment,
        )
        G, D = build_models(config)
        self.trainer = Trainer(config, G, D, source, device=device, run_dir=None, progress=False)
        self.config, self.device = config, device
        self._full = source.batches_per_epoch
        if (
            wrap is not None
        ):  # speed variants (autocast, channels_last off, compile) adjust the trainer
            wrap(self.trainer)

    @property
    def networks(self) -> tuple[nn.Module, nn.Module]:
        return self.trainer.G, self.trainer.D

    def run(self, cycles: int) -> int:
        """Train `cycles` D+G cycles (n_critic batches each) through Trainer.fit.

        Returns the number of real images used.
        """
        steps = cycles * self.config.n_critic
        t, left = self.trainer, steps
        while (
            left
        ):  # each fit call is one short "epoch" of k batches: the real loop, logging included
            k = min(left, self._full)
            t.data.batches_per_epoch = k
            t.fit(t.epoch + 1)
            left -= k
        synchronize(self.device)
        return steps * self.config.batch_size

    def one_cycle(self) -> None:
        """n_critic train_steps on one batch, outside fit (for FLOP counting)."""
        x, y = next(self.trainer.data.epoch(0))
        for _ in range(self.config.n_critic):
            self.trainer.train_step(x, y)


# ------------------------------------------------------------------------------ speed variants
def speed_variants(device: torch.device, config: GANConfig) -> dict[str, Callable[[Trainer], None]]:
    """Trainer variants timed next to the default loop: bf16 autocast, other layout, torch.compile.

    Each is measured on and off and kept as a default only where it helps. channels_last helped
    every conv preset on a CPU, so it is the Trainer's default there
    (`gankit.speed.memory_format_for`) and its variant turns it off; on CUDA it is not the default
    and its variant turns it on. On CUDA: bf16 autocast and torch.compile as well (compile not with
    a gradient penalty: compiled graphs lack double backward). On a CPU: bf16 autocast where the CPU
    has native bf16 units; compile is left out there (minutes of C++ compilation per preset).
    """
    if device.type not in ("cuda", "cpu"):
        return {}

    def autocast(t: Trainer) -> None:
        set_precision(t, "bf16")

    def layout(fmt: torch.memory_format) -> Callable[[Trainer], None]:
        return lambda t: set_memory_format(t, fmt)

    def compile_(t: Trainer) -> None:  # what trains (G_train, D_train) and what samples
        t.G = t.G_train = torch.compile(t.G)
        t.D = t.D_train = torch.compile(t.D)

    out: dict[str, Callable[[Trainer], None]] = {}
    if device.type == "cuda" or cpu_supports_bf16():
        out["bf16 autocast"] = autocast
    if config.model == "dcgan":
        default_last = memory_format_for(config, device) is torch.channels_last
        out["channels_last off" if default_last else "channels_last"] = layout(
            torch.contiguous_format if default_last else torch.channels_last
        )
    if (
        device.type == "cuda" and not config.gp_weight
    ):  # the penalty needs double backward, which compiled graphs lack
        out["torch.compile"] = compile_
    return out


# ------------------------------------------------------------------------------ measurement
def _calibrate(loop: Any, seconds: float, chunk_s: float) -> tuple[int, float]:
    """Warm a loop up for ~`seconds`; return (cycles per chunk of ~chunk_s, seconds per cycle)."""
    cycles, t0 = 1, time.perf_counter()
    while True:
        t = time.perf_counter()
        loop.run(cycles)
        per_cycle = (time.perf_counter() - t) / cycles
        left = seconds - (time.perf_counter() - t0)
        if left <= 0:
            return max(1, round(chunk_s / per_cycle)), per_cycle
        cycles = max(1, min(cycles * 2, int(left / per_cycle)))


def measure_preset(
    preset: str,
    device: torch.device,
    settings: Settings = FULL,
    *,
    profile: str | None = None,
    probes: dict[str, RateProbe] | None = None,
    variants: bool = True,
    ceiling: bool = True,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Rows of the bench table for one preset: gankit, the tutorial loop, the speed variants and
    (`ceiling`) gankit's step reduced to its kernels, `KernelReplay`."""
    profile = profile or ("cpu" if device.type == "cpu" else "full")
    config = make_config(preset, profile)
    probes = probes or {"matmul": RateProbe("matmul", device), "conv": RateProbe("conv", device)}
    dataset = load_dataset(config, progress=False)
    loops: dict[str, Any] = {
        "gankit": GankitLoop(config, dataset, device),
        "tutorial": TutorialLoop(config, tutorial_dataset(config), device),
    }
    if variants:
        for name, wrap in speed_variants(device, config).items():
            loops[f"gankit + {name}"] = GankitLoop(config, dataset, device, wrap)
    if ceiling:
        # recorded from one more cycle of the default loop; it trains on copies, the loop keeps its
        # state
        try:
            loops[KernelReplay.name] = KernelReplay(
                loops["gankit"].one_cycle, config.batch_size * config.n_critic, device
            )
        except (
            Exception
        ) as e:  # a device or torch build where the recording fails: report it, measure the rest
            log(f"  {preset}: kernels only failed ({type(e).__name__}: {str(e)[:120]}); skipped")
    flops = {
        name: count_flops(loop.one_cycle) / (config.batch_size * config.n_critic)
        for name, loop in loops.items()
        if "compile" not in name
    }  # FlopCounterMode does not see inside compiled graphs
    chunk, round_s = {}, 0.0
    for name, loop in list(loops.items()):
        try:
            chunk[name], per_cycle = _calibrate(loop, settings.warmup_s, settings.chunk_s)
            round_s += chunk[name] * per_cycle
        except Exception as e:  # a GPU variant that does not work here is reported, not fatal
            if name in ("gankit", "tutorial"):
                raise
            log(f"  {preset}: {name} failed ({type(e).__name__}: {str(e)[:120]}); skipped")
            del loops[name]
    repeats = max(
        settings.min_repeats, min(settings.repeats, int(settings.budget_s / max(round_s, 1e-9)))
    )
    rates: dict[str, list[float]] = {name: [] for name in loops}
    probe_rates: dict[str, list[float]] = {k: [] for k in probes}
    names = list(loops)
    for r in range(repeats):
        order = (
            names[r % len(names) :] + names[: r % len(names)]
        )  # rotate so no loop always runs first
        for name in order:
            t = time.perf_counter()
            n = loops[name].run(chunk[name])
            rates[name].append(n / (time.perf_counter() - t))
        for k, probe in probes.items():
            probe_rates[k].append(probe.measure())
    kind = "matmul" if config.model == "mlp" else "conv"
    device_rate = statistics.median(probe_rates[kind])
    base = rates["tutorial"]
    rows = []
    for name in names:
        ips = statistics.median(rates[name])
        ratio = statistics.median(a / b for a, b in zip(rates[name], base))  # paired: same load
        gflops = flops.get(name, flops["gankit"]) * ips / 1e9
        width = f"h={config.hidden_dim}" if config.model == "mlp" else f"w={config.g_width}"
        widths = f"{config.image_size}px{' RGB' if config.channels == 3 else ''}, {width}"
        rows.append(
            {
                "preset": preset,
                "loop": name,
                "profile": profile,
                "widths": widths,
                "batch": config.batch_size,
                "n_critic": config.n_critic,
                "MFLOP/img": flops.get(name, flops["gankit"]) / 1e6,
                "img/s": ips,
                "vs tutorial": ratio,
                "GFLOP/s": gflops,
                "rate kind": kind,
                "device GFLOP/s": device_rate,
                "of device rate": gflops / device_rate,
                "repeats": repeats,
                "cycles/chunk": chunk[name],
                "matmul GFLOP/s": statistics.median(probe_rates["matmul"]),
                "conv GFLOP/s": statistics.median(probe_rates["conv"]),
            }
        )
    if KernelReplay.name in names:  # the default loop's row carries its bound, for the verdict
        bound = rows[names.index(KernelReplay.name)]
        rows[0]["ceiling"] = bound["vs tutorial"] if kind == "matmul" else bound["of device rate"]
    g = rows[0]
    log(
        f"  {preset}: gankit {g['img/s']:.0f} img/s, tutorial {rows[1]['img/s']:.0f} img/s, "
        f"x{g['vs tutorial']:.2f}, {g['of device rate']:.0%} of the {kind} rate"
    )
    return rows


def verdict(row: dict[str, Any]) -> str:
    """Whether a gankit row meets the speed target for its kind of preset; for the default loop,
    what its kernels alone reach (`ceiling`), so a missed target shows whether any loop could meet
    it here."""
    if row["loop"] in ("tutorial", KernelReplay.name):
        return ""
    bound = row.get("ceiling")
    if row["rate kind"] == "matmul":
        ok = row["vs tutorial"] >= MLP_SPEEDUP_TARGET
        out = f"{'met' if ok else 'MISSED'}: >= {MLP_SPEEDUP_TARGET:g}x tutorial"
        return out + (f" (kernels alone: {bound:.2f}x)" if bound is not None else "")
    ok_rate, ok_base = row["of device rate"] >= CONV_FRACTION_TARGET, row["vs tutorial"] >= 1.0
    parts = [
        f"{'met' if ok_rate else 'MISSED'}: >= {CONV_FRACTION_TARGET:.0%} conv rate"
        + (f" (kernels alone: {bound:.0%})" if bound is not None else ""),
        f"{'met' if ok_base else 'MISSED'}: >= tutorial",
    ]
    return "; ".join(parts)


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The printed table: one row per preset and loop."""
    df = pd.DataFrame(rows)
    out = pd.DataFrame(
        {
            "preset": df["preset"],
            "loop": df["loop"],
            "size": df["widths"],
            "batch": df["batch"],
            "n_critic": df["n_critic"],
            "MFLOP/img": df["MFLOP/img"].round(1),
            "img/s": df["img/s"].round(0).astype(int),
            "vs tutorial": df["vs tutorial"].map(lambda v: f"{v:.2f}x"),
            "GFLOP/s": df["GFLOP/s"].round(1),
            "of device rate": [
                f"{f:.0%} of {k}" for f, k in zip(df["of device rate"], df["rate kind"])
            ],
            "repeats": df["repeats"],
            "target": [verdict(r) for r in rows],
        }
    )
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs the tabulate package)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def wait_policy_note(load: float, cpus: int, policy: str | None) -> str | None:
    """Advice on OMP_WAIT_POLICY for a CPU bench, or None when the setting suits the load.

    By default OpenMP threads spin a while before they sleep. On a busy machine the spinning steals
    the CPUs from the threads doing the work (2-thread training ran 12-16x slower than 1 thread
    here); on an idle one it saves waking a sleeping thread for each of the many small operations of
    a training step (on this project's idle 2-core machine, in alternating bench runs, PASSIVE
    lowered mlp-mnist's gankit loop from 5400-6300 to 4200-4900 img/s). Torch reads the variable
    once, at start.
    """
    busy = load > cpus
    if busy and policy is None:
        return (
            f"note: this machine is busy (load average {load:.1f} on {cpus} CPUs). "
            "OpenMP threads spin while they wait, which on a busy machine can make small "
            "operations many times slower; for numbers that reflect the code rather than the "
            "load, run with OMP_WAIT_POLICY=PASSIVE set before Python starts."
        )
    if not busy and policy is not None and policy.strip().upper() == "PASSIVE":
        return (
            f"note: OMP_WAIT_POLICY=PASSIVE on an idle machine (load average {load:.1f} on "
            f"{cpus} CPUs) puts OpenMP threads to sleep after every operation, which slows the "
            "small operations of a training step; unset it for this machine's best numbers "
            "(keep it where other jobs share the CPUs)."
        )
    return None


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # Windows
        return "n/a"


def main(
    device: str | None = None,
    presets: list[str] | None = None,
    out: str | os.PathLike | None = None,
    quick: bool = False,
    threads: int | None = None,
    settings: Settings | None = None,
    profile: str | None = None,
) -> int:
    """Measure the presets, print the table, optionally write it (Markdown) to `out`; returns 0.

    `profile` picks the network sizes: by default the `cpu` profile's on a CPU and the presets'
    own (`full`) on a GPU; `profile="full"` on a CPU measures the lesson networks at full width.
    """
    dev = resolve_device(device)
    if profile not in (None, "cpu", "full"):
        raise ConfigError(
            f"bench measures the 'cpu' or 'full' sizes, not {profile!r} "
            "(smoke sizes time nothing useful)"
        )
    command = (
        "gankit bench"
        + (f" --device {device}" if device else "")
        + (f" --presets {' '.join(presets)}" if presets else "")
        + (f" --profile {profile}" if profile else "")
        + (" --quick" if quick else "")
    )
    presets = list(presets or PRESET_ORDER)
    for p in presets:
        make_config(p, "cpu")  # unknown names fail now, with the list of presets, not after minutes
    threads = threads or default_threads()
    torch.set_num_threads(threads)
    settings = settings or (QUICK if quick else FULL)
    profile = profile or ("cpu" if dev.type == "cpu" else "full")
    where = f"{dev.type}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")
    print(
        f"gankit bench on {where}, {threads} torch threads, torch {torch.__version__}, "
        f"{profile}-profile widths, up to {settings.repeats} alternating repeats of "
        f"~{settings.chunk_s:g} s per loop"
    )
    if dev.type == "cpu" and hasattr(os, "getloadavg"):
        note = wait_policy_note(
            os.getloadavg()[0], default_threads(), os.environ.get("OMP_WAIT_POLICY")
        )
        if note:
            print(note)
    pinned = pin_malloc_thresholds()
    probes = {"matmul": RateProbe("matmul", dev), "conv": RateProbe("conv", dev)}
    t0, load0 = time.perf_counter(), _load()
    rows: list[dict[str, Any]] = []
    for p in presets:
        rows += measure_preset(p, dev, settings, profile=profile, probes=probes)
    matmul = statistics.median(r["matmul GFLOP/s"] for r in rows)
    conv = statistics.median(r["conv GFLOP/s"] for r in rows)
    df = table(rows)
    header = (
        f"Device: {where}, {threads} torch threads (torch.set_num_threads), torch "
        f"{torch.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        + (
            "glibc malloc thresholds pinned (mmap 32 MB, trim 1 GB), so no loop's page faults "
            "depend on what ran before it in the process; "
            if pinned
            else "malloc thresholds: the C library's defaults; "
        )
        + f"measured matmul rate {matmul:.0f} GFLOP/s (fp32, {probes['matmul'].size}), convolution "
        f"rate {conv:.0f} GFLOP/s ({probes['conv'].size}); loops timed in alternating repeats "
        f"(column 'repeats') of ~{settings.chunk_s:g} s or one D+G cycle if longer, medians; "
        "'vs tutorial' is the median of per-repeat ratios; 'kernels only' replays the default "
        "gankit step's matmul, convolution and fused Adam kernels back to back on copies of their "
        "inputs, with no Python, autograd, element-wise work or data between them: no loop "
        "computing that step runs faster here ('kernels alone' in the target column); bench took "
        f"{time.perf_counter() - t0:.0f} s; 1-minute load average {load0} at the start, {_load()} "
        "at the end."
    )
    if dev.type != "cuda":
        header += (
            " GPU variants: not measured, no CUDA device. CPU variants: "
            + ("bf16 autocast (native bf16 units found) and " if cpu_supports_bf16() else "")
            + "channels_last off for the conv presets (their default here is channels_last); "
            "vs tutorial compares each with the same fp32 tutorial loop."
        )
    header = f"Command: `{command}`\n\n{header}"
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print()
        print(df.to_string(index=False))
    print()
    print(header)
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{header}\n\n{to_markdown(df)}\n")
        print(f"table written to {out}")
    return 0
