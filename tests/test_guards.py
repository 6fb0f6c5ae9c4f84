"""Guarded training: the run lock, changed flags, damaged backups and failed writes.

Each stop is one line on stderr (exit 2) and leaves the good files as they
were. (A non-finite loss is tested in `test_resume.py`, inside a resumed run.)
"""

import errno
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import make_text

from keras_transformer.errors import UserInputError

# No XLA and 2 steps an epoch: these runs only need to reach their first writes.
TINY = ["--num-layers", "1", "--d-model", "16", "--num-heads", "2", "--max-len", "16",
        "--seq-len", "16", "--batch-size", "4", "--epochs", "2", "--steps-per-epoch", "2",
        "--sample-tokens", "0", "--verbose", "0", "--no-jit", "--backup-every", "0"]


@pytest.fixture
def play(tmp_path, monkeypatch):
    (tmp_path / "play.txt").write_text(make_text(200), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path


def _train(capsys, *flags):
    """`train.py FLAGS` in this process: `(exit code, stderr lines)`."""
    from keras_transformer.cli.train import main

    try:
        code = main(["--data", "play.txt", *TINY, *flags])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()


def _one_line(code, lines):
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), lines
    return lines[0]


def _tiny_model(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dropout(0.2)(inputs)))
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), batch_size=4, verbose=0)
    return model


# --- the lock -------------------------------------------------------------------------------


def test_a_second_run_into_a_live_runs_directory_stops_and_a_killed_holder_frees_it(play,
                                                                                 capsys):
    from keras_transformer.training.guards import RunLock

    (play / "run").mkdir()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # a live run: holds the lock until killed
        os.close(reader)
        held = RunLock(str(play / "run")).acquire()
        os.write(writer, b"x")
        signal.pause()
        held.release()
        os._exit(0)
    os.close(writer)
    assert os.read(reader, 1) == b"x"
    try:
        line = _one_line(*_train(capsys, "--out", "run"))
        assert "is in use by another training run" in line and f"pid {child}" in line
        assert sorted(os.listdir(play / "run")) == [".lock"]  # nothing written
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    # SIGKILL released it: this process takes it now, and then refuses itself a second one.
    lock = RunLock(str(play / "run")).acquire()
    with pytest.raises(UserInputError, match="in use"):
        RunLock(str(play / "run")).acquire()
    lock.release()
    RunLock(str(play / "run")).acquire().release()


# --- changed flags --------------------------------------------------------------------------


def test_changed_flags_are_listed_in_one_line_and_force_new_starts_over(play, capsys):
    from keras_transformer.training.trainer import TrainSettings

    out = play / "run"
    out.mkdir()
    stored = TrainSettings.for_arch("gpt", batch_size=4, seq_len=16, learning_rate=0.01,
                                    backup_every="5m").to_dict()
    config = json.dumps({"arch": "gpt", "context": 16, "settings": stored})
    (out / "config.json").write_text(config)
    (out / "history.csv").write_text("epoch,loss\n0,1.0\n")
    (out / "notes.txt").write_text("mine")
    line = _one_line(*_train(capsys, "--out", "run", "--learning-rate", "0.02"))
    # The differences, stored -> now (the model follows the flags, the learning rate
    # is the one asked), not the settings a resume may change (--backup-every).
    assert "holds an unfinished run with a different model;" in line
    assert "learning_rate 0.01 -> 0.02" in line and "model.d_model 128 -> 16" in line
    assert "backup_every" not in line and "--force-new" in line
    assert (out / "config.json").read_text() == config  # nothing overwritten
    assert (out / "history.csv").read_text() == "epoch,loss\n0,1.0\n"

    code, lines = _train(capsys, "--out", "run", "--learning-rate", "0.02", "--force-new")
    assert code == 0, lines
    assert json.loads((out / "config.json").read_text())["settings"]["learning_rate"] == 0.02
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files went
    assert (out / "metrics.json").exists()
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and [r.split(",")[0] for r in history[1:]] == ["0", "1"]
    assert not (out / "backup").exists()


# --- damaged backups ------------------------------------------------------------------------


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated_weights", "flipped_weights", "flipped_state",
                                    "manifest_not_json", "manifest_wrong_types", "missing_state",
                                    "not_a_directory"])
