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
# # Lesson 02: Deep convolutional GANs (DCGAN)
#
# > **Run time:** about 3 minutes with the `cpu` profile on a 2-core laptop-class CPU (measured);
# > on a GPU the `full` profile trains Radford et al.'s widths (not yet measured on a lent GPU).
# > **Prerequisites:** lesson 01 (the GAN objective, the Trainer, FID in classifier features);
# > convolutions and batch norm. **You will build:** the transposed convolution's output size and
# > a generator block, stacked into a 32x32 generator. **Next:** lesson 03 changes the loss
# > (Wasserstein, gradient penalty).
#
# Lesson 01 trained a GAN whose two players were multilayer perceptrons: every pixel was a separate
# input, and the networks had to learn from scratch that neighbouring pixels belong together.
# Radford, Metz and Chintala (2016, *Unsupervised representation learning with deep convolutional
# generative adversarial networks*) found a set of convolutional architectures that train stably;
# most image GANs since have been built on them. This lesson trains their DCGAN on the same digits
# and compares it with lesson 01's MLP GAN on the same wall-clock budget.
#
# **After this lesson you can**
# 1. state the DCGAN objective and the paper's architecture guidelines, and say *why* each one
#    exists;
# 2. read a DCGAN layer by layer: the shape of every activation and where the parameters are;
# 3. train a DCGAN with `gankit` and read its loss curves and quality curves;
# 4. compare two GANs fairly (same wall-clock time, same metric, sample counts stated);
# 5. recognise mode collapse in a sample grid and measure it with a class histogram.
#
# The notebook runs in three budgets (`GANKIT_PROFILE`): `full` on a GPU, `cpu` (minutes on a
# laptop, the budget of the committed run you are reading) and `smoke` (seconds, for the tests). The
# code is the same in all three; only the number of steps and samples changes.

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

# %% [markdown]
# ## Setup
#
# `DATASET` is the one switch of this lesson. The default, MNIST at 32x32, runs offline on a CPU.
# Set it to `"cifar10"` or to the path of a folder of images (the cat-faces 64x64 or abstract-art
# sets, see the README) and the *same* DCGAN code trains on colour images: only the data, the number
# of image channels and the image size change. The MNIST-only parts (the digit classifier's quality
# metrics, the comparison with lesson 01, the class histogram) are skipped for other data.

# %% tags=["nbval-ignore-output"]
LOAD_RUN = False  # True: reuse the last finished run instead of training
RESUME = False  # True: continue the newest run of this config from its last checkpoint
DATASET = "mnist"  # or "cifar10", or a path to an image folder (cat faces 64x64, abstract art)

import inspect
import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from IPython.display import Markdown, display
from PIL import Image

import gankit
from gankit.config import make_config, resolve_device, resolve_profile
from gankit.data import load_dataset, to_model
from gankit.exercises import check_generator_block, check_transposed_size
from gankit.lesson import setup, train_or_load
from gankit.metrics import EvaluateCallback, reference_quality
from gankit.models import (
    DCGANDiscriminator,
    DCGANGenerator,
    build_models,
    count_parameters,
    dcgan_init,
)
from gankit.viz import plot_losses, progress_gif, show_gif, show_grid, show_grids

if DATASET == "mnist":
    DATA = {}
elif DATASET == "cifar10":
    DATA = dict(dataset="cifar10", channels=3, image_size=32)
else:  # an image folder, at the canonical DCGAN size; random flips and colour jitter on each batch
    DATA = dict(dataset="folder", data_path=DATASET, channels=3, image_size=64, augment=True)
IS_MNIST = not DATA  # the digit classifier behind the quality metrics only understands MNIST

device = resolve_device()  # GANKIT_DEVICE, else cuda, mps, cpu
profile = resolve_profile()  # GANKIT_PROFILE, else full on a GPU and cpu otherwise
config = make_config("dcgan-mnist", profile, **DATA)
# Budgets that follow the profile: samples per quality evaluation (FID and KID are biased by it).
N_EVAL = {"smoke": 500, "cpu": 2000, "full": 5000}[profile]

print(
    f"gankit {gankit.__version__}, torch {torch.__version__} ({torch.get_num_threads()} CPU "
    f"threads): profile {profile!r} on {device}, data {DATASET!r}"
)
print(f"quality evaluations use {N_EVAL} samples")
print("\n".join(textwrap.wrap(repr(config), 110)))


