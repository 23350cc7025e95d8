"""A stranger's or a damaged checkpoint on the command line: one line naming what is wrong.

Each is checked before anything is built from it (its config could ask for gigabytes), a flipped
byte inside a weight is caught by the checksum, NaN weights and non-finite temperatures never
reach an image file.
"""

import os
import threading

import pytest
import torch
from helpers import assert_refused, run_cli_err, tiny_config, tiny_trainer

from gankit import checkpoints
from gankit.checkpoints import CheckpointError, load_checkpoint, state_checksum


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    """A real checkpoint of a tiny unconditional MLP (1 epoch of 4 steps)."""
    run = tmp_path_factory.mktemp("good") / "r"
    tiny_trainer(tiny_config(), run_dir=run).fit(1)
    return run / "checkpoints" / "last.pt"


def crafted(good_checkpoint, tmp_path, change) -> str:
    """A copy of the good checkpoint with `change(ckpt)` applied, saved as tmp_path/c.pt."""
    ckpt = torch.load(good_checkpoint, weights_only=True)
    change(ckpt)
    path = tmp_path / "c.pt"
    torch.save(ckpt, path)
    return str(path)


def sample(path, tmp_path, capsys, *extra) -> tuple[int, str]:
    return run_cli_err(["sample", path, "--n", "4", "--out", tmp_path / "x.png", *extra], capsys)


# ------------------------------------------------------------ 1. checked before anything is built
def test_a_checkpoint_with_only_its_format_names_what_it_lacks(tmp_path, capsys):
    path = tmp_path / "c.pt"
    torch.save({"format": 1}, path)
    line = assert_refused(*sample(path, tmp_path, capsys), "c.pt", "lacks", "config", "G", "D")
    assert "opt_g" in line
    assert not (tmp_path / "x.png").exists()


def test_a_missing_key_is_named(good_checkpoint, tmp_path, capsys):
    path = crafted(good_checkpoint, tmp_path, lambda c: c.pop("opt_g"))
    assert_refused(*sample(path, tmp_path, capsys), "lacks", "opt_g")


def test_a_config_field_of_the_wrong_type_is_named(good_checkpoint, tmp_path, capsys):
    path = crafted(good_checkpoint, tmp_path, lambda c: c["config"].update(hidden_dim="16"))
    assert_refused(*sample(path, tmp_path, capsys), "hidden_dim", "'16'", "int")


@pytest.mark.parametrize(
    "field, value", [("hidden_dim", 10**7), ("image_size", 2**20), ("n_fixed", 10**9)]
)
def test_a_config_asking_for_gigabytes_is_refused_before_any_network_is_built(
    good_checkpoint, tmp_path, capsys, monkeypatch, field, value
):
    def only_on_meta(config):  # building on the meta device allocates nothing
        if torch.empty(0).device.type != "meta":
            raise AssertionError(f"networks built from an unchecked config ({field}={value})")
        return real(config)

    real = checkpoints.build_models
    monkeypatch.setattr(checkpoints, "build_models", only_on_meta)
    path = crafted(good_checkpoint, tmp_path, lambda c: c["config"].update({field: value}))
    assert_refused(*sample(path, tmp_path, capsys), field, str(value))


def test_a_weight_of_the_wrong_shape_is_named(good_checkpoint, tmp_path, capsys):
    path = crafted(
        good_checkpoint, tmp_path, lambda c: c["G"].update({"net.2.weight": torch.zeros(5, 5)})
    )
    assert_refused(*sample(path, tmp_path, capsys), "net.2.weight", "(5, 5)", "(32, 16)")


def test_a_weight_that_repeats_one_number_is_refused(good_checkpoint, tmp_path, capsys):
    # The right shape, but stride 0 over one stored float: a small file that claims big weights.
    path = crafted(
        good_checkpoint,
        tmp_path,
        lambda c: c["G"].update({"net.2.weight": torch.zeros(1).expand(32, 16)}),
    )
    assert_refused(*sample(path, tmp_path, capsys), "net.2.weight", "bytes")


def test_a_fifo_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(r=sample(fifo, tmp_path, capsys)), daemon=True
    )
    worker.start()
    worker.join(30)
    if worker.is_alive():  # blocked in open(): give it a writer so the thread ends, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(30)
        pytest.fail("gankit sample waited forever on a FIFO given as the checkpoint")
    assert_refused(*result["r"], "pipe.pt", "not a regular file")


