"""Every `python -m keras_transformer.…` command in the README's bash blocks runs as printed.

The commands are read from README.md (backslash-continued lines joined,
trailing `# comments` dropped) and run against one tiny GPT run trained
here. Only two paths are substituted: the run directory (`runs/gpt-default`,
`runs/gpt-...`) and the export directory (`exports/gpt`, a fresh directory
that the README's own export command writes before any command reads it).
"""

import os
import re
import shlex
import shutil

import pytest
from conftest import REPO, TINY_TRAIN_FLAGS, make_text, run_cli, run_cli_batch

PREFIX = "python -m keras_transformer."
RUN_PATH = re.compile(r"^runs/gpt-(default|\.\.\.)(?=/|$)")
EXPORT_PATH = re.compile(r"^exports/gpt(?=/|$)")
README = os.path.join(REPO, "README.md")


def readme_commands(path=README):
    """`(as printed, argv)` of every README shell line starting with `PREFIX`, in order.

    Only ```bash blocks count; a line ending in a backslash continues on the
    next one; `argv` is the line split as the shell would, comments dropped.
    """
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    commands = []
    for block in re.findall(r"^```bash[ \t]*\n(.*?)^```", text, flags=re.S | re.M):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            if line.startswith(PREFIX):
                commands.append((line, shlex.split(line, comments=True)))
    return commands


def module_of(argv):
    """`generate` for `python -m keras_transformer.generate ...`."""
    return argv[2][len("keras_transformer."):]


def substitute(argv, run_dir, export_dir):
    """`argv` with the README's run and export paths replaced by the test's."""
    out = []
    for arg in argv:
        arg = RUN_PATH.sub(lambda _: run_dir, arg)
        arg = EXPORT_PATH.sub(lambda _: export_dir, arg)
        out.append(arg)
    return out


def readme_checkpoint_snippets(path=README):
    """The README's ```python blocks that make or read `checkpoints/tiny-...`, in order."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    blocks = re.findall(r"^```python[ \t]*\n(.*?)^```", text, flags=re.S | re.M)
    return [block for block in blocks if '"checkpoints/tiny-' in block]


def printed_comments(snippet):
    """What a snippet's `print(...)  # text` lines say they print, in order."""
    return [line.split("  # ", 1)[1].strip() for line in snippet.splitlines()
            if line.startswith("print(") and "  # " in line]


COMMANDS = readme_commands()
SNIPPETS = readme_checkpoint_snippets()
# Paths of the checkpoint commands, used as printed in the test's directory: the folder the
# README's snippet writes, its export and its fine-tuning run (`python train.py --init-from`).
CHECKPOINT_PATHS = {"checkpoints/tiny-llama", "exports/tiny-llama", "runs/tiny-llama-shakespeare",
                    "checkpoints/tiny-llama-shakespeare", "checkpoints/tiny-t5",
                    "runs/tiny-bert-questions", "runs/tiny-t5-reverse"}
SHAKESPEARE = os.path.join(REPO, "..", "shared", "data", "tinyshakespeare.txt")


