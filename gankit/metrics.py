"""Sample quality of MNIST generators, measured by a small MNIST classifier shipped in the package.

Why not Inception FID: Inception-v3 weights are downloaded at first use by every FID package
(torchmetrics, torch-fidelity, pytorch-fid, clean-fid) and no package ships them, so Inception FID
cannot run offline; and the FID authors (Heusel et al. 2017) advise a domain-specific network's
features for data as far from ImageNet as MNIST digits. So every distance here (Frechet distance
and KID) is computed by torchmetrics on the penultimate features of `MNISTClassifier`, against the
MNIST test split. The numbers are therefore comparable with each other, not with published
Inception FIDs. Both depend on the number of samples (FID is biased upwards at small counts, KID is
unbiased but spreads more): always report `n_samples` beside them, and read them against
`reference_quality(n)`, what real digits get at that count.

The classifier, its training and its shipped weights: `gankit.classifier`.

Real digits at n=2000 against the 10k test reference
(`reference_quality(2000)`): FID 1.61, KID 0.10 +- 0.45.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import MNISTClassifier, load_classifier
from .config import data_root, resolve_device
from .data import load_mnist, to_model

MIN_CLASS_SHARE = 0.02  # a class "is covered" when at least 2% of samples are classified as it
KID_SUBSET_SIZE = 1000  # the KID paper's subset size; smaller sample sets use all their samples


_SHARED_CLASSIFIERS: dict[str, MNISTClassifier] = {}


def _shared_classifier(device: torch.device) -> MNISTClassifier:
    # one instance per device for mnist_quality's default, so cached reference features stay valid;
    # load_classifier() hands out fresh copies that callers may change freely
    key = str(device)
    if key not in _SHARED_CLASSIFIERS:
        _SHARED_CLASSIFIERS[key] = load_classifier(device)
    return _SHARED_CLASSIFIERS[key]


# ------------------------------------------------------------------------------------------ inputs
def prepare(images: torch.Tensor) -> torch.Tensor:
    """Any image batch -> what the classifier expects: float (N, 1, 28, 28) in [-1, 1].

    Accepts uint8 in [0, 255] or float in [-1, 1] (the generator's Tanh range; float in [0, 1]
    cannot be told apart from it, convert with `gankit.data.to_model` first), shaped (N, C, H, W)
    or (N, H, W). RGB becomes ITU-R 601 luma. 32x32 images (MNIST as the DCGAN presets train it:
    padded by 2 px, see data.load_dataset) are cropped back to their 28x28 centre; other sizes are
    resized with antialiased bilinear interpolation. The input is never modified.
    """
    x = images
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(
            f"images must be (N, C, H, W) or (N, H, W), got shape {tuple(images.shape)}"
        )
    if x.dtype == torch.uint8:
        x = to_model(x)
    elif x.is_floating_point():
        x = x.float()
        if x.numel() and (x.min() < -1.01 or x.max() > 1.01):
            raise ValueError(
                "float images must be in [-1, 1] (the generator's Tanh range), "
                f"got [{x.min().item():.3g}, "
                f"{x.max().item():.3g}]; pass uint8 in [0, 255] or map with gankit.data.to_model"
            )
    else:
        raise TypeError(f"images must be uint8 or float, got {x.dtype}")
    if (
        x.shape[1] == 3
    ):  # luma weights sum to 1, so applying them in [-1, 1] equals applying them in [0, 255]
        w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        x = (x * w).sum(1, keepdim=True)
    elif x.shape[1] != 1:
        raise ValueError(f"images must have 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    if tuple(x.shape[-2:]) == (32, 32):  # MNIST padded to 32 (data.load_dataset): crop it back
        x = x[..., 2:30, 2:30]
    elif tuple(x.shape[-2:]) != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1.0, 1.0)


class ClassifierFeatures(nn.Module):
    """torchmetrics' `feature=` extractor: images -> a classifier's penultimate features (B, F).

    Any classifier with `.features(x)` and `.feature_dim` (the MNIST classifier here, lesson 04's
    genre classifier in gankit.genre_metrics); inputs as that classifier takes them."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = (
            classifier.feature_dim
        )  # torchmetrics reads this instead of a dummy forward
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # FID and KID each featurise the batch they are given, and mnist_quality classifies it too:
        # remembering the last batch computes the classifier once per batch instead of three times.
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        with torch.no_grad():
            f = self.classifier.features(x)
        self._last = (x, f)
        return f

    def forget(self) -> None:
        self._last = None