# %% [markdown]
# ## 1. The objective has not changed
#
# DCGAN keeps the game of lesson 01. The discriminator $D$ outputs a logit $d(x)$, and
# $D(x) = \sigma(d(x))$ is its probability that $x$ is real. With real images $x \sim p_\text{data}$
# and fakes $G(z)$, $z \sim \mathcal N(0, I)$, the value of the game is
#
# $$
# \min_G \max_D \; V(D, G) = \mathbb E_{x}\big[\log D(x)\big] +
#   \mathbb E_{z}\big[\log\big(1 - D(G(z))\big)\big].
# $$
#
# Both players minimise a binary cross-entropy written on logits
# (`binary_cross_entropy_with_logits`, which is $\operatorname{softplus}$ in closed form and never
# takes the log of a rounded-off 0):
#
# $$
# \mathcal L_D = \operatorname{softplus}(-d(x)) + \operatorname{softplus}(d(G(z))), \qquad
# \mathcal L_G = \operatorname{softplus}(-d(G(z))) = -\log D(G(z)).
# $$
#
# $\mathcal L_G$ is the *non-saturating* generator loss of lesson 01: it gives strong gradients
# exactly when $D$ confidently rejects the fakes, which is the situation at the start of training.
# At the equilibrium $D = \tfrac12$ everywhere, so $\mathcal L_D = 2\log 2 \approx 1.386$ and
# $\mathcal L_G = \log 2 \approx 0.693$: keep these two numbers in mind for the loss curves.
#
# What DCGAN changes is *the two networks*, and a handful of optimiser settings.

# %% [markdown]
# ## 2. The architecture guidelines, and why each exists
#
# Radford et al. list their "architecture guidelines for stable deep convolutional GANs" in section
# 3 of the paper. Each one answers a way in which earlier convolutional GANs failed:
#
# The guidelines, what they are in `gankit`, and why:
#
# - **Strided convolutions instead of pooling** in $D$ (in `gankit`: `Conv2d(k=4, stride=2,
#   padding=1)` halves the size). The network learns its own downsampling. Max pooling passes
#   gradient to only one input of each window, so the signal that flows back through $D$ into $G$ is
#   sparse; average pooling blurs away where features are.
# - **Transposed ("fractionally strided") convolutions** in $G$ (in `gankit`: `ConvTranspose2d(k=4,
#   stride=2, padding=1)` doubles the size). The learned counterpart of upsampling: $G$ decides how
#   a 4x4 feature map becomes 8x8, 16x16, ...
# - **Batch norm in both networks** (in `gankit`: `BatchNorm2d` after every hidden conv).
#   Normalising each layer's input keeps activations in a usable range despite a poor initialisation
#   and lets gradients reach the first layers. The paper reports it was critical to get deep
#   generators to start learning and that it *prevented the generator from collapsing all samples to
#   a single point*.
# - **...except at $G$'s output and $D$'s input** (in `gankit`: last `ConvTranspose2d` goes straight
#   to `Tanh`; first `Conv2d` straight to `LeakyReLU`). With batch norm everywhere the authors saw
#   sample oscillation and instability. A batch-normed output would force every batch of images to
#   the same pixel mean and spread, and a batch-normed input would remove exactly the brightness and
#   contrast statistics by which $D$ can tell a fake batch from a real one.
# - **No fully connected hidden layers** (in `gankit`: $z$ enters as a 1x1 image:
#   `ConvTranspose2d(latent, C, 4, stride=1)` gives 4x4; $D$ ends in a 4x4 conv to one logit). Dense
#   layers have no weight sharing across positions: many parameters, no notion of locality. (The
#   first layer of $G$ *is* a matrix multiplication of $z$, reshaped to 4x4 maps; there is no dense
#   layer in between.)
# - **ReLU in $G$, Tanh at its output** (in `gankit`: `ReLU(True)` ... `Tanh()`). A bounded output
#   matches data scaled to $[-1, 1]$ and, in the paper's words, lets the model learn to saturate and
#   cover the colour space quickly.
# - **LeakyReLU(0.2) in $D$** (in `gankit`: `LeakyReLU(0.2, True)`). $G$ learns *only* through $D$'s
#   gradient with respect to its input. A ReLU unit that is off passes no gradient at all; a leaky
#   one passes 0.2 of it, so $G$ hears about every unit of $D$.
# - **Weights from $\mathcal N(0, 0.02)$** (in `gankit`: `dcgan_init`: conv weights $\mathcal N(0,
#   0.02)$, batch-norm scales $\mathcal N(1, 0.02)$). Small weights start both players near "no
#   opinion": $D$ is not confident at step 0 and $G$'s Tanh is not saturated.
# - **Adam, learning rate $2\cdot10^{-4}$, $\beta_1 = 0.5$** (in `gankit`: `lr_g = lr_d = 2e-4`,
#   `betas=(0.5, 0.999)`). The paper found $10^{-3}$ too high. Momentum $\beta_1 = 0.9$ averages
#   about ten past gradients; in a game the opponent moves the target every step, so that stale
#   average overshoots and training oscillated. $0.5$ averages about two.
#
# The paper also used mini-batches of 128 (our `full` preset does; the `cpu` budget uses 64) and
# images scaled to $[-1, 1]$, the range of `Tanh`.

