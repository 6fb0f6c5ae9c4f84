"""The command-line tools end to end: outputs, bad input, resuming a killed run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, TINY_TRAIN_FLAGS, make_text

pytestmark = pytest.mark.slow

RUN_FILES = {"metrics.json", "history.png", "model.keras", "tokenizer.json", "sample.txt",
             "config.json", "history.csv"}


def _assert_one_line_error(result, prog):
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: "), result.stderr[-2000:]
    return last


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny finished GPT run shared by the tests that only read it."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("run")
    (root / "play.txt").write_text(make_text(), encoding="utf-8")
    result = run_cli(["train.py", "--arch", "gpt", "--data", "play.txt", "--out", "run",
                      *TINY_TRAIN_FLAGS], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, root / "run", result


def test_train_writes_every_output_file(trained_run):
    _, run, result = trained_run
    assert set(os.listdir(run)) >= RUN_FILES
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("arch", "params", "epochs", "seconds", "tokens_per_sec", "train_loss",
                "val_loss", "val_bpc"):
        assert key in metrics
    assert metrics["arch"] == "gpt" and metrics["epochs"] == 2
    assert abs(metrics["val_bpc"] - metrics["val_loss"] / 0.6931471805599453) < 1e-3
    sample = (run / "sample.txt").read_text(encoding="utf-8")
    assert sample.startswith("ROMEO:") and len(sample) == len("ROMEO:") + 30 + 1
    assert (run / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert os.listdir(run / "logs"), "no TensorBoard logs"
    assert "Finished: val_loss" in result.stdout
    # config.json: the shared settings and the model at the top, the arch's own under "job".
    settings = json.loads((run / "config.json").read_text())["settings"]
    assert settings["arch"] == "gpt" and settings["model"]["num_layers"] == 1
    assert settings["job"] == {"prompt": "ROMEO:", "sample_tokens": 30, "sample_temperature": 0.7,
                               "init_from": None}
    assert not {"sample_tokens", "beam_width", "val_batches", "rnn_units"} & set(settings)


def test_generate_cli_continues_a_prompt(trained_run, cli_batch):
    root, run, _ = trained_run
    args = ["-m", "keras_transformer.generate", "--model", str(run), "--prompt", "JULIET:",
            "--max-new-tokens", "25", "--temperature", "0.8", "--top-k", "5", "--seed", "3"]
    first, again = cli_batch([args, args], cwd=root)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.startswith("JULIET:") and len(first.stdout) == len("JULIET:") + 25 + 1
    assert again.stdout == first.stdout  # the seed makes it reproducible


def _without(flags, *names):
    """`flags` without each of `names` and the value after it."""
    out, skip = [], False
    for flag in flags:
        if skip:
            skip = False
        elif flag in names:
            skip = True
        else:
            out.append(flag)
    return out


def test_charrnn_trains_end_to_end(tmp_path, cli):
    (tmp_path / "play.txt").write_text(make_text(), encoding="utf-8")
    # --arch charrnn refuses the Transformer-only flags of TINY_TRAIN_FLAGS.
    flags = _without(TINY_TRAIN_FLAGS, "--num-layers", "--num-heads")
    result = cli(["train.py", "--arch", "charrnn", "--data", "play.txt", "--out", "rnn",
                  "--rnn-units", "32", *flags], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "rnn" / "metrics.json").read_text())
    assert metrics["arch"] == "charrnn" and metrics["val_loss"] > 0
    assert set(os.listdir(tmp_path / "rnn")) >= RUN_FILES


BAD_TRAIN_INPUT = {
    "missing_data": ["--data", "nowhere.txt"],
    "empty_data": ["--data", "empty.txt"],
    "unknown_arch": ["--arch", "lstm-transformer", "--data", "play.txt"],
    "seq_len_above_max_len": ["--data", "play.txt", "--seq-len", "256"],
    "bad_prompt": ["--data", "play.txt", "--prompt", "ROMEO§"],
    "bad_flag_value": ["--data", "play.txt", "--d-model", "30", "--num-heads", "4"],
}


@pytest.fixture(scope="module")
def bad_train_input(tmp_path_factory):
    """case -> (its directory, the train.py result): every case in one process, each in a
    directory of its own."""
    from conftest import run_cli_batch

    root = tmp_path_factory.mktemp("bad_train_input")
    commands = []
    for case, args in BAD_TRAIN_INPUT.items():
        (root / case).mkdir()
        (root / case / "play.txt").write_text(make_text(), encoding="utf-8")
        (root / case / "empty.txt").write_text("", encoding="utf-8")
        commands.append((["train.py", "--out", "run", *args], {"cwd": root / case}))
    results = run_cli_batch(commands, cwd=root)
    return {case: (root / case, result)
            for case, result in zip(BAD_TRAIN_INPUT, results, strict=True)}


@pytest.mark.parametrize("case", list(BAD_TRAIN_INPUT))
def test_train_rejects_bad_input_in_one_line(case, bad_train_input):
    folder, result = bad_train_input[case]
    _assert_one_line_error(result, "train.py")
    assert not (folder / "run" / "metrics.json").exists()
    assert not (folder / "run").exists(), "a run directory was left behind"


def test_generate_cli_cache_flags_and_sliding(trained_run, cli_batch):
    root, run, _ = trained_run
    base = ["-m", "keras_transformer.generate", "--model", str(run), "--prompt", "JULIET:",
            "--temperature", "0.8", "--seed", "3"]
    cached, uncached, no_slide, slid, slide = cli_batch([
        [*base, "--max-new-tokens", "20"],
        [*base, "--max-new-tokens", "20", "--no-cache"],
        [*base, "--max-new-tokens", "40", "--no-slide"],
        [*base, "--max-new-tokens", "40"],
        [*base, "--max-new-tokens", "40", "--slide"],
    ], cwd=root)
    assert cached.returncode == 0 and cached.stdout == uncached.stdout, uncached.stderr[-2000:]
    # 7 + 40 characters do not fit the 32-position context: the window slides by
    # default (as in the library), and --no-slide makes it an error.
    last = _assert_one_line_error(no_slide, "generate")
    assert "slide" in last
    assert slid.returncode == 0 and len(slid.stdout) == len("JULIET:") + 40 + 1
    assert slid.stdout.startswith(cached.stdout.rstrip("\n"))
    assert slide.stdout == slid.stdout


def test_inspect_cli_reads_a_run_directory(trained_run, cli):
    root, run, _ = trained_run
    result = cli(["-m", "keras_transformer.inspect", str(run)], cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    params = json.loads((run / "metrics.json").read_text())["params"]
    assert f"{params:,}" in result.stdout and "kv heads" in result.stdout


BAD_GENERATE_INPUT = ["not_a_run", "unknown_characters", "corrupt_model", "too_long"]


@pytest.fixture(scope="module")
def bad_generate_input(trained_run, tmp_path_factory):
    """case -> the generate result: every case in one process."""
    from conftest import run_cli_batch

    root, run, _ = trained_run
    folder = tmp_path_factory.mktemp("bad_generate_input")
    commands = []
    for case in BAD_GENERATE_INPUT:
        model_dir, prompt = str(run), "ROMEO:"
        if case == "not_a_run":
            model_dir = str(folder / "empty")
            os.mkdir(model_dir)
        elif case == "unknown_characters":
            prompt = "ROMEO: ¿qué?"
        elif case == "too_long":
            prompt = "ROMEO: " * 10
        else:
            broken = folder / "broken"
            broken.mkdir()
            for name in ("tokenizer.json", "config.json"):
                (broken / name).write_bytes((run / name).read_bytes())
            (broken / "model.keras").write_bytes((run / "model.keras").read_bytes()[:500])
            model_dir = str(broken)
        commands.append(["-m", "keras_transformer.generate", "--model", model_dir, "--prompt",
                         prompt, "--max-new-tokens", "5"])
    return dict(zip(BAD_GENERATE_INPUT, run_cli_batch(commands, cwd=root), strict=True))


@pytest.mark.parametrize("case", BAD_GENERATE_INPUT)
def test_generate_rejects_bad_input_in_one_line(case, bad_generate_input):
    result = bad_generate_input[case]
    last = _assert_one_line_error(result, "generate")
    assert result.stdout == ""
    assert {"not_a_run": "not a finished run", "unknown_characters": "not in the tokenizer",
            "corrupt_model": "could not load", "too_long": "longer than"}[case] in last


def _history_rows(path):
    if not path.exists():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


# Runs train.py (the flags after the probe directory) with one more callback, first
# in the list: at the first training step of the process it saves the model's and
# the optimizer's state (what that step starts from) and the learning rate; at the
# end of every epoch, before the backup is written, the iterations and learning rate.
PROBED_TRAIN = """
import json, os, runpy, sys
import keras

