"""Pickers for conditional generators: choose genres (or a digit), temperature and seed; see a grid.

Written against the part of the ipywidgets API that versions 7 and 8 share (Colab ships 7.7.1):
SelectMultiple, IntSlider, FloatSlider, IntText, Button, HTML, Image, HBox/VBox and `observe`;
no 8-only widgets. Widgets need a live kernel: a saved or exported notebook shows them blank,
so lessons put a static grid next to each picker.

The grid is a PNG in an `Image` widget, not a matplotlib figure in an `Output` widget. Output
widgets capture display messages from inside a cell, and executing such a cell with nbconvert /
nbclient sometimes never returns (jupyter/nbclient#312, jupyter/nbconvert#2029; it hung
`make course` here once); an Image widget is only a value update, in a notebook and in batch.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import torch

# A description as wide as its text: ipywidgets' default column (80 px) cut "temperature" to
# "temperat..."; a dict works as the style on ipywidgets 7 and 8 alike.
LABEL = {"description_width": "initial"}


def _box(
    trainer: Any,
    controls: dict[str, Any],
    condition: Callable[[dict[str, Any]], torch.Tensor | None],
    title: Callable[[dict[str, Any]], str],
    n: int,
    show: bool,
    nrow: int | None,
):
    """A VBox of the controls above a title and a live grid; `.images`, `.condition` and `.controls`
    hold the latest state."""
    import ipywidgets as widgets

    from .viz import png_grid

    new_seed = widgets.Button(
        description="new seed", tooltip="draw other latent vectors z (seed + 1)"
    )
    caption = widgets.HTML()
    # Shown at its own size (at most the output's width): stretched to the box, as a VBox does by
    # default, a 414-px grid became 964 px and never fit one screen with the controls.
    picture = widgets.Image(
        format="png",
        layout=widgets.Layout(max_width="100%", height="auto", align_self="flex-start"),
    )
    column = [c for k, c in controls.items() if k not in ("temperature", "seed")]
    box = widgets.VBox(
        [
            *column,
            widgets.HBox([controls["temperature"], controls["seed"], new_seed]),
            caption,
            picture,
        ]
    )
    box.controls, box.images, box.condition = controls, None, None

    def draw(_change: Any = None) -> None:
        values = {k: c.value for k, c in controls.items()}
        y = condition(values)
        if y is None:  # nothing to draw: no stale grid under the message
            caption.value = "<b>choose at least one genre</b>"
            box.images = box.condition = None
            picture.value, picture.layout.display = b"", "none"
            return
        images = trainer.sample(n, y, temperature=values["temperature"], seed=values["seed"]).cpu()
        box.images, box.condition = images, y
        caption.value = f"<b>{html.escape(title(values))}</b>"
        if show:  # show=False (tests) skips the PNG encoding
            picture.value = png_grid(images, nrow)
            picture.layout.width = f"{int.from_bytes(picture.value[16:20], 'big')}px"  # IHDR width
            picture.layout.display = None

    for c in controls.values():
        c.observe(draw, names="value")  # redraw on every change
    new_seed.on_click(lambda _: setattr(controls["seed"], "value", controls["seed"].value + 1))
    draw()
    return box


def genre_picker(
    trainer: Any,
    names: Sequence[str] | None = None,
    *,
    n: int = 16,
    genres: Sequence[str] = ("Horror",),
    temperature: float = 1.0,
    seed: int = 0,
    show: bool = True,
    nrow: int | None = None,
):
    """A genre picker for a poster model: multi-select
    genres, temperature slider, seed; a grid of n posters.

    trainer: a Trainer of a multi-hot conditional model (cond_dim > 0), e.g. poster-cgan. names: the
    genre vocabulary (default: config.label_names, saved by setup()). The condition is encoded as in
    training (config.genre_encoding: multi-hot or normalised). Every change redraws the grid (n
    samples from z * temperature drawn with `seed`); "new seed" adds one to the seed. Returns the
    VBox; its `.images` (n, C, H, W) in [-1, 1] and `.condition` (n, G) are the last ones drawn, and
    `.controls` maps 'genres', 'temperature', 'seed' to their widgets. show=False skips the plot
    (tests).
    """
    import ipywidgets as widgets

    from .datasets.posters import encode_genres

    config = trainer.config
    if not config.cond_dim:
        raise ValueError(
            f"genre_picker needs a model conditioned on genre vectors (cond_dim > 0); "
            f"{config.preset} has cond_dim=0"
            + (" (use digit_picker)" if config.num_classes else "")
        )
    names = list(names or config.label_names)
    if len(names) != config.cond_dim:
        raise ValueError(
            f"need {config.cond_dim} genre names for this model, got {len(names)}; pass names="
        )
    unknown = [g for g in genres if g not in names]
    if unknown:
        raise ValueError(f"unknown genre(s) {unknown}; choose from {', '.join(names)}")
    mode = config.genre_encoding
    controls = {
        "genres": widgets.SelectMultiple(
            options=names, value=tuple(genres), rows=8, description="genres"
        ),
        "temperature": widgets.FloatSlider(
            value=temperature,
            min=0.0,
            max=2.0,
            step=0.1,
            description="temperature",
            continuous_update=False,
            style=LABEL,
        ),  # redraw on release, not on every pixel
        "seed": widgets.IntText(value=seed, description="seed"),
    }

    def condition(values: dict[str, Any]) -> torch.Tensor | None:
        chosen = list(values["genres"])
        return encode_genres([chosen] * n, vocab=names, mode=mode) if chosen else None

    def title(values: dict[str, Any]) -> str:
        return (
            f"{' + '.join(values['genres'])}  "
            f"(T={values['temperature']:.1f}, seed {values['seed']})"
        )

    return _box(trainer, controls, condition, title, n, show, nrow)


def digit_picker(
    trainer: Any,
    *,
    n: int = 16,
    digit: int = 0,
    temperature: float = 1.0,
    seed: int = 0,
    show: bool = True,
    nrow: int | None = None,
):
    """A digit picker for a class-conditional model
    (num_classes > 0, e.g. cgan-mnist): slider for the class.

    Same controls and attributes as genre_picker, with 'digit' (an IntSlider) in place of 'genres'.
    """
    import ipywidgets as widgets

    k = trainer.config.num_classes
    if not k:
        raise ValueError(
            f"digit_picker needs a class-conditional model (num_classes > 0); "
            f"{trainer.config.preset} has none"
        )
    controls = {
        "digit": widgets.IntSlider(value=digit, min=0, max=k - 1, description="class"),
        "temperature": widgets.FloatSlider(
            value=temperature,
            min=0.0,
            max=2.0,
            step=0.1,
            description="temperature",
            continuous_update=False,
            style=LABEL,
        ),
        "seed": widgets.IntText(value=seed, description="seed"),
    }

    def condition(values: dict[str, Any]) -> torch.Tensor:
        return torch.full((n,), int(values["digit"]), dtype=torch.long)

    def title(values: dict[str, Any]) -> str:
        return f"class {values['digit']}  (T={values['temperature']:.1f}, seed {values['seed']})"

    return _box(trainer, controls, condition, title, n, show, nrow)
