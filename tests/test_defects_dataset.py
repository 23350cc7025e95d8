"""`gankit train --dataset / --data`: the data a run trains on is the data asked for.

`--data FOLDER` used to be recorded in config.json and ignored (the run trained on MNIST, exit 0),
and no option picked Fashion-MNIST or CIFAR-10. Now the data source is explicit, and a source the
preset cannot use is refused in one line before any run folder is made.
"""

import json

import numpy as np
import pytest
from PIL import Image

from gankit.cli import build_parser, main


def image_folder(path, n: int, *, colour: bool = True, size: int = 12):
    """n random PNGs (RGB or grey, size x size) in path."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shape = (size, size, 3) if colour else (size, size)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path / f"{i:03d}.png")
    return path


def config_for(*argv):
    """The config `gankit train ARGV --profile smoke` would run, without training."""
    from gankit.cli import train_config

    return train_config(build_parser().parse_args(["train", *map(str, argv), "--profile", "smoke"]))


def train(argv, out, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a 1-epoch smoke `gankit train ARGV` into out."""
    argv = ["train", *map(str, argv), "--profile", "smoke", "--epochs", "1", "--quiet"]
    try:
        code = main([*argv, "--out", str(out)])
    except SystemExit as e:  # argparse: an option the parser does not know
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_data_folder_trains_a_dcgan_preset_on_those_rgb_images(tmp_path, capsys):
    folder = image_folder(tmp_path / "cats", 128)  # dcgan-mnist's batch: one step per epoch
    code, out, err = train(["dcgan-mnist", "--data", folder], tmp_path / "runs", capsys)
    assert code == 0, err
    (run,) = (tmp_path / "runs" / "dcgan-mnist").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "folder" and config["data_path"] == str(folder)
    assert (config["channels"], config["image_size"]) == (3, 32)  # RGB; the preset's size
    assert "data: image folder" in out and "channels=3" in out  # the summary says what was chosen
    assert "loaded 128 of 128 images" in out and "MNIST" not in out

    npz = tmp_path / "s.npz"
    assert (
        main(["sample", str(run / "checkpoints" / "last.pt"), "--n", "2", "--out", str(npz)]) == 0
    )
    assert np.load(npz)["images"].shape == (2, 3, 32, 32)


def test_a_grey_folder_keeps_one_channel(tmp_path):
    config = config_for("wgan-gp-mnist", "--data", image_folder(tmp_path / "g", 4, colour=False))
    assert (config.dataset, config.channels, config.image_size) == ("folder", 1, 32)


@pytest.mark.parametrize(
    "preset, dataset, channels, size",
    [
        ("dcgan-mnist", "cifar10", 3, 32),
        ("wgan-gp-mnist", "fashion-mnist", 1, 32),
        ("mlp-mnist", "fashion-mnist", 1, 28),
        ("cgan-mnist", "fashion-mnist", 1, 28),
        ("dcgan-mnist", "mnist", 1, 32),
    ],
)
def test_dataset_option_picks_the_data_set(preset, dataset, channels, size):
    config = config_for(preset, "--dataset", dataset)
    assert (config.dataset, config.data_path) == (dataset, None)
    assert (config.channels, config.image_size) == (channels, size)


@pytest.mark.parametrize(
    "preset, dataset, channels",
    [("mlp-mnist", "mnist", 1), ("dcgan-mnist", "mnist", 1), ("poster-cgan", "posters", 3)],
)
def test_without_data_options_a_preset_keeps_its_own_data(preset, dataset, channels):
    config = config_for(preset)
    assert (config.dataset, config.data_path, config.channels) == (dataset, None, channels)


def test_poster_cgan_data_is_the_poster_root(tmp_path):
    from gankit.datasets.toy_posters import make_toy

    make_toy(tmp_path / "p", n=8, seed=0, broken=0.0)
    config = config_for("poster-cgan", "--data", tmp_path / "p")
    assert (config.dataset, config.data_path, config.channels) == (
        "posters",
        str(tmp_path / "p"),
        3,
    )


# (argv after the preset's folder placeholders are filled in, words the one line must hold)
REFUSED = {
    "mlp-rgb-folder": (
        ["mlp-mnist", "--data", "{rgb}"],
        ["mlp-mnist", "28x28 grey", "dcgan-mnist"],
    ),
    "mlp-cifar10": (["mlp-mnist", "--dataset", "cifar10"], ["mlp-mnist", "cifar10"]),
    "cgan-folder": (["cgan-mnist", "--data", "{rgb}"], ["cgan-mnist", "labels"]),
    "cgan-cifar10": (["cgan-mnist", "--dataset", "cifar10"], ["cgan-mnist", "mnist or fashion"]),
    "poster-mnist": (["poster-cgan", "--dataset", "mnist"], ["poster-cgan", "posters"]),
    "dcgan-posters": (["dcgan-mnist", "--dataset", "posters"], ["dcgan-mnist", "poster-cgan"]),
    "missing-path": (["dcgan-mnist", "--data", "{missing}"], ["--data", "does not exist"]),
    "a-file": (["dcgan-mnist", "--data", "{file}"], ["--data", "not a folder"]),
    "empty-folder": (["dcgan-mnist", "--data", "{empty}"], ["--data", "no image files"]),
    "no-images-readable": (["dcgan-mnist", "--data", "{junk}"], ["--data", "none of its 2"]),
    "folder-no-data": (["wgan-gp-mnist", "--dataset", "folder"], ["--dataset folder", "--data"]),
    "mnist-with-data": (["dcgan-mnist", "--dataset", "mnist", "--data", "{rgb}"], ["GANKIT_DATA"]),
    "posters-no-csv": (["poster-cgan", "--data", "{empty}"], ["--data", "MovieGenre.csv"]),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unusable_data_is_refused_in_one_line_before_a_run_folder(case, tmp_path, capsys):
    argv, needles = REFUSED[case]
    places = {
        "rgb": image_folder(tmp_path / "rgb", 4),
        "missing": tmp_path / "nowhere",
        "file": image_folder(tmp_path / "one", 1) / "000.png",
        "empty": tmp_path / "empty",
        "junk": tmp_path / "junk",
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    (tmp_path / "junk").mkdir()
    for name in ("a.png", "b.jpg"):
        (tmp_path / "junk" / name).write_bytes(b"not an image at all")
    argv = [a.format(**places) for a in argv]
    runs = tmp_path / "runs"
    code, _, err = train(argv, runs, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("gankit train: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    assert not runs.exists() or not any(runs.rglob("*")), "a refused run left a folder behind"


def test_readme_synopsis_lists_every_option():
    """The README's command-line synopsis names every long option each command takes."""
    import argparse
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    synopsis = re.search(r"## Command line\n\n```\n(.*?)```", readme, re.S).group(1)

    # One chunk per command: 'gankit CMD ...' up to the next 'gankit '.
    chunks = re.split(r"(?=gankit )", synopsis)

    def commands(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, f"{prefix} {name}")
                return
        yield prefix, parser

    missing = []
    for cmd, parser in commands(build_parser(), "gankit"):
        shown = [c for c in chunks if re.match(rf"{cmd}\b", c)]
        assert len(shown) == 1, f"README's synopsis has no line for {cmd!r}"
        listed = set(re.findall(r"--[a-z][a-z-]*", shown[0]))
        missing += [
            f"{cmd} {opt}"
            for action in parser._actions
            for opt in action.option_strings
            if opt.startswith("--") and opt != "--help" and opt not in listed
        ]
    assert not missing, f"README's synopsis lacks {missing}"
