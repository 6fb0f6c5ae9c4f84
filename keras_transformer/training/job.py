"""`Job`: what one architecture contributes to the shared training path.

`train()` (in `trainer.py`) owns everything the architectures have in
common: the run directory, config and tokenizer files, the optimizer, the
callbacks (BackupAndRestore, best checkpoint, CSV and TensorBoard logs),
`fit`, saving `model.keras`, `history.png`, `sample.txt` and the atomic
`metrics.json`. A `Job` is the rest: data, model, loss, and the evaluation
that fills the architecture's own metrics and sample.

The options only one architecture reads live beside its job, in a small
settings dataclass with its own `check()` (`LMSettings` and
`CharRNNSettings` in `lm.py`, `BertSettings` in `bert.py`,
`Seq2SeqSettings` in `seq2seq.py`); `TrainSettings.job` holds the run's.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keras_transformer.config import INT32_MAX  # TensorFlow counts steps and sizes in int32
from keras_transformer.errors import UserInputError


def check_positive_ints(settings, *names):
    """Raise `UserInputError` unless each field `names` of `settings` is an integer
    from 1 to `INT32_MAX`."""
    for name in names:
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserInputError(f"{name} must be a positive integer, got {value!r}")
        if value > INT32_MAX:
            raise UserInputError(f"{name} must be at most {INT32_MAX}, got {value}")


def check_count(settings, name):
    """Raise `UserInputError` unless field `name` of `settings` is an integer from 0 to
    `INT32_MAX`."""
    value = getattr(settings, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UserInputError(f"{name} must be >= 0, got {value!r}")
    if value > INT32_MAX:
        raise UserInputError(f"{name} must be at most {INT32_MAX}, got {value}")


def check_number(settings, name, minimum=0.0, above=False):
    """Raise `UserInputError` unless field `name` of `settings` is a finite number at
    least `minimum` (above it, with `above`): NaN and infinities are refused."""
    value = getattr(settings, name)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < minimum or (above and value == minimum):
        relation = "above" if above else "at least"
        raise UserInputError(f"{name} must be a finite number {relation} {minimum:g}, "
                             f"got {value!r}")


@dataclass
class Job:
    """The architecture-specific parts of a training run.

    Args:
        tokenizer: saved as `tokenizer.json`.
        build_model: no-argument callable returning the (uncompiled) model;
            called after the random seed is set.
        train_data: an endless `tf.data.Dataset` of training batches.
        val_data: a finite `tf.data.Dataset` for validation.
        steps_per_epoch: batches per Keras epoch.
        loss: the `loss` argument of `model.compile`.
        tokens_per_step: tokens (or target tokens) in one training batch.
        context: stored in `config.json` (the generation window of a LM).
        describe: one line printed before training.
        finish: `finish(model, val_loss) -> (metrics, sample_text)`, run on the best
            model after training; its metrics are added to `metrics.json`.
        data_name: the data named in `metrics.json` and the plot title.
    """

    tokenizer: Any
    build_model: Callable
    train_data: Any
    val_data: Any
    steps_per_epoch: int
    loss: Any
    tokens_per_step: int
    context: int
    describe: str
    finish: Callable
    data_name: str
