"""Small shared builders for the tests: tiny configs and synthetic data (no downloads)."""

from __future__ import annotations

import pytest
import torch

from gankit.cli import main as cli_main
from gankit.config import ConfigError, GANConfig, data_root
from gankit.data import BatchSource
from gankit.models import build_models
from gankit.train import Trainer

# A tiny WGAN-GP critic setup (layer-norm critic, the paper's penalty and betas) for tests.
WGAN_GP = dict(
    preset="wgan-gp-mnist", model="dcgan", image_size=32, g_width=8, d_width=8, d_norm="layer",
    loss="wgan", gp_weight=10.0, betas=(0.0, 0.9),
)  # fmt: skip


def tiny_config(**kw) -> GANConfig:
    base = dict(
        preset="mlp-mnist",
        model="mlp",
        latent_dim=8,
        hidden_dim=16,
        batch_size=8,
        epochs=2,
        steps_per_epoch=4,
        log_every=2,
        n_fixed=4,
        profile="smoke",
        seed=3,
    )
    base.update(kw)
    return GANConfig(**base)


def synthetic(n: int = 64, channels: int = 1, size: int = 28, classes: int = 0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, classes, (n,), generator=g) if classes else None
    return images, labels


def tiny_trainer(config: GANConfig, run_dir=None, images=None, labels=None) -> Trainer:
    torch.manual_seed(config.seed)
    if images is None:
        images, labels = synthetic(64, config.channels, config.image_size, config.num_classes)
    source = BatchSource(
        images, labels, config.batch_size, seed=config.seed, steps_per_epoch=config.steps_per_epoch
    )
    G, D = build_models(config)
    return Trainer(config, G, D, source, device="cpu", run_dir=run_dir, progress=False)


def have_mnist() -> bool:
    """Whether MNIST's test images are where gankit will look (data_root: GANKIT_DATA or ./data)."""
    try:
        raw = data_root() / "MNIST" / "raw"
    except ConfigError:  # GANKIT_DATA points nowhere
        return False
    return any(
        (raw / name).exists() for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz")
    )


needs_mnist = pytest.mark.skipif(
    not have_mnist(), reason="MNIST not under GANKIT_DATA (set GANKIT_DATA=../shared/data)"
)


def without_bf16_autocast(monkeypatch) -> None:
    """Make torch.autocast behave as on a device without bf16: it warns and turns itself off."""
    import warnings

    def unsupported(device_type, dtype):
        warnings.warn(
            "In CPU autocast, but the target dtype is not supported. Disabling autocast.",
            stacklevel=1,
        )

    monkeypatch.setattr(torch, "autocast", unsupported)


# gankit CLI: what a refusal must look like (the defect tests share these)
def run_cli_err(argv, capsys) -> tuple[int, str]:
    """(exit code, stderr) of `gankit ARGV`, argparse refusals included."""
    try:
        code = cli_main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, *needles: str) -> str:
    """Exit 2 with one line on stderr, `gankit CMD: error: ...`, holding every needle."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("gankit ") and ": error: " in lines[0], err
    assert "Traceback" not in err and "weights_only" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]
