"""The Trainer: the GAN algorithm (a D step, a G step every n_critic batches) and its loop."""

from __future__ import annotations

import io
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .checkpoints import (
    Checkpointing,
)
from .config import GANConfig, progress_mode, resolve_device
from .data import BatchSource
from .distributed import current, mean_over_ranks, wrap
from .losses import Objective, clip_weights, objective_for
from .runs import RunFolder
from .speed import check_bf16, make_optimizer, memory_format_for
from .speed import scores_per_sample as one_d_call_is_exact

HISTORY_COLUMNS = ["step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "seconds"]
EVENTS = ("on_fit_start", "on_batch_end", "on_log", "on_epoch_end", "on_evaluate", "on_fit_end")
Callback = Callable[["Trainer"], None]
MAX_ROLLBACKS = 3  # on_diverge="rollback": after 3 halvings (lr / 8) the run stops instead


class TrainingDiverged(RuntimeError):
    """Losses or weights became NaN or Inf."""


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter grads for `module` inside (gradients still flow through it to its inputs)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Trainer(Checkpointing):
    """Trains any (G, D) pair on an `Objective`: `d_step` on every batch, `g_step` every `n_critic`.

    `fit` runs epochs of `train_step` and fires events (EVENTS) to callbacks: `fn(trainer)` added
    with `add_callback(event, fn)`, or an object whose `on_<event>` methods are added with
    `add_callback(obj)`; callbacks with a higher `order` run later. Sample grids, checkpoints and
    metrics.json are the `RunFolder` callback's job (`run_dir=` attaches one); the training clock
    (`elapsed`, history `seconds`) stops while callbacks run. `step` counts batches (D steps).

    Under torchrun (gankit.distributed) the same loop runs on every process: G and D train through
    their DDP wrappers `G_train` and `D_train`, the history holds the mean over the processes, and
    only rank 0 writes files and prints.
    """

    _rolling = False  # True inside fit_with_rollback, which calls fit itself

    def __init__(
        self,
        config: GANConfig,
        G: nn.Module,
        D: nn.Module,
        data: BatchSource | None = None,
        *,
        objective: Objective | None = None,
        device: torch.device | str | None = None,
        run_dir: str | os.PathLike | None = None,
        progress: bool | str = True,
    ) -> None:
        self.world = current()  # rank 0 of 1 unless torchrun started several processes
        if config.world_size != self.world.size:  # e.g. a 2-process checkpoint sampled in one
            config = config.replace(world_size=self.world.size)
        if not self.world.is_main:
            progress = False  # one progress bar and one set of lines: rank 0's
        self.config, self.data, self.progress = config, data, progress
        self.device = torch.device(device or (data.device if data else resolve_device()))
        self.memory_format = memory_format_for(config, self.device)  # channels_last on a CPU
        self.G = G.to(self.device, memory_format=self.memory_format)
        self.D = D.to(self.device, memory_format=self.memory_format)
        # What trains: G and D, or on several processes their DDP wrappers, whose backward averages
        # the gradients over the processes. Checkpoints, sampling and metrics use the bare modules.
        self.G_train = wrap(self.G, self.world, sync_bn=config.sync_bn)
        self.D_train = wrap(self.D, self.world, sync_bn=config.sync_bn)
        self.objective = objective or objective_for(config)
        self.opt_g = make_optimizer(config, self.G, config.lr_g)
        self.opt_d = make_optimizer(config, self.D, config.lr_d)
        self.one_d_call = one_d_call_is_exact(self.D)  # score [real; fake] in one call when exact
        self.step = self.epoch = self.batch_in_epoch = 0
        self.elapsed, self.status = 0.0, "new"
        self.records: list[dict[str, float]] = []
        self.evaluations: list[dict[str, float]] = []
        self.events: list[dict[str, Any]] = []  # rollbacks after divergence
        self.callbacks: dict[str, list[Any]] = defaultdict(list)
        self._sums = torch.zeros(5, device=self.device)  # loss_d, loss_g, d_real, d_fake, G steps
        self._zero_one = torch.tensor([0.0, 1.0], device=self.device)  # made once, not each step
        self._n = 0
        # The visualisation noise has its own generator: it never moves with other randomness.
        g = torch.Generator().manual_seed(config.seed + 12345)
        self.fixed_noise = self.noise(config.n_fixed, g)
        # The moving average of G's weights that samples come from (Yazici et al. 2019); G trains.
        self.G_ema = ema_of(self.G, config.ema_decay) if config.ema_decay > 0 else None
        labels = fixed_labels(config, data, g)
        self.fixed_labels = None if labels is None else labels.to(self.device)
        self.run_folder = RunFolder(run_dir) if run_dir else None
        self.run_dir = self.run_folder.path if self.run_folder else None
        if self.run_folder:
            self.add_callback(self.run_folder)

    # ------------------------------------------------------------------ the GAN algorithm
    def d_step(
        self, x_real: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """One update of D on a real batch and a fresh fake batch, G held fixed.

        Goodfellow et al. 2014, Algorithm 1 (inner loop); with a penalty, Gulrajani et al. 2017,
        Algorithm 1, lines 4-9. Returns (loss_d, d_real, d_fake), detached.
        """
        obj = self.objective
        with torch.no_grad():  # G is fixed here: the fakes carry no graph back into G
            x_fake = self.generate(len(x_real), y)
        d_real, d_fake = self.score_pair(x_real, x_fake, y)
        loss_d = obj.d_loss(d_real, d_fake)
        if obj.penalty is not None:  # WGAN-GP: + lambda * E[(||grad D(x_hat)||_2 - 1)^2]
            # through the bare D: its autograd.grad would fire DDP's gradient hooks early; the
            # penalty's weight gradients join the scores' in backward, which DDP averages
            loss_d = loss_d + obj.penalty_weight * obj.penalty(self.D, x_real, x_fake, y)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        if obj.clip_value > 0:  # WGAN: keep D in a compact set, so it stays K-Lipschitz
            clip_weights(self.D, obj.clip_value)
        return loss_d.detach(), d_real.detach(), d_fake.detach()

    def g_step(self, x_real: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """One update of G on a fresh noise batch, through D with D's weights held fixed.

        Goodfellow et al. 2014, Algorithm 1 (last step), with the loss of the Objective
        (non-saturating by default); Gulrajani et al. 2017, Algorithm 1, lines 11-12.
        """
        obj = self.objective
        x_fake = self.generate(len(x_real), y)
        with frozen(self.D):  # D's weight gradients are not needed: only G moves
            loss_g = obj.g_loss(self.score(x_fake, y, self.D))  # bare D: no gradients to average
            if obj.g_extra is not None:  # e.g. feature matching (Salimans et al. 2016)
                loss_g = loss_g + obj.g_extra(self.D, x_real, x_fake, y)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return loss_g.detach()

    def train_step(self, x_real: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """One batch: a D step, a G step when n_critic divides `step + 1`; advances `step`."""
        x_real = x_real.contiguous(memory_format=self.memory_format)  # no-op unless channels_last
        with self._autocast():
            loss_d, d_real, d_fake = self.d_step(x_real, y)
            g_turn = (self.step + 1) % self.config.n_critic == 0
            loss_g = self.g_step(x_real, y) if g_turn else self._zero_one[0]
        if g_turn and self.G_ema is not None:
            self.G_ema.update_parameters(self.G)
        p = self.objective.as_probability
        self._sums += torch.stack(
            [loss_d, loss_g, p(d_real).mean(), p(d_fake).mean(), self._zero_one[int(g_turn)]]
        )  # summed on the device: no host sync until the next log
        self._n += 1
        self.step += 1

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), (n, latent_dim); U[0, 1) for the lesson-01 pitfall `latent="uniform"`."""
        draw = torch.rand if self.config.latent == "uniform" else torch.randn
        z = draw(
            n, self.config.latent_dim, generator=generator, device="cpu" if generator else None
        )
        return z.to(self.device)

    def generate(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z) for n fresh noise vectors (and their conditions y)."""
        G = self.G_train
        return G(self.noise(n)) if y is None else G(self.noise(n), y)

    def score(
        self, x: torch.Tensor, y: torch.Tensor | None = None, D: nn.Module | None = None
    ) -> torch.Tensor:
        """D(x) (or D(x, y)): logits for BCE, critic scores for WGAN, shape (B,).

        Through D_train unless `D` is given. The G step passes the bare D: under DDP a wrapped
        module's forward expects a backward that reaches all its weights, and a frozen D's never
        does (its gradients are not needed; G's are averaged by G's wrapper)."""
        D = self.D_train if D is None else D
        return D(x) if y is None else D(x, y)

    def score_pair(self, x_real: torch.Tensor, x_fake: torch.Tensor, y: torch.Tensor | None):
        """(D(x_real), D(x_fake)), in one call on [real; fake] if D scores samples independently."""
        if not self.one_d_call:  # batch norm mixes the samples of a batch: two calls
            return self.score(x_real, y), self.score(x_fake, y)
        scores = self.score(torch.cat([x_real, x_fake]), None if y is None else torch.cat([y, y]))
        return scores[: len(x_real)], scores[len(x_real) :]

    # ------------------------------------------------------------------ the loop
    def fit(self, epochs: int | None = None) -> pd.DataFrame:
        """Train until `epochs` (default config.epochs) are complete; returns the history.

        With config.on_diverge == "rollback" a divergence returns to the last good state instead of
        stopping (`fit_with_rollback`).
        """
        if self.config.on_diverge == "rollback" and not self._rolling:
            return fit_with_rollback(self, epochs)
        if self.data is None:
            raise ValueError("this Trainer has no data: pass a BatchSource to train")
        if self.config.precision == "bf16":  # here: a bf16 checkpoint still samples on any device
            check_bf16(self.device)
        target = epochs or self.config.epochs
        left = max((target - self.epoch) * len(self.data) - self.batch_in_epoch, 0)
        self._t0, self.status = time.perf_counter(), "running"
        mode = progress_mode(self.progress)
        bar = tqdm(total=left, desc=self.config.preset, unit="step", disable=mode != "bar")
        try:
            self._fire("on_fit_start")
            while self.epoch < target:
                for x, y in self.data.epoch(self.epoch, self.batch_in_epoch):
                    self.train_step(x, y)
                    self.batch_in_epoch += 1
                    bar.update()
                    if self.step % self.config.log_every == 0:
                        self._log()
                        bar.set_postfix({k: f"{self.records[-1][k]:.3f}" for k in EVENT_KEYS})
                    self._fire("on_batch_end")
                self._log()
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                if mode == "epochs" and self.world.is_main:  # what an executed notebook keeps
                    print(epoch_line(self, target), flush=True)
                self._fire("on_epoch_end")
            self.status = "finished"
        except TrainingDiverged:
            self.status = "diverged"
            raise
        except BaseException:
            self.status = "interrupted"
            raise
        finally:
            bar.close()
            self._clock()
            del self._t0
            self._fire("on_fit_end")
        return self.history

    def _log(self) -> None:
        """Turn the sums since the last log into one history row: the loop's only host sync."""
        if self._n == 0:
            return
        s, n = mean_over_ranks(self._sums, self.world).tolist(), self._n  # the global batch's
        row = {
            "step": self.step,
            "epoch": self.epoch + self.batch_in_epoch / max(len(self.data), 1),
            "loss_d": s[0] / n,
            "loss_g": s[1] / s[4] if s[4] else math.nan,
            "d_real": s[2] / n,
            "d_fake": s[3] / n,
            "seconds": self._clock(),
        }
        self._sums.zero_()
        self._n = 0
        bad = [k for k in ("loss_d", "loss_g", "d_real", "d_fake") if not math.isfinite(row[k])]
        bad = [k for k in bad if k != "loss_g" or s[4]] + nonfinite_weights(self)
        if bad:
            raise diverged(self, bad)
        self.records.append(row)
        self._fire("on_log")

    def _clock(self) -> float:
        """Training seconds so far: the clock runs only inside fit, and not while callbacks run."""
        if hasattr(self, "_t0"):
            now = time.perf_counter()
            self.elapsed, self._t0 = self.elapsed + now - self._t0, now
        return self.elapsed

    def add_callback(self, event: str | Any, fn: Callback | None = None) -> None:
        """add_callback("on_epoch_end", fn), or add_callback(obj) for obj's on_<event> methods."""
        if fn is None:
            pairs = [(e, getattr(event, e)) for e in EVENTS if hasattr(event, e)]
            if not pairs:
                raise ValueError(f"{event!r} has none of the methods {', '.join(EVENTS)}")
        elif event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; use one of {', '.join(EVENTS)}")
        else:
            pairs = [(event, fn)]
        for e, f in pairs:  # stable sort: equal orders run in the order they were added
            self.callbacks[e] = sorted([*self.callbacks[e], f], key=_order)

    def _fire(self, event: str) -> None:
        running = hasattr(self, "_t0")
        self._clock()
        if running:  # the clock stops while callbacks run: their time is not training time
            del self._t0
        try:
            for fn in self.callbacks[event]:
                fn(self)
        finally:
            if running:
                self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ sampling and results
    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        noise: torch.Tensor | None = None,
        raw: bool = False,
    ) -> torch.Tensor:
        """n images in [-1, 1], (n, C, H, W), from z * temperature.

        From the moving average of G's weights when the config keeps one (`raw=True`: from G
        itself), in eval mode (batch norm uses its running statistics).
        """
        G = self.G if raw or self.G_ema is None else self.G_ema.module
        if noise is None:
            noise = self.noise(n, torch.Generator().manual_seed(seed) if seed is not None else None)
        if self.config.conditional and labels is None:
            raise ValueError("this model is conditional: pass labels (class ids or genre vectors)")
        was_training = G.training
        G.eval()
        try:
            ys = labels.to(self.device).split(500) if labels is not None else [None] * n
            out = [
                G(z * temperature) if y is None else G(z * temperature, y)
                for z, y in zip(noise.split(500), ys)
            ]
        finally:
            G.train(was_training)
        return torch.cat(out).contiguous()  # plain NCHW for callers, whatever the training layout

    @property
    def history(self) -> pd.DataFrame:
        """One row per logging interval: step, epoch, loss_d, loss_g, D(x), D(G(z)), seconds."""
        return pd.DataFrame(self.records, columns=HISTORY_COLUMNS)

    def log_metrics(self, values: dict[str, float]) -> None:
        """Record an evaluation (e.g. FID) at the current step; fires on_evaluate (metrics.json)."""
        self.evaluations.append(
            {"step": self.step, "epoch": self.epoch, "seconds": self._clock(), **values}
        )
        self._fire("on_evaluate")

    def checked_state(self) -> dict[str, Any]:
        """state_dict(), or TrainingDiverged when weights or unlogged losses hold NaN/Inf."""
        sums = mean_over_ranks(self._sums, self.world)  # every rank decides alike
        bad = [] if torch.isfinite(sums).all() else ["losses since the last log"]
        if bad or nonfinite_weights(self):
            raise diverged(self, bad + nonfinite_weights(self))
        return self.state_dict()

    def _autocast(self) -> Any:
        bf16 = self.config.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


EVENT_KEYS = ("loss_d", "loss_g", "d_real", "d_fake")  # the progress bar's numbers (glossary names)


def ema_of(G: nn.Module, decay: float) -> AveragedModel:
    """torch's AveragedModel of G as an exponential moving average with a warm-up: the weight of the
    old average is min(decay, (1 + n) / (10 + n)) after n updates (as TensorFlow's
    ExponentialMovingAverage with num_updates), so short runs average over their few steps too.
    Batch-norm statistics are averaged like the weights."""

    def average(avg: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        keep = torch.clamp((1 + n) / (10 + n), max=decay)  # a tensor: no host sync
        return avg + (current - avg) * (1 - keep)

    return AveragedModel(G, avg_fn=average, use_buffers=True).requires_grad_(False)


def epoch_line(trainer: Trainer, target: int) -> str:
    """One plain progress line: epoch, step, the last logged losses and the training time."""
    r = trainer.records[-1] if trainer.records else {}
    values = ", ".join(f"{k} {r[k]:.3f}" for k in EVENT_KEYS if k in r)
    return (
        f"{trainer.config.preset} epoch {trainer.epoch}/{target}: step {trainer.step}, {values}, "
        f"{trainer.elapsed:.0f} s"
    )


def nonfinite_weights(trainer: Trainer) -> list[str]:
    """'G weights' / 'D weights' for a network holding NaN or Inf (one host sync per network)."""
    return [
        f"{name} weights"
        for name, net in (("G", trainer.G), ("D", trainer.D))
        if not torch.stack([torch.isfinite(p).all() for p in net.parameters()]).all().item()
    ]


def diverged(trainer: Trainer, bad: list[str]) -> TrainingDiverged:
    """The error for a run whose `bad` values became NaN/Inf, naming the last good checkpoint."""
    last = trainer.run_dir / "checkpoints" / "last.pt" if trainer.run_dir else None
    where = (
        f"the last good checkpoint is {last}"
        if last and last.exists()
        else ("no checkpoint was written yet")
    )
    hint = (
        ""
        if trainer.config.on_diverge == "rollback"
        else (
            " (on_diverge='rollback' does this by itself: it reloads the last good state and "
            "halves both rates)"
        )
    )
    return TrainingDiverged(
        f"training diverged at step {trainer.step}: {', '.join(bad)} became NaN/Inf; {where}. "
        f"Lower the learning rates or check the data range, then resume{hint}."
    )


def fixed_labels(config: GANConfig, data: BatchSource | None, g: torch.Generator) -> Any:
    """Per-epoch grid conditions: classes 0..K-1 in turn, or genre rows drawn from the data."""
    n = config.n_fixed
    if config.num_classes:
        return torch.arange(n) % config.num_classes
    if config.cond_dim and data is not None and data.labels is not None:
        idx = torch.randperm(data.labels.shape[0], generator=g)[:n]
        return data.labels[idx.to(data.labels.device)].cpu()
    if config.cond_dim:
        return nn.functional.one_hot(torch.arange(n) % config.cond_dim, config.cond_dim).float()
    return None


def _order(callback: Any) -> int:
    return getattr(getattr(callback, "__self__", callback), "order", 0)


# ---------------------------------------------------------------------- divergence: roll back
class Rollback:
    """Keeps the last good state in memory.

    Taken at fit start, every checkpoint_every steps and at each epoch end.
    """

    order = 100  # after evaluations, like the run folder's checkpoints

    def __init__(self) -> None:
        self.good: bytes | None = None

    def keep(self, trainer: Trainer) -> None:
        sums = mean_over_ranks(trainer._sums, trainer.world)  # every rank decides alike
        if nonfinite_weights(trainer) or not torch.isfinite(sums).all():
            return  # nothing good to keep: a later divergence stops instead
        buf = io.BytesIO()
        torch.save(trainer.state_dict(), buf)
        self.good = buf.getvalue()

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.good is None:
            self.keep(trainer)

    def on_batch_end(self, trainer: Trainer) -> None:
        every = trainer.config.checkpoint_every
        if every and trainer.step % every == 0:
            self.keep(trainer)

    on_epoch_end = keep


def fit_with_rollback(trainer: Trainer, epochs: int | None = None) -> pd.DataFrame:
    """fit, but a divergence reloads the last good state with both learning rates halved (at most
    MAX_ROLLBACKS times; then it stops with TrainingDiverged)."""
    keeper = Rollback()
    trainer.add_callback(keeper)
    trainer._rolling = True
    try:
        while True:
            try:
                return trainer.fit(epochs)
            except TrainingDiverged as error:
                done = sum(e["event"] == "rollback" for e in trainer.events)
                if keeper.good is None:
                    raise
                if done >= MAX_ROLLBACKS:
                    raise TrainingDiverged(
                        f"{error} Already rolled back {done} times (learning rates now "
                        f"{0.5**done:g} x the configured ones); stopping."
                    ) from None
                at, events, elapsed = trainer.step, trainer.events, trainer.elapsed
                state = torch.load(io.BytesIO(keeper.good), map_location=trainer.device)
                trainer.load_state_dict(state, source="the last good state")
                trainer.elapsed = elapsed  # the time spent on the lost steps still counts
                scale, reason = 0.5 ** (done + 1), str(error).split(";")[0]
                for opt, lr in (
                    (trainer.opt_g, trainer.config.lr_g),
                    (trainer.opt_d, trainer.config.lr_d),
                ):
                    for group in opt.param_groups:
                        group["lr"] = lr * scale
                trainer.events = events + [
                    {
                        "event": "rollback",
                        "step": at,
                        "to_step": trainer.step,
                        "lr_g": trainer.config.lr_g * scale,
                        "lr_d": trainer.config.lr_d * scale,
                        "reason": reason,
                    }
                ]
                print(
                    f"{reason}: rolled back to step {trainer.step} with both learning rates "
                    f"x{scale:g} (rollback {done + 1} of {MAX_ROLLBACKS})"
                )
    finally:
        trainer._rolling = False
        for event in EVENTS:
            trainer.callbacks[event] = [
                f for f in trainer.callbacks[event] if getattr(f, "__self__", None) is not keeper
            ]
