"""Observations are computed from the run that produced them: lesson 01, executed in the smoke
profile, states the numbers of its own run (its metrics.json and checkpoint), not remembered
ones."""

import json
import re
import shutil

import nbformat
import torch
from helpers import needs_mnist
from nbclient import NotebookClient
from test_student import ROOT

from gankit.checkpoints import load_checkpoint

LESSON = ROOT / "notebooks" / "01_vanilla_mlp_gan.ipynb"


def observation_text(nb) -> str:
    """The Markdown the observation cell displayed."""
    (cell,) = [c for c in nb.cells if "display(Markdown(observations))" in c.source]
    (out,) = [o for o in cell.outputs if o.get("output_type") == "display_data"]
    return " ".join(out["data"]["text/markdown"].split())  # one line: line breaks are layout


@needs_mnist
def test_lesson_01_observations_state_the_numbers_of_their_own_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_PROFILE", "smoke")
    monkeypatch.setenv("GANKIT_PROGRESS", "epochs")
    monkeypatch.setenv("GANKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GANKIT_DEVICE", "cpu")
    shutil.copy(LESSON, tmp_path / LESSON.name)
    nb = nbformat.read(tmp_path / LESSON.name, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={
        "metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    text = observation_text(nb)
    (tmp_path / "observations.md").write_text(text)  # to read when an assertion fails

    (run,) = (tmp_path / "runs" / "mlp-mnist").iterdir()
    evaluations = json.loads((run / "metrics.json").read_text())["evaluations"]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    steps = int(re.search(r"= ([\d,]+) steps of", text).group(1).replace(",", ""))
    assert steps == ckpt["step"]
    assert "smoke profile" in text
    found = re.search(
        r"FID went from ([\d.]+) after epoch (\d+) to \*\*([\d.]+)\*\* after epoch (\d+)", text
    )
    first, last = evaluations[0], evaluations[-1]
    assert found.groups() == (
        f"{first['fid']:.1f}",
        str(first["epoch"]),
        f"{last['fid']:.1f}",
        str(last["epoch"]),
    )
    covered = re.search(r"Classes covered per epoch:\s*([\d, ]+);", text).group(1)
    assert [int(c) for c in covered.split(",")] == [e["classes_covered"] for e in evaluations]
    # and the rest of the text holds numbers, not placeholders or NaN
    assert not re.search(r"\bnan\b|\{[a-z_]+[\[(.:}]", text.lower()), text
    torch.testing.assert_close(
        float(re.search(r"KL divergence to uniform of ([\d.]+)", text).group(1)),
        last["kl_uniform"], atol=5e-4, rtol=0,
    )  # fmt: skip
