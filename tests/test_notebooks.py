"""Every notebook runs top to bottom in fast mode; a failing cell fails its test."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

NOTEBOOKS = sorted(
    name[:-len(".ipynb")]
    for name in os.listdir(os.path.join(REPO, "notebooks"))
    if name.endswith(".ipynb") and name[:2].isdigit()
)
SHARED_SHAKESPEARE = os.path.join(REPO, "..", "shared", "data", "tinyshakespeare.txt")


def test_the_six_notebooks_are_there():
    assert NOTEBOOKS == [
        "01_attention",
        "02_positions",
        "03_mini_gpt",
        "04_bert_and_seq2seq",
        "05_modern_llm",
        "06_inspect_real_configs",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_fast_mode(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
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
