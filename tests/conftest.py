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


# Runs the command lines of a batch one after another in ONE Python process, each with its
# own argv, working directory, environment, exit status and stdout/stderr files (file
# descriptors 1 and 2 point at them, so TensorFlow's C++ lines land there as in a process of
# its own): the 5-8 s of importing TensorFlow are paid once a batch instead of once a command.
# An exception that escapes a command is printed as Python prints it (a Traceback), status 1.
BATCH_RUNNER = r"""
import json, os, runpy, sys, traceback

for command in json.load(open(sys.argv[1], encoding="utf-8")):
    os.environ.clear()
    os.environ.update(command["env"])
    os.chdir(command["cwd"])
    args = command["args"]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    code = 0
    with open(command["stdout"], "wb") as out, open(command["stderr"], "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            if args[0] == "-m":
                sys.argv = [args[1], *args[2:]]
                runpy.run_module(args[1], run_name="__main__", alter_sys=True)
            elif args[0] == "-c":
                sys.argv = ["-c", *args[2:]]
                exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
            else:
                sys.argv = list(args)
                runpy.run_path(args[0], run_name="__main__")
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    with open(command["status"], "w") as handle:
        handle.write(str(code))
"""


def run_cli_batch(commands, cwd, timeout=600, env=None):
    """Run several command lines of the project in one process; a CompletedProcess for each.

    `commands` holds argument lists as `run_cli` takes them (`train.py ...`, `-m MODULE ...`,
    `-c CODE ...`), or (arguments, options) pairs whose options may set "cwd" and "env" (added
    to `env`) for that command alone. Use it for commands whose outcome does not depend on
    running in a fresh interpreter: errors, reading a run, generating from one.
    """
    import json
    import tempfile

    base_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    base_env["KERAS_HOME"] = os.path.join(str(cwd), "keras_home")
    base_env.update(env or {})
    with tempfile.TemporaryDirectory(prefix="cli-batch-") as folder:
        plan = []
        for index, command in enumerate(commands):
            args, options = (command, {}) if isinstance(command[0], str) else command
            args = [str(a) for a in args]
            if args[0] == "train.py":
                args[0] = os.path.join(REPO, "train.py")
            files = {name: os.path.join(folder, f"{index}.{name}")
                     for name in ("stdout", "stderr", "status")}
            plan.append({"args": args, "cwd": str(options.get("cwd", cwd)),
                         "env": {**base_env, **options.get("env", {})}, **files})
        with open(os.path.join(folder, "plan.json"), "w", encoding="utf-8") as handle:
            json.dump(plan, handle)
        runner = subprocess.run(
            [sys.executable, "-c", BATCH_RUNNER, os.path.join(folder, "plan.json")], cwd=cwd,
            env=base_env, capture_output=True, text=True, timeout=timeout,
        )
        results = []
        for command in plan:
            if not os.path.exists(command["status"]):  # the runner itself died
                raise AssertionError(f"the batch stopped at {command['args']}: "
                                     f"{runner.returncode}\n{runner.stderr[-3000:]}")
            with open(command["stdout"], encoding="utf-8", errors="replace") as out, \
                    open(command["stderr"], encoding="utf-8", errors="replace") as err, \
                    open(command["status"]) as status:
                results.append(subprocess.CompletedProcess(
                    command["args"], int(status.read()), out.read(), err.read()))
    return results


@pytest.fixture
def cli_batch():
    return run_cli_batch


# Roughly how long each of the longest test files takes (seconds, on two pytest-xdist workers
# of a 2-core machine). `--dist loadfile` hands a worker one file at a time, in collection
# order (`--no-loadscope-reorder` in pyproject.toml keeps it): the longest files go first, so
# neither worker starts a long file when the other is nearly done. Files not named here follow
# in their usual order. Update the figures when a file's time changes a lot
# (`python -m pytest --durations=0`).
FILE_SECONDS = {
    "test_readme_commands.py": 300,
    "test_notebooks.py": 210,
    "test_export.py": 180,
    "test_pretrained.py": 170,
    "test_notebooks_longest.py": 140,
    "test_cli_subwords.py": 140,
    "test_cli.py": 140,
    "test_distribute.py": 140,
    "test_kv_cache.py": 110,
    "test_cli_encoder_models.py": 110,
    "test_inspect_and_benchmarks.py": 110,
    "test_resume.py": 100,
    "test_hf_tokenizers.py": 90,
    "test_t5_in_use.py": 80,
    "test_option_matrix.py": 50,
    "test_upgrade.py": 50,
}


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 0))  # stable: files stay whole
