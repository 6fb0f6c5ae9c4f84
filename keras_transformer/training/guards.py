"""What stops a run cleanly: a non-finite loss, a second run in the same directory, a failed write.

- `TrainingStopped`: the one-line error of a run that had to stop (the CLI
  prints it on one line and exits with status 2, like every
  `UserInputError`).
- `NonFiniteGuard`: a callback that stops training at the first step whose
  loss is NaN or infinite, before any callback after it can write the
  weights of that step (put it first in the callback list).
- `RunLock`: an exclusive `fcntl.flock` on `RUN_DIR/.lock`, held while a run
  trains. The kernel drops it when the process ends in any way (SIGKILL and
  power loss included), so a killed run never leaves it stuck.
- `AtomicCheckpoint`: `keras.callbacks.ModelCheckpoint` that writes to a
  temporary name, syncs it to disk and renames it over the previous file, so
  a failed or interrupted write leaves the previous best weights whole.
- `write_failed`: the `TrainingStopped` for an `OSError` of a write.
"""

import contextlib
import errno
import fcntl
import math
import os

import keras

from keras_transformer.errors import UserInputError


class TrainingStopped(UserInputError):
    """A run stopped on a problem it names in one line (the files written before stay whole)."""


def _reason(error):
    """`strerror: filename` of an `OSError`, or its text."""
    if getattr(error, "strerror", None):
        where = f": {error.filename}" if getattr(error, "filename", None) else ""
        return f"{error.strerror}{where}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def write_failed(error, what):
    """The `TrainingStopped` for an `OSError` raised while writing `what`.

    Args:
        error: the `OSError`.
        what: the file or files being written (`"the backup"`, `"model.keras"`).
    """
    full = " (the disk is full)" if getattr(error, "errno", None) == errno.ENOSPC else ""
    return TrainingStopped(
        f"could not write {what}{full} ({_reason(error)}); training stopped and the files "
        f"written before are whole: free the disk or fix the directory, then run the same "
        f"command again to resume"
    )


class NonFiniteGuard(keras.callbacks.Callback):
    """Raise `TrainingStopped` at the first non-finite loss, naming the step.

    The check runs at the end of every training step (on the step's loss) and
    of every epoch (on the loss and the validation loss). Placed first in the
    callback list it runs before the backup and the best checkpoint, so those
    keep the last finite state: no NaN weights are written over good ones.

    Args:
        steps_per_epoch: training steps in one epoch (to name the epoch).
        start_step: the global step training starts from (after a resume).
    """

    def __init__(self, steps_per_epoch, start_step=0):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.step = start_step
        self.epoch = start_step // steps_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingStopped(
                f"the loss is {float(loss)} at step {self.step} (epoch {self.epoch + 1}); "
                f"training stopped, the backup and checkpoints/best.weights.h5 keep the last "
                f"finite state (start over with a lower --learning-rate: --force-new or "
                f"another --out)"
            )

    def on_epoch_end(self, epoch, logs=None):
        for name in ("loss", "val_loss"):
            value = (logs or {}).get(name)
            if value is not None and not math.isfinite(float(value)):
                raise TrainingStopped(
                    f"the {name} is {float(value)} at the end of epoch {epoch + 1} (step "
                    f"{self.step}); training stopped, the backup and "
                    f"checkpoints/best.weights.h5 keep the last finite state"
                )


class RunLock:
    """An exclusive lock on a run directory while a run trains in it.

    `acquire()` takes `fcntl.flock` on `RUN_DIR/.lock` without waiting and
    writes this process' id into it; a second run (another process, or a
    second `train()` in this one) then gets a one-line `TrainingStopped`.
    The kernel releases the lock when its file is closed or the process
    dies, however it dies.

    Args:
        run_dir: the run directory (must exist).
    """

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, ".lock")
        self.run_dir = run_dir
        self._handle = None

    def acquire(self):
        try:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held while training)
        except OSError as error:
            raise write_failed(error, self.path) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise TrainingStopped(
                f"{self.run_dir} is in use by another training run (pid {owner}); wait for it "
                f"to end or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self):
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def fsync_file(path):
    """Flush `path`'s data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    """Flush a directory's entries (renames into it) to the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot sync a directory
        pass
    finally:
        os.close(fd)


class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` (best weights only) that never leaves a half-written file.

    Keras writes `filepath` in place; this one lets Keras write
    `NAME.tmp.weights.h5` beside it, syncs that to disk and renames it over
    `filepath`. A write that fails (disk full, a read-only directory) raises
    and leaves the previous file as it was.

    Args:
        filepath: the final `.weights.h5` path.
        **kwargs: `ModelCheckpoint`'s (`monitor`, `save_best_only`, ...);
            `save_weights_only` is forced on.
    """

    def __init__(self, filepath, **kwargs):
        self.final_path = filepath
        self.tmp_path = filepath[: -len(".weights.h5")] + ".tmp.weights.h5"
        kwargs["save_weights_only"] = True
        super().__init__(self.tmp_path, **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        try:
            super().on_epoch_end(epoch, logs)
            if os.path.exists(self.tmp_path):
                fsync_file(self.tmp_path)
                os.replace(self.tmp_path, self.final_path)
                fsync_dir(os.path.dirname(self.final_path) or ".")
        except OSError as error:
            _remove(self.tmp_path)
            raise write_failed(error, self.final_path) from None


def _remove(path):
    with contextlib.suppress(OSError):
        os.remove(path)
