"""Profiles, devices, presets: one code path, clear errors for misspelt settings."""

import pytest
import torch

from gankit.config import (
    PRESETS,
    ConfigError,
    GANConfig,
    data_root,
    make_config,
    resolve_device,
    resolve_profile,
)


def test_profile_from_environment_and_auto(monkeypatch):
    monkeypatch.setenv("GANKIT_PROFILE", "cpu")
    assert resolve_profile() == "cpu"
    monkeypatch.delenv("GANKIT_PROFILE")
    assert resolve_profile(device=torch.device("cpu")) == "cpu"
    assert resolve_profile(device=torch.device("cuda")) == "full"


@pytest.mark.parametrize(
    "var,value,func",
    [("GANKIT_PROFILE", "smok", resolve_profile), ("GANKIT_DEVICE", "gpu", resolve_device)],
)
def test_misspelt_settings_are_named(monkeypatch, var, value, func):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=f"{value!r}.*{var}"):
        func()


def test_missing_gankit_data_folder_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("GANKIT_DATA", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"GANKIT_DATA points at .*nope"):
        data_root()


def test_relative_gankit_data_is_also_read_from_the_checkout_root(monkeypatch, tmp_path):
    """`GANKIT_DATA=../shared/data make course`: the lessons' kernels run in notebooks/, the path
    was meant from the checkout's root."""
    checkout, shared = tmp_path / "checkout", tmp_path / "shared" / "data"
    (checkout / "gankit").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "notebooks").mkdir()
    shared.mkdir(parents=True)
    monkeypatch.chdir(checkout / "notebooks")
    monkeypatch.setenv("GANKIT_DATA", "../shared/data")
    assert data_root().resolve() == shared.resolve()
    monkeypatch.setenv(
        "GANKIT_DATA", "../elsewhere"
    )  # neither from here nor from the root: both are named
    with pytest.raises(
        ConfigError,
        match=r"'\.\./elsewhere' \(.*checkout.*elsewhere.* or .*elsewhere.*\), which does not",
    ):
        data_root()


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(
        ConfigError, match=r"unknown preset 'dcgan-mnst'.*Did you mean 'dcgan-mnist'"
    ):
        make_config("dcgan-mnst", "smoke")


def test_every_preset_builds_under_every_profile():
    for preset in PRESETS:
        for profile in ("smoke", "cpu", "full"):
            cfg = make_config(preset, profile)
            assert cfg.preset == preset and cfg.profile == profile
    assert make_config("mlp-mnist", "smoke").epochs < make_config("mlp-mnist", "cpu").epochs


def test_config_round_trip_and_validation():
    cfg = make_config("wgan-gp-mnist", "cpu")
    assert GANConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="loss='hinge'"):
        GANConfig(loss="hinge")
    with pytest.raises(ConfigError, match="fields this gankit version does not know"):
        GANConfig.from_dict({**cfg.to_dict(), "warp": 9})
