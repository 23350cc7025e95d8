# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 01: a vanilla GAN with two small MLPs on MNIST
#
# > **Run time:** about 8 minutes with the `cpu` profile on a 2-core laptop-class CPU (measured);
# > on a GPU the `full` profile trains the full preset (not yet measured on a lent GPU).
# > **Prerequisites:** PyTorch basics (modules, `backward`, an optimizer step), and the binary
# > cross-entropy of a classifier. **You will build:** the D and G losses, one step of the GAN
# > algorithm, and a 2-D GAN you can watch; then you train an MLP GAN on MNIST and measure it.
# > **Next:** lesson 02 replaces the MLPs with convolutions (DCGAN).
#
# A generator $G$ turns 64 random numbers into a 28x28 digit; a discriminator $D$ tells real
# digits from generated ones; both learn at once. This lesson trains that pair on MNIST, and
# reads the run like a report: the objective and why its gradient matters, the data, the
# models, the losses while they train, the samples, and numbers that say how good the samples
# are. Two short experiments then show what the generator's loss and the latent distribution
# change.
#
# The first cell matters only on Google Colab (it installs gankit there); the second sets the
# run up. With `LOAD_RUN = True` the lesson reuses your last finished run instead of training
# again, so you can come back to the plots without waiting.

# %%
# Colab only: install gankit, optionally keep runs on Google Drive so a cut-off session can resume.
# Where pip gets gankit: the course repository; or a wheel from `make dist` uploaded to Drive
# ("/content/drive/MyDrive/gankit-0.1.0-py3-none-any.whl"); or a folder (README, "Colab").
GANKIT_SOURCE = "git+https://github.com/gankit-course/gankit"
import os
import sys

IN_COLAB = "google.colab" in sys.modules
USE_DRIVE = False  # True: runs (checkpoints) go to /content/drive/MyDrive/gankit/runs
if IN_COLAB:
    if USE_DRIVE or GANKIT_SOURCE.startswith("/content/drive"):
        from google.colab import drive

        drive.mount("/content/drive")
    if USE_DRIVE:
        os.environ["GANKIT_RUNS"] = "/content/drive/MyDrive/gankit/runs"
    # %pip install -q "{GANKIT_SOURCE}"

# %% tags=["nbval-ignore-output"]
LOAD_RUN = False  # True: reuse the last finished run instead of training
RESUME = False  # True: continue the newest run of this config from its last checkpoint

import inspect
import math
import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Image as Image_
from IPython.display import Markdown, display
from PIL import Image

import gankit
from gankit import losses
from gankit.config import make_config, resolve_device, resolve_profile
from gankit.data import load_dataset, to_model
from gankit.exercises import check_d_loss, check_g_loss, check_gan_step
from gankit.lesson import setup, train_or_load
from gankit.metrics import EvaluateCallback, mnist_quality, reference_quality
from gankit.models import build_models, count_parameters
from gankit.toy import (
    Snapshots,
    animate,
    draw,
    g_loss_gradient,
    ring,
    ring_quality,
    surface,
    toy_trainer,
)
from gankit.train import Trainer
from gankit.viz import compare_runs, plot_losses, progress_gif, show_gif, show_grid, show_grids

device = resolve_device()  # GANKIT_DEVICE, else cuda, mps, cpu
profile = resolve_profile()  # GANKIT_PROFILE, else full on a GPU and cpu otherwise
config = make_config("mlp-mnist", profile)
# Budgets that follow the profile:
# samples per quality evaluation, and the length of the side experiments.
N_EVAL = {"smoke": 256, "cpu": 2000, "full": 5000}[profile]
SIDE_EPOCHS = {"smoke": 2, "cpu": 3, "full": 10}[profile]
TOY_STEPS = {"smoke": 200, "cpu": 1000, "full": 2000}[profile]  # the 2-D game of section 1b

print(f"gankit {gankit.__version__}, torch {torch.__version__}: profile {profile!r} on {device}")
print(f"quality evaluations use {N_EVAL} samples; side experiments train {SIDE_EPOCHS} epochs each")
print("\n".join(textwrap.wrap(repr(config), 110)))

# %% [markdown]
# ## What you will learn
#
# 1. The GAN objective as a two-player game, the discriminator's binary cross-entropy, and the
#    two generator losses (saturating *minimax* and *non-saturating*); why the second one
#    gives the generator a usable gradient at the start, shown with numbers.
# 2. How to get MNIST into the range the generator produces ($[-1, 1]$, to match its Tanh).
# 3. How to read the loss curves of a GAN: what $D(x) \approx D(G(z)) \approx 0.5$ means,
#    where $2\log 2$ comes from, and what a collapse looks like.
# 4. How to judge samples with numbers, not only with your eyes: a Frechet distance in the
#    features of an MNIST classifier, the number of digit classes the generator covers, and the
#    classifier's confidence, always next to the value real digits get at the same sample count.
# 5. Two classic mistakes, measured: the saturating generator loss, and a uniform latent
#    (`torch.rand` where `torch.randn` was meant).