def test_a_directory_is_called_a_directory(tmp_path, capsys):
    (tmp_path / "d.pt").mkdir()
    line = assert_refused(*sample(tmp_path / "d.pt", tmp_path, capsys), "d.pt", "is a directory")
    assert "corrupted" not in line


# ------------------------------------------------------------------------------- 2. the checksum
def test_a_flipped_byte_inside_a_weight_is_named(good_checkpoint, tmp_path, capsys):
    from gankit.checkpoints import state_checksum

    ckpt = torch.load(good_checkpoint, weights_only=True)
    ckpt["checksum"] = state_checksum(ckpt)  # what Checkpointing.state_dict records
    path = tmp_path / "c.pt"
    torch.save(ckpt, path)
    assert load_checkpoint(path)["step"] == 4  # intact: accepted

    data = bytearray(path.read_bytes())
    raw = ckpt["G"]["net.2.weight"].numpy().tobytes()
    at = data.find(raw)
    assert at > 0 and data.find(raw, at + 1) == -1
    data[at + len(raw) // 2] ^= 0x01  # the lowest mantissa bit of one float: still finite
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged: G weights do not match their checksum"):
        load_checkpoint(path)
    assert_refused(*sample(path, tmp_path, capsys), "c.pt", "G weights do not match their checksum")


def test_the_checksum_survives_a_save_and_load_and_old_checkpoints_have_none(tmp_path):
    from gankit.checkpoints import state_checksum

    # DCGAN on a CPU trains channels_last: the checksum covers values, not the memory layout.
    t = tiny_trainer(tiny_config(model="dcgan", image_size=32, g_width=4, d_width=4))
    t.fit(1)
    state = t.state_dict()
    path = tmp_path / "c.pt"
    torch.save({**state, "checksum": state_checksum(state)}, path)
    loaded = load_checkpoint(path)
    assert state_checksum(loaded) == loaded["checksum"]
    old = {k: v for k, v in state.items() if k != "checksum"}
    torch.save(old, tmp_path / "old.pt")  # written before checksums: accepted as it is
    assert "checksum" not in load_checkpoint(tmp_path / "old.pt")


# ------------------------------------------------------------- 3. NaN weights, odd temperatures
def test_nan_generator_weights_are_refused_not_drawn_black(good_checkpoint, tmp_path, capsys):
    def nan_weights(c):  # saved that way (the checksum agrees): the weights themselves are NaN
        c["G"]["net.4.weight"].fill_(float("nan"))
        c["checksum"] = state_checksum(c)

    path = crafted(good_checkpoint, tmp_path, nan_weights)
    assert_refused(*sample(path, tmp_path, capsys), "NaN", "G")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("temperature", ["nan", "inf", "-inf", "-1"])
def test_a_temperature_that_is_not_a_finite_scale_is_refused(
    good_checkpoint, tmp_path, capsys, temperature
):
    code, err = sample(good_checkpoint, tmp_path, capsys, f"--temperature={temperature}")
    assert_refused(code, err, "--temperature", temperature)
    assert not (tmp_path / "x.png").exists()


def test_samples_that_overflow_are_refused(good_checkpoint, tmp_path, capsys):
    # 1e39 is a finite Python float, but z * 1e39 overflows float32: the images would be NaN.
    code, err = sample(good_checkpoint, tmp_path, capsys, "--temperature", "1e39")
    assert_refused(code, err, "NaN", "--temperature")
    assert not (tmp_path / "x.png").exists()


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("content", ["code", "text"])
def test_an_unreadable_checkpoint_gets_no_advice_to_load_it_unsafely(tmp_path, capsys, content):
    path = tmp_path / "c.pt"
    if content == "code":
        torch.save({"format": 1, "payload": Evil()}, path)
    else:
        path.write_text("print('not a checkpoint')\n")
    line = assert_refused(*sample(path, tmp_path, capsys), "c.pt")
    assert "trust" not in line and "\x1b" not in line and "can still be loaded" not in line
    if content == "code":
        assert "cannot be read safely" in line and "GLOBAL print" in line
    else:
        assert "truncated or corrupted" in line