def test_a_damaged_backup_is_one_line_that_says_how_to_start_over(damage, tmp_path):
    from keras_transformer.training.backup import read_backup, write_backup

    model = _tiny_model()
    backup = tmp_path / "backup"
    write_backup(str(backup), model, 2, steps_per_epoch=4)
    if damage == "truncated_weights":
        weights = backup / "latest.weights.h5"
        weights.write_bytes(weights.read_bytes()[:300])
    elif damage == "flipped_weights":
        _flip(backup / "latest.weights.h5", -100)
    elif damage == "flipped_state":
        _flip(backup / "state.npz", 80)
    elif damage == "manifest_not_json":
        (backup / "state.json").write_text('{"format": 1, "step": ')
    elif damage == "manifest_wrong_types":
        (backup / "state.json").write_text('{"format": 1, "step": "x", "epoch_step": []}')
    elif damage == "missing_state":
        (backup / "state.npz").unlink()
    else:
        for name in os.listdir(backup):
            (backup / name).unlink()
        backup.rmdir()
        backup.write_text("not a backup")
    with pytest.raises(UserInputError) as caught:
        read_backup(str(backup), _tiny_model(seed=1), steps_per_epoch=4)
    message = str(caught.value)
    assert "\n" not in message and "damaged" in message and "--force-new" in message


def test_a_damaged_backup_stops_train_py_in_one_line(play, capsys):
    code, lines = _train(capsys, "--out", "run", "--epochs", "1")
    assert code == 0, lines
    (play / "run" / "metrics.json").unlink()  # an unfinished run again, with a backup
    from keras_transformer.training.backup import write_backup

    write_backup(str(play / "run" / "backup"), _tiny_model(), 1, steps_per_epoch=2)
    (play / "run" / "backup" / "state.json").write_text("{")
    best = (play / "run" / "checkpoints" / "best.weights.h5").read_bytes()
    line = _one_line(*_train(capsys, "--out", "run", "--epochs", "1"))
    assert "the backup in run/backup is damaged" in line and "--force-new" in line
    assert (play / "run" / "checkpoints" / "best.weights.h5").read_bytes() == best


# --- failed writes --------------------------------------------------------------------------


def _files(folder):
    return {path.name: path.read_bytes() for path in Path(folder).iterdir()}


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "backup.new/state.npz")


def test_a_failed_backup_write_keeps_the_previous_backup_whole(tmp_path, monkeypatch):
    from keras_transformer.training import backup as backup_module
    from keras_transformer.training.guards import TrainingStopped

    model = _tiny_model()
    backup = str(tmp_path / "backup")
    backup_module.write_backup(backup, model, 2, steps_per_epoch=4)
    before = _files(backup)
    model.fit(np.ones((8, 4), "float32"), np.zeros((8, 2), "float32"), verbose=0)
    for target, name in [(backup_module.np, "savez"), (backup_module.os, "replace")]:
        with monkeypatch.context() as patch:
            patch.setattr(target, name, _disk_full)
            with pytest.raises(TrainingStopped) as caught:
                backup_module.write_backup(backup, model, 3, steps_per_epoch=4)
        assert "\n" not in str(caught.value) and "disk is full" in str(caught.value)
        assert _files(backup) == before
        assert not os.path.exists(backup + ".new") and not os.path.exists(backup + ".old")
    state = backup_module.read_backup(backup, model, steps_per_epoch=4)
    assert state.step == 2


def test_a_failed_checkpoint_write_keeps_the_previous_best_weights(tmp_path, monkeypatch):
    from keras_transformer.training.guards import AtomicCheckpoint, TrainingStopped

    model = _tiny_model()
    path = tmp_path / "best.weights.h5"
    checkpoint = AtomicCheckpoint(str(path), monitor="val_loss", save_best_only=True)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_loss": 2.0})
    good = path.read_bytes()

    def half_then_full(filepath, overwrite=True, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(good[:100])
        raise OSError(errno.ENOSPC, "No space left on device", filepath)

    monkeypatch.setattr(model, "save_weights", half_then_full)
    with pytest.raises(TrainingStopped, match="disk is full"):
        checkpoint.on_epoch_end(1, {"val_loss": 1.0})
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["best.weights.h5"]


def test_a_disk_full_during_training_is_one_line_and_keeps_the_files_before(play, capsys,
                                                                            monkeypatch):
    from keras_transformer.training import backup as backup_module

    savez, calls = backup_module.np.savez, []

    def full_on_second(*args, **kwargs):  # the end of epoch 2
        calls.append(1)
        if len(calls) == 2:
            _disk_full()
        return savez(*args, **kwargs)

    monkeypatch.setattr(backup_module.np, "savez", full_on_second)
    line = _one_line(*_train(capsys, "--out", "run"))
    assert "could not write the backup run/backup (the disk is full)" in line
    run = play / "run"
    assert json.loads((run / "backup" / "state.json").read_text())["step"] == 2  # epoch 1's
    assert (run / "checkpoints" / "best.weights.h5").exists()
    assert not (run / "metrics.json").exists() and not (run / "model.keras").exists()
    monkeypatch.setattr(backup_module.np, "savez", savez)
    code, lines = _train(capsys, "--out", "run")  # room again: it resumes and finishes
    assert code == 0, lines
    assert (run / "metrics.json").exists()
