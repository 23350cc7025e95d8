"""The `gankit bench` baseline: a GAN loop as popular tutorials write it, on gankit's networks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from ..config import GANConfig, cache_root, data_root, seed_everything
from ..data import mnist_missing_error
from ..datasets import posters
from ..datasets.toy_posters import poster_root
from ..models import build_models


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _SigmoidD(nn.Module):
    """D followed by nn.Sigmoid, as tutorials build it for nn.BCELoss."""

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D, self.sigmoid = D, nn.Sigmoid()

    def forward(self, x: torch.Tensor, *y: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.D(x, *y))


class TutorialLoop:
    """The same G, D and batch trained the way popular tutorials write the loop.

    Modelled on the PyTorch DCGAN tutorial (BCE) and PyTorch-GAN's wgan_gp.py (WGAN-GP):
    torchvision transforms (ToTensor + Normalize, Resize where needed) through a DataLoader
    every step (shuffle=True, default num_workers=0), a Sigmoid module + nn.BCELoss, D losses
    backpropagated separately for real and fake, the fake batch of the D step reused for the
    G step, optimizers with default settings (no foreach/fused flags) and `.item()` on the
    losses every step. Hyperparameters (lr, betas, n_critic, gp_weight) are the config's.
    """

    name = "tutorial"

    def __init__(
        self, config: GANConfig, dataset: torch.utils.data.Dataset, device: torch.device
    ) -> None:
        seed_everything(config.seed)
        G, D = build_models(config)
        self.config, self.device = config, device
        self.G, self.D_logits = G.to(device), D.to(device)
        self.wgan = config.loss == "wgan"
        self.D = self.D_logits if self.wgan else _SigmoidD(self.D_logits)
        self.criterion = nn.BCELoss()
        opt = torch.optim.RMSprop if config.optimizer == "rmsprop" else torch.optim.Adam
        kw = {} if config.optimizer == "rmsprop" else {"betas": config.betas}
        self.opt_g = opt(G.parameters(), lr=config.lr_g, **kw)
        self.opt_d = opt(D.parameters(), lr=config.lr_d, **kw)
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=config.batch_size, shuffle=True
        )
        self._it = iter(self.loader)
        self.i = 0
        self.losses_d: list[float] = []
        self.losses_g: list[float] = []

    @property
    def networks(self) -> tuple[nn.Module, nn.Module]:
        return self.G, self.D_logits

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return next(self._it)
        except StopIteration:  # a new epoch
            self._it = iter(self.loader)
            return next(self._it)

    def run(self, cycles: int) -> int:
        n = 0
        for _ in range(cycles * self.config.n_critic):
            imgs, labels = self._next()
            n += imgs.shape[0]
            self.step(imgs, labels)
        synchronize(self.device)
        return n

    def one_cycle(self) -> None:
        imgs, labels = self._next()
        for _ in range(self.config.n_critic):
            self.step(imgs, labels)

    def step(self, imgs: torch.Tensor, labels: torch.Tensor) -> None:
        c, dev = self.config, self.device
        real = imgs.to(dev)
        args = (labels.to(dev),) if c.conditional else ()
        b = real.size(0)
        g_step = (self.i + 1) % c.n_critic == 0
        self.i += 1
        if self.wgan:  # PyTorch-GAN wgan_gp.py
            self.opt_d.zero_grad()
            z = torch.randn(b, c.latent_dim, device=dev)
            fake = self.G(z, *args)
            loss_d = -torch.mean(self.D(real, *args)) + torch.mean(self.D(fake.detach(), *args))
            if c.gp_weight:
                loss_d = loss_d + c.gp_weight * self.gradient_penalty(real, fake.detach(), args)
            loss_d.backward()
            self.opt_d.step()
            self.losses_d.append(loss_d.item())
            if g_step:
                self.opt_g.zero_grad()
                loss_g = -torch.mean(self.D(self.G(z, *args), *args))
                loss_g.backward()
                self.opt_g.step()
                self.losses_g.append(loss_g.item())
            return
        # the PyTorch DCGAN tutorial
        label = torch.full((b,), c.real_label, device=dev)
        self.D.zero_grad()
        output = self.D(real, *args).view(-1)
        err_real = self.criterion(output, label)
        err_real.backward()
        self.d_x = output.mean().item()
        fake = self.G(torch.randn(b, c.latent_dim, device=dev), *args)
        label.fill_(0.0)
        output = self.D(fake.detach(), *args).view(-1)
        err_fake = self.criterion(output, label)
        err_fake.backward()
        self.opt_d.step()
        self.losses_d.append((err_real + err_fake).item())
        if g_step:
            self.G.zero_grad()
            label.fill_(1.0)
            loss_g = self.criterion(self.D(fake, *args).view(-1), label)
            loss_g.backward()
            self.opt_g.step()
            self.losses_g.append(loss_g.item())

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, args: tuple) -> torch.Tensor:
        alpha = torch.rand(real.size(0), 1, 1, 1, device=self.device)
        interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        d_interpolates = self.D(interpolates, *args)
        gradients = torch.autograd.grad(
            outputs=d_interpolates,
            inputs=interpolates,
            grad_outputs=torch.ones_like(d_interpolates),
            create_graph=True,
            retain_graph=True,
        )[0]
        return ((gradients.view(gradients.size(0), -1).norm(2, dim=1) - 1) ** 2).mean()


# ------------------------------------------------------------------------------ tutorial-style data
class _PosterFiles(torch.utils.data.Dataset):
    """Posters read from their JPEG files on every access, as a tutorial's custom Dataset does."""

    def __init__(self, paths: list[Path], genres: torch.Tensor, transform: Callable) -> None:
        self.paths, self.genres, self.transform = paths, genres, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), self.genres[i]


def tutorial_dataset(config: GANConfig) -> torch.utils.data.Dataset:
    """The training set as tutorials build it: a torchvision dataset with per-image transforms."""
    from torchvision import datasets, transforms

    steps = [transforms.Resize(config.image_size)] if config.image_size != 28 else []
    if config.dataset == "posters":
        if config.data_path:
            root = Path(config.data_path)
        else:  # the folder load_dataset uses: the real set under GANKIT_DATA, else the toy set
            root, _ = poster_root(data_root(), toy_dir=cache_root() / "posters-toy")
        pd_ = posters.load_posters(
            root,
            (config.image_size, config.image_size),
            top_k=config.top_k,
            encoding=config.genre_encoding,
            progress=False,
        )
        paths = [posters.poster_file(root, i) for i in pd_.ids]
        flip = (
            [transforms.RandomHorizontalFlip()] if config.augment else []
        )  # gankit flips batches too
        tf = transforms.Compose(
            [
                *steps,
                transforms.CenterCrop(config.image_size),
                *flip,
                transforms.ToTensor(),
                transforms.Normalize([0.5] * 3, [0.5] * 3),
            ]
        )
        return _PosterFiles(paths, pd_.genres, tf)
    if config.dataset != "mnist":
        raise ValueError(f"the tutorial baseline covers MNIST and posters, not {config.dataset!r}")
    tf = transforms.Compose([*steps, transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    try:
        return datasets.MNIST(str(data_root()), train=True, download=False, transform=tf)
    except RuntimeError:
        raise mnist_missing_error(data_root(), "MNIST", None) from None
