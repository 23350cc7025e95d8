"""The genre and digit pickers: no stale grid, the grid at its own size, whole labels.

A stand-in trainer (a config and a `sample` method) keeps these tests free of training. They pass on
ipywidgets 8 and on Colab's 7.7.1 (`PYTHONPATH=<ipywidgets 7.7.1 + ipython_genutils> pytest ...`).
"""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from gankit.config import make_config
from gankit.datasets.posters import GENRES

widgets = pytest.importorskip("ipywidgets")


class StandIn:
    """What the pickers use of a Trainer: .config and .sample(n, y, temperature=, seed=)."""

    def __init__(self, preset: str):
        self.config = make_config(preset, "smoke")
        if self.config.cond_dim:
            self.config.label_names = tuple(GENRES[: self.config.cond_dim])
        self.calls = 0

    def sample(self, n, y, temperature=1.0, seed=0):
        self.calls += 1
        gen = torch.Generator().manual_seed(seed)
        c, s = self.config.channels, self.config.image_size
        return torch.rand(n, c, s, s, generator=gen) * 2 * temperature - temperature


@pytest.fixture
def picker():
    from gankit.widgets import genre_picker

    trainer = StandIn("poster-cgan")
    return genre_picker(trainer, n=16, genres=("Horror",)), trainer


def test_no_genre_clears_the_old_grid(picker):
    box, trainer = picker
    caption, picture = box.children[-2:]
    assert picture.value and box.images is not None
    box.controls["genres"].value = ()
    assert "choose at least one genre" in caption.value
    assert picture.value == b"" and picture.layout.display == "none"  # no stale grid below it
    assert box.images is None and box.condition is None
    calls = trainer.calls
    box.controls["genres"].value = ("Comedy",)  # choosing again brings a grid back
    assert trainer.calls == calls + 1 and picture.value and picture.layout.display in (None, "")
    assert "Comedy" in caption.value


def test_grid_is_shown_at_its_own_size(picker):
    box, _ = picker
    picture = box.children[-1]
    width = Image.open(io.BytesIO(picture.value)).width
    assert picture.layout.width == f"{width}px"  # not stretched to the output's width
    assert picture.layout.max_width == "100%" and picture.layout.height == "auto"
    assert picture.layout.align_self == "flex-start"  # a VBox stretches its children otherwise


@pytest.mark.parametrize("preset", ["poster-cgan", "cgan-mnist"])
def test_labels_are_not_cut(preset):
    from gankit.widgets import digit_picker, genre_picker

    trainer = StandIn(preset)
    box = (genre_picker if preset == "poster-cgan" else digit_picker)(trainer, n=4)
    for name, control in box.controls.items():
        # ipywidgets' default description column is 80 px, which cut "temperature" to "temperat..."
        if len(control.description) > len("genres"):
            assert control.style.description_width == "initial", name