# %% [markdown]
# ## 3. The model, layer by layer
#
# Every stride-2 layer doubles (in $G$) or halves (in $D$) the side of the feature maps. For a
# convolution with kernel $k=4$, stride $s=2$ and padding $p=1$ the output side is
# $\lfloor (n + 2p - k)/s \rfloor + 1 = n/2$; for the transposed convolution it is
# $(n-1)s - 2p + k = 2n$. $G$ starts from $z$ as a $1\times1$ "image" ($k=4$, $s=1$, $p=0$ gives
# $4\times4$) and $D$ ends with a $4\times4$ convolution down to a single logit. So a $S\times S$
# image needs $\log_2 S - 2$ stride-2 stages: three at 32x32, four at 64x64. `gankit`'s DCGAN
# computes the number of stages from the image size; examples that hard-code five layers for 64x64
# break as soon as the image size changes, the failure most often reported against them.
#
# ### Your turn: the output size, then one generator block
#
# First the formula: write the side of a transposed convolution's output for an $n \times n$ input,
# kernel $k$, stride $s$, padding $p$. Each input pixel is spread over a $k\times k$ patch of the
# output, neighbouring patches $s$ pixels apart, and $p$ pixels are cut from every border. Then one
# stage of the generator: a module that maps `(B, in_ch, s, s)` to `(B, out_ch, 2s, 2s)` with a
# stride-2 transposed convolution (kernel 4, padding 1, no bias), batch norm and a ReLU, in that
# order. The check cells compare your answers with what `torch` computes and with gankit's block,
# and say what is wrong; until you write them they say so and the lesson uses gankit's.


# %%
def my_transposed_size(n, kernel, stride, padding):
    ### BEGIN SOLUTION
    return (n - 1) * stride - 2 * padding + kernel
    ### END SOLUTION


def my_generator_block(in_ch, out_ch):
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(True),
    )
    ### END SOLUTION


# %%
transposed_size = check_transposed_size(my_transposed_size)
block = check_generator_block(my_generator_block)

# %% [markdown]
# With the two in hand, a 32x32 generator is a $4\times4$ stem, stages of your block, and an output
# layer. The sides follow your formula; the cell stacks your block and checks its output.

# %%
sides = [transposed_size(1, 4, 1, 0)]  # the stem: z as a 1x1 image -> 4x4
while sides[-1] < 32:
    sides.append(transposed_size(sides[-1], 4, 2, 1))
print(f"sides through G: {' -> '.join(map(str, sides))}")
G_yours = nn.Sequential(
    nn.ConvTranspose2d(100, 256, 4, 1, 0, bias=False),  # (B, 100, 1, 1) -> (B, 256, 4, 4)
    nn.BatchNorm2d(256),
    nn.ReLU(True),
    block(256, 128),  # -> (B, 128, 8, 8)
    block(128, 64),  # -> (B, 64, 16, 16)
    nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False),  # -> (B, 1, 32, 32)
    nn.Tanh(),
)
out = G_yours(torch.randn(2, 100, 1, 1))
print(f"your generator: z (100, 1, 1) -> {tuple(out.shape[1:])}, values in [-1, 1]")
assert out.shape[-1] == sides[-1] == 32

# %% [markdown]
# The table below is recorded with forward hooks on the `full` preset `dcgan-mnist` (the model a GPU
# trains: latent 100, widths 64, 32x32 grey images), whatever budget this notebook runs in.


# %%
def shape_table(model: nn.Module, *inputs: torch.Tensor) -> pd.DataFrame:
    """Output shape (without the batch) and own parameter count of every leaf layer,
    via forward hooks."""
    rows = []

    def hook(module, args, output, name=""):
        rows.append(
            (name, type(module).__name__, tuple(output.shape[1:]), count_parameters(module))
        )

    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    handles = [
        m.register_forward_hook(lambda m, a, o, name=name: hook(m, a, o, name))
        for name, m in leaves
    ]
    model.eval()
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return pd.DataFrame(rows, columns=["layer", "type", "output (C, H, W)", "parameters"])


# the preset itself, independent of this notebook's profile
full = make_config("dcgan-mnist", "full")
G_full, D_full = build_models(full)
z = torch.zeros(2, full.latent_dim)
x = torch.zeros(2, full.channels, full.image_size, full.image_size)
print(f"Generator: z {tuple(z.shape[1:])} -> image {tuple(G_full(z).shape[1:])}")
print(shape_table(G_full, z).to_string(index=False))
print(f"total {count_parameters(G_full):,} parameters\n")
print(
    f"Discriminator: image {tuple(x.shape[1:])} -> one logit per image (a batch of 2 gives shape "
    f"{tuple(D_full(x).shape)})"
)
print(shape_table(D_full, x).to_string(index=False))
print(f"total {count_parameters(D_full):,} parameters")

# %% [markdown]
# Read the generator table from top to bottom: the channel count halves while the side doubles, and
# almost all parameters sit in the wide early layers. Batch norm layers carry two parameters per
# channel (scale and shift) and the ReLUs none. The discriminator mirrors it. Its last layer outputs
# one number per image, a *logit*: there is no `Sigmoid`, because the loss applies it inside
# `binary_cross_entropy_with_logits`.
#
# The canonical DCGAN of the paper (and of the PyTorch example) works on 64x64 colour images with a
# 100-dimensional $z$ and widths 64. Built with the same classes it has exactly the canonical
# parameter counts, 3,576,704 for $G$ and 2,765,568 for $D$:

