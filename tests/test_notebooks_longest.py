"""The notebooks with the longest fast-mode runs, in a test file of their own (see
tests/test_notebooks.py, which runs the others): top to bottom in fast mode."""

import pytest
from test_notebooks import RUN_ELSEWHERE, run_in_fast_mode


@pytest.mark.slow
@pytest.mark.parametrize("name", RUN_ELSEWHERE)
def test_notebook_runs_in_fast_mode(name, tmp_path):
    run_in_fast_mode(name, tmp_path)
