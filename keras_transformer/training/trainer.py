"""`train()`: the one training path shared by `train.py`, notebooks and tests.

A run directory ends up holding:

- `config.json`: the model config and the training settings (written first),
- `tokenizer.json`: the tokenizer,
- `history.csv` and `logs/` (TensorBoard): per-epoch losses,
- `backup/`: `keras.callbacks.BackupAndRestore`'s state while training runs;
  starting again with the same `--out` resumes from it,
- `checkpoints/best.weights.h5`: the weights with the best validation loss,
- `model.keras`: the best model, saved when training ends,
- `history.png`, `sample.txt`,
- `metrics.json`: written last; a directory without it is an unfinished run.
"""

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field

import keras

from keras_transformer.config import TransformerConfig
from keras_transformer.data import (
    CharTokenizer,
    lm_eval_dataset,
    lm_train_dataset,
    load_text,
    split_text,
    steps_per_pass,
)
from keras_transformer.errors import UserInputError
from keras_transformer.generation import generate
from keras_transformer.models import build_charrnn, build_gpt
from keras_transformer.training.reports import (
    bits_per_token,
    plot_history,
    read_history,
    write_json_atomic,
)
from keras_transformer.training.schedules import make_optimizer

ARCHS = ("gpt", "charrnn")


@dataclass
class TrainSettings:
    """Everything `train()` needs besides the model architecture.

    Args:
        arch: `"gpt"` or `"charrnn"`.
        model: the Transformer architecture (`vocab_size` is replaced by the
            tokenizer's size).
        epochs: Keras epochs; by default one epoch is one pass over the
            training text.
        steps_per_epoch: batches per epoch (`None`: one pass over the text).
        batch_size, seq_len: each step trains on `batch_size` windows of
            `seq_len` tokens.
        learning_rate, warmup_steps, weight_decay, clipnorm: the AdamW recipe.
        seed: seeds weights, data order and the sample.
        data: a text file; `None` fetches Tiny Shakespeare.
        out: the run directory.
        jit: compile the train step with XLA.
        verbose: Keras progress output (0 silent, 1 progress bar, 2 a line
            per epoch).
        rnn_units, rnn_layers: size of the char-RNN (`arch="charrnn"`).
        prompt, sample_tokens, sample_temperature: what `sample.txt` holds.
    """

    arch: str = "gpt"
    model: TransformerConfig = field(default_factory=TransformerConfig)
    epochs: int = 20
    steps_per_epoch: int | None = None
    batch_size: int = 64
    seq_len: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    weight_decay: float = 0.1
    clipnorm: float = 1.0
    seed: int = 0
    data: str | None = None
    out: str | None = None
    jit: bool = True
    verbose: int | str = 1
    rnn_units: int = 384
    rnn_layers: int = 1
    prompt: str = "ROMEO:"
    sample_tokens: int = 1000
    sample_temperature: float = 0.7

    def check(self):
        """Raise `UserInputError` for settings that cannot work."""
        if self.arch not in ARCHS:
            raise UserInputError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        for name in ("epochs", "batch_size", "seq_len", "rnn_units", "rnn_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserInputError(f"{name} must be a positive integer, got {value!r}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise UserInputError(f"steps_per_epoch must be positive, got {self.steps_per_epoch}")
        if self.arch == "gpt" and self.seq_len > self.model.max_len:
            raise UserInputError(
                f"--seq-len {self.seq_len} is above the model's max_len {self.model.max_len}; "
                f"lower --seq-len or raise --max-len"
            )
        if self.sample_tokens < 0:
            raise UserInputError(f"sample_tokens must be >= 0, got {self.sample_tokens}")
        if self.learning_rate <= 0:
            raise UserInputError(f"learning_rate must be positive, got {self.learning_rate}")

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["model"] = self.model.to_dict()
        return values


def default_run_dir(arch):
    """`runs/<arch>-<timestamp>`, the run directory when `--out` is not given."""
    return os.path.join("runs", f"{arch}-{time.strftime('%Y%m%d-%H%M%S')}")


def build_model(settings, vocab_size):
    """The model `settings` describe, for a vocabulary of `vocab_size` ids."""
    if settings.arch == "gpt":
        return build_gpt(settings.model)
    return build_charrnn(
        vocab_size,
        embedding_dim=settings.model.d_model,
        units=settings.rnn_units,
        num_layers=settings.rnn_layers,
        dropout=settings.model.dropout,
    )


def _prepare_run_dir(out, settings):
    """Create (or reopen, to resume) the run directory; refuse a finished one."""
    if os.path.exists(os.path.join(out, "metrics.json")):
        raise UserInputError(f"{out} already holds a finished run; choose another --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserInputError(f"--out {out} exists and is not a directory")
    config_path = os.path.join(out, "config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as handle:
            previous = json.load(handle).get("settings", {})
        for key in ("arch", "model", "batch_size", "seq_len"):
            if key in previous and previous[key] != settings.to_dict()[key]:
                raise UserInputError(
                    f"{out} holds an unfinished run with a different {key}; "
                    f"resume it with the same flags or choose another --out"
                )
    os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)


def train(settings: TrainSettings):
    """Train a language model as `settings` say and fill its run directory.

    Returns the metrics dict that is also written to `metrics.json`.
    """
    started = time.time()
    settings.check()
    text = load_text(settings.data)
    tokenizer = CharTokenizer.from_text(text)
    context = settings.model.max_len if settings.arch == "gpt" else settings.seq_len
    # Fail now, not after training, on a prompt sample.txt could not use.
    if not settings.prompt:
        raise UserInputError("--prompt is empty; sample.txt needs at least one character")
    if len(tokenizer.encode(settings.prompt)) > context:
        raise UserInputError(f"--prompt is longer than the model's context of {context} tokens")
    # The tokenizer defines the vocabulary: the embedding gets one row per id.
    settings.model = dataclasses.replace(settings.model, vocab_size=tokenizer.vocab_size)
    train_text, val_text = split_text(text)
    train_ids, val_ids = tokenizer.encode(train_text), tokenizer.encode(val_text)
    passes = steps_per_pass(len(train_ids), settings.seq_len, settings.batch_size)
    steps_per_epoch = settings.steps_per_epoch or passes
    train_data = lm_train_dataset(train_ids, settings.seq_len, settings.batch_size, settings.seed)
    val_data = lm_eval_dataset(val_ids, settings.seq_len, settings.batch_size)

    out = settings.out or default_run_dir(settings.arch)
    _prepare_run_dir(out, settings)
    tokenizer.save(os.path.join(out, "tokenizer.json"))
    write_json_atomic(
        os.path.join(out, "config.json"),
        {"arch": settings.arch, "context": context, "settings": settings.to_dict()},
    )

    keras.utils.set_random_seed(settings.seed)
    model = build_model(settings, tokenizer.vocab_size)
    total_steps = settings.epochs * steps_per_epoch
    model.compile(
        optimizer=make_optimizer(
            settings.learning_rate,
            total_steps,
            warmup_steps=settings.warmup_steps,
            weight_decay=settings.weight_decay,
            clipnorm=settings.clipnorm,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=settings.jit,
    )

    history_path = os.path.join(out, "history.csv")
    best_path = os.path.join(out, "checkpoints", "best.weights.h5")
    earlier = read_history(history_path)
    best_so_far = min((row["val_loss"] for row in earlier if "val_loss" in row), default=None)
    backup_dir = os.path.join(out, "backup")
    if os.path.isdir(backup_dir) and os.listdir(backup_dir):
        print(f"Resuming from the backup in {backup_dir} ({len(earlier)} epoch(s) done)")
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir),
        keras.callbacks.ModelCheckpoint(
            best_path,
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far,
        ),
        keras.callbacks.CSVLogger(history_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(out, "logs")),
    ]
    print(
        f"{settings.arch}: {model.count_params():,} parameters, {len(train_ids):,} training "
        f"tokens, {steps_per_epoch} steps of {settings.batch_size}x{settings.seq_len} per epoch"
    )
    fit_started = time.time()
    fit_history = model.fit(
        train_data,
        epochs=settings.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_data,
        callbacks=callbacks,
        verbose=settings.verbose,
        shuffle=False,  # the dataset shuffles itself, per pass
    )
    fit_seconds = time.time() - fit_started
    epochs_run = len(fit_history.history.get("loss", []))

    if os.path.exists(best_path):
        model.load_weights(best_path)
    val_loss = float(model.evaluate(val_data, verbose=0))
    tmp_model = os.path.join(out, "model.tmp.keras")
    model.save(tmp_model)
    os.replace(tmp_model, os.path.join(out, "model.keras"))

    history = read_history(history_path)
    plot_history(history, os.path.join(out, "history.png"), f"{settings.arch} on {_data_name(settings)}")
    best = min(history, key=lambda row: row.get("val_loss", math.inf))
    sample = generate(
        model,
        tokenizer,
        settings.prompt,
        max_new_tokens=settings.sample_tokens,
        temperature=settings.sample_temperature,
        seed=settings.seed,
        context=context,
    )
    with open(os.path.join(out, "sample.txt"), "w", encoding="utf-8") as handle:
        handle.write(sample + "\n")

    tokens_trained = epochs_run * steps_per_epoch * settings.batch_size * settings.seq_len
    metrics = {
        "arch": settings.arch,
        "data": _data_name(settings),
        "params": int(model.count_params()),
        "epochs": len(history),
        "best_epoch": int(best["epoch"]) + 1,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": settings.batch_size,
        "seq_len": settings.seq_len,
        "seconds": round(time.time() - started, 1),
        "tokens_per_sec": round(tokens_trained / fit_seconds, 1) if epochs_run else None,
        "train_loss": round(best["loss"], 4),
        "val_loss": round(val_loss, 4),
        "val_bpc": round(bits_per_token(val_loss), 4),
    }
    write_json_atomic(os.path.join(out, "metrics.json"), metrics)
    metrics["out"] = out
    return metrics


def _data_name(settings):
    return os.path.basename(settings.data) if settings.data else "tinyshakespeare"
