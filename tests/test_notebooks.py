"""Every notebook runs top to bottom in fast mode; a failing cell fails its test."""

import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO

NOTEBOOKS = sorted(
    name[:-len(".ipynb")]
    for name in os.listdir(os.path.join(REPO, "notebooks"))
    if name.endswith(".ipynb") and name[:2].isdigit()
)
SHARED_SHAKESPEARE = os.path.join(REPO, "..", "shared", "data", "tinyshakespeare.txt")


def test_the_notebooks_are_there():
    assert NOTEBOOKS == [
        "01_attention",
        "02_positions",
        "03_mini_gpt",
        "04_bert_and_seq2seq",
        "05_modern_llm",
        "06_inspect_real_configs",
        "07_pretrained",
    ]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_copy_shows_a_full_run_with_plots(name):
    """What a reader sees on a code host: every code cell ran in full mode, no errors, a plot."""
    notebook = nbformat.read(os.path.join(REPO, "notebooks", f"{name}.ipynb"), as_version=4)
    assert notebook.metadata["keras_transformer"]["executed"]["mode"] == "full"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "a code cell was not executed"
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot in the saved outputs"
    assert not any("fast mode: True" in o.get("text", "") for o in outputs)


# The two longest fast-mode runs are tests/test_notebooks_longest.py's: a test file runs
# on one pytest-xdist worker (--dist loadfile), so the two files run side by side.
RUN_ELSEWHERE = ("04_bert_and_seq2seq", "07_pretrained")


def test_every_notebook_runs_in_fast_mode_in_one_of_the_two_files():
    assert set(RUN_ELSEWHERE) <= set(NOTEBOOKS)


def run_in_fast_mode(name, tmp_path):
    env = dict(os.environ)  # execute.py puts this checkout on the kernel's path itself
    if os.path.exists(SHARED_SHAKESPEARE):
        # Tiny Shakespeare through a Keras cache of our own: get_file finds it by name and sha256.
        datasets = tmp_path / "keras_home" / "datasets"
        datasets.mkdir(parents=True)
        shutil.copy(SHARED_SHAKESPEARE, datasets / "tinyshakespeare.txt")
        env["KERAS_HOME"] = str(tmp_path / "keras_home")
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "notebooks", "execute.py"), name, "--fast", "--no-save"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"{name}.ipynb:" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in NOTEBOOKS if name not in RUN_ELSEWHERE])
def test_notebook_runs_in_fast_mode(name, tmp_path):
    run_in_fast_mode(name, tmp_path)
