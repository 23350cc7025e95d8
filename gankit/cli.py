"""The `gankit` CLI: train, sample, posters, report, bench, metrics (DESIGN.md's contract)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from .config import DATASETS, PRECISIONS, PRESETS, ConfigError, GANConfig

MAX_GRID = 4096  # samples in one PNG grid (64 x 64): more is unviewable and costs GBs; use .npz
SAMPLE_BATCH = 500  # samples generated (and written) at a time: memory stays flat in --n


def _cmd_train(args: argparse.Namespace) -> int:
    from . import distributed
    from .config import resolve_device
    from .lesson import setup
    from .runs import runs_root
    from .speed import check_bf16

    # Every option is checked before a run folder is made: a typo must not leave an empty run
    # behind.
    config = train_config(args)
    device = resolve_device(args.device)
    check_output(runs_root(args.out), "--out" if args.out else "runs folder", folder=True)
    if config.precision == "bf16":
        check_bf16(
            device, warn=False
        )  # the Trainer warns when it starts; refusals come before a run folder exists
    if distributed.launched():  # torchrun: refuse a batch that does not split before joining
        config.replace(world_size=int(os.environ["WORLD_SIZE"]))
        distributed.check_sync_bn(config.sync_bn, device)
    elif args.backend:
        raise ConfigError("--backend is for several processes: start them with torchrun")
    world, device = distributed.init(device, args.backend)
    try:
        return train_run(args, config, device, world, setup)
    finally:
        distributed.shutdown()


def train_run(args: argparse.Namespace, config: GANConfig, device: Any, world: Any, setup) -> int:
    """`gankit train` once the processes are joined: rank 0 picks the run folder and prints."""
    from .distributed import on_main
    from .runs import latest_run, new_run_dir

    say = print if world.is_main else (lambda *a, **k: None)
    run_dir, created = None, False
    if args.resume:
        run_dir = on_main(lambda: latest_run(args.preset, args.out), world)
        if run_dir is None:
            say(
                f"no earlier {args.preset} run with a checkpoint under {args.out or 'runs'}; "
                "starting a new one"
            )
    if run_dir is None:
        run_dir, created = on_main(lambda: new_run_dir(args.preset, args.out), world), True
    try:
        trainer = setup(config, device=str(device), run_dir=run_dir, progress=not args.quiet)
    except BaseException:
        if created and world.is_main and not any(run_dir.iterdir()):
            run_dir.rmdir()  # e.g. the data is missing: no empty run for the report
        raise
    if world.is_main:  # evaluation samples the bare G: rank 0 alone, while the others wait
        attach_default_evaluation(trainer)
    bf16 = ", bf16 autocast" if trainer.config.precision == "bf16" else ""
    where = f"{trainer.device}{bf16}"
    if world.size > 1:
        where += f", {world.size} processes ({world.backend})"
    say(f"{args.preset} [{trainer.config.profile} profile, {where}] -> {run_dir}")
    say(data_line(trainer.config))
    if world.size > 1:
        c = trainer.config
        say(f"batch: {c.batch_size} global = {world.size} processes x {c.batch_per_rank}")
    say(trainer.dataset.summary)
    if args.resume and trainer.resume():
        say(f"resumed at step {trainer.step} (epoch {trainer.epoch})")
    history = trainer.fit()
    last = history.iloc[-1] if len(history) else None
    if last is not None:
        say(
            f"done: {trainer.epoch} epochs, {trainer.step} steps, {trainer.elapsed:.0f} s; "
            f"loss_d {last.loss_d:.3f}, loss_g {last.loss_g:.3f}"
        )
    if trainer.evaluations:
        say(f"final evaluation: {format_evaluation(trainer.evaluations[-1])}")
    say(f"checkpoint: {run_dir / 'checkpoints' / 'last.pt'}")
    return 0


def train_config(args: argparse.Namespace) -> GANConfig:
    """The config `gankit train` runs: the preset under its profile with the options applied and
    the data source made explicit (train_data). Raises ConfigError before anything is written."""
    from .config import make_config

    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise ConfigError(
            f"--checkpoint-every must be >= 0 (0: only at the end of each epoch), "
            f"got {args.checkpoint_every}"
        )
    config = make_config(
        args.preset,
        args.profile,
        epochs=args.epochs,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        on_diverge=args.on_diverge,
        precision=args.precision,
        sync_bn=args.sync_bn or None,
    )
    return config.replace(**train_data(args.preset, args.dataset, args.data))


def preset_datasets(preset: str) -> tuple[tuple[str, ...], str, str]:
    """(the --dataset values a preset can train on, why no others, where the others go), read from
    the preset's networks: an MLP is built for 1x28x28 inputs, a conditional model needs the labels
    it is conditioned on, an unconditional DCGAN takes any image set at its own image_size."""
    p = PRESETS[preset]
    dcgans = "dcgan-mnist or wgan-gp-mnist (channels follow the images)"
    if p.get("cond_dim"):
        return ("posters",), "it is conditioned on poster genres, which only posters have", ""
    if p.get("num_classes"):
        reason = "it is an MLP for 28x28 grey images conditioned on their 10 class labels"
        return ("mnist", "fashion-mnist"), reason, f"train unlabelled images with {dcgans}"
    if p.get("model", "mlp") == "mlp":
        reason = "it is an MLP built for 28x28 grey images"
        return ("mnist", "fashion-mnist"), reason, f"train an image folder or cifar10 with {dcgans}"
    reason = "posters are poster-cgan's data (images with genres)"
    hint = "to train on the poster images alone pass their folder as --data"
    return ("mnist", "fashion-mnist", "cifar10", "folder"), reason, hint


def train_data(preset: str, dataset: str | None, data: str | None) -> dict[str, Any]:
    """GANConfig fields (dataset, data_path, channels) for `gankit train PRESET [--dataset D]
    [--data PATH]`.

    --data alone means an image folder (--dataset folder), or the poster root for a poster preset.
    A folder trains at the preset's image_size with channels=3 when any image in it is in colour,
    1 when all are grey (folder_channels). ConfigError, in one line, for a data set the preset's
    networks cannot take (preset_datasets), a --data that does not exist, is not a folder or holds
    no readable image (or no MovieGenre.csv), --dataset folder without --data, and --data beside a
    torchvision data set (those are read from $GANKIT_DATA).
    """
    from .datasets.posters import CSV_NAME

    default = PRESETS[preset].get("dataset", "mnist")
    if dataset is None:
        dataset = ("posters" if default == "posters" else "folder") if data else default
    allowed, reason, hint = preset_datasets(preset)
    if dataset not in allowed:
        what = f"an image folder (--data {data})" if dataset == "folder" and data else dataset
        choices = " or ".join([", ".join(allowed[:-1]), allowed[-1]] if allowed[1:] else allowed)
        raise ConfigError(
            f"{preset} cannot train on {what}: {reason}, so it takes --dataset {choices}"
            + (f"; {hint}" if hint else "")
        )
    channels = {"mnist": 1, "fashion-mnist": 1, "cifar10": 3}.get(dataset)
    if dataset not in ("folder", "posters"):
        if data is not None:
            raise ConfigError(
                f"--data is an image folder (--dataset folder) or a poster root; {dataset} is read "
                "from $GANKIT_DATA: drop --data, or set GANKIT_DATA to the folder that holds it"
            )
        return {"dataset": dataset, "data_path": None, "channels": channels}
    if data is None:
        if dataset == "folder":
            raise ConfigError("--dataset folder needs --data FOLDER (the image folder)")
        return {"dataset": dataset, "data_path": None}  # under $GANKIT_DATA, else the toy set
    path = Path(data).expanduser()
    if not path.exists():
        raise ConfigError(f"--data {data!r} does not exist; pass the folder that holds the images")
    if not path.is_dir():
        raise ConfigError(f"--data {data!r} is not a folder; pass the folder that holds the images")
    if dataset == "posters":
        if not (path / CSV_NAME).is_file():
            raise ConfigError(
                f"--data {data!r} holds no {CSV_NAME}: a poster root holds {CSV_NAME} and the "
                "{imdbId}.jpg posters (`gankit posters download` or `gankit posters make-toy`)"
            )
        return {"dataset": dataset, "data_path": str(data)}
    return {"dataset": dataset, "data_path": str(data), "channels": folder_channels(path, data)}


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # PIL modes without hue


def folder_channels(folder: Path, option: str) -> int:
    """3 when an image under `folder` is in colour (RGB, CMYK, palette, ...), 1 when all are grey.

    Scans the folder as load_image_folder does (its scan_folder: image extensions, regular files,
    hidden names skipped, folder links followed unless they loop), reading headers only and
    stopping at the first colour image. ConfigError when it holds no image file, or none PIL can
    open: refused before a run folder is made.
    """
    from PIL import Image

    from .datasets.images import IMAGE_EXTENSIONS, scan_folder

    root = folder.resolve()
    found, _ = scan_folder(root, recursive=True)
    n_files, n_read = len(found), 0
    for name, _ in found:
        try:
            with Image.open(root / name) as im:
                mode = im.mode
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # load_image_folder skips it and says why
        n_read += 1
        if mode not in GREY_MODES:
            return 3
    if not n_files:
        raise ConfigError(
            f"--data {option!r} holds no image files (looked for {', '.join(IMAGE_EXTENSIONS)}, "
            "subfolders too); pass the folder that holds the images"
        )
    if not n_read:
        raise ConfigError(
            f"--data {option!r}: none of its {n_files} image files can be read as an image; "
            "pass a folder of images"
        )
    return 1


def data_line(config: GANConfig) -> str:
    """What a run trains on, for `gankit train`'s summary, e.g. 'data: image folder cats
    (--dataset folder; colour images: channels=3, at the preset's 32x32)'."""
    size = f"{config.image_size}x{config.image_size}"
    if config.dataset == "folder":
        kind = "colour images: channels=3" if config.channels == 3 else "grey images: channels=1"
        return (
            f"data: image folder {config.data_path} (--dataset folder; {kind}, "
            f"at the preset's {size})"
        )
    if config.dataset == "posters":
        where = config.data_path or "$GANKIT_DATA/posters, else the toy set"
        return f"data: posters from {where} (--dataset posters; RGB {size}, genres)"
    name = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
    return (
        f"data: {name.get(config.dataset, config.dataset)} from $GANKIT_DATA "
        f"(--dataset {config.dataset}; channels={config.channels}, {size})"
    )


def format_evaluation(values: dict[str, Any]) -> str:
    """An evaluation (EvaluateCallback's scalars) as one readable line, e.g. 'FID 31.2 (2000
    samples), KID 0.0123 (sd 0.0011), classes 10/10, ... (epoch 3, step 1200)'."""
    v, parts = values, []
    if "fid" in v:
        n = f" ({int(v['n_samples'])} samples)" if "n_samples" in v else ""
        parts.append(f"FID {v['fid']:.1f}{n}")
    if "kid_mean" in v:
        parts.append(f"KID {v['kid_mean']:.4f} (sd {v.get('kid_std', math.nan):.4f})")
    if "classes_covered" in v:
        parts.append(f"classes {int(v['classes_covered'])}/10")
    named = {
        "kl_uniform": "KL to uniform {:.3f}",
        "mean_confidence": "confidence {:.2f}",
        "cond_accuracy": "conditional accuracy {:.2f}",
        "eval_seconds": "{:.0f} s",
    }
    parts += [text.format(v[k]) for k, text in named.items() if k in v]
    shown = {"fid", "n_samples", "kid_mean", "kid_std", "classes_covered", *named}
    hidden = {"step", "epoch", "seconds", "n_reference", "kid_subset_size"}
    parts += [
        f"{k} {x:.4g}" if isinstance(x, float) else f"{k} {x}"
        for k, x in v.items()
        if k not in shown | hidden and not k.startswith("class_hist_")
    ]
    where = ", ".join(f"{k} {v[k]}" for k in ("epoch", "step") if k in v)
    return ", ".join(parts) + (f" ({where})" if where else "")


def attach_default_evaluation(trainer) -> None:
    """MNIST presets get the classifier evaluation each epoch, when its weights are shipped."""
    if trainer.config.dataset != "mnist":
        return
    try:
        from .classifier import WEIGHTS_PATH
        from .metrics import EvaluateCallback
    except ImportError:  # metrics needs torchmetrics; training must not
        return
    if not WEIGHTS_PATH.is_file():  # a checkout without them: train anyway, say what is skipped
        print(
            f"no MNIST classifier weights ({WEIGHTS_PATH.name}): training without the "
            "per-epoch evaluation "
            "(`gankit metrics train-classifier` makes them)"
        )
        return
    n = 500 if trainer.config.profile == "smoke" else 2000
    trainer.add_callback("on_epoch_end", EvaluateCallback(every=1, n_samples=n))


def parse_labels(text: str, num_classes: int) -> list[int]:
    """'3,3,7' -> [3, 3, 7], every id checked against the model's classes."""
    try:
        labels = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ConfigError(
            f"--labels must be comma-separated integers like 3,3,7; got {text!r}"
        ) from None
    bad = [v for v in labels if not 0 <= v < num_classes]
    if not labels or bad:
        raise ConfigError(
            f"--labels {text!r}: class ids must be in 0..{num_classes - 1}"
            + (f" (got {bad})" if bad else "")
        )
    return labels


def _cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .config import resolve_device
    from .data import to_uint8
    from .files import atomic_write, atomic_write_npz, free_bytes
    from .train import Trainer

    n, out = args.n, Path(args.out)
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if out.suffix not in (".png", ".npz"):
        raise ConfigError(f"--out must end in .png or .npz, got {out.name!r}")
    if out.suffix == ".png" and n > MAX_GRID:
        raise ConfigError(
            f"--n {n} is too many for one PNG grid (at most {MAX_GRID}); write an .npz instead"
        )
    if args.labels and args.genres:
        raise ConfigError("give --labels or --genres, not both")
    check_output(out, "--out", folder=False)
    device = resolve_device(args.device)
    trainer = Trainer.from_checkpoint(args.checkpoint, device=device, run_dir=None, progress=False)
    c = trainer.config
    condition, extra = sample_conditions(args, c)
    # Bytes per sample, uncompressed: uint8 pixels, plus an int64 class id or a uint8 genre row.
    per_sample = c.channels * c.image_size**2 + (8 if c.num_classes else c.cond_dim)
    need, free = n * per_sample, free_bytes(out.parent)
    if need > free:
        raise ConfigError(
            f"--n {n} needs up to {_size(need)} for {out.name}, but its folder has {_size(free)} "
            "free; lower --n or write to another disk"
        )

    def batches():  # images in [-1, 1], at most SAMPLE_BATCH at a time
        g = torch.Generator().manual_seed(args.seed)  # one stream: as if drawn all at once
        for start in range(0, n, SAMPLE_BATCH):
            size = min(SAMPLE_BATCH, n - start)
            z = trainer.noise(size, g)
            x = trainer.sample(size, condition(start, size), temperature=args.temperature, noise=z)
            if not torch.isfinite(x).all():
                raise ConfigError(
                    f"the generator's samples hold NaN/Inf at --temperature {args.temperature:g}: "
                    "z * T or the weights overflow float32 (about 3e38); use a smaller "
                    "--temperature, or another checkpoint"
                )
            yield x

    if out.suffix == ".png":
        from torchvision.utils import save_image

        from .viz import grid

        images = torch.cat(list(batches()))
        atomic_write(out, lambda f: save_image(grid(images), f, format="png"))
    else:
        shape = (n, c.channels, c.image_size, c.image_size)
        pixels = (to_uint8(x).cpu().numpy() for x in batches())
        atomic_write_npz(out, {"images": (shape, np.uint8, pixels), **extra})
    print(f"wrote {n} samples of {c.preset} to {out}")
    return 0


def sample_conditions(args: argparse.Namespace, c: Any) -> tuple[Any, dict[str, Any]]:
    """(condition(start, size) -> the batch's labels or None, the .npz's condition entries) for
    `gankit sample`: class ids cycled to --n, one genre row repeated, or none; each entry as
    atomic_write_npz takes it, chunks made batch by batch."""
    import numpy as np
    import torch

    n = args.n
    if c.num_classes:
        if args.genres:
            raise ConfigError(
                f"{args.checkpoint} is conditioned on class ids 0..{c.num_classes - 1} "
                f"({c.preset}), not genres: use --labels, e.g. --labels 3,7"
            )
        ids = torch.tensor(
            parse_labels(args.labels, c.num_classes) if args.labels else range(c.num_classes)
        )

        def labels(start: int, size: int) -> torch.Tensor:
            return ids[torch.arange(start, start + size) % len(ids)]

        chunks = (labels(s, min(SAMPLE_BATCH, n - s)).numpy() for s in range(0, n, SAMPLE_BATCH))
        return labels, {"labels": ((n,), np.int64, chunks)}
    if c.cond_dim:
        from .datasets.posters import encode_genres, parse_genres

        names = tuple(c.label_names)
        if args.labels:
            raise ConfigError(
                f"{args.checkpoint} is conditioned on genres ({c.preset}), not class ids: "
                f'use --genres, e.g. --genres "Horror,Sci-Fi" (valid: {", ".join(names)})'
            )
        if not args.genres:
            raise ConfigError(
                f'this model paints posters for chosen genres: pass --genres, e.g. "Horror,Sci-Fi" '
                f"(valid: {', '.join(names)})"
            )
        chosen = parse_genres(args.genres, vocab=names)
        row = encode_genres([chosen], vocab=names, mode=c.genre_encoding)  # (1, G)
        hot = (row > 0).numpy().astype(np.uint8)
        chunks = (
            np.broadcast_to(hot, (min(SAMPLE_BATCH, n - s), len(names)))
            for s in range(0, n, SAMPLE_BATCH)
        )
        extra = {"genres": ((n, len(names)), np.uint8, chunks), "genre_names": np.array(names)}
        return (lambda start, size: row.expand(size, -1)), extra
    if args.labels or args.genres:
        raise ConfigError(
            f"{args.checkpoint} is an unconditional model ({c.preset}); drop --labels/--genres"
        )
    return (lambda start, size: None), {}


def _size(n: int) -> str:
    """Bytes as '1.2 GB'."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def check_output(path: str | Path, option: str, *, folder: bool) -> None:
    """ConfigError, in one line, unless `path` can be written as an output folder or file
    (gankit.files.output_problem): checked before any work starts."""
    from .files import output_problem

    problem = output_problem(path, folder=folder)
    if problem:
        raise ConfigError(f"{option} {str(path)!r} {problem}; pass another {option}")


def _cmd_posters(args: argparse.Namespace) -> int:
    from .datasets import download, toy_posters

    if args.posters_cmd == "download":
        check_output(args.out, "--out", folder=True)
        for name in ("manifest.csv", download.CSV_NAME):  # the files it writes there at the end
            check_output(Path(args.out) / name, "--out", folder=False)
        try:
            results = download.download_posters(
                args.csv,
                args.out,
                workers=args.workers,
                timeout=args.timeout,
                retries=args.retries,
                progress=not args.quiet,
            )
        except download.DownloadInterrupted as e:
            print(download.download_summary(e.results))
            raise
        except download.DiskFullError as e:
            print(download.download_summary(e.results))
            raise ConfigError(
                f"{e}; free some space and run the same command again (it resumes)"
            ) from None
        print(download.download_summary(results))
        print(f"manifest: {Path(args.out) / 'manifest.csv'}")
    else:
        check_output(args.dir, "DIR", folder=True)
        csv = toy_posters.make_toy(args.dir, n=args.n, seed=args.seed)
        print(f"wrote a toy poster set of {args.n} rows: {csv}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report.build import build_report
    from .runs import runs_root

    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError:
        raise ConfigError(f"--since must be a date like 2026-11-01, got {args.since!r}") from None
    check_output(args.out, "--out", folder=True)
    paths = build_report(runs_root(args.runs), args.out, since=since, pdf=not args.no_pdf)
    for key, value in paths.items():
        if key != "message":  # build_report has printed it already
            print(f"{key}: {value}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.throughput import main as bench_main

    return bench_main(
        device=args.device,
        presets=args.presets,
        out=args.out,
        quick=args.quick,
        profile=args.profile,
    )


def _cmd_metrics(args: argparse.Namespace) -> int:
    from .classifier import train_classifier

    result = train_classifier(args.out, epochs=args.epochs, seed=args.seed, device=args.device)
    print(
        f"test accuracy {result['test_accuracy']:.4f} in {result['seconds']:.0f} s "
        f"-> {result['path']}"
    )
    return 0


class Parser(argparse.ArgumentParser):
    """argparse whose refusals are DESIGN.md's one line, `gankit CMD: error: ...` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type, ok: Any, rule: str) -> Any:
    """An option's value as `kind` when ok(value), else argparse's error saying `rule`."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
    return value


def seed(text: str) -> int:
    """--seed: torch's seeds are unsigned 64-bit; 0..2**63-1 also fits every int64 on the way."""
    return _number(text, int, lambda v: 0 <= v < 2**63, "an integer in 0..2**63-1")


def temperature(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < math.inf, "a finite number >= 0 (scale of z)")


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def count(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def seconds(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < math.inf, "a finite number of seconds > 0")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="gankit", description="Train, sample and report the gankit GAN course models.")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a lesson preset into runs/<preset>/<timestamp>/")
    t.add_argument("preset", help=f"one of: {', '.join(PRESETS)}")
    t.add_argument("--profile", help="smoke | cpu | full (default: $GANKIT_PROFILE or auto)")
    t.add_argument("--epochs", type=int)
    t.add_argument(
        "--dataset",
        choices=DATASETS,
        help="what to train on (default: the preset's; folder when --data is given). MLP presets: "
        "mnist | fashion-mnist; dcgan-mnist, wgan-gp-mnist: also cifar10, folder; poster-cgan: "
        "posters",
    )
    t.add_argument(
        "--data",
        metavar="PATH",
        help="an image folder (--dataset folder; channels follow its images) or, for "
        "poster-cgan, the poster root (default: under $GANKIT_DATA)",
    )
    t.add_argument("--out", help="runs root folder (default: $GANKIT_RUNS or ./runs)")
    t.add_argument("--resume", action="store_true", help="continue the newest run of this preset")
    t.add_argument("--seed", type=seed)
    t.add_argument("--device", help="cpu | cuda | mps | auto (default: $GANKIT_DEVICE or auto)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also checkpoint every N steps (checkpoints/step_*.pt, the last 3 kept); "
        "0: epoch ends only",
    )
    t.add_argument(
        "--on-diverge",
        choices=("stop", "rollback"),
        help="on NaN/Inf: stop (default) or roll back to the last good checkpoint with halved lrs",
    )
    t.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="bf16: forward passes under bf16 autocast, faster only on bf16 units "
        "(recent x86 CPUs with AVX512-BF16/AMX, Ampere+ GPUs); default fp32",
    )
    t.add_argument(
        "--backend",
        choices=("nccl", "gloo"),
        help="under torchrun: the process group's backend (default: nccl on GPUs, gloo on CPUs)",
    )
    t.add_argument(
        "--sync-bn",
        action="store_true",
        help="under torchrun on GPUs: batch-norm statistics over the global batch (SyncBatchNorm)",
    )
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid or an .npz")
    s.add_argument("checkpoint")
    s.add_argument("--n", type=int, required=True, help=f"samples (a PNG grid holds <= {MAX_GRID})")
    s.add_argument(
        "--out", required=True, help="FILE.png (grid) or FILE.npz (images uint8 (N, C, H, W))"
    )
    s.add_argument(
        "--temperature",
        type=temperature,
        default=1.0,
        help="scale of z, finite and >= 0 (T < 1: safer, T > 1: more varied)",
    )
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument(
        "--labels", help="class ids for a class-conditional model, e.g. 3,3,7 (cycled to --n)"
    )
    s.add_argument("--genres", help='genres for the poster model, e.g. "Horror,Sci-Fi"')
    s.add_argument("--device", help="cpu | cuda | mps | auto (default: $GANKIT_DEVICE or auto)")
    s.set_defaults(func=_cmd_sample)

    ps = sub.add_parser(
        "posters", help="movie-poster data: download the real set or make a toy one"
    )
    psub = ps.add_subparsers(dest="posters_cmd", required=True)
    d = psub.add_parser("download", help="fetch every poster of MovieGenre.csv to DIR/{imdbId}.jpg")
    d.add_argument("csv")
    d.add_argument("--out", required=True, help="folder for the posters (made if missing)")
    d.add_argument("--workers", type=positive_int, default=16, help="parallel downloads")
    d.add_argument("--timeout", type=seconds, default=10.0, help="seconds per socket operation")
    d.add_argument("--retries", type=count, default=3, help="retries after 5xx or timeouts")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    m = psub.add_parser(
        "make-toy", help="write a toy poster set in the real format (offline stand-in)"
    )
    m.add_argument("dir")
    m.add_argument("--n", type=positive_int, default=2000)
    m.add_argument("--seed", type=seed, default=0)
    ps.set_defaults(func=_cmd_posters)

    r = sub.add_parser(
        "report", help="progress report (Markdown, HTML, PDF) over the runs in a period"
    )
    r.add_argument("--since", help="YYYY-MM-DD: only runs started on or after this day")
    r.add_argument(
        "--out",
        default="reports",
        help="folder for progress-YYYY-MM-DD.md/.html/.pdf and index.html (default: reports)",
    )
    r.add_argument("--runs", default=None, help="runs root (default: $GANKIT_RUNS or ./runs)")
    r.add_argument("--no-pdf", action="store_true")
    r.set_defaults(func=_cmd_report)

    b = sub.add_parser("bench", help="training throughput against a tutorial-style baseline")
    b.add_argument("--device")
    b.add_argument("--presets", nargs="*")
    b.add_argument("--out", default=None, help="write the table (Markdown) here too")
    b.add_argument(
        "--quick", action="store_true", help="fewer repeats (a quick look, not a measurement)"
    )
    b.add_argument(
        "--profile",
        choices=("cpu", "full"),
        default=None,
        help="network sizes: cpu (default on a CPU) or full (the presets' own; default on a GPU)",
    )
    b.set_defaults(func=_cmd_bench)

    mt = sub.add_parser("metrics", help="the MNIST classifier behind the quality metrics")
    msub = mt.add_subparsers(dest="metrics_cmd", required=True)
    tc = msub.add_parser("train-classifier", help="retrain the shipped MNIST classifier")
    tc.add_argument("--out", default=None)
    tc.add_argument("--epochs", type=positive_int, default=3)
    tc.add_argument("--seed", type=seed, default=0)
    tc.add_argument("--device")
    mt.set_defaults(func=_cmd_metrics)
    return p


def main(argv: list[str] | None = None) -> int:
    from .checkpoints import CheckpointError
    from .distributed import env_rank
    from .runs import RunLocked
    from .train import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (
        ConfigError,
        FileNotFoundError,
        ValueError,
        CheckpointError,
        RunLocked,
        TrainingDiverged,
    ) as e:
        # Errors a user can fix get one clear line, not a traceback (from rank 0 under torchrun:
        # every rank stops with the same error).
        if env_rank() == 0:
            print(f"gankit {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only folder, ...: what the file system said
        print(f"gankit {args.cmd}: error: {os_error_line(e, args.cmd)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if str(e):  # DownloadInterrupted says what was saved and how to go on
            print(f"gankit {args.cmd}: {e}", file=sys.stderr)
        elif args.cmd == "train":
            print("interrupted; add --resume to the same command to continue", file=sys.stderr)
        else:
            print("interrupted; run the same command again", file=sys.stderr)
        return 130


def os_error_line(e: OSError, cmd: str) -> str:
    """One line for an OSError: a full disk says where and how to go on."""
    from .files import is_disk_full

    if is_disk_full(e):
        where = f" while writing {e.filename}" if e.filename else ""
        again = "resume (the same command with --resume)" if cmd == "train" else "run it again"
        return f"no space left on device{where}; free space and {again}"
    reason = e.strerror or str(e) or type(e).__name__
    return f"{reason}: {e.filename}" if e.filename else reason


if __name__ == "__main__":
    sys.exit(main())
