"""gankit: the library behind a four-lesson GAN course (MLP GAN, DCGAN, WGAN-GP, conditional posters)."""

__version__ = "0.1.0"

from .config import GANConfig, make_config, resolve_device, resolve_profile, seed_everything
from .data import BatchSource, load_dataset, to_display, to_model
from .models import build_models, count_parameters
from .train import Trainer, setup

__all__ = [
    "BatchSource",
    "GANConfig",
    "Trainer",
    "build_models",
    "count_parameters",
    "load_dataset",
    "make_config",
    "resolve_device",
    "resolve_profile",
    "seed_everything",
    "setup",
    "to_display",
    "to_model",
]
