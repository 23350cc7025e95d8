"""Each lesson's jupytext source (notebooks/NN_name.py) agrees with its notebook; drift shows."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = ["01_vanilla_mlp_gan", "02_dcgan", "03_wgan_gp", "04_conditional_posters"]


def _load_checker():
    path = ROOT / "scripts" / "check_notebooks.py"
    spec = importlib.util.spec_from_file_location("check_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load_checker()


@pytest.fixture
def copy(tmp_path):
    """The four committed pairs, copied into tmp_path (mtimes kept)."""
    for name in LESSONS:
        for suffix in (".ipynb", ".py"):
            shutil.copy2(NOTEBOOKS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path


def _write(path: Path, nb: dict) -> None:
    """As nbformat writes a notebook."""
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def _named(found: list[str]) -> list[str]:
    return [line.split(":", 1)[0] for line in found]


def test_committed_pairs_agree():
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) == LESSONS
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.py")) == LESSONS
    assert check.problems(NOTEBOOKS) == []
    assert check.main([str(NOTEBOOKS)]) == 0


def test_committed_notebooks_keep_what_the_builders_guaranteed():
    for name in LESSONS:
        nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
        assert nb["metadata"]["kernelspec"]["name"] == "python3", name
        assert nb["metadata"]["jupytext"]["formats"] == "ipynb,py:percent", name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "".join(code[0]["source"]).startswith("# Colab only: install gankit"), name
        # nbval's markers live in cell tags, not in first-line comments.
        assert not any("NBVAL_" in "".join(c["source"]) for c in code), name
        assert any("nbval-ignore-output" in c["metadata"].get("tags", []) for c in code), name


def test_edited_source_is_reported(copy):
    path = copy / "02_dcgan.py"
    text = path.read_text(encoding="utf-8")
    line = "print(inspect.getsource(dcgan_init))"
    path.write_text(text.replace(f"{line}\n", f"{line}  # edited\n"), encoding="utf-8")
    found = check.problems(copy)
    assert _named(found) == ["02_dcgan"]
    assert "# edited" in found[0]
    assert check.main([str(copy)]) == 1


def test_edited_notebook_is_reported(copy):
    path = copy / "03_wgan_gp.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["cells"][-1]["source"].append("\nOne more sentence.")
    _write(path, nb)
    assert _named(check.problems(copy)) == ["03_wgan_gp"]


def test_moved_nbval_tag_is_reported(copy):
    path = copy / "01_vanilla_mlp_gan.py"
    text = path.read_text(encoding="utf-8")
    tagged = '# %% tags=["nbval-ignore-output"]\n'
    assert tagged in text
    path.write_text(text.replace(tagged, "# %%\n", 1), encoding="utf-8")
    assert _named(check.problems(copy)) == ["01_vanilla_mlp_gan"]


def test_trailing_whitespace_is_not_a_difference(copy):
    path = copy / "04_conditional_posters.py"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(line + "  " for line in lines) + "\n\n", encoding="utf-8")
    assert check.problems(copy) == []


def test_missing_partners_and_unpaired_notebooks_are_reported(copy):
    (copy / "01_vanilla_mlp_gan.py").unlink()
    (copy / "02_dcgan.ipynb").unlink()
    path = copy / "03_wgan_gp.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    del nb["metadata"]["jupytext"]
    _write(path, nb)
    found = check.problems(copy)
    assert _named(found) == ["01_vanilla_mlp_gan", "02_dcgan", "03_wgan_gp"]
    assert "has no source" in found[0]
    assert "has no notebook" in found[1]
    assert "paired as None" in found[2]


def test_empty_folder_fails(tmp_path):
    assert check.problems(tmp_path) != []
    assert check.main([str(tmp_path)]) == 1


def test_widget_text_fallbacks_become_a_note():
    import nbformat

    sys.path.insert(0, str(ROOT / "scripts"))
    from widget_fallbacks import NOTE, WIDGET, replace_fallbacks

    widget = {WIDGET: {"model_id": "abc"}, "text/plain": "VBox(children=(SelectMultiple(...),))"}
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "picker", outputs=[nbformat.v4.new_output("display_data", data=widget)]
            ),
            nbformat.v4.new_code_cell(
                "x", outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": "1"})]
            ),
        ]
    )
    assert replace_fallbacks(nb) == 1
    assert nb.cells[0].outputs[0].data["text/plain"] == NOTE
    assert nb.cells[0].outputs[0].data[WIDGET] == {"model_id": "abc"}  # the live view stays
    assert nb.cells[1].outputs[0].data["text/plain"] == "1" and replace_fallbacks(nb) == 0