# %% [markdown]
# ## 1. The objective
#
# Goodfellow et al. (2014) set up a two-player game. The discriminator $D(x) \in (0, 1)$ is the
# probability that $x$ is real; the generator maps noise $z \sim p(z) = \mathcal N(0, I)$ to
# images $G(z)$:
#
# $$
# \min_G \max_D \; V(D, G) = \mathbb E_{x \sim p_\text{data}}\big[\log D(x)\big]
#   + \mathbb E_{z \sim p(z)}\big[\log\big(1 - D(G(z))\big)\big].
# $$
#
# Our discriminator outputs a **logit** $d$ and $D = \sigma(d)$, the sigmoid; the losses apply
# the sigmoid themselves (`binary_cross_entropy_with_logits`), which is exact where $\log\sigma$
# would underflow. With $d_\text{real} = $ logit of a real batch and $d_\text{fake} = $ logit of a
# generated one:
#
# **Discriminator** (maximising $V$ = minimising binary cross-entropy with target 1 for real, 0 for
# fake):
# $$
# \mathcal L_D = -\mathbb E\big[\log \sigma(d_\text{real})\big] -
#   \mathbb E\big[\log\big(1 - \sigma(d_\text{fake})\big)\big].
# $$
#
# **Generator, saturating (minimax)**: minimise the game's own term, $\mathcal L_G^\text{mm} =
# \mathbb E\big[\log\big(1 - \sigma(d_\text{fake})\big)\big] =
# -\mathbb E\big[\operatorname{softplus}(d_\text{fake})\big]$.
#
# **Generator, non-saturating**: minimise $\mathcal L_G^\text{ns} =
# -\mathbb E\big[\log \sigma(d_\text{fake})\big] =
# \mathbb E\big[\operatorname{softplus}(-d_\text{fake})\big]$, i.e. "make $D$ call the fakes real".
# Both push $D(G(z))$ up and have the same fixed point; they differ in *how hard* they push. Per
# sample, the derivatives with respect to the logit are
#
# $$
# \frac{\partial \mathcal L_G^\text{mm}}{\partial d} = -\sigma(d), \qquad
# \frac{\partial \mathcal L_G^\text{ns}}{\partial d} = -\big(1 - \sigma(d)\big), \qquad
# \frac{|\partial \mathcal L_G^\text{ns} / \partial d|}{|\partial \mathcal L_G^\text{mm} /
#   \partial d|} = e^{-d}.
# $$
#
# Early in training the fakes are bad, $D$ rejects them confidently, $d_\text{fake} \ll 0$ and
# $\sigma(d_\text{fake}) \approx e^{d_\text{fake}}$: the minimax gradient is almost zero exactly
# when the generator most needs a signal, while the non-saturating gradient is almost 1. Here
# are the library's loss functions (the notebook uses these, it does not redefine them):

# %%
for fn in (losses.d_loss_bce, losses.g_loss_minimax, losses.g_loss_non_saturating):
    print(inspect.getsource(fn))

# %% [markdown]
# And their gradients, computed by autograd through those same functions at a few logits
# (`|dL/dd|` per sample: the losses average over the batch, so we scale by the batch size). The
# assertions check autograd against the closed forms above.

# %%
logits = torch.tensor([-8.0, -6.0, -4.0, -2.0, 0.0, 2.0], dtype=torch.float64)
grads = {}
for name, loss_fn in [
    ("minimax", losses.g_loss_minimax),
    ("non-saturating", losses.g_loss_non_saturating),
]:
    d_fake = logits.clone().requires_grad_(True)
    (loss_fn(d_fake) * len(d_fake)).backward()  # x batch size: each logit's own gradient
    grads[name] = d_fake.grad.abs()

p_fake = torch.sigmoid(logits)
assert torch.allclose(grads["minimax"], p_fake) and torch.allclose(
    grads["non-saturating"], 1 - p_fake
)
table = pd.DataFrame(
    {
        "logit d_fake": logits.numpy(),
        "D(G(z))": p_fake.numpy(),
        "|dL/dd| minimax": grads["minimax"].numpy(),
        "|dL/dd| non-saturating": grads["non-saturating"].numpy(),
        "ratio ns / minimax": (grads["non-saturating"] / grads["minimax"]).numpy(),
    }
)
print(
    table.to_string(
        index=False,
        formatters={
            "logit d_fake": "{:.0f}".format,
            "D(G(z))": "{:.5f}".format,
            "|dL/dd| minimax": "{:.5f}".format,
            "|dL/dd| non-saturating": "{:.5f}".format,
            "ratio ns / minimax": "{:.1f}".format,
        },
    )
)

# %% [markdown]
# At $d_\text{fake} = -6$ ($D$ gives the fakes 0.25%), the non-saturating loss pushes about 400
# times harder than the minimax loss. Once $D(G(z))$ passes 0.5 the roles swap, but by then the
# generator has something to work with. Section 7 measures what this does to a real run.

# %% [markdown]
# ### Your turn: the two losses
#
# Write $D$'s loss and the non-saturating $G$ loss yourself, on **logits** (what `D` returns) and
# averaged over the batch:
#
# $$\mathcal L_D = -\mathbb E[\log\sigma(d_\text{real})] -
#   \mathbb E[\log(1 - \sigma(d_\text{fake}))],
# \qquad \mathcal L_G = -\mathbb E[\log\sigma(d_\text{fake})].$$
#
# Use `F.binary_cross_entropy_with_logits` (or `F.softplus`): $\log\sigma(d)$ computed as written
# overflows for confident logits. The check cell compares your functions with the closed forms and
# says what is wrong; until you write them it says so, and the lesson uses the library's.

# %%
import torch.nn.functional as F


def my_d_loss(d_real, d_fake):
    ### BEGIN SOLUTION
    loss_real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    loss_fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return loss_real + loss_fake
    ### END SOLUTION


def my_g_loss(d_fake):
    ### BEGIN SOLUTION
    return F.softplus(-d_fake).mean()  # -log sigmoid(d) = softplus(-d)
    ### END SOLUTION


# %%
d_loss_fn = check_d_loss(my_d_loss)
g_loss_fn = check_g_loss(my_g_loss)

