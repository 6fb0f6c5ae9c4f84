"""Exact backups of a training run: `RUN_DIR/backup/`, written atomically, restored whole.

Keras' `BackupAndRestore` restores the weights, the optimizer and the epoch;
a run resumed from it repeats the interrupted epoch from its first batch and
draws new dropout masks. A backup here holds everything the next step
depends on:

- `latest.weights.h5`: the model's weights and the optimizer's state
  (moments, and `iterations`, which is also the learning-rate schedule's
  step), written by `model.save_weights` (the file Keras' own callback
  writes);
- `state.npz`: the variables `save_weights` leaves out: the random state of
  every `SeedGenerator` (dropout), and the running loss of the epoch under
  way (Keras' loss tracker), so the epoch's logged loss comes out the same;
- `training_metadata.json`: `{"epoch", "batch"}` as Keras writes it;
- `state.json` (the manifest, written last): the global step, the epoch and
  the step within it, the position in the data, and the SHA-256 of every
  file, so a damaged backup is found before it is used.

The position in the data is the global step: `train()` feeds `fit` one
endless stream per run (the LM stream is pass after pass, each with its own
seeded offset and order), so step `g` is batch `g % P` of pass `g // P`
(`P` batches a pass), and a resumed run continues with
`train_data.skip(g)`.

Writing is atomic: the new backup is written and synced in `backup.new/`,
then `backup/` becomes `backup.old/`, `backup.new/` becomes `backup/` and
`backup.old/` is deleted. At every moment one complete backup exists
(`backup/`, or `backup.old/` between the two renames, which `read_backup`
takes back).
"""

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time

import keras
import numpy as np

from keras_transformer.errors import UserInputError
from keras_transformer.training.guards import (
    TrainingStopped,
    fsync_dir,
    fsync_file,
    write_failed,
)

FORMAT = 1
WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"
STATE = "state.npz"
MANIFEST = "state.json"

# `--backup-every`: N steps, or a time (`10m`, `90s`, `1h`); 0 turns the
# mid-epoch backups off (the backup at the end of every epoch stays).
DEFAULT_BACKUP_EVERY = "10m"
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_backup_every(text):
    """`(steps, seconds)` of a `--backup-every` value (at most one is set; both `None`: off).

    `"500"`: every 500 steps; `"10m"`, `"90s"`, `"1.5h"`: every so much
    time; `"0"`: only at the end of each epoch.
    """
    value = str(text).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", value)
    if not match:
        raise UserInputError(
            f"--backup-every must be a number of steps (500) or a time (10m, 90s, 1h), "
            f"got {text!r}"
        )
    number, unit = float(match.group(1)), match.group(2)
    if not unit:
        if not number.is_integer():
            raise UserInputError(f"--backup-every {text}: a number of steps is a whole number")
        steps = int(number)
        return (steps or None), None
    seconds = number * _UNITS[unit]
    return None, (seconds or None)