def readme_checkpoint_train_commands(path=README):
    """`python train.py ... --init-from checkpoints/...` lines of the README's bash blocks."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    commands = []
    for block in re.findall(r"^```bash[ \t]*\n(.*?)^```", text, flags=re.S | re.M):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            if line.startswith("python train.py") and "--init-from checkpoints/" in line:
                commands.append((line, shlex.split(line, comments=True)))
    return commands


CHECKPOINT_TRAIN_COMMANDS = readme_checkpoint_train_commands()
# The export commands write exports/gpt; they run first (in a fixture), the rest in README order.
EXPORTS = [c for c in COMMANDS if module_of(c[1]) == "export"]
OTHERS = [c for c in COMMANDS if module_of(c[1]) != "export"]


def test_the_readme_commands_are_collected():
    modules = [module_of(argv) for _, argv in COMMANDS]
    assert len(COMMANDS) >= 9, COMMANDS
    assert modules.count("generate") >= 5 and modules.count("inspect") >= 3, modules
    assert modules.count("export") == 3, modules
    # tiny-llama made, then used; tiny-bert and tiny-t5 made, then used
    assert len(SNIPPETS) == 4 and printed_comments(SNIPPETS[1]), SNIPPETS
    assert printed_comments(SNIPPETS[3]), SNIPPETS
    assert modules.count("classify") == 1, modules
    # fine-tuning tiny-llama, tiny-bert (classify) and tiny-t5 (pairs)
    assert len(CHECKPOINT_TRAIN_COMMANDS) == 3, CHECKPOINT_TRAIN_COMMANDS
    for printed, argv in COMMANDS:
        assert argv[:2] == ["python", "-m"] and "#" not in " ".join(argv), printed
        # Placeholders like "[--seed 1]" are not runnable as printed.
        assert not any(arg.startswith("[") or arg.endswith("]") for arg in argv), printed
        paths = [arg for arg in argv if arg.startswith(("runs/", "exports/", "checkpoints/"))]
        assert all(RUN_PATH.match(p) or EXPORT_PATH.match(p) or p in CHECKPOINT_PATHS
                   for p in paths), printed


@pytest.fixture(scope="module")
def readme_dirs(tmp_path_factory):
    """A tiny finished GPT run, and the README's export command(s) run on it."""
    root = tmp_path_factory.mktemp("readme")
    (root / "play.txt").write_text(make_text(), encoding="utf-8")
    result = run_cli(["train.py", "--arch", "gpt", "--data", "play.txt", "--out", "run",
                      *TINY_TRAIN_FLAGS], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    # The README's checkpoint snippets, as printed: one makes checkpoints/tiny-llama offline
    # (its tokenizer trains on Tiny Shakespeare, from the Keras cache run_cli points to).
    if os.path.exists(SHAKESPEARE):
        os.makedirs(root / "keras_home" / "datasets")
        shutil.copy(SHAKESPEARE, root / "keras_home" / "datasets" / "tinyshakespeare.txt")
    # The snippets one after another in one process (one TensorFlow import), each with
    # globals of its own: a snippet that lacks an import still fails.
    made_all = run_cli_batch([["-c", snippet] for snippet in SNIPPETS], cwd=root,
                             env={"HF_HUB_OFFLINE": "1"})
    for snippet, made in zip(SNIPPETS, made_all, strict=True):
        assert made.returncode == 0, f"README snippet failed:\n{snippet}\n{made.stderr[-3000:]}"
        assert made.stdout.splitlines() == printed_comments(snippet), (snippet, made.stdout)
    for printed, argv in CHECKPOINT_TRAIN_COMMANDS:  # the fine-tuning run, as printed
        trained = run_cli(argv[1:], cwd=root)
        assert trained.returncode == 0, f"README command failed:\n{printed}\n{trained.stderr[-3000:]}"
    run_dir, export_dir = str(root / "run"), str(root / "exports" / "gpt")
    os.makedirs(os.path.dirname(export_dir))
    exports = _run_all(EXPORTS, root, run_dir, export_dir)
    return root, run_dir, export_dir, exports


def _run_all(commands, root, run_dir, export_dir):
    """`(printed, args, result)` of each command, all run in one process, in order."""
    args = [substitute(argv, run_dir, export_dir) for _, argv in commands]
    results = run_cli_batch([a[1:] for a in args], cwd=root)  # without `python`
    return [(printed, a, result)
            for (printed, _), a, result in zip(commands, args, results, strict=True)]


@pytest.fixture(scope="module")
def others_run(readme_dirs):
    """The README's other commands, in README order, after the exports they may read."""
    root, run_dir, export_dir, _ = readme_dirs
    return dict(zip(map(tuple, (argv for _, argv in OTHERS)),
                    _run_all(OTHERS, root, run_dir, export_dir), strict=True))


def _assert_ok(printed, args, result):
    assert result.returncode == 0, (
        f"README command failed (exit {result.returncode}):\n  {printed}\nran as:\n  "
        f"{shlex.join(args)}\nstderr:\n{result.stderr[-3000:]}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(EXPORTS)), ids=[shlex.join(c[1][2:]) for c in EXPORTS])
def test_readme_export_command_runs(readme_dirs, index):
    root, _, export_dir, exports = readme_dirs
    _assert_ok(*exports[index])
    args = exports[index][1]
    out = args[4]  # python -m keras_transformer.export RUN_DIR OUT_DIR [flags]
    written = (("config.json", "model.safetensors", "tokenizer.json") if "hf" in args
               else ("saved_model.pb",))
    assert all(os.path.isfile(os.path.join(root, out, name)) for name in written)


@pytest.mark.slow
@pytest.mark.parametrize("command", OTHERS, ids=[shlex.join(c[1][2:]) for c in OTHERS])
def test_readme_command_runs(readme_dirs, others_run, command):
    root, run_dir, export_dir, exports = readme_dirs
    printed, args, result = others_run[tuple(command[1])]
    if export_dir in args:
        for export in exports:
            _assert_ok(*export)  # the export it reads was not written
    _assert_ok(printed, args, result)
    assert result.stdout.strip(), f"{printed} printed nothing"
