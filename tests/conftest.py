"""Shared fixtures: small generated texts, a CLI runner, TensorFlow kept quiet."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# In CI (CI=true) every Hypothesis test draws the same examples on every run, so a
# failure there is reproducible and a pass is not luck; local runs stay random.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Flags that make train.py finish in seconds: a 1-block model on a small text.
TINY_TRAIN_FLAGS = [
    "--num-layers", "1", "--d-model", "32", "--num-heads", "2", "--max-len", "32",
    "--seq-len", "32", "--batch-size", "8", "--epochs", "2", "--steps-per-epoch", "5",
    "--sample-tokens", "30", "--verbose", "2", "--no-jit",
]


def make_text(num_lines=600, seed=0):
    """A play-like text from a small vocabulary, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    words = ["thou", "art", "the", "king", "of", "night", "and", "I", "shall", "not",
             "sleep", "my", "lord", "what", "say", "you", "to", "this", "fair", "day"]
    speakers = ["ROMEO", "JULIET", "NURSE", "FRIAR"]
    lines = []
    for _ in range(num_lines // 3):
        lines.append(f"{rng.choice(speakers)}:")
        for _ in range(2):
            sentence = " ".join(rng.choice(words, size=rng.integers(3, 9)))
            lines.append(sentence.capitalize() + rng.choice([".", ",", "!", "?"]))
        lines.append("")
    return "\n".join(lines) + "\n"


@pytest.fixture
def text_file(tmp_path):
    """Path of a ~20 kB generated text file."""
    path = tmp_path / "play.txt"
    path.write_text(make_text(), encoding="utf-8")
    return str(path)


def run_cli(args, cwd, timeout=300, env=None):
    """Run a command-line tool of the project (`train.py` or a `-m` module)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    full_env["KERAS_HOME"] = os.path.join(str(cwd), "keras_home")
    full_env.update(env or {})
    if args[0] == "train.py":
        command = [sys.executable, os.path.join(REPO, "train.py"), *args[1:]]
    else:
        command = [sys.executable, *args]
    return subprocess.run(
        command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def cli():
    return run_cli
