"""gankit: the library behind a four-lesson GAN course (MLP GAN, DCGAN, WGAN-GP, conditional posters)."""
__version__ = "0.1.0"

from .config import GANConfig, make_config, resolve_device, resolve_profile, seed_everything  # noqa: E402
from .data import BatchSource, load_dataset, to_display, to_model  # noqa: E402
from .models import build_models, count_parameters  # noqa: E402
from .train import Trainer, setup  # noqa: E402

__all__ = ["GANConfig", "make_config", "resolve_device", "resolve_profile", "seed_everything", "BatchSource",
           "load_dataset", "to_display", "to_model", "build_models", "count_parameters", "Trainer", "setup"]
