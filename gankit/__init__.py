"""gankit: the library of a four-lesson GAN course (MLP GAN, DCGAN, WGAN-GP, conditional posters).

The course's core, in the order a lesson uses it: config, data, models, losses (and the Objective),
train (the Trainer: d_step, g_step, fit), runs (run folders), metrics, viz, lesson (setup,
train_or_load). Dataset preparation, reports and benchmarks live in datasets/, report/, bench/.
"""

__version__ = "0.1.0"

from .config import GANConfig, make_config, resolve_device, resolve_profile, seed_everything
from .data import BatchSource, load_dataset, to_display, to_model
from .lesson import setup, train_or_load
from .losses import Objective, objective_for
from .models import build_models, count_parameters
from .train import Trainer

__all__ = [
    "BatchSource",
    "GANConfig",
    "Objective",
    "Trainer",
    "build_models",
    "count_parameters",
    "load_dataset",
    "make_config",
    "objective_for",
    "resolve_device",
    "resolve_profile",
    "seed_everything",
    "setup",
    "to_display",
    "to_model",
    "train_or_load",
]
