"""Exact resume: a run SIGKILLed at three points and resumed ends as the uninterrupted one.

One uninterrupted run (the module fixture) and one run that is killed and
resumed again and again with the same command: at the start of a step
between backups, in the middle of a validation, right after a backup, and
once stopped by a non-finite loss. The README ("Resuming and failures")
says XLA training of a character model on one CPU device resumes
bit-exactly: the weights of `model.keras` and `checkpoints/best.weights.h5`
are compared with `array_equal`, and `history.csv` as text.
"""

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import REPO, make_text

SHAKESPEARE = os.path.join(REPO, "..", "shared", "data", "tinyshakespeare.txt")

# A 1-block GPT with dropout (so the random state matters), XLA (the default
# --jit), 3 epochs of 6 steps, a backup every 4 steps: backups at steps 4, 6
# (epoch end), 8, 12 (epoch end), 16 and 18.
FLAGS = ["--data", "play.txt", "--num-layers", "1", "--d-model", "32", "--num-heads", "2",
         "--max-len", "32", "--seq-len", "32", "--batch-size", "8", "--epochs", "3",
         "--steps-per-epoch", "6", "--backup-every", "4", "--dropout", "0.1",
         "--sample-tokens", "0", "--verbose", "2"]

# Runs train.py (the arguments after the fault) with a fault at a chosen point:
# `step:N` kills the process as step N begins, `validation:N` during the
# validation after step N, `backup:N` right after the backup of step N is
# complete, `nan:N` makes the loss of step N non-finite (a NaN weight, as a
# diverging run has); `none` runs normally.
FAULTY_TRAIN = """
import os, runpy, signal, sys
import keras
import numpy as np

kind, _, at = sys.argv.pop(1).partition(":")
at = int(at or 0)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class Fault(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        done = int(self.model.optimizer.iterations.numpy())
        if kind == "step" and done == at - 1:
            die()
        if kind == "nan" and done == at - 1:
            weight = self.model.trainable_variables[0]
            weight.assign(np.full(weight.shape, np.nan, weight.dtype))

    def on_test_batch_begin(self, batch, logs=None):
        if kind == "validation" and batch == 1:
            if int(self.model.optimizer.iterations.numpy()) == at:
                die()


from keras_transformer.training import backup

if kind == "backup":
    write = backup.write_backup

    def write_then_die(backup_dir, model, step, *args, **kwargs):
        write(backup_dir, model, step, *args, **kwargs)
        if step == at:
            die()

    backup.write_backup = write_then_die

fit = keras.Model.fit


def faulty_fit(self, *args, callbacks=None, **kwargs):
    return fit(self, *args, callbacks=[Fault(), *(callbacks or [])], **kwargs)


keras.Model.fit = faulty_fit
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _train(fault, cwd, out):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO,
               KERAS_HOME=os.path.join(str(cwd), "keras_home"))
    return subprocess.run(
        [sys.executable, "-c", FAULTY_TRAIN, fault, os.path.join(REPO, "train.py"), *FLAGS,
         "--out", out], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _h5_arrays(source):
    import h5py

    values = {}
    with h5py.File(source, "r") as handle:
        handle.visititems(lambda name, item: values.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return values


def _model_arrays(path):
    with zipfile.ZipFile(path) as archive:
        return _h5_arrays(io.BytesIO(archive.read("model.weights.h5")))


def _state(run):
    return json.loads((run / "backup" / "state.json").read_text())


@pytest.fixture(scope="module")
def play(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    if os.path.exists(SHAKESPEARE):
        with open(SHAKESPEARE, encoding="utf-8") as handle:
            text = handle.read(100_000)
    else:
        text = make_text(3000)
    (root / "play.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def uninterrupted(play):
    result = _train("none", play, "whole")
    assert result.returncode == 0, result.stderr[-3000:]
    return play / "whole"


def test_a_run_killed_three_times_and_stopped_by_nan_ends_bit_exact(play, uninterrupted):
    run = play / "killed"

    # 1. Killed as step 11 begins: the last backup is step 8's, inside epoch 2.
    result = _train("step:11", play, "killed")
    assert result.returncode == -9, result.stderr[-3000:]
    assert not (run / "metrics.json").exists()
    assert (_state(run)["step"], _state(run)["epoch_step"]) == (8, 2)
    assert _state(run)["data"] == {"stream_step": 8, "pass": 0, "batch_in_pass": 8,
                                   "batches_per_pass": _state(run)["data"]["batches_per_pass"],
                                   "seed": 0}

    # 2. Resumed mid-epoch (the lock of the killed process is gone), killed in the
    # validation after step 12: nothing newer than step 8 was backed up.
    result = _train("validation:12", play, "killed")
    assert result.returncode == -9, result.stderr[-3000:]
    assert "Resuming from the backup" in result.stdout and "step 8, epoch 2 at step 2 of 6" in \
        result.stdout
    assert _state(run)["step"] == 8

    # 3. Resumed from step 8 again, killed right after the end-of-epoch backup of step 12.
    result = _train("backup:12", play, "killed")
    assert result.returncode == -9, result.stderr[-3000:]
    assert (_state(run)["step"], _state(run)["epoch_step"]) == (12, 0)
    best = (run / "checkpoints" / "best.weights.h5").read_bytes()
    backup_files = {name: (run / "backup" / name).read_bytes()
                    for name in os.listdir(run / "backup")}

    # 4. Resumed at the epoch boundary, the loss turns NaN at step 15: one line naming
    # the step, and the backup and the best checkpoint are the ones from before.
    result = _train("nan:15", play, "killed")
    assert result.returncode == 2, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("train.py")]
    assert len(ours) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == ours[0]
    assert "the loss is nan at step 15 (epoch 3)" in ours[0]
    assert (run / "checkpoints" / "best.weights.h5").read_bytes() == best
    assert {name: (run / "backup" / name).read_bytes()
            for name in os.listdir(run / "backup")} == backup_files
    assert not (run / "model.keras").exists()

    # 5. Resumed to the end: the same run as the uninterrupted one, to the bit.
    result = _train("none", play, "killed")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 12, epoch 3 at step 0 of 6" in result.stdout
    assert (run / "history.csv").read_text() == (uninterrupted / "history.csv").read_text()
    assert len((run / "history.csv").read_text().splitlines()) == 4  # a header, 3 epochs
    whole, resumed = _model_arrays(uninterrupted / "model.keras"), _model_arrays(
        run / "model.keras")
    assert whole.keys() == resumed.keys() and len(whole) > 20
    for name, value in whole.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
    whole = _h5_arrays(uninterrupted / "checkpoints" / "best.weights.h5")
    resumed = _h5_arrays(run / "checkpoints" / "best.weights.h5")
    for name, value in whole.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)
    assert not (run / "backup").exists()  # a finished run drops its backup
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_loss"] == json.loads((uninterrupted / "metrics.json").read_text())[
        "val_loss"]


def test_the_random_state_and_the_epoch_loss_come_back_from_a_mid_epoch_backup(play, tmp_path):
    # What makes the test above able to fail: resuming from a mid-epoch backup
    # without the dropout seeds or the epoch's running loss would change the run.
    import keras

    import keras_transformer  # noqa: F401
    from keras_transformer.training.backup import read_backup, write_backup

    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    x, y = np.ones((16, 4), "float32"), np.zeros((16, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 4 steps: epoch 1 of 10, step 4
    seeds = [v.numpy().copy() for v in model.variables if "seed" in v.path]
    tracked = [v.numpy().copy() for v in model.metrics_variables]
    assert seeds and tracked[1] > 0
    write_backup(str(tmp_path / "backup"), model, 4, steps_per_epoch=10)

    keras.utils.set_random_seed(2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # moves every kind of state on
    assert any(not np.array_equal(v.numpy(), s)
               for v, s in zip([v for v in model.variables if "seed" in v.path], seeds, strict=True))
    state = read_backup(str(tmp_path / "backup"), model, steps_per_epoch=10)
    assert (state.step, state.epoch, state.epoch_step, state.exact) == (4, 0, 4, True)
    for variable, value in zip([v for v in model.variables if "seed" in v.path], seeds, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    for value, saved in zip(state.metrics, tracked, strict=True):
        np.testing.assert_array_equal(value, saved)
    assert int(model.optimizer.iterations.numpy()) == 4