probe = sys.argv.pop(1)
os.makedirs(probe, exist_ok=True)


def state(optimizer):
    return {"iterations": int(optimizer.iterations.numpy()),
            "learning_rate": float(optimizer.learning_rate)}


class Probe(keras.callbacks.Callback):
    started = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.started:
            self.started = True
            self.model.save_weights(os.path.join(probe, "first_step.weights.h5"))
            with open(os.path.join(probe, "first_step.json"), "w") as handle:
                json.dump(state(self.model.optimizer), handle)

    def on_epoch_end(self, epoch, logs=None):
        with open(os.path.join(probe, f"after_epoch_{epoch + 1}.json"), "w") as handle:
            json.dump(state(self.model.optimizer), handle)


fit = keras.Model.fit


def probed_fit(self, *args, callbacks=None, **kwargs):
    return fit(self, *args, callbacks=[Probe(), *(callbacks or [])], **kwargs)


keras.Model.fit = probed_fit
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _h5_datasets(path):
    import h5py

    values = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: values.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return values


def test_a_killed_run_resumes_from_its_backup(tmp_path):
    import numpy as np

    (tmp_path / "play.txt").write_text(make_text(), encoding="utf-8")
    flags = [os.path.join(REPO, "train.py"), "--data", "play.txt", "--out", "run",
             *TINY_TRAIN_FLAGS, "--epochs", "6", "--steps-per-epoch", "150"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    history = tmp_path / "run" / "history.csv"
    backup = tmp_path / "run" / "backup"
    killed, resumed_probe = tmp_path / "probe_killed", tmp_path / "probe_resumed"
    with open(tmp_path / "first.log", "w") as log:  # a file, not a pipe that could fill up
        process = subprocess.Popen([sys.executable, "-c", PROBED_TRAIN, str(killed), *flags],
                                   cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        while not _history_rows(history) and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
    done_before = len(_history_rows(history))
    assert 1 <= done_before < 6
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert os.listdir(backup)

    # What the backup holds: the epochs done, and the weights and optimizer state
    # (moments and iteration count) after them. The resumed run overwrites it.
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == done_before
    saved = _h5_datasets(backup / "latest.weights.h5")
    steps_done = done_before * 150
    assert int(saved["optimizer/vars/0"]) == steps_done  # the iteration count
    after_kill = json.loads((killed / f"after_epoch_{done_before}.json").read_text())
    assert after_kill["iterations"] == steps_done
    fresh = _h5_datasets(killed / "first_step.weights.h5")
    fresh_learning_rate = json.loads((killed / "first_step.json").read_text())["learning_rate"]
    # Training changed every kind of state, so comparing with it shows something.
    assert any(not np.array_equal(fresh[k], saved[k]) for k in saved if k.startswith("layers/"))
    assert int(fresh["optimizer/vars/0"]) == 0
    assert abs(after_kill["learning_rate"] - fresh_learning_rate) > 1e-5

    resumed = subprocess.run([sys.executable, "-c", PROBED_TRAIN, str(resumed_probe), *flags],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from the backup" in resumed.stdout
    # Keras prints the epochs it runs: the resumed process starts after the finished ones.
    assert f"Epoch {done_before + 1}/6" in resumed.stdout and "Epoch 1/6" not in resumed.stdout
    # ... and its first step starts from the backup: the same weights, the same
    # optimizer moments and iteration count, so the schedule's learning rate goes on
    # where the killed run left it (not from the start of the warmup).
    first = _h5_datasets(resumed_probe / "first_step.weights.h5")
    assert first.keys() == saved.keys()
    for name, value in saved.items():
        np.testing.assert_array_equal(first[name], value, err_msg=name)
    first_state = json.loads((resumed_probe / "first_step.json").read_text())
    assert first_state["iterations"] == steps_done
    assert first_state["learning_rate"] == pytest.approx(after_kill["learning_rate"], rel=1e-6)
    after_first = json.loads((resumed_probe / f"after_epoch_{done_before + 1}.json").read_text())
    assert after_first["iterations"] == steps_done + 150
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 6
    assert [int(row["epoch"]) for row in _history_rows(history)][-1] == 5


IGNORED_FLAGS = [
    ("charrnn", ["--position", "rope", "--num-heads", "2"], ["--position", "--num-heads"]),
    ("gpt", ["--rnn-units", "8"], ["--rnn-units"]),
    ("gpt", ["--num-segments", "2"], ["--num-segments"]),
    ("bert", ["--num-decoder-layers", "3", "--no-share-embeddings"],
     ["--num-decoder-layers", "--no-share-embeddings"]),
]


@pytest.fixture(scope="module")
def ignored_flags(tmp_path_factory):
    """index -> (its directory, the train.py result): every case in one process, each in a
    directory of its own."""
    from conftest import run_cli_batch

    root = tmp_path_factory.mktemp("ignored_flags")
    commands = []
    for index, (arch, flags, _) in enumerate(IGNORED_FLAGS):
        folder = root / str(index)
        folder.mkdir()
        (folder / "play.txt").write_text(make_text(), encoding="utf-8")
        commands.append((["train.py", "--arch", arch, "--data", "play.txt", "--out", "run",
                          *flags, "--epochs", "1", "--steps-per-epoch", "1", "--no-jit"],
                         {"cwd": folder}))
    results = run_cli_batch(commands, cwd=root)
    return [(root / str(index), result) for index, result in enumerate(results)]


@pytest.mark.parametrize("index", range(len(IGNORED_FLAGS)),
                         ids=[f"{arch}-{flags[0]}" for arch, flags, _ in IGNORED_FLAGS])
def test_train_refuses_flags_the_arch_would_ignore(index, ignored_flags):
    # The char-RNN (Embedding + LSTM) has no positions or heads; a Transformer no LSTM.
    arch, _, named = IGNORED_FLAGS[index]
    tmp_path, result = ignored_flags[index]
    last = _assert_one_line_error(result, "train.py")
    # One line of ours (TensorFlow's own import-time log lines may precede it).
    ours = [line for line in result.stderr.splitlines() if line.startswith("train.py")]
    assert ours == [last], result.stderr[-2000:]
    for flag in named:
        assert flag in last
    assert f"--arch {arch}" in last and "not apply" in last
    assert not (tmp_path / "run").exists(), "a run directory was written"
    assert not (tmp_path / "runs").exists()
