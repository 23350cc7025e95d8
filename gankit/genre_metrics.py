"""Does genre conditioning work? A poster genre classifier, per-genre ROC-AUC / AP, FID/KID on it.

The MNIST lessons measure samples with a fixed digit classifier (metrics.py). Posters have no
such standard network, so lesson 04 trains one here, on the training split of the poster set,
and reads generated posters with it: if posters painted for "Horror" are scored as Horror more
than posters painted for other genres, conditioning works. Three numbers side by side make that
readable (`conditioning_report`): the classifier on real held-out posters (the ceiling: how well
genres can be read at all), on generated posters against the genres they were asked for, and on
the same generated posters against shuffled genres (chance: ROC-AUC 0.5, AP = genre frequency).
Frechet distance and KID are computed by torchmetrics in the classifier's penultimate features
(as metrics.py does for MNIST), so they are comparable with each other, not with Inception FIDs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import to_model
from .metrics import ClassifierFeatures, distance_metrics


def split_indices(
    n: int, test_fraction: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) index tensors: a random split of range(n)
    from its own generator (never the global RNG)."""
    if not 0 < test_fraction < 1 or n < 2:
        raise ValueError(
            f"need n >= 2 and 0 < test_fraction < 1, got n={n}, test_fraction={test_fraction}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(1, round(n * test_fraction))
    return perm[k:].sort().values, perm[:k].sort().values


class GenreClassifier(nn.Module):
    """A small multi-label CNN: posters float (B, 3, H, W) in [-1, 1] -> genre logits (B, G).

    Four stride-2 conv blocks (conv, batch norm, ReLU), global average pooling (so any size >= 16
    works), then a hidden layer whose `feature_dim` ReLU activations are the FID/KID feature space.
    """

    def __init__(self, num_genres: int, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        self.num_genres, self.feature_dim = num_genres, feature_dim

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            # bias=False: batch norm's shift makes a conv bias redundant
            return [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]

        w = width
        self.conv = nn.Sequential(
            *block(3, w),  # (B, 3, 64, 64) -> (B, w, 32, 32)
            *block(w, 2 * w),  # -> (B, 2w, 16, 16)
            *block(2 * w, 4 * w),  # -> (B, 4w, 8, 8)
            *block(4 * w, 4 * w),  # -> (B, 4w, 4, 4)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # -> (B, 4w)
        )
        self.hidden = nn.Sequential(nn.Linear(4 * w, feature_dim), nn.ReLU(True))
        self.dropout = nn.Dropout(
            0.2
        )  # only between features and logits: features stay deterministic
        self.head = nn.Linear(feature_dim, num_genres)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feature_dim), >= 0."""
        return self.hidden(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def _as_model(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] (B, 3, H, W) -> float [-1, 1]."""
    if images.dtype == torch.uint8:
        return to_model(images)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 or float in [-1, 1], got {images.dtype}")
    return images.float()


def train_genre_classifier(
    images: torch.Tensor,
    genres: torch.Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> GenreClassifier:
    """Train a GenreClassifier on posters (N, 3, H, W)
    uint8 with genres (N, G) (multi-hot or normalised).

    Targets are the multi-hot version of `genres` (a genre is present or not, whatever the
    encoding); binary cross-entropy per genre, AdamW with a cosine learning rate, random horizontal
    flips. Returns the classifier in eval mode. Deterministic for a seed on one device.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the initial weights
    device = torch.device(device)
    x_all, y_all = images.to(device), (genres > 0).float().to(device)
    n = x_all.shape[0]
    model = GenreClassifier(y_all.shape[1], width).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, n // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g).to(device)
        total = torch.zeros((), device=device)  # summed on the device: one host sync per epoch
        for i in range(max(1, n // batch_size)):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            x = _as_model(x_all[idx])
            flip = (torch.rand(x.shape[0], generator=g) < 0.5).to(device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.binary_cross_entropy_with_logits(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
        if progress:
            print(
                f"genre classifier epoch {epoch + 1}/{epochs}: "
                f"loss {total.item() / max(1, n // batch_size):.4f} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    return model.eval()


@torch.no_grad()
def predict(
    classifier: GenreClassifier, images: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Genre probabilities (N, G) in [0, 1] for posters (N, 3, H, W), uint8 or float in [-1, 1]."""
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    try:
        out = [
            torch.sigmoid(classifier(_as_model(chunk.to(device)))).cpu()
            for chunk in images.split(batch_size)
        ]
    finally:
        classifier.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, classifier.num_genres)


def genre_scores(
    probs: torch.Tensor, genres: torch.Tensor, names: Sequence[str], *, min_positives: int = 10
) -> pd.DataFrame:
    """Per-genre ROC-AUC and average precision of predictions
    `probs` (N, G) against targets `genres` (N, G).

    Only genres with at least `min_positives` positives and one negative among the N targets are
    scored (AUC and AP of a genre seen twice are noise); the rest are left out. Columns: genre,
    positives, prevalence (the AP a random scorer gets), auc, ap. torchmetrics' MultilabelAUROC and
    MultilabelAveragePrecision with average=None.
    """
    from torchmetrics.classification import MultilabelAUROC, MultilabelAveragePrecision

    target = (genres > 0).long()
    pos = target.sum(0)
    keep = ((pos >= min_positives) & (pos < target.shape[0])).nonzero().flatten()
    if len(keep) == 0:
        raise ValueError(
            f"no genre has >= {min_positives} positives and a negative among {target.shape[0]} "
            "posters: score more posters or lower min_positives"
        )
    p, t = probs[:, keep].float(), target[:, keep]
    auc = MultilabelAUROC(num_labels=len(keep), average=None, sync_on_compute=False)(p, t)
    ap = MultilabelAveragePrecision(num_labels=len(keep), average=None, sync_on_compute=False)(p, t)
    return pd.DataFrame(
        {
            "genre": [names[i] for i in keep.tolist()],
            "positives": pos[keep].tolist(),
            "prevalence": (pos[keep].float() / target.shape[0]).tolist(),
            "auc": auc.tolist(),
            "ap": ap.tolist(),
        }
    )


@torch.no_grad()
def feature_distances(
    classifier: GenreClassifier,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    batch_size: int = 256,
    kid_subset: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Frechet distance and KID between real and
    generated posters in the classifier's feature space.

    torchmetrics' FrechetInceptionDistance / KernelInceptionDistance with `feature=` the
    classifier's penultimate layer; KID subsets of min(kid_subset, N_real, N_fake) drawn with
    `seed`. Both are biased by sample count: compare runs at the same counts (returned as n_real,
    n_fake).
    """
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    fid, kid = distance_metrics(
        ClassifierFeatures(classifier),
        device,
        subset_size=min(kid_subset, real.shape[0], fake.shape[0]),
    )
    try:
        for images, is_real in ((real, True), (fake, False)):
            for chunk in images.split(batch_size):
                x = _as_model(chunk.to(device))
                fid.update(x, real=is_real)
                kid.update(
                    x, real=is_real
                )  # the features FID just computed (ClassifierFeatures remembers them)
        fid.inception.forget()
        with torch.random.fork_rng(
            devices=[]
        ):  # KID's subsets use the global RNG: keep it untouched
            torch.manual_seed(seed)
            kid_mean, kid_std = kid.compute()
        fid_value = fid.compute()
    finally:
        classifier.train(was_training)
    return {
        "fid": float(fid_value),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
    }


def conditioning_report(
    classifier: GenreClassifier,
    real_images: torch.Tensor,
    real_genres: torch.Tensor,
    fake_images: torch.Tensor,
    names: Sequence[str],
    *,
    min_positives: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Real held-out vs generated vs shuffled: per-genre table and summary of ROC-AUC and AP.

    real_images (N, 3, H, W) are held-out posters with genres real_genres (N, G); fake_images (N,
    ...) were generated *for those same genre rows*, fake_images[i] asked for real_genres[i].
    'shuffled' scores the same generated posters against a random permutation of the rows (drawn
    with `seed`): identical images, the link to the request broken, so it sits at chance. The same
    genres (those with >= min_positives among the N rows) are scored in all three. Returns
    {'per_genre': DataFrame (genre, positives, prevalence, auc_real, ap_real, auc_generated,
    ap_generated, auc_shuffled, ap_shuffled), 'summary': DataFrame (rows real held-out, generated,
    shuffled; columns mean ROC-AUC, mAP, genres scored, posters)}.
    """
    if fake_images.shape[0] != real_genres.shape[0]:
        raise ValueError(
            f"fake_images must be generated for each of the {real_genres.shape[0]} genre rows, "
            f"got {fake_images.shape[0]} images"
        )
    perm = torch.randperm(real_genres.shape[0], generator=torch.Generator().manual_seed(seed))
    p_real, p_fake = predict(classifier, real_images), predict(classifier, fake_images)
    tables = {
        "real": genre_scores(p_real, real_genres, names, min_positives=min_positives),
        "generated": genre_scores(p_fake, real_genres, names, min_positives=min_positives),
        "shuffled": genre_scores(p_fake, real_genres[perm], names, min_positives=min_positives),
    }
    per = tables["real"][["genre", "positives", "prevalence"]].copy()
    for key, t in tables.items():
        per[f"auc_{key}"], per[f"ap_{key}"] = t["auc"].values, t["ap"].values
    summary = pd.DataFrame(
        {
            "mean ROC-AUC": [t["auc"].mean() for t in tables.values()],
            "mAP": [t["ap"].mean() for t in tables.values()],
            "genres scored": [len(t) for t in tables.values()],
            "posters": [real_genres.shape[0]] * 3,
        },
        index=[
            "real held-out (ceiling)",
            "generated, asked-for genres",
            "generated, shuffled genres (chance)",
        ],
    )
    return {"per_genre": per, "summary": summary}


@torch.no_grad()
def genre_response(
    classifier: GenreClassifier,
    sample: Callable[[torch.Tensor], torch.Tensor],
    names: Sequence[str],
    genres: Sequence[str],
    *,
    n: int = 32,
    mode: str = "multi-hot",
) -> pd.DataFrame:
    """How the classifier reads posters painted for one
    genre at a time: a (genre asked, genre seen) table.

    For each name in `genres`, `sample(y)` paints n posters for y = that genre alone (a (n, G)
    condition encoded with `mode`); the row holds the classifier's mean probability of each of
    `genres`. A working conditional model has a bright diagonal; rows that all look alike mean the
    generator paints one look whatever it is asked for (collapse onto the condition-independent
    average).
    """
    from .datasets.posters import encode_genres

    rows = {}
    cols = [list(names).index(g) for g in genres]
    for g in genres:
        y = encode_genres([[g]] * n, vocab=names, mode=mode)
        rows[g] = predict(classifier, sample(y))[:, cols].mean(0).tolist()
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(genres)).rename_axis(
        index="asked for"
    )