def distance_metrics(
    feature: torch.nn.Module,
    device: torch.device,
    *,
    subset_size: int = KID_SUBSET_SIZE,
    keep_real: bool = False,
):
    """torchmetrics' FID and KID metrics computed on
    `feature`'s outputs (a classifier's penultimate layer).

    Used for MNIST digits (the shipped classifier) and posters (lesson 04's genre classifier):
    Inception features need a download and do not suit either data set. keep_real=True keeps the
    real features across reset(), so a cached reference is featurised once. The metrics never
    sync across processes (sync_on_compute=False): under torchrun rank 0 alone evaluates.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    with (
        warnings.catch_warnings()
    ):  # KID warns that it keeps all features; 10k x 128 floats is 5 MB
        warnings.simplefilter("ignore")
        fid = FrechetInceptionDistance(
            feature=feature, reset_real_features=not keep_real, sync_on_compute=False
        )
        kid = KernelInceptionDistance(
            feature=feature,
            subset_size=subset_size,
            reset_real_features=not keep_real,
            sync_on_compute=False,
        )
    return fid.to(device), kid.to(device)


_MNIST_CACHE: dict[tuple[str, bool], Any] = {}


def _mnist_split(train: bool):
    key = (str(data_root().resolve()), train)
    if key not in _MNIST_CACHE:
        _MNIST_CACHE[key] = load_mnist(train)
    return _MNIST_CACHE[key]


_REFERENCE_CACHE: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _reference_metrics(
    classifier: MNISTClassifier,
    reference: torch.Tensor | None,
    n_reference: int,
    batch_size: int,
    device: torch.device,
    cache: bool,
):
    """FID and KID metrics holding the reference features
    (MNIST test split unless `reference` is given)."""
    cache = cache and reference is None  # only the default reference is cached
    key = (str(data_root().resolve()), str(device), n_reference)
    if cache and key in _REFERENCE_CACHE:
        fid, kid = _REFERENCE_CACHE[key]
        (
            fid.reset(),
            kid.reset(),
        )  # drops the previous call's samples; reset_real_features=False keeps the reference
        return fid, kid
    if reference is None:
        test = _mnist_split(False)
        if not 2 <= n_reference <= len(test):
            raise ValueError(
                f"n_reference must be in [2, {len(test)}] (the MNIST test split), got {n_reference}"
            )
        reference = test.images[:n_reference]
    fid, kid = distance_metrics(ClassifierFeatures(classifier), device, keep_real=True)
    for chunk in reference.split(batch_size):
        x = prepare(chunk.to(device))
        fid.update(x, real=True)
        kid.update(x, real=True)
    if cache:
        _REFERENCE_CACHE[key] = (fid, kid)
    return fid, kid


# ------------------------------------------------------------------------------------------ metrics
@torch.no_grad()
def mnist_quality(
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    reference: torch.Tensor | None = None,
    n_reference: int = 10000,
    classifier: MNISTClassifier | None = None,
    batch_size: int = 500,
    kid_seed: int = 0,
) -> dict[str, Any]:
    """Quality of generated digits, in the feature space of the MNIST classifier.

    images: generated samples, uint8 or float in [-1, 1], (N, C, H, W) (see `prepare`).
    labels: int (N,) the class each sample was asked for (conditional models), or None.
    reference: real images to compare with (default: the first `n_reference` images of the
    MNIST test split, whose features are cached in-process for the default classifier).
    classifier: default the shipped one, on the device of `images` (CPU for MPS images); a
    classifier of your own is used on its own device (not MPS: FID needs float64).

    Returns a dict; the sample counts come with it because every number below depends on them:
      n_samples, n_reference, kid_subset_size  sample counts used
      fid          Frechet distance between Gaussians fitted to the features (Heusel et al. 2017,
                   eq. 6), torchmetrics' FrechetInceptionDistance with the classifier as feature
                   extractor
      kid_mean, kid_std  Kernel distance (Binkowski et al. 2018): unbiased MMD^2 with a cubic
                   polynomial kernel, mean and std over 100 random subsets of min(1000, N,
                   n_reference) samples (torchmetrics needs subsets no larger than either set);
                   subsets drawn with `kid_seed`
      class_hist   list of 10 fractions: how often each digit was predicted
      kl_uniform   KL(class_hist || uniform) in nats: 0 = all digits equally often, log(10) = 2.303
                   = one digit
      classes_covered  digits with at least a 2% share of the predictions (10 = no dropped mode)
      mean_confidence  mean of the top softmax probability (real test digits: about 0.99)
      cond_accuracy    only with labels: fraction classified as the requested class
    """
    n = images.shape[0]
    if n < 2:
        raise ValueError(
            f"need at least 2 samples for FID/KID, got {n}; use >= 1000 for numbers you can compare"
        )
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must be class ids of shape ({n},), got {tuple(labels.shape)}")
    shared = classifier is None
    if shared:
        # torchmetrics keeps FID statistics in float64, which
        # Apple MPS lacks: measure MPS samples on the CPU
        device = images.device if images.device.type != "mps" else torch.device("cpu")
        classifier = _shared_classifier(device)
    else:
        device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()  # batch norm on running statistics: the features must not depend on the batch
    try:
        fid, kid = _reference_metrics(
            classifier, reference, n_reference, batch_size, device, cache=shared
        )
        counts = torch.zeros(10, dtype=torch.long, device=device)
        confidence = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for i in range(0, n, batch_size):
            x = prepare(images[i : i + batch_size].to(device))
            fid.update(x, real=False)
            kid.update(x, real=False)
            probs = classifier.head(fid.inception(x)).softmax(
                1
            )  # the features just computed (eval: no dropout)
            pred = probs.argmax(1)
            counts += torch.bincount(pred, minlength=10)
            confidence += probs.max(1).values.sum()
            if labels is not None:
                correct += (pred == labels[i : i + batch_size].to(device)).sum()
        n_ref = int(fid.real_features_num_samples)
        kid.subset_size = min(KID_SUBSET_SIZE, n, n_ref)
        # KID draws its subsets with the global torch RNG: fork it, so the result is repeatable and
        # a training run that evaluates every epoch draws the same random numbers as one that does
        # not
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(kid_seed)
            kid_mean, kid_std = kid.compute()
        fid.inception.forget()  # hold no batch between calls
        fid_value = fid.compute()
    finally:
        classifier.train(was_training)
    hist = counts.double() / n
    nonzero = hist[hist > 0]
    result: dict[str, Any] = {
        "n_samples": n,
        "n_reference": n_ref,
        "kid_subset_size": kid.subset_size,
        "fid": float(fid_value),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "class_hist": [float(p) for p in hist.cpu()],
        "kl_uniform": float(
            (nonzero * (nonzero * 10).log()).sum()
        ),  # sum p log(p / (1/10)), 0 log 0 = 0
        "classes_covered": int((hist >= MIN_CLASS_SHARE).sum()),
        "mean_confidence": float(confidence / n),
    }
    if labels is not None:
        result["cond_accuracy"] = float(correct) / n
    return result


def reference_quality(
    n: int,
    *,
    seed: int = 0,
    n_reference: int = 10000,
    classifier: MNISTClassifier | None = None,
    batch_size: int = 500,
    device: str | torch.device | None = "cpu",
) -> dict[str, Any]:
    """`mnist_quality` of n real MNIST *train* images
    (random, drawn with `seed`) with their true labels.

    This is the floor a perfect generator reaches at the same sample count: FID and KID are
    biased upwards for small n, so compare a generator's numbers with these, not with 0.
    """
    train = _mnist_split(True)
    if not 2 <= n <= len(train):
        raise ValueError(f"n must be in [2, {len(train)}] (the MNIST train split), got {n}")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    return mnist_quality(
        train.images[idx].to(device),
        train.labels[idx],
        n_reference=n_reference,
        classifier=classifier,
        batch_size=batch_size,
    )


# ---------------------------------------------------------------------------------------- callbacks
class EvaluateCallback:
    """Trainer callback for 'on_epoch_end': every `every`
    epochs, measure `mnist_quality` of fresh samples.

    Samples `n_samples` images with `trainer.sample` (conditional MNIST models get labels
    0..9 in turn, so cond_accuracy is measured on balanced requests), always from the same
    noise (`seed`) so that the curve over epochs shows the model changing, not the noise. The
    scalars go to `trainer.log_metrics` (class_hist as class_hist_0..9, plus eval_seconds,
    the time this evaluation took); the full dict of the last evaluation is kept in `last`.
    """

    event = "on_epoch_end"

    def __init__(self, every: int = 1, n_samples: int = 2000, *, seed: int = 0) -> None:
        if every < 1 or n_samples < 2:
            raise ValueError(
                f"every must be >= 1 and n_samples >= 2, got every={every}, n_samples={n_samples}"
            )
        self.every, self.n_samples, self.seed = every, n_samples, seed
        self.last: dict[str, Any] | None = None

    def __call__(self, trainer: Any) -> None:
        if trainer.epoch % self.every:
            return
        config = trainer.config
        if getattr(config, "dataset", "mnist") != "mnist" or getattr(config, "cond_dim", 0):
            raise ValueError(
                "EvaluateCallback measures MNIST digits with the MNIST classifier; "
                "this run trains on "
                f"{config.dataset!r}{' with multi-hot conditions' if config.cond_dim else ''}. "
                "Remove the callback."
            )
        start = time.perf_counter()
        labels = None
        if config.num_classes == 10:
            labels = torch.arange(self.n_samples, device=trainer.device) % 10
        # Evaluation must not move training's random
        # numbers: a run trains the same with or without it.
        devices = [trainer.device] if getattr(trainer.device, "type", "cpu") == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            images = trainer.sample(self.n_samples, labels, seed=self.seed)
            quality = mnist_quality(images, labels)
        self.last = quality
        values = {k: float(v) for k, v in quality.items() if k != "class_hist"}
        values.update({f"class_hist_{i}": p for i, p in enumerate(quality["class_hist"])})
        values["eval_seconds"] = time.perf_counter() - start
        trainer.log_metrics(values)


class TensorBoardCallback:
    """Optional trainer callback for 'on_log': losses and evaluations to TensorBoard.

    Each call writes the newest record, `trainer.records[-1]` (loss_d, loss_g, d_real, d_fake,
    seconds at its step), and the evaluations added to `trainer.evaluations` since the last
    call: O(1) in the run's length, never the whole `trainer.history`. `log_dir` defaults to
    `<trainer.run_dir>/tensorboard` when the trainer has a run folder. `writer_cls` (default:
    torch's SummaryWriter, which needs `tensorboard`) is any class with SummaryWriter's
    `add_scalar`, `flush` and `close`.
    """

    event = "on_log"
    SCALARS = ("loss_d", "loss_g", "d_real", "d_fake", "seconds")

    def __init__(
        self, log_dir: str | os.PathLike | None = None, *, writer_cls: type | None = None
    ) -> None:
        if writer_cls is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # torch's module imports the tensorboard package itself
                raise ImportError(
                    "TensorBoardCallback needs TensorBoard: pip install tensorboard"
                ) from e
            writer_cls = SummaryWriter
        self._writer_cls = writer_cls
        self.log_dir = log_dir
        self.writer = None
        self._evaluations_written = 0

    def __call__(self, trainer: Any) -> None:
        if self.writer is None:
            log_dir = self.log_dir
            if log_dir is None:
                run_dir = getattr(trainer, "run_dir", None)
                log_dir = (
                    Path(run_dir) / "tensorboard" if run_dir else None
                )  # None: TensorBoard's ./runs/...
            self.writer = self._writer_cls(log_dir=None if log_dir is None else str(log_dir))
        records = trainer.records
        if records:
            row = records[-1]
            step = int(row.get("step", trainer.step))
            for name in self.SCALARS:
                value = row.get(name)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self.writer.add_scalar(f"train/{name}", float(value), step)
        evaluations = getattr(trainer, "evaluations", [])
        # A rollback or resume can shorten the list: what follows its new end is new.
        start = min(self._evaluations_written, len(evaluations))
        for ev in evaluations[start:]:
            step = int(ev.get("step", trainer.step))
            for name, value in ev.items():
                if name not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"quality/{name}", float(value), step)
        self._evaluations_written = len(evaluations)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