# %% [markdown]
# ## 1b. The game in two dimensions
#
# Before digits, a data set you can see whole: 2-D points from a **ring of 8 Gaussians** (centres
# on a circle of radius 2, standard deviation 0.05). $G$ maps 2-D noise to a point, $D$ scores a
# point; both are small MLPs, trained by the same `Trainer` as the digits below, a thousand steps in
# a few seconds. Each picture shows $D(x)$ over the plane as colour (yellow: "real", dark: "fake"),
# the real points in grey and $G$'s samples from fixed noise in red. A mode counts as *covered*
# when at least 1% of the samples land within 3 standard deviations of its centre (Srivastava et
# al. 2017).
#
# What to look for: $D$ first separates the red cloud from the ring, and $G$'s samples move up
# $D$'s slope, towards the yellow regions. A frame with red points on only some of the modes is a
# *partial mode collapse*; a mode that $D$ lights up yellow while no red point reaches it is a mode
# $G$ is missing, and $D$ is telling it so. The table counts the modes covered over training for
# both generator losses and three seeds each: how much of a difference is luck, it shows.

# %% tags=["nbval-ignore-output"]
toy_real = ring(2000, seed=99)
toy = {}
for g_loss in ("non-saturating", "minimax"):
    for seed in (0, 1, 2):
        t = toy_trainer(seed=seed, g_loss=g_loss, steps_per_epoch=100, epochs=TOY_STEPS // 100)
        snaps = Snapshots(every=TOY_STEPS // 10)
        t.add_callback(snaps)
        t.fit()
        toy[g_loss, seed] = (t, snaps)
frames = toy["non-saturating", 0][1].frames
picked = [frames[i] for i in (0, 1, 2, 4, 7, -1)]
fig, axes = plt.subplots(1, len(picked), figsize=(2.6 * len(picked), 2.9))
for ax, frame in zip(axes, picked):
    draw(ax, frame, real=toy_real)
fig.suptitle("non-saturating loss, seed 0: D(x) in colour, G's samples in red")
fig.tight_layout()
plt.show()
Image_(data=animate(frames, toy_real), format="gif")  # the same run, every frame

# %% tags=["nbval-ignore-output"]
toy_table = pd.DataFrame(
    [
        {
            "G loss": g_loss,
            "seed": seed,
            **{f"modes at step {f['step']}": f["modes_covered"] for f in snaps.frames[2::3]},
            "high-quality share (end)": round(snaps.frames[-1]["high_quality"], 2),
        }
        for (g_loss, seed), (t, snaps) in toy.items()
    ]
)
toy_table

# %% [markdown]
# **The generator's gradient, drawn.** Early in training $D$ can reject $G$'s samples with
# confidence (Goodfellow et al.): train $D$ alone for 40 steps against the untrained $G$, then
# draw for each red point the direction its loss pushes it, $-\nabla_x \mathcal L_G$, for both
# losses through the *same* $D$, on one scale (the longest non-saturating arrow is 1 unit long).
# Where $D(G(z))$ is small the minimax arrows nearly vanish: that is the saturation of section 1,
# on points you can see.

# %% tags=["nbval-ignore-output"]
# D alone for 40 steps (n_critic larger than the run: no G step) against the untrained G
early = toy_trainer(seed=0, n_critic=1000, steps_per_epoch=40, epochs=1)
early.fit()
fake = early.sample(300, seed=1)
arrows = {  # the same D and the same fakes, the two generator losses
    "non-saturating": g_loss_gradient(early, fake, losses.g_loss_non_saturating),
    "minimax": g_loss_gradient(early, fake, losses.g_loss_minimax),
}
p_fake = torch.sigmoid(early.D(fake)).detach()
frame = {"step": early.step, "fake": fake, "surface": surface(early), **ring_quality(fake)}
fig, axes = plt.subplots(1, 2, figsize=(9, 4.3))
for ax, (name, grad) in zip(axes, arrows.items()):
    draw(ax, frame, real=toy_real)
    longest = arrows["non-saturating"].norm(dim=1).max()  # one scale for both panels
    ax.quiver(*fake.T, *grad.T, color="white", width=0.004, angles="xy", scale_units="xy",
              scale=float(longest))  # fmt: skip
    ax.set_title(f"{name}: mean |push| {grad.norm(dim=1).mean():.3f}")
fig.tight_layout()
plt.show()
ratio = arrows["non-saturating"].norm(dim=1) / arrows["minimax"].norm(dim=1)
predicted = (1 - p_fake) / p_fake  # e^{-d} of section 1, for each sample's logit d
print(
    f"step {early.step}: mean D(G(z)) = {p_fake.mean():.3f}; for the median sample the "
    f"non-saturating push is {ratio.median():.1f}x the minimax push "
    f"(section 1's e^(-d) = (1 - D) / D predicts {predicted.median():.1f}x)"
)
assert torch.allclose(ratio, predicted, rtol=1e-3)

# %% [markdown]
# ## 2. The data
#
# MNIST: 60,000 training digits, 28x28, grey. gankit keeps the whole set in memory as `uint8`
# (N, 1, 28, 28) and serves shuffled batches straight from the training device, converting each
# batch with `to_model` to floats in $[-1, 1]$: the range of the generator's final Tanh. If real
# and fake images lived in different ranges, the discriminator could tell them apart by range
# alone and teach the generator nothing about digits.

# %% tags=["nbval-ignore-output"]
data = load_dataset(config)  # the smoke profile uses only the first 2048 images
print(data.summary, f"-> {len(data)} used for training")
show_grid(to_model(data.images[:64]), "64 real training digits", size=4.5)
plt.show()

# %%
x_stored = data.images[:1024]
x_model = to_model(x_stored)
print(
    f"stored:     {x_stored.dtype}, shape {tuple(x_stored.shape)}, range [{x_stored.min()}, "
    f"{x_stored.max()}]"
)
print(
    f"model sees: {x_model.dtype}, shape {tuple(x_model.shape)}, range [{x_model.min():.1f}, "
    f"{x_model.max():.1f}]"
)
assert x_model.min() == -1.0 and x_model.max() == 1.0  # exactly the Tanh range, both ends used

# %% tags=["nbval-ignore-output"]
counts = torch.bincount(data.labels, minlength=10)
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.bar(range(10), (counts / counts.sum()).numpy())
ax.axhline(0.1, ls=":", c="gray", lw=1)
ax.set(
    xticks=range(10),
    xlabel="digit",
    ylabel="share",
    title=f"class shares of the {len(data)} training digits",
)
plt.show()
print(
    "share per digit:",
    " ".join(f"{d}:{c / counts.sum():.3f}" for d, c in enumerate(counts.tolist())),
)

# %% [markdown]
# The classes are close to balanced (about 9% to 11% each), so a good generator should
# produce every digit about one time in ten. We will check exactly that in section 6.

# %% [markdown]
# ## 3. The models
#
# Two multilayer perceptrons (`gankit.models.MLPGenerator`, `MLPDiscriminator`), sized by the
# config: latent 64, hidden 256. The generator widens towards its 784 outputs and ends in Tanh;
# the discriminator mirrors it and ends in a single **logit** (no sigmoid: the loss applies it).
# LeakyReLU(0.2) keeps a gradient for negative inputs, which matters for the discriminator:
# its gradient is the only thing the generator learns from. The counts below are for the
# preset itself (the `full` profile); the `cpu` and `smoke` profiles train the same networks,
# only for fewer steps.

# %%
full = make_config("mlp-mnist", "full")
G, D = build_models(full)
print(G, D, sep="\n")
layers = [
    (net, name, m)
    for net, model in (("G", G), ("D", D))
    for name, m in model.named_modules()
    if isinstance(m, torch.nn.Linear)
]
print(
    pd.DataFrame(
        [
            {
                "net": net,
                "layer": name,
                "in -> out": f"{m.in_features} -> {m.out_features}",
                "parameters": count_parameters(m),
            }
            for net, name, m in layers
        ]
    ).to_string(index=False)
)
print(f"G: {count_parameters(G):,} parameters, D: {count_parameters(D):,} parameters")

z = torch.randn(16, full.latent_dim)
x_fake = G(z)
d_fake = D(x_fake)
print(
    f"z {tuple(z.shape)} -> G -> x_fake {tuple(x_fake.shape)} in [-1, 1]: "
    f"{bool(x_fake.abs().max() <= 1)} -> D -> d_fake {tuple(d_fake.shape)} (logits)"
)

# %% [markdown]
# ## 4. Training
#
# `train_or_load` builds everything from the preset (seed, data, models, Adam with
# $\beta_1 = 0.5$), trains with a live progress bar showing the losses and $D(x)$, $D(G(z))$
# (an executed copy like this one prints one line per epoch instead), and saves into
# `runs/mlp-mnist/<time stamp>/`: the config, the loss history, a grid of samples from the same
# fixed noise after every epoch, and a checkpoint to resume from.
# With `LOAD_RUN = True` it loads the newest finished run instead.
#
# Each step is one discriminator update on a real and a generated batch, then one generator
# update (`n_critic = 1`). After every epoch, `EvaluateCallback` draws `N_EVAL` samples (always
# from the same noise, so the curve shows the model changing and not the noise) and measures
# them with a small MNIST classifier shipped with gankit (section 6).

# %% [markdown]
# This is the library's whole GAN algorithm, `Trainer.d_step` and `Trainer.g_step`, printed from its
# source: Algorithm 1 of Goodfellow et al. (2014), one update of $D$ with $G$ held fixed
# (`torch.no_grad()`, so the fakes carry no graph back into $G$), then one update of $G$ through a
# $D$ whose weights are frozen. The objective (which losses, a penalty, clipping) is an object built
# once from the config (`trainer.objective`); the loop never changes between lessons.

# %%
print(inspect.getsource(Trainer.d_step))
print(inspect.getsource(Trainer.g_step))

# %% [markdown]
# ### Your turn: one step of Algorithm 1
#
# Write the D step and the G step with your losses: draw noise with
# `torch.randn(batch, latent_dim)` (first for the D step, then fresh noise for the G step), keep
# $G$ fixed while $D$ learns (make the fakes under `torch.no_grad()`), and for each network zero its
# gradients, call `backward()` and step its optimizer once. The check runs your function and the
# library's `d_step` + `g_step` on copies of the same networks, optimizers and batch with the same
# random numbers: the losses and the weights afterwards must agree.


# %%
def my_gan_step(G, D, opt_g, opt_d, x_real, latent_dim):
    """One D step, then one G step; returns (loss_d, loss_g)."""
    ### BEGIN SOLUTION
    batch = len(x_real)
    with torch.no_grad():  # G is fixed in the D step
        x_fake = G(torch.randn(batch, latent_dim))
    loss_d = d_loss_fn(D(x_real), D(x_fake))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = g_loss_fn(D(G(torch.randn(batch, latent_dim))))  # fresh noise, through D
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g
    ### END SOLUTION


# %%
gan_step = check_gan_step(my_gan_step, setup(config, run_dir=None, progress=False))

# %% tags=["nbval-ignore-output"]
evaluate = EvaluateCallback(every=1, n_samples=N_EVAL)
trainer = train_or_load(
    "mlp-mnist", load=LOAD_RUN, resume=RESUME, callbacks={"on_epoch_end": [evaluate]}
)
history, c = trainer.history, trainer.config
eval_seconds = sum(e.get("eval_seconds", 0.0) for e in trainer.evaluations)
print(
    f"run {c.preset}/{trainer.run_dir.name}: {trainer.epoch} epochs x {len(trainer.data)} steps "
    f"(batch {c.batch_size}) = {trainer.step} steps in {trainer.elapsed:.0f} s of training on "
    f"{trainer.device}, plus {eval_seconds:.0f} s for {len(trainer.evaluations)} quality "
    "evaluations"
)

# %% [markdown]
# ## 5. Reading the loss curves
#
# Left: the two losses. Right: the discriminator's mean output on real digits, $D(x)$, and on
# generated ones, $D(G(z))$ (means over each logging interval of 50 steps). The dotted lines mark
# the equilibrium of the game: if $G$ reproduced the data exactly, the best $D$ could do is
# $D = \tfrac12$ everywhere, and then
#
# $$
# \mathcal L_D = -\log\tfrac12 - \log\big(1 - \tfrac12\big) = 2\log 2 \approx 1.386,
# \qquad \mathcal L_G^\text{ns} = -\log\tfrac12 = \log 2 \approx 0.693.
# $$

# %%
half = torch.zeros(8)  # logit 0 <=> D = 1/2 on every sample
print(f"loss_d at D = 1/2: {losses.d_loss_bce(half, half):.4f}   2 log 2 = {2 * math.log(2):.4f}")
print(f"loss_g at D = 1/2: {losses.g_loss_non_saturating(half):.4f}   log 2   = {math.log(2):.4f}")

# %% tags=["nbval-ignore-output"]
plot_losses(history, c, title=f"mlp-mnist, {c.profile} profile", smooth=5)
plt.show()
per_epoch = history.assign(epoch=history["epoch"].apply(math.ceil))  # 0.05 .. 1.0 is epoch 1
per_epoch = per_epoch.groupby("epoch")[["loss_d", "loss_g", "d_real", "d_fake"]].mean()
print("means per epoch (D(x) = d_real, D(G(z)) = d_fake):")
print(per_epoch.round(3).to_string())

# %% [markdown]
# How to read them:
#
# - **$D(x)$ and $D(G(z))$ near 0.5** and $\mathcal L_D$ near $2\log 2$ mean the discriminator
#   cannot tell real from fake *at its current strength*. It does **not** mean the samples are
#   perfect: a weak or confused $D$ gives the same numbers. That is why section 6 measures the
#   samples with an independent classifier.
# - **A gap** ($D(x)$ above $D(G(z))$, $\mathcal L_D$ below $2\log 2$) is normal: the
#   discriminator stays a step ahead, and the gap is the generator's training signal. What
#   matters is that both stay away from 0 and 1, and which way the gap moves: a gap that narrows
#   while the samples improve means the generator is catching up.
# - **A collapse of training** looks like $\mathcal L_D \to 0$, $D(x) \to 1$, $D(G(z)) \to 0$ and
#   $\mathcal L_G$ climbing without bound: $D$ has won, the generator's gradient has vanished
#   (with the minimax loss) or points nowhere useful, and the samples stop improving.
# - **Mode collapse** (the generator draws only a few digits) can hide behind healthy-looking
#   losses, or show up as oscillating losses as $D$ and $G$ chase each other from one digit to
#   the next. The losses cannot rule it out; counting the classes of the samples can.

# %% [markdown]
# ## 6. Samples and their quality
#
# ### Samples during training
#
# The trainer saved a grid of samples from the *same* 64 noise vectors after every epoch
# (`samples/epoch_XXXX.png` in the run folder), so the grids show one generator learning. Here
# are the first, a middle and the last epoch, then all of them as an animation.

# %% tags=["nbval-ignore-output"]
grids = sorted((trainer.run_dir / "samples").glob("epoch_*.png"))
picked = [grids[0], grids[len(grids) // 2], grids[-1]] if len(grids) >= 3 else grids
fig, axes = plt.subplots(1, len(picked), figsize=(4.4 * len(picked), 4.6), squeeze=False)
for ax, path in zip(axes[0], picked):
    ax.imshow(Image.open(path), interpolation="nearest")
    ax.set_title(f"after epoch {int(path.stem.split('_')[1])} of {len(grids)}")
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
show_gif(progress_gif(trainer.run_dir))

# %% [markdown]
# ### Quality over time
#
# Eyes are a poor judge of 64 samples. `gankit.metrics` measures a few thousand with a small
# LeNet-style classifier trained on MNIST (over 99% test accuracy), in its 128-dimensional
# penultimate feature space:
#
# - **FID** (Frechet distance, Heusel et al. 2017): fit a Gaussian to the features of the samples
#   and one to those of the 10,000 MNIST test digits; $\text{FID} = \lVert\mu_s - \mu_r\rVert^2 +
#   \operatorname{tr}\big(\Sigma_s + \Sigma_r - 2(\Sigma_s\Sigma_r)^{1/2}\big)$. Lower is better. It
#   uses *classifier* features, not Inception's (which cannot be downloaded here and suit digits
#   poorly), so compare these numbers with each other only.
# - **Classes covered**: how many digits get at least 2% of the classifier's predictions (10 =
#   no digit was dropped); the KL divergence of the class histogram to uniform is 0 for a perfect
#   spread and $\log 10 = 2.30$ for a single digit.
# - **Mean confidence**: the classifier's mean top probability; blurry or ambiguous strokes
#   lower it. Read it together with coverage: a generator that draws the same shape over and
#   over can score a high confidence (section 8 shows one).
# - **KID** (kernel distance, Binkowski et al. 2018), in the final table: an unbiased cousin of
#   FID in the same features; lower is better.
#
# FID is biased upwards at small sample counts, so the dashed line is the **floor**: the same
# numbers for the same count of *real* training digits (`reference_quality`). A generator can
# only approach it.

# %% tags=["nbval-ignore-output"]
evals = pd.DataFrame(trainer.evaluations)
n_eval = int(evals["n_samples"].iloc[-1])
real = reference_quality(n_eval)
panels = [
    ("fid", "FID (classifier features)"),
    ("classes_covered", "classes covered (of 10)"),
    ("mean_confidence", "mean classifier confidence"),
]
fig, axes = plt.subplots(2, 3, figsize=(13, 6.4))
for row, (x, xlabel) in enumerate(
    [("step", "training step"), ("seconds", "training seconds (evaluations excluded)")]
):
    for ax, (col, title) in zip(axes[row], panels):
        ax.plot(evals[x], evals[col], "o-", label=f"generator, {n_eval} samples")
        ax.axhline(real[col], ls="--", c="gray", lw=1, label=f"real digits, {n_eval} samples")
        ax.set(xlabel=xlabel, title=title)
        ax.grid(alpha=0.3)
axes[0][0].set_yscale("log")
axes[1][0].set_yscale("log")
axes[0][0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
final = evals.iloc[-1]
cols = [
    "n_samples",
    "n_reference",
    "fid",
    "kid_mean",
    "classes_covered",
    "kl_uniform",
    "mean_confidence",
]
summary = pd.DataFrame(
    [
        {
            "": f"generator after epoch {int(final['epoch'])} (step {int(final['step'])})",
            **{k: final[k] for k in cols},
        },
        {"": "real MNIST train digits", **{k: real[k] for k in cols}},
    ]
).set_index("")
summary[["n_samples", "n_reference", "classes_covered"]] = summary[
    ["n_samples", "n_reference", "classes_covered"]
].astype(int)
print(
    f"sample counts: {n_eval} generated (fixed seed) vs {n_eval} real training digits, both "
    f"against {int(final['n_reference'])} MNIST test digits; KID subsets of "
    f"{int(final['kid_subset_size'])}"
)
summary.round(4)

# %% tags=["nbval-ignore-output"]
hist = [final[f"class_hist_{i}"] for i in range(10)]
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.bar(range(10), hist, label="generated")
ax.plot(range(10), real["class_hist"], "k_", ms=18, label="real")
ax.axhline(0.02, ls=":", c="red", lw=1, label="2% = covered")
ax.set(
    xticks=range(10),
    xlabel="digit the classifier sees",
    ylabel="share",
    title=f"classes of {n_eval} generated digits (final epoch)",
)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 7. Experiment: saturating (minimax) vs non-saturating generator loss
#
# Section 1 predicted that the minimax loss starves the generator of gradient early on. Test it:
# two runs with the **same** seed, data order, models, optimiser and budget (`SIDE_EPOCHS`
# epochs), differing only in `g_loss`. These short runs keep no run folder (`run_dir=None`):
# they exist only in this notebook.

# %% tags=["nbval-ignore-output"]
side = {}
for g_loss in ("non-saturating", "minimax"):
    side[g_loss] = setup(
        "mlp-mnist", profile=profile, run_dir=None, epochs=SIDE_EPOCHS, g_loss=g_loss
    )
    side[g_loss].fit()

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
histories = {name: t.history for name, t in side.items()}
# raw 50-step means: keep the dips
compare_runs(histories, "d_fake", ax=axes[0], ylabel="D(G(z))", smooth=1)
compare_runs(histories, "loss_d", ax=axes[1], ylabel="loss_d", smooth=1)
axes[1].axhline(2 * math.log(2), ls=":", c="gray", lw=1)
fig.tight_layout()
plt.show()
show_grids({f"{name} ({SIDE_EPOCHS} epochs)": t.sample(64, seed=0) for name, t in side.items()})
plt.show()


# %% tags=["nbval-ignore-output"]
def quality_table(results: dict) -> pd.DataFrame:
    cols = ["n_samples", "fid", "classes_covered", "kl_uniform", "mean_confidence"]
    table = pd.DataFrame(results).T[cols].astype(float).round(3)
    return table.astype({"n_samples": int, "classes_covered": int})


for name, t in side.items():
    h = t.history
    low = h.loc[h["d_fake"].idxmin()]
    print(
        f"{name:>14}: mean D(G(z)) in epoch 1 {h.loc[h['epoch'] <= 1, 'd_fake'].mean():.3f}, "
        f"lowest {low['d_fake']:.3f} (logit {math.log(low['d_fake'] / (1 - low['d_fake'])):.2f}, "
        f"step {int(low['step'])})"
    )
quality = {name: mnist_quality(t.sample(N_EVAL, seed=0)) for name, t in side.items()}
quality_table(quality)

# %% [markdown]
# **What to look for.** How low does $D(G(z))$ go, and how fast? Translate it into a logit,
# $d = \log\frac{D}{1 - D}$, and read the gradient ratio $e^{-d}$ off the table of section 1: that
# is how much harder the non-saturating loss pushes at that moment. The two runs' `loss_g` columns
# are not comparable ($\log(1 - D)$ and $-\log D$ are different functions), so we compare $D(G(z))$
# and $\mathcal L_D$, then the samples and their quality. Section 10 reads the committed run.

# %% [markdown]
# ## 8. Pitfall: a uniform latent (`torch.rand` instead of `torch.randn`)
#
# One letter: `torch.rand(b, 64)` draws from $U[0, 1)^{64}$, `torch.randn(b, 64)` from
# $\mathcal N(0, I)$. The uniform noise is all positive, centred at 0.5 instead of 0, with a
# standard deviation of $1/\sqrt{12} \approx 0.29$ instead of 1, so the generator's first layer
# sees a large offset shared by every sample ($0.5 \sum_j W_{ij}$) plus a variation 3.5 times
# smaller than with `randn`. The cell below measures what that does to a freshly initialised
# generator: its samples differ from one another about 3 times less. A network *could* learn to
# undo an affine change of its input, but meanwhile the discriminator trains against a generator
# that offers little variety. And the bug rarely stays alone: sampling code written later with
# `randn` feeds the trained generator inputs it never saw. gankit keeps the bug behind
# `latent="uniform"` only to show it; after the check, a run with the same budget as section 7.

# %%
torch.manual_seed(0)
G_init, _ = build_models(full)  # a freshly initialised generator of the preset
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    for name, z in [
        ("randn", torch.randn(512, full.latent_dim, generator=g)),
        ("rand", torch.rand(512, full.latent_dim, generator=g)),
    ]:
        # per-pixel std across the 512 samples, averaged over pixels
        spread = G_init(z).std(dim=0).mean()
        print(
            f"torch.{name:<5}  z: mean {z.mean():+.3f}, std {z.std():.3f}  ->  samples differ by "
            f"{spread:.3f} per pixel"
        )

# %% tags=["nbval-ignore-output"]
uniform = setup("mlp-mnist", profile=profile, run_dir=None, epochs=SIDE_EPOCHS, latent="uniform")
uniform.fit()
# seed=0 draws the same randn noise as section 7's grids; the uniform run's own sampler draws rand
z_normal = torch.randn(64, uniform.config.latent_dim, generator=torch.Generator().manual_seed(0))
show_grids(
    {
        "normal latent (section 7)": side["non-saturating"].sample(64, seed=0),
        "uniform latent, sampled with rand": uniform.sample(64, seed=0),
        "uniform latent, sampled with randn": uniform.sample(64, noise=z_normal.to(uniform.device)),
    }
)
plt.show()

# %% tags=["nbval-ignore-output"]
quality["uniform latent (rand)"] = mnist_quality(uniform.sample(N_EVAL, seed=0))
z_mismatch = torch.randn(
    N_EVAL, uniform.config.latent_dim, generator=torch.Generator().manual_seed(0)
)
quality["uniform-trained, sampled with randn"] = mnist_quality(
    uniform.sample(N_EVAL, noise=z_mismatch.to(uniform.device))
)
print(
    f"{N_EVAL} samples each, after {SIDE_EPOCHS} epochs; real digits at that count: FID "
    f"{real['fid']:.2f}"
)
quality_table(quality)

# %% [markdown]
# ## 9. Hyperparameters
#
# The preset (`full` profile) and what the `cpu` and `smoke` profiles change; the reasons are the
# comments beside each field in `gankit/config.py`.

# %%
why = {
    "latent_dim": "digits need few latent factors",
    "hidden_dim": "256 learns all ten digits in minutes on a CPU",
    "batch_size": "small batches: many updates per epoch",
    "lr_g": "Adam 4e-4: twice DCGAN's 2e-4; all ten digits in half the epochs here",
    "lr_d": "equal rates: neither net is favoured",
    "betas": "beta1 = 0.5 damps momentum, which oscillates in a two-player game",
    "g_loss": "strong early gradients (section 1)",
    "latent": "torch.randn; uniform is the section-8 pitfall",
    "n_critic": "one D step per G step for a BCE GAN",
    "real_label": "1.0 = no label smoothing",
    "epochs": "passes over the 60,000 training digits",
    "steps_per_epoch": "None = the whole set (937 batches of 64)",
    "subset": "None = all 60,000 images",
    "seed": "the same seed gives the same run",
}
configs = {p: make_config("mlp-mnist", p).to_dict() for p in ("full", "cpu", "smoke")}
pd.DataFrame(
    [{"parameter": k, **{p: str(configs[p][k]) for p in configs}, "why": v} for k, v in why.items()]
).set_index("parameter")

# %% [markdown]
# ## 10. Observations from this run
#
# The cell below reads the numbers of *this* execution (the main run, the side runs, their
# evaluations) and writes them up, so the text stays true on a GPU, in Colab and on every
# re-execution; what to look for in each is the lesson, the numbers are your run's. The sample
# grids are for your eyes: after the first epoch expect grey blobs, many of them one shape; by the
# middle, strokes on black; at the end, digits with some salt noise and a few malformed ones. An
# MLP's output pixels each come from their own row of the last layer, with no notion of
# neighbouring pixels: lesson 02's convolutions have one.


# %% tags=["nbval-ignore-output"]
def rng(values, digits=2):
    """'a-b' for a series of numbers (or one number when all are equal at that precision)."""
    lo, hi = f"{values.min():.{digits}f}", f"{values.max():.{digits}f}"
    return lo if lo == hi else f"{lo}-{hi}"


def logit(p):
    return math.log(p / (1 - p))


ev = evals.assign(epoch=evals["epoch"].astype(int))
epoch_seconds = ev["seconds"].diff().fillna(ev["seconds"].iloc[0])
low = history.loc[history["d_fake"].idxmin()]
late = history[history["step"] > history["step"].max() / 2]  # the second half of training
covered = ev.set_index("epoch")["classes_covered"].astype(int)
all_ten = covered[covered == 10]
shares = pd.Series([final[f"class_hist_{i}"] for i in range(10)])
fid = ev.set_index("epoch")["fid"]
side_low = {k: t.history.loc[t.history["d_fake"].idxmin()] for k, t in side.items()}
side_epoch1 = {k: t.history.loc[t.history["epoch"] <= 1, "d_fake"].mean() for k, t in side.items()}
q_ns, q_mm = quality["non-saturating"], quality["minimax"]
q_u, q_u_randn = quality["uniform latent (rand)"], quality["uniform-trained, sampled with randn"]
n_ref = int(final["n_reference"])
main_at_side = fid.get(SIDE_EPOCHS)  # the main run after as many epochs as the side runs
ahead = "non-saturating" if q_ns["fid"] < q_mm["fid"] else "minimax"
main_note = (
    ""
    if main_at_side is None
    else f"The main run had FID {main_at_side:.1f} after epoch {SIDE_EPOCHS}: the non-saturating "
    "side run trains exactly as the main run's beginning (same seed, batches and noise)."
)

observations = rf"""
**The run** ({c.profile} profile on {trainer.device}). {trainer.epoch} epochs x {len(trainer.data)}
steps = {trainer.step:,} steps of {c.batch_size} images in {trainer.elapsed:.0f} s of training
(epochs took {rng(epoch_seconds, 0)} s), plus {eval_seconds:.0f} s for {len(ev)} quality
evaluations of {n_eval} samples.

**Losses.** The lowest {c.log_every}-step mean of $D(G(z))$ was {low.d_fake:.3f} at step
{int(low.step):,}, a logit of {logit(low.d_fake):.2f}: there the non-saturating loss's
gradient is still {1 - low.d_fake:.2f} of its largest value (it is $1 - D(G(z))$), so the
generator kept learning. Over the second half of training the {c.log_every}-step means stayed
within $D(x)$ = {rng(late.d_real)}, $D(G(z))$ = {rng(late.d_fake)},
$\mathcal L_D$ = {rng(late.loss_d)} and $\mathcal L_G$ = {rng(late.loss_g)}, against the
equilibrium values $\tfrac12$, $2\log 2 = 1.386$ and $\log 2 = 0.693$. Flat losses mean matched
players, not finished learning: compare them with the FID below over the same steps.

**Quality** ({n_eval} samples against {n_ref:,} MNIST test digits). FID went from
{fid.iloc[0]:.1f} after epoch {fid.index[0]} to **{fid.iloc[-1]:.1f}** after epoch {fid.index[-1]}
(last evaluations: {", ".join(f"{v:.1f}" for v in fid.iloc[-4:])}); real digits score
{real["fid"]:.2f} at this sample count, the floor. Classes covered per epoch:
{", ".join(map(str, covered.tolist()))};
{f"all ten first after epoch {all_ten.index[0]}" if len(all_ten) else "never all ten"}. At the end
the most frequent digit takes {shares.max():.1%} of the samples ({shares.idxmax()}) and the rarest
{shares.min():.1%} ({shares.idxmin()}), a KL divergence to uniform of {final["kl_uniform"]:.3f}
nats against {real["kl_uniform"]:.3f} for real digits; the loss curves show none of this. Mean
classifier confidence went {ev["mean_confidence"].iloc[0]:.2f} -> {final["mean_confidence"]:.2f}
(real digits {real["mean_confidence"]:.2f}).

**Minimax vs non-saturating** ({SIDE_EPOCHS} epochs each, same seed, batches and noise). The
minimax run's $D(G(z))$ went down to {side_low["minimax"].d_fake:.3f} (logit
{logit(side_low["minimax"].d_fake):.2f}, step {int(side_low["minimax"].step):,}), where the
non-saturating loss would push $e^{{{-logit(side_low["minimax"].d_fake):.2f}}} \approx
{math.exp(-logit(side_low["minimax"].d_fake)):.1f}$ times harder; the non-saturating run's lowest
was {side_low["non-saturating"].d_fake:.3f}. Epoch-1 means of $D(G(z))$:
{side_epoch1["minimax"]:.3f} (minimax) and {side_epoch1["non-saturating"]:.3f} (non-saturating).
After {SIDE_EPOCHS} epochs FID is {q_ns["fid"]:.1f} (non-saturating) against {q_mm["fid"]:.1f}
(minimax), classes covered {q_ns["classes_covered"]} and {q_mm["classes_covered"]}, KL to uniform
{q_ns["kl_uniform"]:.3f} and {q_mm["kl_uniform"]:.3f}: the {ahead} run is ahead on FID in this run
(one seed each: repeat both with other seeds before you call it a rule).
{main_note}

**Uniform latent.** Trained with `torch.rand`, the generator reached FID {q_u["fid"]:.1f} with
{q_u["classes_covered"]} class(es) covered, KL to uniform {q_u["kl_uniform"]:.3f} (a single class is
$\log 10 = 2.303$) and a classifier confidence of {q_u["mean_confidence"]:.3f}: read confidence
together with coverage, never alone. Sampled with `randn` (the usual follow-up bug) it gives FID
{q_u_randn["fid"]:.1f}, {q_u_randn["classes_covered"]} class(es).
"""
display(Markdown(observations))

# %% [markdown]
# ## 11. Exercises
#
# 1. **(warm-up)** Set `LOAD_RUN = True` and run the notebook again: it reuses your run. Then
#    draw 64 new samples with `trainer.sample(64, seed=1)` and show them with `show_grid`. Do you
#    see every digit? Compare with what `mnist_quality(trainer.sample(2000, seed=1))` says.
# 2. **(reading curves)** In `history`, find the first logged step at which `d_fake` exceeds
#    0.25, and the step where `loss_d` is highest. Relate both to the samples of epoch 1.
# 3. **(label smoothing)** Train a side run with `real_label=0.9` (one-sided label smoothing,
#    Salimans et al. 2016) with the same budget as section 7, and compare $D(x)$, $D(G(z))$ and
#    the final FID with the non-saturating run. What value does $\mathcal L_D$ take at
#    $D = \tfrac12$ now? Check your answer with `losses.d_loss_bce`.
# 4. **(a stronger discriminator)** Repeat section 7 with a discriminator that learns faster
#    (`lr_d=1e-3`) or takes more steps per generator step (`n_critic=3`). Does the minimax run
#    fall further behind the non-saturating one? Compare the lowest $D(G(z))$, its logit and the
#    gradient ratio $e^{-d}$ with the committed run.
# 5. **(capacity)** Halve and double `hidden_dim` (`setup("mlp-mnist", hidden_dim=128, ...)`).
#    Report parameter counts, seconds per epoch and FID after `SIDE_EPOCHS` epochs in one
#    table. Which network should get the extra capacity first, G or D? Try it by building the
#    models yourself and passing them to `Trainer(config, G, D, trainer.data)`.
# 6. **(a new objective)** Write a least-squares GAN (Mao et al. 2017):
#    $\mathcal L_D = \tfrac12\mathbb E[(d_\text{real} - 1)^2] + \tfrac12\mathbb E[d_\text{fake}^2]$,
#    $\mathcal L_G = \tfrac12\mathbb E[(d_\text{fake} - 1)^2]$ on the logits, as two pure functions,
#    and train it with `setup(..., objective=Objective(d_loss=..., g_loss=...))`
#    (`from gankit.losses import Objective`; compare with `trainer.objective`). Derive
#    $\partial\mathcal L_G/\partial d$ at $d = -6$ and compare it with the table of section 1; then
#    compare the quality curves with the committed run at equal wall-clock time.