# %%
G64 = DCGANGenerator(latent_dim=100, image_size=64, channels=3, width=64)
D64 = DCGANDiscriminator(image_size=64, channels=3, width=64)
print(
    f"64x64 RGB DCGAN: G {count_parameters(G64):,} parameters, D {count_parameters(D64):,} "
    "parameters"
)
assert (count_parameters(G64), count_parameters(D64)) == (3_576_704, 2_765_568)
print(
    f"stages of stride 2: {sum(isinstance(m, nn.ConvTranspose2d) for m in G64.modules()) - 1} at "
    f"64x64, {sum(isinstance(m, nn.ConvTranspose2d) for m in G_full.modules()) - 1} at 32x32"
)

# %% [markdown]
# This is the generator's source in `gankit`. Note the shape comment at each stage, the `bias=False`
# on every convolution that is followed by batch norm (its shift makes a bias redundant), and the
# 28x28 case (a config with `image_size=28`): the network works at 32x32 and resizes its output.
# This lesson's preset trains at 32x32 instead, on digits padded to that size (section 4).

# %%
print(inspect.getsource(DCGANGenerator))

# %% [markdown]
# and the initialisation, applied to both networks by `build_models` with
# `module.apply(dcgan_init)`:

# %%
print(inspect.getsource(dcgan_init))

# %% [markdown]
# ## 4. The data
#
# MNIST's 60,000 training digits are decoded once into a `uint8` tensor of shape (N, 1, 28, 28),
# padded to 32x32 with 2 pixels of background on each side (as LeNet-5 did; nothing is resized, so
# every digit keeps its 28x28 pixels) and kept on the training device; each batch is mapped to
# $[-1, 1]$, the range of the generator's `Tanh`. With an image folder the same loader converts
# every image to RGB (grey, palette and transparent images included), resizes it to cover the
# target size and centre-crops it, and caches the decoded tensor; files it cannot decode are skipped
# and counted.

# %% tags=["nbval-ignore-output"]
real = load_dataset(config)
print(real.summary)
print(
    f"stored as {real.images.dtype} {tuple(real.images.shape)}; the model sees floats in "
    f"[{to_model(real.images[:256]).min():.0f}, {to_model(real.images[:256]).max():.0f}]"
)
show_grid(to_model(real.images[:64]), f"real images ({config.image_size}x{config.image_size})")
plt.show()

# %% [markdown]
# ## 5. Training
#
# `train_or_load` builds the models and the optimisers from the preset, trains, and writes a run
# folder `runs/dcgan-mnist/<time>/` with the config, the loss history, one sample grid per epoch
# (always from the same fixed noise) and checkpoints. The `Trainer` is the one from lesson 01: DCGAN
# changes the networks, not the training loop. With `LOAD_RUN = True` it reuses the last finished
# run trained with the same config instead. In the `cpu` and `smoke` budgets an "epoch" is capped at
# `steps_per_epoch` batches (see the config above), so that even a short run has several grids and
# evaluations to look at.
#
# After every epoch an `EvaluateCallback` draws fresh samples and scores them with a small digit
# classifier that ships with `gankit` (Inception-based FID needs downloaded weights and, according
# to its own authors, suits digits poorly): **FID** is the Fréchet distance between Gaussians fitted
# to the classifier's features of generated and of real test digits (lower is better), **KID** a
# kernel version of it that is less biased at small sample counts, and the **class histogram** says
# how often each digit is generated. FID and KID depend on the number of samples, so the count is
# stated beside every number, and `reference_quality(n)` gives the value that real digits reach at
# the same count: that, not 0, is the floor. The classifier reads 28x28 digits: a 32x32 sample is
# cropped back to its 28x28 centre, which exactly undoes the padding of section 4. So real digits
# prepared like this DCGAN's training data score the 28-pixel floor (the dotted line below), and
# the 32-pixel DCGAN and lesson 01's 28-pixel MLP GAN (section 7) are measured alike.

# %% tags=["nbval-ignore-output"]
callbacks = {"on_epoch_end": [EvaluateCallback(every=1, n_samples=N_EVAL)]} if IS_MNIST else {}
trainer = train_or_load("dcgan-mnist", load=LOAD_RUN, resume=RESUME, callbacks=callbacks, **DATA)

history = trainer.history
evals = pd.DataFrame(trainer.evaluations)
eval_seconds = float(evals["eval_seconds"].sum()) if "eval_seconds" in evals else 0.0
dcgan_seconds = trainer.elapsed  # the Trainer's clock stops while callbacks (evaluations) run
dcgan_step = dcgan_seconds / trainer.step
c = trainer.config
print(
    f"run: {trainer.run_dir.name}   G {count_parameters(trainer.G):,} / D "
    f"{count_parameters(trainer.D):,} parameters"
)
print(
    f"{trainer.epoch} epochs x {trainer.step // trainer.epoch} steps = {trainer.step} steps of "
    f"{c.batch_size} images ({trainer.step * c.batch_size:,} images seen)"
)
print(
    f"training {dcgan_seconds:.0f} s ({dcgan_step * 1000:.0f} ms per step) + evaluation "
    f"{eval_seconds:.0f} s"
)

