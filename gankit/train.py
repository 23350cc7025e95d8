"""One model-agnostic Trainer: step order, n_critic, logging, sample grids, checkpoints, exact resume."""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from . import __version__
from .config import GANConfig, resolve_device, seed_everything
from .data import BatchSource, load_dataset
from .files import atomic_save
from .losses import LossFn, clip_weights, gradient_penalty, losses_for
from .models import build_models
from .runs import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    find_run,
    load_checkpoint,
    lock_run,
    new_run_dir,
    rng_state,
    run_checkpoints,
    set_rng_state,
)
from .speed import (
    check_bf16,
    load_optimizer_state,
    make_optimizer,
    memory_format_for,
    scores_per_sample,
)
from .tricks import FeatureMatching

HISTORY_COLUMNS = ["step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "seconds"]
Callback = Callable[["Trainer"], None]
EVENTS = ("on_batch_end", "on_log", "on_epoch_end", "on_fit_end")
MAX_ROLLBACKS = 3  # with on_diverge="rollback": after 3 halvings (lr / 8) the run stops instead


class TrainingDiverged(RuntimeError):
    """Losses or weights became NaN or Inf."""


class Trainer:
    """Trains any (G, D) pair: a D step on every batch, a G step every `n_critic` batches.

    The objective comes in as functions (`d_loss(d_real, d_fake)`, `g_loss(d_fake)`, an optional
    `penalty(D, x_real, x_fake, y)` weighted by config.gp_weight, and `g_aux(trainer, x_real, x_fake, y)`
    for extra generator terms such as feature matching); labels are passed to G and D when the
    config is conditional. `step` counts batches (discriminator steps). Hooks: `add_callback(event, fn)`
    with events on_batch_end, on_log, on_epoch_end, on_fit_end; fn(trainer).
    """

    def __init__(
        self,
        config: GANConfig,
        G: nn.Module,
        D: nn.Module,
        data: BatchSource | None,
        *,
        device: torch.device | str | None = None,
        run_dir: str | os.PathLike | None = "auto",
        d_loss: LossFn | None = None,
        g_loss: LossFn | None = None,
        penalty: Callable[..., torch.Tensor] | None = None,
        g_aux: Callable[..., torch.Tensor] | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.device = (
            torch.device(device)
            if device is not None
            else (data.device if data else resolve_device())
        )
        self.G, self.D, self.data = G.to(self.device), D.to(self.device), data
        self.use_memory_format(memory_format_for(config, self.device))
        default_d, default_g = losses_for(config)
        self.d_loss, self.g_loss = d_loss or default_d, g_loss or default_g
        self.penalty = penalty or (gradient_penalty if config.gp_weight > 0 else None)
        # Like the penalty, feature matching follows from the config, so a Trainer rebuilt from a
        # checkpoint (from_checkpoint, resume) trains with the same objective as the one that wrote it.
        self.g_aux = g_aux or (
            FeatureMatching(config.feature_matching) if config.feature_matching > 0 else None
        )
        self.progress = progress
        self.opt_g, self.opt_d = (
            make_optimizer(config, G, config.lr_g),
            make_optimizer(config, D, config.lr_d),
        )
        self._joint_d = scores_per_sample(D)
        self.score = (
            torch.sigmoid if config.loss == "bce" else (lambda t: t)
        )  # D(x) as a probability for BCE
        self.run_dir = (
            new_run_dir(config.preset)
            if run_dir == "auto"
            else (Path(run_dir) if run_dir else None)
        )
        self.step = self.epoch = self.batch_in_epoch = 0
        self.elapsed = 0.0
        self.records: list[dict[str, float]] = []
        self.evaluations: list[dict[str, float]] = []
        self.events: list[dict[str, Any]] = []  # rollbacks after divergence (metrics.json "events")
        self._good: bytes | None = (
            None  # with on_diverge="rollback": the last checkpoint, serialised in memory
        )
        self.callbacks: dict[str, list[Callback]] = defaultdict(list)
        self._accum = torch.zeros(
            5, device=self.device
        )  # sums of loss_d, loss_g, d_real, d_fake; g-step count
        self._accum_n = 0
        # The visualisation noise comes from its own generator so it never moves with other randomness.
        g = torch.Generator().manual_seed(config.seed + 12345)
        self.fixed_noise = self._draw_latent(config.n_fixed, g).to(self.device)
        self.fixed_labels = self._fixed_labels(g)
        if self.run_dir:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    # ------------------------------------------------------------------ setup helpers
    def use_memory_format(self, fmt: torch.memory_format) -> None:
        """Keep G, D and every real batch in `fmt` (train_step converts the batches)."""
        self.memory_format = fmt
        self.G.to(memory_format=fmt)
        self.D.to(memory_format=fmt)

    def use_precision(self, precision: str) -> None:
        """Train in `precision` from the next step on: "fp32", or "bf16" (train_step's forward passes under
        bf16 autocast; weights, gradients and optimizer state stay fp32). Recorded in the config, so
        checkpoints and config.json say how a run was trained. Sampling and evaluation stay fp32."""
        if precision == "bf16":
            check_bf16(self.device)
        if (
            precision != self.config.precision
        ):  # a copy (validated: an unknown precision is refused there);
            self.config = self.config.replace(
                precision=precision
            )  # other trainers may share the old one

    def _autocast(self) -> Any:
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _draw_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = (n, self.config.latent_dim)
        if self.config.latent == "uniform":  # the lesson-01 pitfall, kept only to be shown
            return torch.rand(
                shape, generator=generator, device="cpu" if generator else self.device
            )
        return torch.randn(shape, generator=generator, device="cpu" if generator else self.device)

    def _fixed_labels(self, g: torch.Generator) -> torch.Tensor | None:
        n, c = self.config.n_fixed, self.config
        if c.num_classes:
            return (torch.arange(n) % c.num_classes).to(self.device)
        if c.cond_dim:
            if self.data is not None and self.data.labels is not None:
                idx = torch.randperm(self.data.labels.shape[0], generator=g)[:n]
                return self.data.labels[idx.to(self.data.labels.device)].to(self.device)
            return (
                torch.nn.functional.one_hot(torch.arange(n) % c.cond_dim, c.cond_dim)
                .float()
                .to(self.device)
            )
        return None

    def add_callback(self, event: str, fn: Callback) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; use one of {', '.join(EVENTS)}")
        self.callbacks[event].append(fn)

    def _fire(self, event: str) -> None:
        for fn in self.callbacks[event]:
            fn(self)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images in [-1, 1], (n, C, H, W), from z * temperature (eval mode, batch norm uses running stats)."""
        if noise is None:
            g = torch.Generator().manual_seed(seed) if seed is not None else None
            noise = self._draw_latent(n, g).to(self.device)
        if self.config.conditional and labels is None:
            raise ValueError("this model is conditional: pass labels (class ids or genre vectors)")
        was_training = self.G.training
        self.G.eval()
        try:
            out = [
                self.G(z * temperature, None if labels is None else y.to(self.device))
                for z, y in zip(
                    noise.split(500), labels.split(500) if labels is not None else [None] * n
                )
            ]
        finally:
            self.G.train(was_training)
        return torch.cat(
            out
        ).contiguous()  # channels_last inside training; plain NCHW for everyone else

    # ------------------------------------------------------------------ training
    def _requires_grad(self, module: nn.Module, flag: bool) -> None:
        for p in module.parameters():
            p.requires_grad_(flag)

    def train_step(self, x_real: torch.Tensor, y: torch.Tensor | None) -> None:
        """One discriminator step, plus a generator step every n_critic batches. No host sync."""
        with (
            self._autocast()
        ):  # backward and the optimizer steps may run inside: autocast leaves them alone
            self._train_step(x_real, y)

    def _train_step(self, x_real: torch.Tensor, y: torch.Tensor | None) -> None:
        c, G, D = self.config, self.G, self.D
        b = x_real.shape[0]
        x_real = x_real.contiguous(
            memory_format=self.memory_format
        )  # a no-op for MLPs and channels_last batches
        with torch.no_grad():
            x_fake = G(self._draw_latent(b), y) if y is not None else G(self._draw_latent(b))
        args = (y,) if y is not None else ()
        if (
            self._joint_d
        ):  # one call on [real; fake]: larger matmuls and one backward, the same scores
            scores = D(torch.cat([x_real, x_fake]), *(torch.cat([y, y]),) if y is not None else ())
            d_real, d_fake = scores[:b], scores[b:]
        else:  # batch norm (or an unknown layer) may mix samples: real and fake batches go separately
            d_real, d_fake = D(x_real, *args), D(x_fake, *args)
        loss_d = self.d_loss(d_real, d_fake)
        if self.penalty is not None:
            loss_d = loss_d + c.gp_weight * self.penalty(D, x_real, x_fake, y)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        if c.clip_value > 0:
            clip_weights(D, c.clip_value)
        acc = torch.stack(
            [
                loss_d.detach(),
                torch.zeros((), device=self.device),
                self.score(d_real.detach()).mean(),
                self.score(d_fake.detach()).mean(),
                torch.zeros((), device=self.device),
            ]
        )
        if (self.step + 1) % c.n_critic == 0:
            self._requires_grad(D, False)  # D's parameter gradients are not needed for the G step
            x_fake = G(self._draw_latent(b), *args)
            loss_g = self.g_loss(D(x_fake, *args))
            if self.g_aux is not None:
                loss_g = loss_g + self.g_aux(self, x_real, x_fake, y)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
            self._requires_grad(D, True)
            acc[1], acc[4] = loss_g.detach(), 1.0
        self._accum += acc
        self._accum_n += 1

    def _log(self) -> None:
        """Turn the accumulated sums into one history row: the only host sync of the loop."""
        if self._accum_n == 0:
            return
        s = self._accum.tolist()
        n, n_g = self._accum_n, max(s[4], 1.0)
        row = {
            "step": self.step,
            "epoch": self.epoch + self.batch_in_epoch / max(len(self.data), 1),
            "loss_d": s[0] / n,
            "loss_g": s[1] / n_g if s[4] else float("nan"),
            "d_real": s[2] / n,
            "d_fake": s[3] / n,
            "seconds": self.elapsed + time.perf_counter() - self._t0,
        }
        self._accum.zero_()
        self._accum_n = 0
        bad = [
            k
            for k in ("loss_d", "loss_g", "d_real", "d_fake")
            if s[4] or k != "loss_g"
            if not math.isfinite(row[k])
        ]
        if bad or self._nonfinite_weights():
            raise self._diverged(bad + self._nonfinite_weights())
        self.records.append(row)
        self._fire("on_log")

    def _nonfinite_weights(self) -> list[str]:
        """'G weights' / 'D weights' for a network holding NaN or Inf (one host sync per network)."""
        return [
            f"{name} weights"
            for name, net in (("G", self.G), ("D", self.D))
            if any(True for _ in net.parameters())
            and not torch.stack([torch.isfinite(p).all() for p in net.parameters()]).all().item()
        ]

    def _diverged(self, bad: list[str]) -> TrainingDiverged:
        last = self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None
        where = (
            f"the last good checkpoint is {last}"
            if last and last.exists()
            else "no checkpoint was written yet"
        )
        hint = (
            ""
            if self.config.on_diverge == "rollback"
            else (
                " (on_diverge='rollback' does this by itself: it reloads the last good state and halves both rates)"
            )
        )
        return TrainingDiverged(
            f"training diverged at step {self.step}: {', '.join(bad)} became NaN/Inf; {where}. "
            f"Lower the learning rates or check the data range, then resume{hint}."
        )

    def _checked_state(self) -> dict[str, Any]:
        """state_dict(), or TrainingDiverged if weights or not-yet-logged losses hold NaN/Inf.

        Checkpoints come from here, so a diverged state never overwrites the last good one on disk.
        """
        bad = (
            [] if torch.isfinite(self._accum).all() else ["losses since the last log"]
        ) + self._nonfinite_weights()
        if bad:
            raise self._diverged(bad)
        return self.state_dict()

    def _snapshot(self, state: dict[str, Any] | None = None) -> None:
        """Keep the last good state in memory (on_diverge='rollback' returns to it); a no-op otherwise."""
        if self.config.on_diverge != "rollback":
            return
        if state is None:
            if self._nonfinite_weights() or not torch.isfinite(self._accum).all():
                return  # nothing good to keep: a later divergence stops instead of rolling back to this
            state = self.state_dict()
        buf = io.BytesIO()
        torch.save(state, buf)
        self._good = buf.getvalue()

    def _rollback(self, error: TrainingDiverged) -> int:
        """Return to the last good checkpoint with both learning rates halved; the number of steps undone.

        Re-raises `error` unless on_diverge='rollback', and stops for good after MAX_ROLLBACKS rollbacks.
        """
        done = sum(e["event"] == "rollback" for e in self.events)
        if self.config.on_diverge != "rollback" or self._good is None:
            raise error
        if done >= MAX_ROLLBACKS:
            raise TrainingDiverged(
                f"{error} Already rolled back {done} times (learning rates now "
                f"{0.5**done:g} x the configured ones); stopping."
            ) from None
        at, events = self.step, self.events
        now = time.perf_counter()
        elapsed = self.elapsed + now - self._t0  # the time spent on the lost steps still counts
        self.load_state_dict(
            torch.load(io.BytesIO(self._good), map_location=self.device, weights_only=True),
            source="the last good checkpoint",
        )
        self.elapsed, self._t0 = elapsed, now
        scale = 0.5 ** (done + 1)
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        self.events = events + [
            {
                "event": "rollback",
                "step": at,
                "to_step": self.step,
                "lr_g": self.config.lr_g * scale,
                "lr_d": self.config.lr_d * scale,
                "reason": str(error).split(";")[0],
            }
        ]
        self._write_metrics("running")
        print(
            f"{str(error).split(';')[0]}: rolled back to step {self.step} with both learning rates x{scale:g} "
            f"(rollback {done + 1} of {MAX_ROLLBACKS})"
        )
        return at - self.step

    @property
    def history(self) -> pd.DataFrame:
        """One row per logging interval: step, epoch, loss_d, loss_g, D(x), D(G(z)), seconds."""
        return pd.DataFrame(self.records, columns=HISTORY_COLUMNS)

    def log_metrics(self, values: dict[str, float]) -> None:
        """Record an evaluation (e.g. FID) at the current step and write metrics.json."""
        row = {"step": self.step, "epoch": self.epoch, "seconds": self.elapsed, **values}
        self.evaluations.append(row)
        self._write_metrics(None)

    def _write_metrics(self, status: str | None) -> None:
        """metrics.json; status None keeps the run's status (an evaluation logged after fit: still finished)."""
        if not self.run_dir:
            return
        if status is None:
            try:
                status = json.loads((self.run_dir / "metrics.json").read_text()).get(
                    "status", "running"
                )
            except (OSError, ValueError):  # not written yet, or unreadable: this run is in progress
                status = "running"
        final = self.evaluations[-1] if self.evaluations else {}
        doc = {
            "preset": self.config.preset,
            "status": status,
            "evaluations": self.evaluations,
            "final": final,
        }
        if self.events:
            doc["events"] = self.events
        (self.run_dir / "metrics.json").write_text(json.dumps(doc, indent=2))

    def fit(self, epochs: int | None = None, *, resume: bool = False) -> pd.DataFrame:
        """Train until `epochs` (default config.epochs) epochs are complete; returns the history."""
        if self.data is None:
            raise ValueError("this Trainer has no data: pass a BatchSource to train")
        if (
            self.config.precision == "bf16"
        ):  # here, not in __init__: a bf16 checkpoint samples (fp32) anywhere
            check_bf16(self.device)
        if resume:
            self.resume()
        target = epochs or self.config.epochs
        steps_left = (target - self.epoch) * len(self.data) - self.batch_in_epoch
        lock = lock_run(self.run_dir) if self.run_dir else None
        outcome = "interrupted"  # what metrics.json says if we leave by an exception or Ctrl-C
        try:
            if (
                self.run_dir
            ):  # temp files of a killed save; we hold the lock, so nobody else is writing them
                for tmp in (self.run_dir / "checkpoints").glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
            self._snapshot()  # the state to return to if training diverges before the first checkpoint
            self._write_metrics(
                "running"
            )  # what a run killed outright (SIGKILL, power cut) is left saying
            with _progress(self.progress, max(steps_left, 0), f"{self.config.preset}") as bar:
                self._t0 = time.perf_counter()
                while self.epoch < target:
                    try:
                        self._fit_epoch(bar)
                    except TrainingDiverged as e:
                        undone = self._rollback(e)
                        if getattr(bar, "total", None) is not None:
                            bar.total += undone
                self._tick()
            self._write_metrics("finished")
            outcome = "finished"
            self._fire("on_fit_end")
        except TrainingDiverged:
            outcome = "diverged"
            raise
        finally:
            self.__dict__.pop("_t0", None)
            if outcome != "finished":
                try:
                    self._write_metrics(outcome)
                except OSError:  # e.g. a full disk: keep the original error
                    pass
            if lock:
                lock.unlink(missing_ok=True)
        return self.history

    def _fit_epoch(self, bar: Any) -> None:
        """The rest of the current epoch: its batches, then the grid, on_epoch_end and the epoch checkpoint."""
        for x, y in self.data.epoch(self.epoch, self.batch_in_epoch):
            self.train_step(x, y)
            self.step += 1
            self.batch_in_epoch += 1
            bar.update(1)
            if self.step % self.config.log_every == 0:
                self._log()
                r = self.records[-1]
                bar.set_postfix(
                    loss_d=f"{r['loss_d']:.3f}",
                    loss_g=f"{r['loss_g']:.3f}",
                    D_x=f"{r['d_real']:.2f}",
                    D_G_z=f"{r['d_fake']:.2f}",
                    refresh=False,
                )
            if (
                self.run_dir
                and self.config.checkpoint_every
                and self.step % self.config.checkpoint_every == 0
            ):
                self.save_checkpoint(keep=True)
            if self.callbacks["on_batch_end"]:
                self._fire("on_batch_end")
        self._log()
        self.epoch += 1
        self.batch_in_epoch = 0
        self._tick()
        self.save_samples()
        self._fire("on_epoch_end")
        if self.run_dir:
            self.save_checkpoint()
        elif self.config.on_diverge == "rollback":
            self._snapshot(
                self._checked_state()
            )  # no folder to write to: keep the epoch's end in memory

    def _tick(self) -> None:
        now = time.perf_counter()
        self.elapsed += now - self._t0
        self._t0 = now

    # ------------------------------------------------------------------ outputs
    def save_samples(self) -> Path | None:
        """The fixed-noise grid of this epoch: samples/epoch_XXXX.png."""
        if not self.run_dir:
            return None
        from .viz import save_grid

        path = self.run_dir / "samples" / f"epoch_{self.epoch:04d}.png"
        save_grid(
            self.sample(len(self.fixed_noise), self.fixed_labels, noise=self.fixed_noise), path
        )
        if not self.records:
            return path
        self.history.to_csv(self.run_dir / "history.csv", index=False)
        return path

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "config": self.config.to_dict(),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "elapsed": self.elapsed,
            "fixed_noise": self.fixed_noise.cpu(),
            "fixed_labels": None if self.fixed_labels is None else self.fixed_labels.cpu(),
            "accum": self._accum.cpu(),
            "accum_n": self._accum_n,
            "records": self.records,
            "evaluations": self.evaluations,
            "events": self.events,
            "rng": rng_state(),
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None, *, keep: bool = False) -> Path:
        """Write checkpoints/last.pt (and step_XXXXXXXX.pt when keep=True, pruned to the last K)."""
        if path is None and not self.run_dir:
            raise ValueError("no run folder: pass a path to save_checkpoint")
        if hasattr(self, "_t0"):
            self._tick()
        state = self._checked_state()
        if path is not None:
            atomic_save(state, Path(path))
            self._snapshot(state)
            return Path(path)
        folder = self.run_dir / "checkpoints"
        # last.pt first: whenever a step_*.pt exists, last.pt is at least as new (a kill in between loses nothing).
        atomic_save(state, folder / "last.pt")
        if keep:
            atomic_save(state, folder / f"step_{self.step:08d}.pt")
            for old in sorted(folder.glob("step_*.pt"))[: -self.config.keep_checkpoints or None]:
                old.unlink(missing_ok=True)
        self._snapshot(state)
        return folder / "last.pt"

    def load_state_dict(self, ckpt: dict[str, Any], *, source: str = "checkpoint") -> None:
        saved = GANConfig.from_dict(ckpt["config"])
        if saved.preset != self.config.preset:
            raise CheckpointError(
                f"{source} is from preset {saved.preset!r}, not {self.config.preset!r}"
            )
        arch = (
            "model",
            "image_size",
            "channels",
            "latent_dim",
            "hidden_dim",
            "g_width",
            "d_width",
            "d_norm",
            "num_classes",
            "cond_dim",
            "cond_mode",
            "minibatch_disc",
        )
        diff = {
            k: (getattr(saved, k), getattr(self.config, k))
            for k in arch
            if getattr(saved, k) != getattr(self.config, k)
        }
        if diff:
            text = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(
                f"{source} has another architecture ({text}); saved with gankit {ckpt['version']}"
            )
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        load_optimizer_state(self.opt_g, ckpt["opt_g"])
        load_optimizer_state(self.opt_d, ckpt["opt_d"])
        self.step, self.epoch, self.batch_in_epoch = (
            ckpt["step"],
            ckpt["epoch"],
            ckpt["batch_in_epoch"],
        )
        self.elapsed = ckpt["elapsed"]
        self.fixed_noise = ckpt["fixed_noise"].to(self.device)
        self.fixed_labels = (
            None if ckpt["fixed_labels"] is None else ckpt["fixed_labels"].to(self.device)
        )
        self._accum, self._accum_n = ckpt["accum"].to(self.device), ckpt["accum_n"]
        self.records, self.evaluations = list(ckpt["records"]), list(ckpt["evaluations"])
        self.events = list(
            ckpt.get("events", [])
        )  # absent in checkpoints written before rollbacks existed
        set_rng_state(ckpt["rng"])

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Continue from a checkpoint; False if there is none yet.

        Default: the run folder's newest readable checkpoint, checkpoints/last.pt, else the newest
        step_*.pt; skipping an unreadable one is said out loud (the loss is the steps between them).
        """
        if path is not None:
            self.load_state_dict(load_checkpoint(path, self.device), source=str(path))
            return True
        candidates = run_checkpoints(self.run_dir) if self.run_dir else []
        for i, path in enumerate(candidates):
            try:
                ckpt = load_checkpoint(path, self.device)
            except CheckpointError as e:
                if i == len(candidates) - 1:
                    raise
                print(f"warning: {e} Trying {candidates[i + 1].name} instead.")
                continue
            self.load_state_dict(ckpt, source=str(path))
            return True
        return False

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        data: BatchSource | None = None,
        *,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> Trainer:
        """Rebuild a Trainer (models, optimizers, history) from a checkpoint; its run folder is the checkpoint's."""
        path = Path(path)
        ckpt = load_checkpoint(path)
        config = GANConfig.from_dict(ckpt["config"])
        G, D = build_models(config)
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
        trainer = cls(
            config, G, D, data, device=device, run_dir=kwargs.pop("run_dir", run_dir), **kwargs
        )
        trainer.load_state_dict(ckpt, source=str(path))
        return trainer


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None: ...


def _progress(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", mininterval=0.5)


def resolve_config(
    preset_or_config: str | GANConfig,
    *,
    profile: str | None = None,
    data_path: str | None = None,
    **overrides: Any,
) -> GANConfig:
    """A preset name under a profile, or a given config, with overrides applied (None values ignored)."""
    from .config import make_config

    if isinstance(preset_or_config, GANConfig):
        changes = {k: v for k, v in dict(overrides, data_path=data_path).items() if v is not None}
        return preset_or_config.replace(**changes)
    return make_config(preset_or_config, profile, data_path=data_path, **overrides)


def setup(
    preset_or_config: str | GANConfig,
    *,
    profile: str | None = None,
    data_path: str | None = None,
    device: str | None = None,
    run_dir: str | os.PathLike | None = "auto",
    progress: bool = True,
    **overrides: Any,
) -> Trainer:
    """Config -> seed -> data -> models -> Trainer: everything a lesson or `gankit train` needs."""
    config = resolve_config(preset_or_config, profile=profile, data_path=data_path, **overrides)
    dev = resolve_device(device)
    seed_everything(config.seed)
    ds = load_dataset(config)
    source = BatchSource(
        ds.images,
        ds.labels if config.conditional else None,
        config.batch_size,
        device=dev,
        seed=config.seed,
        drop_last=config.drop_last,
        augment=config.augment,
        steps_per_epoch=config.steps_per_epoch,
    )
    if (
        config.cond_dim and ds.label_names
    ):  # genre names travel with the checkpoint, for `gankit sample --genres`
        config.extra["label_names"] = list(ds.label_names)
    G, D = build_models(config)
    trainer = Trainer(config, G, D, source, device=dev, run_dir=run_dir, progress=progress)
    trainer.dataset = ds
    return trainer


def train_or_load(
    preset_or_config: str | GANConfig,
    *,
    load: bool = False,
    resume: bool = False,
    callbacks: dict[str, list[Callback]] | None = None,
    runs: str | os.PathLike | None = None,
    **setup_kwargs: Any,
) -> Trainer:
    """What every lesson's training cell calls; returns the Trainer with its history and evaluations.

    load=True: reuse the newest *finished* run trained with exactly this config (no training; trains
    when there is none). resume=True: continue the newest run with this config from its checkpoint
    (e.g. after a Colab session was cut off). Otherwise: a new run. Callbacks are attached either way.
    """
    keys = ("profile", "data_path")
    config = resolve_config(
        preset_or_config,
        **{k: setup_kwargs.pop(k) for k in keys if k in setup_kwargs},
        **{
            k: setup_kwargs.pop(k)
            for k in list(setup_kwargs)
            if k not in ("device", "progress", "run_dir")
        },
    )
    previous = find_run(config, runs, finished=not resume) if (load or resume) else None
    run_dir = previous or (setup_kwargs.pop("run_dir", None) or new_run_dir(config.preset, runs))
    setup_kwargs.pop("run_dir", None)
    trainer = setup(config, run_dir=run_dir, **setup_kwargs)
    for event, fns in (callbacks or {}).items():
        for fn in fns:
            trainer.add_callback(event, fn)
    if previous is not None and trainer.resume():
        print(
            f"{'loaded' if load else 'resumed'} run {previous.name}: epoch {trainer.epoch}, step {trainer.step}"
        )
        if load and not resume:
            return trainer
    trainer.fit()
    return trainer
