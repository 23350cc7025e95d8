"""The `gankit` CLI: train, sample, posters, report, bench, metrics (DESIGN.md's contract)."""

from __future__ import annotations

import argparse
import errno
import sys
from datetime import date
from pathlib import Path

from .config import PRECISIONS, PRESETS, ConfigError


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import make_config, resolve_device
    from .lesson import setup
    from .runs import latest_run, new_run_dir
    from .speed import check_bf16

    # Every option is checked before a run folder is made: a typo must not leave an empty run
    # behind.
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise ConfigError(
            f"--checkpoint-every must be >= 0 (0: only at the end of each epoch), "
            f"got {args.checkpoint_every}"
        )
    config = make_config(
        args.preset,
        args.profile,
        data_path=args.data,
        epochs=args.epochs,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        on_diverge=args.on_diverge,
        precision=args.precision,
    )
    device = resolve_device(args.device)
    if config.precision == "bf16":
        check_bf16(
            device, warn=False
        )  # the Trainer warns when it starts; refusals come before a run folder exists
    run_dir, created = None, False
    if args.resume:
        run_dir = latest_run(args.preset, args.out)
        if run_dir is None:
            print(
                f"no earlier {args.preset} run with a checkpoint under {args.out or 'runs'}; "
                "starting a new one"
            )
    if run_dir is None:
        run_dir, created = new_run_dir(args.preset, args.out), True
    try:
        trainer = setup(config, device=args.device, run_dir=run_dir, progress=not args.quiet)
    except BaseException:
        if created and not any(
            run_dir.iterdir()
        ):  # e.g. the data is missing: no empty run for the report
            run_dir.rmdir()
        raise
    attach_default_evaluation(trainer)
    bf16 = ", bf16 autocast" if trainer.config.precision == "bf16" else ""
    print(f"{args.preset} [{trainer.config.profile} profile, {trainer.device}{bf16}] -> {run_dir}")
    print(trainer.dataset.summary)
    if args.resume and trainer.resume():
        print(f"resumed at step {trainer.step} (epoch {trainer.epoch})")
    history = trainer.fit()
    last = history.iloc[-1] if len(history) else None
    if last is not None:
        print(
            f"done: {trainer.epoch} epochs, {trainer.step} steps, {trainer.elapsed:.0f} s; "
            f"loss_d {last.loss_d:.3f}, loss_g {last.loss_g:.3f}"
        )
    if trainer.evaluations:
        final = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in trainer.evaluations[-1].items()
        }
        print("final evaluation:", final)
    print(f"checkpoint: {run_dir / 'checkpoints' / 'last.pt'}")
    return 0


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

    from .data import to_uint8
    from .train import Trainer
    from .viz import save_grid

    if args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    out = Path(args.out)
    if out.suffix not in (".png", ".npz"):
        raise ConfigError(f"--out must end in .png or .npz, got {out.name!r}")
    trainer = Trainer.from_checkpoint(
        args.checkpoint, device=args.device, run_dir=None, progress=False
    )
    c = trainer.config
    labels = extra = None
    if args.labels and args.genres:
        raise ConfigError("give --labels or --genres, not both")
    if c.num_classes:
        if args.genres:
            raise ConfigError(
                f"{args.checkpoint} is conditioned on class ids 0..{c.num_classes - 1} "
                f"({c.preset}), "
                f"not genres: use --labels, e.g. --labels 3,7"
            )
        ids = (
            parse_labels(args.labels, c.num_classes) if args.labels else list(range(c.num_classes))
        )
        labels = torch.tensor([ids[i % len(ids)] for i in range(args.n)])
        extra = {"labels": labels.numpy().astype(np.int64)}
    elif c.cond_dim:
        from .datasets.posters import encode_genres, parse_genres

        names = list(c.label_names)
        if args.labels:
            raise ConfigError(
                f"{args.checkpoint} is conditioned on genres ({c.preset}), not class ids: "
                "use --genres, "
                f'e.g. --genres "Horror,Sci-Fi" (valid: {", ".join(names)})'
            )
        if not args.genres:
            raise ConfigError(
                f'this model paints posters for chosen genres: pass --genres, e.g. "Horror,Sci-Fi" '
                f"(valid: {', '.join(names)})"
            )
        chosen = parse_genres(args.genres, vocab=tuple(names))
        labels = encode_genres([chosen] * args.n, vocab=tuple(names), mode=c.genre_encoding)
        extra = {"genres": (labels > 0).numpy().astype(np.uint8), "genre_names": np.array(names)}
    elif args.labels or args.genres:
        raise ConfigError(
            f"{args.checkpoint} is an unconditional model ({c.preset}); drop --labels/--genres"
        )
    images = trainer.sample(args.n, labels, temperature=args.temperature, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        save_grid(images, out)
    else:
        np.savez_compressed(out, images=to_uint8(images).cpu().numpy(), **(extra or {}))
    print(f"wrote {args.n} samples of {c.preset} to {out}")
    return 0


def _cmd_posters(args: argparse.Namespace) -> int:
    from .datasets import download, toy_posters

    if args.posters_cmd == "download":
        try:
            results = download.download_posters(
                args.csv, args.out, workers=args.workers, timeout=args.timeout, retries=args.retries
            )
        except download.DiskFullError as e:
            print(download.download_summary(e.results))
            raise ConfigError(
                f"{e}; free some space and run the same command again (it resumes)"
            ) from None
        print(download.download_summary(results))
        print(f"manifest: {Path(args.out) / 'manifest.csv'}")
    else:
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gankit", description="Train, sample and report the gankit GAN course models."
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a lesson preset into runs/<preset>/<timestamp>/")
    t.add_argument("preset", help=f"one of: {', '.join(PRESETS)}")
    t.add_argument("--profile", help="smoke | cpu | full (default: $GANKIT_PROFILE or auto)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--data", help="image folder / poster folder (default: under $GANKIT_DATA)")
    t.add_argument("--out", help="runs root folder (default: $GANKIT_RUNS or ./runs)")
    t.add_argument("--resume", action="store_true", help="continue the newest run of this preset")
    t.add_argument("--seed", type=int)
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
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG grid or an .npz")
    s.add_argument("checkpoint")
    s.add_argument("--n", type=int, required=True)
    s.add_argument(
        "--out", required=True, help="FILE.png (grid) or FILE.npz (images uint8 (N, C, H, W))"
    )
    s.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="scale of z (T < 1: safer, T > 1: more varied)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--labels", help="class ids for a class-conditional model, e.g. 3,3,7 (cycled to --n)"
    )
    s.add_argument("--genres", help='genres for the poster model, e.g. "Horror,Sci-Fi"')
    s.add_argument("--device")
    s.set_defaults(func=_cmd_sample)

    ps = sub.add_parser(
        "posters", help="movie-poster data: download the real set or make a toy one"
    )
    psub = ps.add_subparsers(dest="posters_cmd", required=True)
    d = psub.add_parser("download", help="fetch every poster of MovieGenre.csv to DIR/{imdbId}.jpg")
    d.add_argument("csv")
    d.add_argument("--out", required=True)
    d.add_argument("--workers", type=int, default=16)
    d.add_argument("--timeout", type=float, default=10.0)
    d.add_argument("--retries", type=int, default=3)
    m = psub.add_parser(
        "make-toy", help="write a toy poster set in the real format (offline stand-in)"
    )
    m.add_argument("dir")
    m.add_argument("--n", type=int, default=2000)
    m.add_argument("--seed", type=int, default=0)
    ps.set_defaults(func=_cmd_posters)

    r = sub.add_parser(
        "report", help="progress report (Markdown, HTML, PDF) over the runs in a period"
    )
    r.add_argument("--since", help="YYYY-MM-DD: only runs started on or after this day")
    r.add_argument("--out", default="reports")
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
    tc.add_argument("--epochs", type=int, default=3)
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--device")
    mt.set_defaults(func=_cmd_metrics)
    return p


def main(argv: list[str] | None = None) -> int:
    from .runs import CheckpointError, RunLocked
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
        # Errors a user can fix get one clear line, not a traceback.
        print(f"gankit {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (
            errno.ENOSPC,
            getattr(errno, "EDQUOT", errno.ENOSPC),
        ):  # full disk or quota
            raise
        again = (
            "add --resume to continue from the last checkpoint"
            if args.cmd == "train"
            else "run it again"
        )
        print(
            f"gankit {args.cmd}: error: the disk is full ({e.strerror}); "
            f"free some space, then {again}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
