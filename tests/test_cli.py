"""The command line contract of DESIGN.md: train a preset, then sample a PNG grid and an .npz."""

import numpy as np
from helpers import needs_mnist
from PIL import Image

from gankit.cli import main


@needs_mnist
def test_train_then_sample_png_and_npz(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "mlp-mnist",
                "--profile",
                "smoke",
                "--out",
                str(tmp_path),
                "--seed",
                "1",
                "--quiet",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    runs = list((tmp_path / "mlp-mnist").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for name in (
        "config.json",
        "history.csv",
        "metrics.json",
        "samples/epoch_0001.png",
        "checkpoints/last.pt",
    ):
        assert (run / name).exists(), name
    ckpt = str(run / "checkpoints" / "last.pt")

    assert main(["sample", ckpt, "--n", "9", "--out", str(tmp_path / "g.png")]) == 0
    w, h = Image.open(tmp_path / "g.png").size
    assert (w, h) == (3 * 28 + 4 * 2, 3 * 28 + 4 * 2)  # 3x3 grid with 2-pixel padding

    assert main(["sample", ckpt, "--n", "5", "--out", str(tmp_path / "s.npz"), "--seed", "3"]) == 0
    data = np.load(tmp_path / "s.npz")
    assert data["images"].dtype == np.uint8 and data["images"].shape == (5, 1, 28, 28)
    assert "labels" not in data  # unconditional model
    again = tmp_path / "s2.npz"
    main(["sample", ckpt, "--n", "5", "--out", str(again), "--seed", "3"])
    assert np.array_equal(
        np.load(again)["images"], data["images"]
    )  # --seed makes samples repeatable

    assert (
        main(
            [
                "train",
                "mlp-mnist",
                "--profile",
                "smoke",
                "--out",
                str(tmp_path),
                "--seed",
                "1",
                "--quiet",
                "--epochs",
                "2",
                "--resume",
            ]
        )
        == 0
    )
    assert "resumed at step 20 (epoch 1)" in capsys.readouterr().out
    assert len(list((tmp_path / "mlp-mnist").iterdir())) == 1  # the same run folder continued


@needs_mnist
def test_train_precision_option_is_recorded(tmp_path, capsys):
    import json
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*no native bf16 units"
        )  # emulated: slow, not wrong
        assert (
            main(
                [
                    "train",
                    "mlp-mnist",
                    "--profile",
                    "smoke",
                    "--out",
                    str(tmp_path),
                    "--quiet",
                    "--epochs",
                    "1",
                    "--precision",
                    "bf16",
                ]
            )
            == 0
        )
    (run,) = (tmp_path / "mlp-mnist").iterdir()
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"
    assert "bf16" in capsys.readouterr().out


def test_train_refuses_unavailable_bf16_before_making_a_run_folder(tmp_path, capsys, monkeypatch):
    from helpers import without_bf16_autocast

    without_bf16_autocast(monkeypatch)
    assert (
        main(
            [
                "train",
                "mlp-mnist",
                "--profile",
                "smoke",
                "--out",
                str(tmp_path),
                "--precision",
                "bf16",
            ]
        )
        != 0
    )
    assert "precision='bf16' is not available on cpu" in capsys.readouterr().err
    assert not (tmp_path / "mlp-mnist").exists()


def test_unconditional_model_rejects_labels(tmp_path, capsys):
    from helpers import tiny_config, tiny_trainer

    t = tiny_trainer(tiny_config(), run_dir=tmp_path / "r")
    t.fit(1)
    code = main(
        [
            "sample",
            str(tmp_path / "r" / "checkpoints" / "last.pt"),
            "--n",
            "2",
            "--labels",
            "3",
            "--out",
            str(tmp_path / "x.png"),
        ]
    )
    assert code == 2 and "unconditional model" in capsys.readouterr().err
