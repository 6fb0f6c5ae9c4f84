"""What the exact-resume backups cost a default `python train.py --arch gpt` run.

    python benchmarks/backup.py [--steps 20] [--backups 10] [--json FILE]

The default GPT (`gpt-mini` over Tiny Shakespeare's 65 characters and padding) is
compiled as `train.py` compiles it (AdamW, warmup + cosine over 20 epochs of
122 steps, clipping, XLA) and trained `--steps` steps on batches of 64 x 128
ids, which times a step and builds the optimizer's moments. Then
`RunBackup.save()` (what `train()` calls every `--backup-every` and at every
epoch's end) writes the backup `--backups` times into a temporary
directory: seconds per backup (median and slowest) and its size on disk.

The share of a default run: its 20 end-of-epoch backups plus the timed ones
of `--backup-every 10m` (the default), over the run's training time (the
step time x 2,440 steps) plus the backups'. Every backup, an epoch's end
included, restarts the 10 minutes, so a timed backup falls inside an epoch
only when the epoch lasts longer than that. Validation and the final
evaluation are not in the run time, so the share is an upper bound.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_transformer.config import TransformerConfig  # noqa: E402
from keras_transformer.models import build_gpt  # noqa: E402
from keras_transformer.training.backup import (  # noqa: E402
    DEFAULT_BACKUP_EVERY,
    RunBackup,
    parse_backup_every,
)
from keras_transformer.training.schedules import make_optimizer  # noqa: E402
from train import StepTimer  # noqa: E402  (benchmarks/train.py, beside this script)

# The default run: Tiny Shakespeare's 65 characters and padding (66 ids), 20 epochs of 122
# steps of 64 x 128.
VOCAB, EPOCHS, STEPS_PER_EPOCH, BATCH, SEQ_LEN = 66, 20, 122, 64, 128


def default_gpt():
    """The default GPT, compiled as `train.py --arch gpt` compiles it."""
    keras.utils.set_random_seed(0)
    model = build_gpt(TransformerConfig.preset("gpt-mini", vocab_size=VOCAB))
    model.compile(
        optimizer=make_optimizer(2e-3, EPOCHS * STEPS_PER_EPOCH, warmup_steps=200,
                                 weight_decay=0.1, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model


def step_seconds(model, steps, warmup=3):
    """Seconds per training step of `model` on random batches (after `warmup` steps)."""
    ids = np.random.default_rng(0).integers(1, VOCAB, size=(BATCH * (steps + warmup),
                                                            SEQ_LEN + 1)).astype("int32")
    timer = StepTimer(warmup)
    model.fit(ids[:, :-1], ids[:, 1:], batch_size=BATCH, epochs=1, verbose=0, shuffle=False,
              callbacks=[timer])
    return timer.seconds / steps


def backup_seconds(model, count, folder):
    """`(seconds of each of `count` backups, bytes of one)`, written by `RunBackup.save()`."""
    backup_dir = os.path.join(folder, "backup")
    backup = RunBackup(backup_dir, STEPS_PER_EPOCH, start_step=int(
        model.optimizer.iterations.numpy()))
    backup.set_model(model)
    for _ in range(count):
        backup.save()
    size = sum(os.path.getsize(os.path.join(backup_dir, name)) for name in os.listdir(backup_dir))
    return backup.seconds, size


def default_run_share(step, per_backup):
    """Backups of the default run and their share of its time (see the module docstring)."""
    _, every_seconds = parse_backup_every(DEFAULT_BACKUP_EVERY)
    train_seconds = step * EPOCHS * STEPS_PER_EPOCH
    epoch_seconds = step * STEPS_PER_EPOCH  # the timer restarts at every epoch's backup
    timed = EPOCHS * (math.ceil(epoch_seconds / every_seconds) - 1)
    backups = EPOCHS + timed
    total = backups * per_backup
    return {"train_seconds": round(train_seconds, 1), "epoch_backups": EPOCHS,
            "timed_backups": timed, "backups": backups, "backup_seconds": round(total, 2),
            "share_percent": round(100 * total / (train_seconds + total), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--backups", type=int, default=10, help="backups written")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    model = default_gpt()
    step = step_seconds(model, args.steps)
    folder = tempfile.mkdtemp(prefix="backup-benchmark-")
    try:
        seconds, size = backup_seconds(model, args.backups, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    per_backup = statistics.median(seconds)
    share = default_run_share(step, per_backup)
    result = {"params": int(model.count_params()), "step_seconds": round(step, 4),
              "backup_seconds_median": round(per_backup, 4),
              "backup_seconds_max": round(max(seconds), 4), "backups_timed": len(seconds),
              "backup_megabytes": round(size / 2**20, 2),
              "backup_every": DEFAULT_BACKUP_EVERY, **share}
    rows = [("parameters", f"{result['params']:,}"),
            ("training step (64 x 128, XLA)", f"{step:.3f} s"),
            (f"one backup (median of {len(seconds)}, slowest)",
             f"{per_backup:.3f} s ({max(seconds):.3f} s)"),
            ("backup on disk", f"{result['backup_megabytes']:.2f} MiB"),
            (f"default run: {EPOCHS} x {STEPS_PER_EPOCH} steps", f"{share['train_seconds']:,.0f} s"),
            (f"backups: {EPOCHS} epoch ends + every {DEFAULT_BACKUP_EVERY}",
             f"{share['backups']} ({share['timed_backups']} timed), {share['backup_seconds']:.1f} s"),
            ("share of the run", f"{share['share_percent']:.2f} %")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