# %% [markdown]
# ### Reading the loss curves
#
# Left: the two losses; right: the discriminator's average probability on real images, $D(x)$, and
# on fakes, $D(G(z))$. The dotted lines are the equilibrium values ($\mathcal L_D = 2\log 2$,
# $D = 0.5$).
#
# * A GAN's losses do **not** go to zero: each player's loss is the other's success. Healthy
#   training looks like two curves that settle into a band and stay there, with $D(x)$ somewhat
#   above and $D(G(z))$ somewhat below 0.5.
# * $\mathcal L_D \to 0$ with $D(G(z)) \to 0$ and $\mathcal L_G$ climbing means $D$ has won: it
#   rejects every fake and $G$'s gradients fade. $\mathcal L_D$ sitting at $1.386$ with both
#   probabilities at 0.5 from the start means $D$ learns nothing
#   (a bug: its optimizer steps other parameters, its gradients are detached or its learning rate
#   is 0; real and fake in different ranges do the opposite, they let $D$ win at once).
# * A sudden drop of $\mathcal L_G$ together with a jump of $D(G(z))$ can be a sign of collapse: $G$
#   found one output that fools the current $D$.
# * The losses say nothing about how good the images are. For that, look at the quality curves
#   below.

# %% tags=["nbval-ignore-output"]
plot_losses(
    history,
    c,
    title=f"DCGAN losses (logged every {c.log_every} steps)",
    smooth=max(1, len(history) // 40),
)
plt.show()


# %% tags=["nbval-ignore-output"]
def training_seconds(evaluations: pd.DataFrame) -> pd.Series:
    """Training time at each evaluation
    (the Trainer's clock leaves the evaluations' own time out)."""
    return evaluations["seconds"]


if IS_MNIST:
    ref = reference_quality(N_EVAL)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, xs, xlabel in (
        (axes[0], evals["step"], "training step"),
        (axes[1], training_seconds(evals), "training seconds (evaluations excluded)"),
    ):
        ax.plot(xs, evals["fid"], "o-", label="DCGAN")
        ax.axhline(ref["fid"], ls=":", c="gray", label=f"real digits ({ref['fid']:.1f})")
        ax.set(
            xlabel=xlabel, ylabel=f"FID ({N_EVAL} samples)", yscale="log", title="classifier FID"
        )
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[2].plot(evals["step"], evals["classes_covered"], "o-")
    axes[2].set(
        xlabel="training step",
        ylabel="digits with >= 2% share",
        ylim=(0, 10.5),
        title="classes covered",
    )
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    plt.show()
    cols = [
        "epoch",
        "step",
        "seconds",
        "fid",
        "kid_mean",
        "classes_covered",
        "kl_uniform",
        "mean_confidence",
    ]
    display(evals[cols].round(3))
else:
    print("quality metrics need MNIST digits: skipped for", DATASET)

# %% [markdown]
# ## 6. Samples over training
#
# After every epoch the `Trainer` saves a grid generated from the *same* 64 latent vectors, so the
# grids show one generator changing, not new random draws. Below: the first, the middle and the last
# epoch, then all epochs as an animation (`progress_gif` stitches the saved grids; the file lands in
# the run folder).

# %% tags=["nbval-ignore-output"]
grids = sorted((trainer.run_dir / "samples").glob("epoch_*.png"))
picks = sorted({0, len(grids) // 2, len(grids) - 1})
fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 4.6), squeeze=False)
for ax, i in zip(axes[0], picks):
    ax.imshow(Image.open(grids[i]), interpolation="nearest")
    ax.set_title(f"after epoch {int(grids[i].stem.split('_')[1])} of {len(grids)}")
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% tags=["nbval-ignore-output"]
show_gif(progress_gif(trainer.run_dir, duration_ms=600))

# %% [markdown]
# ## 7. DCGAN against lesson 01's MLP GAN, on the same wall-clock budget
#
# A DCGAN step costs much more computation than an MLP GAN step, so comparing them after the same
# number of *steps* would flatter the DCGAN. What a learner feels is time, so we give the MLP GAN
# (preset `mlp-mnist`, unchanged) the same number of **seconds** of training that the DCGAN used
# above, evaluations excluded. Method: run the MLP GAN for a few steps to measure its time per step,
# set its number of steps to `budget / step time`, spread over as many epochs as the DCGAN had (so
# both are evaluated equally often), train it with the same `EvaluateCallback`, and report the time
# it really took. The machine's load changes from minute to minute, so the two budgets need not
# match (the cell prints how far apart they came out): compare the two FID curves at equal seconds
# on the plot, not only their last points.
#
# This run keeps no run folder (`run_dir=None`), so it never becomes lesson 01's "last run".

# %% tags=["nbval-ignore-output"]
if IS_MNIST:
    mlp_config = make_config("mlp-mnist", profile)
    # 1. time the MLP GAN's step on a short throwaway run
    probe = setup(
        mlp_config,
        run_dir=None,
        progress=False,
        epochs=1,
        steps_per_epoch={"smoke": 10, "cpu": 60, "full": 200}[profile],
    )
    probe.fit()
    mlp_step = probe.elapsed / probe.step
    # 2. as many steps as fit in the DCGAN's training time, over as many epochs as the DCGAN had
    mlp_steps = max(c.epochs, round(dcgan_seconds / mlp_step))
    # more steps than this per epoch are not served
    full_epoch = len(probe.dataset) // mlp_config.batch_size
    # evaluate as often as the DCGAN was evaluated
    every = math.ceil(mlp_steps / (c.epochs * full_epoch))
    mlp_epochs = every * c.epochs
    mlp = setup(
        mlp_config,
        run_dir=None,
        epochs=mlp_epochs,
        steps_per_epoch=math.ceil(mlp_steps / mlp_epochs),
    )
    mlp.add_callback("on_epoch_end", EvaluateCallback(every=every, n_samples=N_EVAL))
    mlp.fit()
    mlp_evals = pd.DataFrame(mlp.evaluations)
    mlp_seconds = mlp.elapsed
    print(
        f"budget: the DCGAN's {dcgan_seconds:.0f} s of training ({trainer.step} steps of "
        f"{dcgan_step * 1000:.0f} ms)"
    )
    print(
        f"MLP GAN: {mlp_step * 1000:.1f} ms per step (timed over {probe.step} steps) -> {mlp.step} "
        f"steps, which took {mlp_seconds:.0f} s ({mlp_seconds / dcgan_seconds:.0%} of the budget)"
    )
else:
    print("the comparison is measured with the MNIST classifier: skipped for", DATASET)

# %% tags=["nbval-ignore-output"]
if IS_MNIST:
    show_grids(
        {
            f"DCGAN ({trainer.step} steps, {dcgan_seconds:.0f} s)": trainer.sample(64, seed=1),
            f"MLP GAN ({mlp.step} steps, {mlp_seconds:.0f} s)": mlp.sample(64, seed=1),
        }
    )
    plt.show()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(training_seconds(evals), evals["fid"], "o-", label="DCGAN")
    ax.plot(training_seconds(mlp_evals), mlp_evals["fid"], "s-", label="MLP GAN")
    ax.axhline(ref["fid"], ls=":", c="gray", label="real digits")
    ax.set(
        xlabel="training seconds (evaluations excluded)",
        ylabel=f"FID ({N_EVAL} samples)",
        yscale="log",
        title="quality against wall-clock time",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    plt.show()


# %% [markdown]
# The table puts the final evaluation of both runs next to real MNIST training digits scored the
# same way (the floor). `classes covered` counts digits with at least a 2% share of the classifier's
# predictions; `KL to uniform` is 0 when all ten digits are equally frequent and $\log 10 = 2.30$
# when only one is.


# %% tags=["nbval-ignore-output"]
def quality_row(q: dict, **extra) -> dict:
    return {
        **extra,
        "FID": q["fid"],
        "KID": q["kid_mean"],
        "classes covered": int(q["classes_covered"]),
        "KL to uniform": q["kl_uniform"],
        "confidence": q["mean_confidence"],
        "samples": int(q["n_samples"]),
    }


if IS_MNIST:
    final = evals.iloc[-1]
    table = pd.DataFrame(
        [
            quality_row(final, model="DCGAN", steps=trainer.step, seconds=round(dcgan_seconds)),
            quality_row(
                mlp_evals.iloc[-1], model="MLP GAN", steps=mlp.step, seconds=round(mlp_seconds)
            ),
            quality_row(ref, model="real digits", steps=None, seconds=None),
        ]
    ).set_index("model")
    display(table.round(3))


# %% [markdown]
# ## 8. Mode collapse: what it looks like and how to spot it
#
# $G$ is rewarded for fooling the *current* $D$, not for covering the data. If one kind of output
# fools $D$ well, $G$ can move all its mass there: many $z$ give (nearly) the same image. That is
# **mode collapse**. It comes in degrees: *complete* (every sample the same), *partial* (a few
# digits only, or one style per digit) and *mode hopping* ($D$ learns to reject the favoured digit,
# $G$ jumps to the next one, and the fixed-noise grids change all at once from epoch to epoch).
#
# How to spot it:
#
# 1. **Look at a large grid**, not four samples: repeated near-identical images, or digits missing.
# 2. **Count the modes with a fixed classifier.** For digits the modes are (mostly) the ten classes.
#    The classifier's histogram of generated digits should be close to uniform: real MNIST has 9.0%
#    to 11.2% of each digit. A tall bar, or bars below the 2% line, mean collapse.
# 3. **FID rises** as diversity falls, because it compares the *spread* (covariance) of the features
#    as well as their mean. The class histogram misses collapse *within* a class (a thousand
#    identical sevens cover the class "7"); FID and a look at the grid catch it.
# 4. **Losses** are a weak signal: collapse can happen while they look calm.
#
# First, the trained DCGAN's histogram:


# %% tags=["nbval-ignore-output"]
def plot_class_hist(hists: dict, n: int) -> None:
    """Bar charts of predicted-digit shares against the uniform 10% and the 2% 'covered' line."""
    fig, axes = plt.subplots(1, len(hists), figsize=(5.2 * len(hists), 3.2), squeeze=False)
    for ax, (title, hist) in zip(axes[0], hists.items()):
        ax.bar(range(10), hist, color="tab:blue")
        ax.axhline(0.1, ls="--", c="black", lw=1, label="uniform (10%)")
        ax.axhline(0.02, ls=":", c="red", lw=1, label="2%: covered")
        ax.set(
            xticks=range(10),
            xlabel="digit predicted by the classifier",
            ylabel=f"share of {n} samples",
            ylim=(0, max(0.3, max(hist) * 1.1)),
            title=title,
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()


if IS_MNIST:
    dcgan_hist = [float(final[f"class_hist_{i}"]) for i in range(10)]
    plot_class_hist({f"DCGAN, epoch {int(final['epoch'])}": dcgan_hist}, N_EVAL)
    print("shares:", " ".join(f"{d}:{p:.1%}" for d, p in enumerate(dcgan_hist)))


# %% [markdown]
# Now a run that is *meant* to be prone to collapse. Collapse is $G$ chasing the *current* $D$: if
# $D$ is slow to notice that all the fakes look alike, nothing stops $G$ from putting every $z$ on
# the one output $D$ likes best. So we slow the discriminator down: its learning rate divided by 10,
# everything else (models, data, loss, `Trainer`, seed) unchanged. The run is a third as long as the
# DCGAN's and keeps no run folder. Its **control** is the same run with the normal learning rate,
# for the same number of steps: a DCGAN that short may not cover all digits yet either, so only the
# difference between the two is the effect of the slow discriminator.
#
# Besides the histogram we measure diversity directly: for 500 samples, the mean pixel distance from
# each sample to its *nearest other* sample. Near-copies drive it towards 0, whatever digit they
# show; real digits give the yardstick.


# %% tags=["nbval-ignore-output"]
def nearest_neighbour_distance(images: torch.Tensor, n: int = 500) -> float:
    """Mean L2 distance (in [-1, 1] pixel units) from each of n images
    to its nearest other image."""
    x = images[:n].float().flatten(1)
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    return float(d.min(1).values.mean())


if IS_MNIST:
    prone = setup(
        "dcgan-mnist", profile=profile, run_dir=None, lr_d=c.lr_d / 10, epochs=max(1, c.epochs // 3)
    )
    prone_eval = EvaluateCallback(every=1, n_samples=N_EVAL)
    prone.add_callback("on_epoch_end", prone_eval)
    prone.fit()
    control = setup("dcgan-mnist", profile=profile, run_dir=None, epochs=prone.config.epochs)
    control_eval = EvaluateCallback(every=1, n_samples=N_EVAL)
    control.add_callback("on_epoch_end", control_eval)
    control.fit()
    real_32 = to_model(
        real.images[torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:500]]
    )
    diversity = pd.DataFrame(
        [
            quality_row(
                final,
                model="DCGAN",
                steps=trainer.step,
                **{"NN distance": nearest_neighbour_distance(trainer.sample(500, seed=3))},
            ),
            quality_row(
                control_eval.last,
                model="control (same steps)",
                steps=control.step,
                **{"NN distance": nearest_neighbour_distance(control.sample(500, seed=3))},
            ),
            quality_row(
                prone_eval.last,
                model="lr_d / 10",
                steps=prone.step,
                **{"NN distance": nearest_neighbour_distance(prone.sample(500, seed=3))},
            ),
            quality_row(
                ref,
                model="real digits",
                steps=None,
                **{"NN distance": nearest_neighbour_distance(real_32)},
            ),
        ]
    ).set_index("model")
    display(diversity.round(3))

# %% tags=["nbval-ignore-output"]
if IS_MNIST:
    prone_hist = prone_eval.last["class_hist"]
    plot_class_hist(
        {
            f"control ({control.step} steps)": control_eval.last["class_hist"],
            f"lr_d / 10 ({prone.step} steps)": prone_hist,
        },
        N_EVAL,
    )
    print("lr_d / 10 shares:", " ".join(f"{d}:{p:.1%}" for d, p in enumerate(prone_hist)))
    show_grids(
        {
            f"control, {control.step} steps": control.sample(64, seed=2),
            f"lr_d / 10, {prone.step} steps": prone.sample(64, seed=2),
        }
    )
    plt.show()
    plot_losses(prone.history, prone.config, title="lr_d / 10: losses")
    plt.show()

# %% [markdown]
# ## 9. Observations from this run
#
# The cell below writes up this execution's numbers (MNIST only); the grids above are for your
# eyes. Expect the first epoch's grid to be blobs of one kind, and strokes to appear within a few
# epochs; convolutional samples have no isolated bright pixels, because a convolution uses the
# same weights at every position and so correlates neighbouring pixels by construction.


# %% tags=["nbval-ignore-output"]
def spread(values, digits=2):
    lo, hi = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return lo if lo == hi else f"{lo}-{hi}"


if IS_MNIST:
    late = history[history["step"] > 0.8 * history["step"].max()]  # the last fifth of training
    low = history.loc[history["d_fake"].idxmin()]
    hist = pd.Series(dcgan_hist)
    if mlp_evals["seconds"].min() <= dcgan_seconds <= mlp_evals["seconds"].max():
        mlp_at = float(np.interp(dcgan_seconds, mlp_evals["seconds"], mlp_evals["fid"]))
        at_budget = (
            f"At the DCGAN's {dcgan_seconds:.0f} s the MLP GAN's FID, read between its "
            f"evaluations, is about {mlp_at:.0f}, against the DCGAN's {final['fid']:.0f}."
        )
    else:
        at_budget = "The MLP GAN was not evaluated around the DCGAN's budget to compare at it."
    mlp_final = mlp_evals.iloc[-1]
    classes = ", ".join(str(int(v)) for v in evals["classes_covered"])
    c_last, p_last = control_eval.last, prone_eval.last
    nn_rows = diversity["NN distance"]
    display(
        Markdown(rf"""
**Budget** ({profile} profile, {trainer.device}). {trainer.epoch} epochs, {trainer.step:,} steps of
{c.batch_size} images in {dcgan_seconds:.0f} s of training ({dcgan_step * 1000:.0f} ms per step),
plus {eval_seconds:.0f} s for {len(evals)} evaluations of {N_EVAL} samples.

**Losses.** $D(G(z))$ reached its lowest {c.log_every}-step mean, {low.d_fake:.2f}, at step
{int(low.step)} (where $\mathcal L_G$ was {low.loss_g:.2f}). Over the last fifth of training:
$\mathcal L_D$ {spread(late.loss_d)}, $\mathcal L_G$ {spread(late.loss_g)}, $D(x)$
{spread(late.d_real)}, $D(G(z))$ {spread(late.d_fake)}, against the equilibrium $2\log 2 = 1.386$
and $D = 0.5$.

**Quality.** FID per epoch: {", ".join(f"{v:.0f}" for v in evals["fid"])} (real digits:
{ref["fid"]:.1f} at this count); classes covered: {classes}. At the end the most frequent digit
({hist.idxmax()}) takes {hist.max():.1%} and the rarest ({hist.idxmin()}) {hist.min():.1%} (real
MNIST: 9.0-11.2% each); KL to uniform {final["kl_uniform"]:.3f} against {ref["kl_uniform"]:.3f}
for real digits.

**DCGAN vs MLP GAN at equal wall clock.** The MLP GAN's step took {mlp_step * 1000:.1f} ms in the
probe, so it got {mlp.step:,} steps; they took {mlp_seconds:.0f} s
({mlp_seconds / dcgan_seconds:.0%} of the budget: the machine's load moves step times). {at_budget}
At its end the MLP GAN has FID {mlp_final["fid"]:.0f} and {int(mlp_final["classes_covered"])}
classes covered, the DCGAN {final["fid"]:.0f} and {int(final["classes_covered"])}. One seed each,
and a budget this short favours the cheaper model: do not name a winner from one run (the
exercises rerun it).

**The collapse-prone run and its control** ({prone.step} steps each). With $D$'s learning rate
divided by 10: FID {p_last["fid"]:.0f}, {int(p_last["classes_covered"])} class(es) covered,
nearest-neighbour distance {nn_rows["lr_d / 10"]:.2f}; the control with the normal rate: FID
{c_last["fid"]:.0f}, {int(c_last["classes_covered"])} classes, distance
{nn_rows["control (same steps)"]:.2f} (real digits {nn_rows["real digits"]:.2f}). A distance near 0
means near-copies, whatever the classifier calls them; a confident classifier on such samples
(confidence {p_last["mean_confidence"]:.2f} here) is a classifier forced to choose, which is why
the histogram is read with the grid and FID.
""")
    )

# %% [markdown]
# ## 10. Exercises
#
# 1. **Batch norm, out and in.** (a) Remove every `BatchNorm2d` from the generator (replace them
#    with `nn.Identity()` in `trainer.G.net`, then build a `Trainer` with it) and train with the
#    default learning rates: does $G$ start learning at all? Try again with `lr_g` five times
#    larger. (b) Add a `BatchNorm2d` before $G$'s `Tanh`: what happens to the brightness of the
#    samples from one batch to the next, and to FID?
# 2. **Momentum.** Train with `betas=(0.9, 0.999)` (pass it to `train_or_load` as an override) and
#    compare the loss curves and FID with the committed run. Does the paper's warning about
#    oscillation show up?
# 3. **Pooling.** Write a discriminator that uses `Conv2d(stride=1)` + `AvgPool2d(2)` instead of
#    strided convolutions, with the same widths, and compare quality per second of training.
# 4. **Wider or longer?** With a fixed budget of seconds, is it better to halve the widths
#    (`g_width`, `d_width`) and take more steps, or to keep them? Use the quality-against-time plot.
# 5. **Colour.** Set `DATASET = "cifar10"` (or a folder of cat faces at 64x64) and train. Which of
#    the guidelines did you have to change? (None should be needed.) How many epochs until objects
#    appear?
# 6. **Collapse on purpose.** Find the smallest change to the committed DCGAN that makes the class
#    histogram lose a digit. Report the histogram, the grid and the FID, and the sample count.
# 7. **bf16.** Train the same preset with `precision="bf16"` (an override to `train_or_load`;
#    forward passes under bf16 autocast, weights and optimizer in fp32). On a CPU with bf16 units
#    (`lscpu | grep -o 'avx512_bf16\|amx_bf16'`) or an Ampere-or-newer GPU, compare images per
#    second and FID at equal training time with the committed run; elsewhere gankit warns that bf16
#    is emulated: measure how much slower it is. Which layers does autocast keep in fp32, and why?