def _extra_variables(model):
    """The model's variables that `save_weights` does not write (the `SeedGenerator` states)."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass
class BackupState:
    """Where a backup was taken.

    Args:
        step: training steps done (the optimizer's `iterations`).
        epoch: the epoch under way (the next one, at an epoch's end).
        epoch_step: steps of `epoch` done (0 at an epoch's end: the epoch
            before is complete, its validation and files included).
        metrics: the loss tracker's variables mid-epoch (`None` at an
            epoch's end).
        exact: `False` for a backup of Keras' `BackupAndRestore` format
            (epochs only, no random state).
        epoch_logs: at an epoch's end, that epoch's logs (`{"epoch", "loss",
            "val_loss", ...}`): the backup is written before `history.csv`
            gets the epoch's row, which a resumed run adds if it is missing.
    """

    step: int
    epoch: int
    epoch_step: int
    metrics: list | None = None
    exact: bool = True
    epoch_logs: dict | None = None


def _json_dump(path, values):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(values, handle, indent=1)
        handle.write("\n")


def write_backup(backup_dir, model, step, steps_per_epoch, data=None, epoch_logs=None):
    """Write the backup of `model` after `step` training steps, atomically.

    Args:
        backup_dir: `RUN_DIR/backup`.
        model: the compiled model (its optimizer and loss tracker too).
        step: training steps done.
        steps_per_epoch: steps in one epoch.
        data: optional dict describing the data position (stored as is).
        epoch_logs: at an epoch's end, its logs (see `BackupState`).

    Raises `TrainingStopped` if a weight is not finite (nothing is written)
    or a write fails (the previous backup stays).
    """
    new, old = backup_dir + ".new", backup_dir + ".old"
    _recover(backup_dir)
    epoch, epoch_step = divmod(step, steps_per_epoch)
    extra = [v.numpy() for v in _extra_variables(model)]
    metrics = [v.numpy() for v in model.metrics_variables] if epoch_step else []
    for variable in model.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable.value))):
            raise TrainingStopped(
                f"{variable.path} is not finite after step {step}; training stopped before "
                f"writing the backup, which keeps the last finite state"
            )
    try:
        if os.path.lexists(new):
            _delete(new)
        os.makedirs(new)
        model.save_weights(os.path.join(new, WEIGHTS))
        np.savez(os.path.join(new, STATE), *extra, *metrics)
        _json_dump(os.path.join(new, METADATA), {"epoch": epoch, "batch": epoch_step})
        files = (WEIGHTS, STATE, METADATA)
        for name in files:
            fsync_file(os.path.join(new, name))
        _json_dump(os.path.join(new, MANIFEST), {
            "format": FORMAT,
            "step": step,
            "epoch": epoch,
            "epoch_step": epoch_step,
            "steps_per_epoch": steps_per_epoch,
            "data": data or {},
            "epoch_logs": epoch_logs,
            "extra_variables": len(extra),
            "metric_variables": len(metrics),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "sha256": {name: _sha256(os.path.join(new, name)) for name in files},
        })
        fsync_file(os.path.join(new, MANIFEST))
        fsync_dir(new)
        if os.path.lexists(backup_dir):
            if os.path.lexists(old):
                _delete(old)
            os.replace(backup_dir, old)
        os.replace(new, backup_dir)
        fsync_dir(os.path.dirname(os.path.abspath(backup_dir)))
        if os.path.lexists(old):
            _delete(old)
    except OSError as error:
        if os.path.isdir(new):
            shutil.rmtree(new, ignore_errors=True)
        _recover(backup_dir)
        raise write_failed(error, f"the backup {backup_dir}") from None


def _delete(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _recover(backup_dir):
    """Take `backup.old/` back if a write stopped between its two renames."""
    old = backup_dir + ".old"
    if not os.path.lexists(backup_dir) and os.path.isdir(old):
        os.replace(old, backup_dir)


def has_backup(backup_dir):
    """Whether `backup_dir` (or its `.old` twin) holds a backup."""
    for path in (backup_dir, backup_dir + ".old"):
        if os.path.isdir(path) and os.listdir(path):
            return True
    return False


def remove_backup(backup_dir):
    """Delete the backup (and any half-written or previous one)."""
    for path in (backup_dir, backup_dir + ".new", backup_dir + ".old"):
        if os.path.lexists(path):
            _delete(path)


def _damaged(backup_dir, why):
    return UserInputError(
        f"the backup in {backup_dir} is damaged ({why}); run the same command with "
        f"--force-new to start the run over (or choose another --out)"
    )


def read_backup(backup_dir, model, steps_per_epoch, writable=True):
    """Restore `model` (weights, optimizer, random state) from a backup; its `BackupState`.

    `None` when there is no backup. A damaged backup (a checksum that does not
    match, a truncated file, a manifest that is not JSON, variables that do
    not fit the model) is a one-line `UserInputError` saying how to start
    over. A backup in Keras' `BackupAndRestore` format (no `state.json`)
    restores the weights, the optimizer and the epoch (`exact=False`).

    Args:
        backup_dir: `RUN_DIR/backup`.
        model: the compiled model.
        steps_per_epoch: this run's steps per epoch (must be the backup's).
        writable: whether this process may move `backup.old/` back.
    """
    if writable:
        _recover(backup_dir)
    elif not os.path.isdir(backup_dir) and os.path.isdir(backup_dir + ".old"):
        backup_dir = backup_dir + ".old"
    if not os.path.isdir(backup_dir) or not os.listdir(backup_dir):
        if os.path.lexists(backup_dir) and not os.path.isdir(backup_dir):
            raise _damaged(backup_dir, "it is not a directory")
        return None
    manifest_path = os.path.join(backup_dir, MANIFEST)
    if not os.path.exists(manifest_path):
        return _read_keras_backup(backup_dir, model, steps_per_epoch)
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        step, epoch_step = int(manifest["step"]), int(manifest["epoch_step"])
        hashes = dict(manifest["sha256"])
        backup_steps = int(manifest["steps_per_epoch"])
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, not {FORMAT}")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _damaged(backup_dir, f"{MANIFEST}: {_short(error)}") from None
    if backup_steps != steps_per_epoch:
        raise UserInputError(
            f"the backup in {backup_dir} was taken with {backup_steps} steps per epoch, this "
            f"run has {steps_per_epoch}; resume with the same flags or use --force-new"
        )
    for name in (WEIGHTS, STATE, METADATA):
        path = os.path.join(backup_dir, name)
        try:
            ok = hashes.get(name) == _sha256(path)
        except OSError as error:
            raise _damaged(backup_dir, f"{name}: {_short(error)}") from None
        if not ok:
            raise _damaged(backup_dir, f"{name} does not match its checksum")
    try:
        _build_optimizer(model)
        model.load_weights(os.path.join(backup_dir, WEIGHTS))
        with np.load(os.path.join(backup_dir, STATE)) as arrays:
            values = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    except Exception as error:  # noqa: BLE001 - any failure to read is a damaged backup
        raise _damaged(backup_dir, _short(error)) from None
    extra = _extra_variables(model)
    count = int(manifest.get("extra_variables", -1))
    if count != len(extra) or len(values) < count:
        raise _damaged(backup_dir, f"it holds {count} random states, the model has {len(extra)}")
    for variable, value in zip(extra, values[:count], strict=True):
        if tuple(variable.shape) != value.shape:
            raise _damaged(backup_dir, f"{variable.path} has shape {value.shape} there")
        variable.assign(value)
    metrics = values[count:] if epoch_step else None  # checked by `restore_metrics`
    logs = manifest.get("epoch_logs")
    return BackupState(step, step // steps_per_epoch, epoch_step, metrics,
                       epoch_logs=logs if isinstance(logs, dict) else None)


def _read_keras_backup(backup_dir, model, steps_per_epoch):
    """Restore a backup of Keras' `BackupAndRestore` (epoch granularity)."""
    try:
        with open(os.path.join(backup_dir, METADATA), encoding="utf-8") as handle:
            epoch = int(json.load(handle)["epoch"])
        _build_optimizer(model)
        model.load_weights(os.path.join(backup_dir, WEIGHTS))
    except Exception as error:  # noqa: BLE001 - any failure to read is a damaged backup
        raise _damaged(backup_dir, _short(error)) from None
    return BackupState(epoch * steps_per_epoch, epoch, 0, None, exact=False)


def _build_optimizer(model):
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def restore_metrics(model, values):
    """Put a mid-epoch loss tracker state back (after `fit` reset it at the epoch's start)."""
    variables = model.metrics_variables
    if len(variables) != len(values):
        raise UserInputError(
            f"the backup holds {len(values)} metric variables, the model has {len(variables)}; "
            f"use --force-new"
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _short(error):
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


class RunBackup(keras.callbacks.Callback):
    """Back up the run every so many steps or minutes, and at the end of every epoch.

    The end-of-epoch backup is taken in `on_epoch_end`, after validation and
    after the callbacks before it in the list (the best checkpoint), before
    those after it (`history.csv`, whose row it stores: see `BackupState`):
    a backup at step `k * steps_per_epoch` always means that epoch is
    complete. The mid-epoch backups skip an epoch's last step for the same
    reason.

    Args:
        backup_dir: `RUN_DIR/backup`.
        steps_per_epoch: steps in one epoch.
        every_steps: back up when the global step is a multiple of this.
        every_seconds: back up when this much time passed since the last one.
        chief: only the chief writes (the other workers count along).
        start_step: the global step training starts from.
        metrics: loss tracker values to put back at the first epoch's start
            (a mid-epoch resume).
        data: `data(step) -> dict`, the data position stored in `state.json`.
    """

    def __init__(self, backup_dir, steps_per_epoch, every_steps=None, every_seconds=None,
                 chief=True, start_step=0, metrics=None, data=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.steps_per_epoch = steps_per_epoch
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.chief = chief
        self.step = start_step
        self.epoch = start_step // steps_per_epoch
        self._metrics = metrics
        self._data = data
        self._last = time.monotonic()
        self.seconds = []  # the time each backup took
        self.stop_after_epoch = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self._metrics is not None:
            restore_metrics(self.model, self._metrics)
            self._metrics = None

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step - self.epoch * self.steps_per_epoch >= self.steps_per_epoch:
            return  # the end-of-epoch backup follows, after validation
        due = self.every_steps and self.step % self.every_steps == 0
        if not due and self.every_seconds:
            due = time.monotonic() - self._last >= self.every_seconds
        if due:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        if self.step != (epoch + 1) * self.steps_per_epoch:
            raise RuntimeError(f"backup step count {self.step} is off at epoch {epoch + 1}")
        self.save({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        if self.stop_after_epoch:
            self.stop_after_epoch = False
            self.model.stop_training = True

    def save(self, epoch_logs=None):
        """Write the backup now (the chief only)."""
        self._last = time.monotonic()
        if not self.chief:
            return
        started = time.perf_counter()
        data = self._data(self.step) if self._data else None
        write_backup(self.backup_dir, self.model, self.step, self.steps_per_epoch, data,
                     epoch_logs)
        self.seconds.append(time.perf_counter() - started)
        self._last = time.monotonic()
