"""environment.yml and pyproject.toml agree on dependencies; torchvision's compiled ops work."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r) for r in pip if not r.startswith("-e")}
    assert listed == wanted
    assert all(">=" in r for r in project["dependencies"])  # lower bounds only (Colab pins its own)


def test_torchvision_compiled_ops_work():
    import torch
    import torchvision

    keep = torchvision.ops.nms(
        torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1.0]]), torch.tensor([0.9, 0.8]), 0.5
    )
    assert keep.tolist() == [0]
