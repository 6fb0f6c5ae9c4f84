"""`train()`: the one training path shared by `train.py`, notebooks and tests.

Every architecture (`gpt`, `charrnn`, `bert`, `seq2seq`) goes through the
same `train()`: a `Job` (see `job.py`; made by `lm.py`, `bert.py` or
`seq2seq.py`) supplies the data, the model, the loss and the final
evaluation; this module owns the run directory, the callbacks and the files.

A run directory ends up holding:

- `config.json`: the model config and the training settings (written first):
  `{"arch", "context", "settings": TrainSettings.to_dict()}`, whose `"model"`
  is the `TransformerConfig` and `"job"` the arch's own settings,
- `tokenizer.json`: the tokenizer (and `tokenizer.model`, the SentencePiece model of a
  `bpe` tokenizer),
- `history.csv` and `logs/` (TensorBoard): per-epoch losses,
- `backup/`: `keras.callbacks.BackupAndRestore`'s state while training runs;
  starting again with the same `--out` resumes from it,
- `checkpoints/best.weights.h5`: the weights with the best validation loss,
- `model.keras`: the best model, saved when training ends,
- `history.png`, `sample.txt`,
- `metrics.json`: written last; a directory without it is an unfinished run.
"""

import dataclasses
import difflib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import keras

from keras_transformer.config import TransformerConfig
from keras_transformer.data.tokenizers import save_tokenizer
from keras_transformer.errors import UserInputError
from keras_transformer.training.bert import BertSettings
from keras_transformer.training.distribute import (
    STRATEGIES,
    ChiefBackupAndRestore,
    is_chief,
    make_strategy,
    precision_policy,
)
from keras_transformer.training.job import check_positive_ints
from keras_transformer.training.lm import CharRNNSettings, GPTSettings
from keras_transformer.training.reports import plot_history, read_history, write_json_atomic
from keras_transformer.training.schedules import make_optimizer
from keras_transformer.training.seq2seq import Seq2SeqSettings

ARCHS = ("gpt", "charrnn", "bert", "seq2seq")

# Per-architecture defaults of the shared `TrainSettings` fields, taken by
# `TrainSettings.for_arch` and `train.py`, sized for 2 CPU cores (see the
# README for the timings). An arch's own options default in its settings class
# (`JOB_SETTINGS` below).
ARCH_DEFAULTS = {
    "gpt": {"preset": "gpt-mini"},
    "charrnn": {"preset": "gpt-mini"},
    "bert": dict(
        preset="bert-mini", epochs=10, steps_per_epoch=200, batch_size=64, seq_len=64,
        learning_rate=1e-3, warmup_steps=100, weight_decay=0.01,
    ),
    "seq2seq": dict(
        preset="seq2seq-mini", epochs=5, batch_size=64, learning_rate=1e-3, warmup_steps=100,
        weight_decay=0.01,
    ),
}

# What `--tokenizer bpe` changes in those defaults. A 4096-piece BPE turns the
# training part of Tiny Shakespeare into about 312k tokens (3.2 characters a
# token), so one pass is 38 steps of 64 x 128 tokens instead of 122; a step
# costs about twice a character step (the 4096-way output layer), so 16
# passes (608 steps) take roughly half the time of the char model's 2,440.
BPE_DEFAULTS = {
    "gpt": {"epochs": 16},
    "charrnn": {"epochs": 16},
}


# The settings class of each arch's own options, beside its job (`lm.py`,
# `bert.py`, `seq2seq.py`); `TrainSettings.job` holds one.
JOB_SETTINGS = {
    "gpt": GPTSettings,
    "charrnn": CharRNNSettings,
    "bert": BertSettings,
    "seq2seq": Seq2SeqSettings,
}


@dataclass
class TrainSettings:
    """What every run shares, plus `job`: the options of its architecture alone.

    Args:
        arch: `"gpt"`, `"charrnn"`, `"bert"` or `"seq2seq"`.
        model: the Transformer architecture (`vocab_size` is replaced by the
            tokenizer's size).
        epochs: Keras epochs; for `gpt`/`charrnn` one epoch is by default one
            pass over the training text, for `seq2seq` one pass over the
            training pairs.
        steps_per_epoch: batches per epoch (`None`: one pass; `bert`: 200).
        batch_size, seq_len: each step trains every replica on `batch_size`
            windows of `seq_len` tokens (`seq_len` is unused by `seq2seq`); the
            global batch is `batch_size * replicas`.
        learning_rate, warmup_steps, weight_decay, clipnorm: the AdamW recipe.
        seed: seeds weights, data order, masking, held-out dates, the sample.
        data: a text file (`dataset="shakespeare"`; `None` fetches Tiny
            Shakespeare) or a folder of WikiText split files
            (`dataset="wikitext2"`; `None` tries the Hugging Face hub).
        dataset: `"shakespeare"` (any single text file, split 90 % / 10 %)
            or `"wikitext2"` (whole split files, see `data/wikitext.py`).
        train_split, eval_split: the WikiText-2 splits to train and evaluate
            on (`None`: `"train"` and `"valid"`).
        tokenizer: `"char"` (one id per character) or `"bpe"` (a
            SentencePiece BPE model trained on the training text).
        vocab_size: the BPE vocabulary size (`None`: 4096); ignored by the
            char tokenizer, whose vocabulary is the text's characters.
        clean: clean the text before tokenizing (`data/cleaning.py`);
            `None` means on for `bpe`, off for `char`.
        out: the run directory.
        jit: compile the train step with XLA.
        mixed_precision: train under `mixed_bfloat16` (CPU, TPU) or
            `mixed_float16` with loss scaling (GPU); variables, softmax, norms
            and the loss stay float32 (`distribute.precision_policy`).
        strategy: `"default"`, `"mirrored"`, `"multiworker"` (cluster from
            `TF_CONFIG`) or `"tpu"`: the `tf.distribute` strategy whose scope
            holds the model, optimizer and metrics (`distribute.make_strategy`).
        cpu_devices: split the CPU into this many logical devices first, so
            `strategy="mirrored"` can run without GPUs (`None`: don't).
        replicas: replicas training in sync; set by `train()` from the
            strategy (the global batch is `batch_size * replicas`).
        verbose: Keras progress output (0 silent, 1 progress bar, 2 a line
            per epoch).
        job: the arch's own settings, a `JOB_SETTINGS[arch]`: `GPTSettings`
            (`gpt`: the prompt and length of `sample.txt`, and `init_from`, a
            checkpoint to fine-tune), `CharRNNSettings`
            (`charrnn`: those and the LSTM's size), `BertSettings` (`bert`:
            validation batches) or `Seq2SeqSettings` (`seq2seq`: the task and
            its pairs, beam width). `None`: the arch's defaults.
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
    dataset: str = "shakespeare"
    train_split: str | None = None
    eval_split: str | None = None
    tokenizer: str = "char"
    vocab_size: int | None = None
    clean: bool | None = None
    out: str | None = None
    jit: bool = True
    mixed_precision: bool = False
    strategy: str = "default"
    cpu_devices: int | None = None
    replicas: int = 1
    verbose: int | str = 1
    job: GPTSettings | CharRNNSettings | BertSettings | Seq2SeqSettings | None = None

    def __post_init__(self):
        if self.job is None and self.arch in JOB_SETTINGS:
            self.job = JOB_SETTINGS[self.arch]()

    @classmethod
    def for_arch(cls, arch, **overrides):
        """Settings with `arch`'s defaults (`ARCH_DEFAULTS`), then `overrides`.

        `overrides` are flat: each name is a field of `TrainSettings` or of
        the arch's own settings (`JOB_SETTINGS[arch]`), and goes there:
        `for_arch("gpt", epochs=2, sample_tokens=20)`. A name of another
        arch's settings (`for_arch("bert", sample_tokens=20)`) or of none is
        a `UserInputError`. A `model` override replaces the arch's preset
        config; with `tokenizer="bpe"` the `BPE_DEFAULTS` of the arch come in
        between.
        """
        if arch not in ARCHS:
            raise UserInputError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        values = dict(ARCH_DEFAULTS[arch])
        if overrides.get("tokenizer") == "bpe":
            values.update(BPE_DEFAULTS.get(arch, {}))
        preset = values.pop("preset")
        values.update(overrides)
        values.setdefault("model", TransformerConfig.preset(preset))
        shared, own = _split_settings(arch, values)
        job = shared.pop("job", None) or JOB_SETTINGS[arch]()
        if own:
            job = dataclasses.replace(job, **own)
        return cls(arch=arch, job=job, **shared)

    @classmethod
    def from_dict(cls, values):
        """Rebuild settings from `to_dict()`'s output (a run's `config.json`).

        A `config.json` written before the arch's own settings moved under
        `"job"` holds every arch's options flat beside the shared ones; the
        arch's are taken from there and the others dropped. Keys this version
        does not know are ignored.
        """
        values = dict(values)
        arch = values.pop("arch", "gpt")
        model = TransformerConfig.from_dict(values.pop("model", {}))
        job_class = JOB_SETTINGS.get(arch)
        own = values.pop("job", None)
        if own is None:  # the old flat layout
            own = {name: values[name] for name in _field_names(job_class) if name in values}
        shared = {name: values[name] for name in _field_names(cls) if name in values}
        job = None
        if job_class is not None:
            job = job_class(**{k: v for k, v in own.items() if k in _field_names(job_class)})
        return cls(arch=arch, model=model, job=job, **shared)

    @property
    def global_batch_size(self):
        """Examples in one training step, over all replicas."""
        return self.batch_size * self.replicas

    def check(self):
        """Raise `UserInputError` for settings that cannot work (then `job.check()`)."""
        if self.arch not in ARCHS:
            raise UserInputError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if type(self.job) is not JOB_SETTINGS[self.arch]:
            raise UserInputError(
                f"arch {self.arch!r} needs job={JOB_SETTINGS[self.arch].__name__}(...), "
                f"not {type(self.job).__name__}"
            )
        check_positive_ints(self, "epochs", "batch_size", "seq_len")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise UserInputError(f"steps_per_epoch must be positive, got {self.steps_per_epoch}")
        if self.arch in ("gpt", "bert") and self.seq_len > self.model.max_len:
            raise UserInputError(
                f"--seq-len {self.seq_len} is above the model's max_len {self.model.max_len}; "
                f"lower --seq-len or raise --max-len"
            )
        if self.learning_rate <= 0:
            raise UserInputError(f"learning_rate must be positive, got {self.learning_rate}")
        from keras_transformer.training.corpus import DATASETS, TOKENIZERS

        if self.tokenizer not in TOKENIZERS:
            raise UserInputError(
                f"unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}"
            )
        if self.dataset not in DATASETS:
            raise UserInputError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}"
            )
        if self.vocab_size is not None and self.vocab_size < 1:
            raise UserInputError(f"vocab_size must be positive, got {self.vocab_size}")
        if self.strategy not in STRATEGIES:
            raise UserInputError(
                f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )
        if self.strategy == "multiworker" and not self.out:
            raise UserInputError(
                "--strategy multiworker needs --out: the same run directory on every worker"
            )
        if self.cpu_devices is not None and self.cpu_devices < 1:
            raise UserInputError(f"cpu_devices must be positive, got {self.cpu_devices}")
        if self.dataset != "wikitext2" and (self.train_split or self.eval_split):
            raise UserInputError("--train-split and --eval-split are for --dataset wikitext2")
        self.job.check()

    def to_dict(self):
        """The settings as a plain dict (JSON-ready): the shared fields, `model`
        (`TransformerConfig.to_dict()`) and `job` (the arch's own fields)."""
        values = dataclasses.asdict(self)
        values["model"] = self.model.to_dict()
        return values


def _field_names(cls):
    """The field names of dataclass `cls` (none for `None`)."""
    return [f.name for f in dataclasses.fields(cls)] if cls is not None else []


def _split_settings(arch, values):
    """`(shared, own)`: flat `values` split into `TrainSettings` and `JOB_SETTINGS[arch]` fields.

    A name of another arch's settings, or of no settings at all, is a
    `UserInputError` naming it (and the arch).
    """
    shared_names = set(_field_names(TrainSettings)) - {"arch"}
    own_names = set(_field_names(JOB_SETTINGS[arch]))
    shared = {k: v for k, v in values.items() if k in shared_names}
    own = {k: v for k, v in values.items() if k in own_names}
    others = [name for name in values if name not in shared_names | own_names]
    foreign = [name for name in others if _owners(name)]
    if foreign:
        owners = [a for a in ARCHS if any(a in _owners(name) for name in foreign)]
        verb = "does" if len(foreign) == 1 else "do"
        raise UserInputError(
            f"{', '.join(foreign)} {verb} not apply to arch {arch!r} (only to "
            f"{' and '.join(repr(owner) for owner in owners)})"
        )
    if others:
        close = difflib.get_close_matches(others[0], sorted(shared_names | own_names), n=1)
        hint = f"; did you mean {close[0]!r}?" if len(others) == 1 and close else ""
        plural = "s" if len(others) > 1 else ""
        raise UserInputError(
            f"unknown setting{plural} {', '.join(map(repr, others))} for arch {arch!r} (not a "
            f"field of TrainSettings or {JOB_SETTINGS[arch].__name__}){hint}"
        )
    return shared, own


def _owners(name):
    """The archs whose own settings have a field `name`."""
    return [arch for arch in ARCHS if name in _field_names(JOB_SETTINGS[arch])]


def default_run_dir(arch):
    """`runs/<arch>-<timestamp>`, the run directory when `--out` is not given."""
    return os.path.join("runs", f"{arch}-{time.strftime('%Y%m%d-%H%M%S')}")


def make_job(settings):
    """The `Job` of `settings.arch`; every data or input error is raised here."""
    if settings.arch in ("gpt", "charrnn"):
        from keras_transformer.training.lm import lm_job

        return lm_job(settings)
    if settings.arch == "bert":
        from keras_transformer.training.bert import bert_job

        return bert_job(settings)
    from keras_transformer.training.seq2seq import seq2seq_job

    return seq2seq_job(settings)


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
        for key in ("arch", "model", "batch_size", "seq_len", "tokenizer", "dataset"):
            if key in previous and previous[key] != settings.to_dict()[key]:
                raise UserInputError(
                    f"{out} holds an unfinished run with a different {key}; "
                    f"resume it with the same flags or choose another --out"
                )
    os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)


def train(settings: TrainSettings):
    """Train the model `settings` describe and fill its run directory.

    The strategy (`settings.strategy`) is made first, before any other
    TensorFlow work; the model, optimizer and metrics are created in its
    scope. With several workers every worker runs every step (training,
    evaluation, the sample), but only the chief writes the run directory:
    the others write into a scratch directory that is deleted at the end.

    Returns the metrics dict that is also written to `metrics.json` (plus
    `out`, and `chief`: whether this process wrote it).
    """
    started = time.time()
    settings.check()
    strategy = make_strategy(settings.strategy, settings.cpu_devices)
    settings.replicas = strategy.num_replicas_in_sync
    chief = is_chief(strategy)
    with precision_policy(settings.mixed_precision):
        # Everything a user can get wrong fails here, before the run directory exists.
        job = make_job(settings)
        run_dir = settings.out or default_run_dir(settings.arch)
        out = run_dir if chief else tempfile.mkdtemp(prefix="keras_transformer-worker-")
        try:
            metrics = _train(settings, job, strategy, chief, run_dir, out, started)
        finally:
            if not chief:
                shutil.rmtree(out, ignore_errors=True)
    metrics.update(out=run_dir, chief=chief)
    return metrics


def _train(settings, job, strategy, chief, run_dir, out, started):
    """The body of `train()`: `out` is `run_dir` on the chief, a scratch directory elsewhere."""
    if chief:
        _prepare_run_dir(out, settings)
    else:
        os.makedirs(os.path.join(out, "checkpoints"))
    save_tokenizer(job.tokenizer, os.path.join(out, "tokenizer.json"))
    write_json_atomic(
        os.path.join(out, "config.json"),
        {"arch": settings.arch, "context": job.context, "settings": settings.to_dict()},
    )

    keras.utils.set_random_seed(settings.seed)
    total_steps = settings.epochs * job.steps_per_epoch
    with strategy.scope():
        model = job.build_model()
        model.compile(
            optimizer=make_optimizer(
                settings.learning_rate,
                total_steps,
                warmup_steps=settings.warmup_steps,
                weight_decay=settings.weight_decay,
                clipnorm=settings.clipnorm,
            ),
            loss=job.loss,
            jit_compile=settings.jit,
        )

    # The history and the backup are the chief's (in `run_dir`): every worker
    # resumes from them, only the chief writes them.
    history_path = os.path.join(run_dir, "history.csv")
    best_path = os.path.join(out, "checkpoints", "best.weights.h5")
    earlier = read_history(history_path)
    best_so_far = min((row["val_loss"] for row in earlier if "val_loss" in row), default=None)
    backup_dir = os.path.join(run_dir, "backup")
    if chief and os.path.isdir(backup_dir) and os.listdir(backup_dir):
        print(f"Resuming from the backup in {backup_dir} ({len(earlier)} epoch(s) done)")
    callbacks = [
        ChiefBackupAndRestore(backup_dir, chief=chief),
        keras.callbacks.ModelCheckpoint(
            best_path,
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_so_far,
        ),
    ]
    if chief:
        callbacks += [
            keras.callbacks.CSVLogger(history_path, append=True),
            keras.callbacks.TensorBoard(os.path.join(out, "logs")),
        ]
    replicas = f" on {settings.replicas} replicas" if settings.replicas > 1 else ""
    precision = f", {keras.config.dtype_policy().name}" if settings.mixed_precision else ""
    print(f"{settings.arch}: {model.count_params():,} parameters{replicas}{precision}, "
          f"{job.describe}")
    fit_started = time.time()
    fit_history = model.fit(
        job.train_data,
        epochs=settings.epochs,
        steps_per_epoch=job.steps_per_epoch,
        validation_data=job.val_data,
        callbacks=callbacks,
        verbose=settings.verbose if chief else 0,
        shuffle=False,  # the datasets shuffle themselves
    )
    fit_seconds = time.time() - fit_started
    epochs_run = len(fit_history.history.get("loss", []))

    # A worker that found no better epoch in this session takes the chief's
    # best weights of an earlier one (written before this session began).
    chief_best = os.path.join(run_dir, "checkpoints", "best.weights.h5")
    for path in (best_path, chief_best):
        if os.path.exists(path):
            model.load_weights(path)
            break
    val_loss = float(model.evaluate(job.val_data, verbose=0, return_dict=True)["loss"])
    tmp_model = os.path.join(out, "model.tmp.keras")
    model.save(tmp_model)
    os.replace(tmp_model, os.path.join(out, "model.keras"))

    history = read_history(history_path) if chief else []
    if chief:
        plot_history(history, os.path.join(out, "history.png"),
                     f"{settings.arch} on {job.data_name}")
    best = min(history, key=lambda row: row.get("val_loss", math.inf), default=None)
    if best is None:  # a worker without the history: its own last epoch
        best = {"epoch": epochs_run - 1, "loss": fit_history.history["loss"][-1]}
    extra, sample = job.finish(model, val_loss)
    with open(os.path.join(out, "sample.txt"), "w", encoding="utf-8") as handle:
        handle.write(sample + "\n")

    tokens_trained = epochs_run * job.steps_per_epoch * job.tokens_per_step
    metrics = {
        "arch": settings.arch,
        "data": job.data_name,
        "params": int(model.count_params()),
        "epochs": len(history) or epochs_run,
        "best_epoch": int(best["epoch"]) + 1,
        "steps_per_epoch": job.steps_per_epoch,
        "batch_size": settings.batch_size,
        "global_batch_size": settings.global_batch_size,
        "replicas": settings.replicas,
        "strategy": settings.strategy,
        "dtype_policy": keras.config.dtype_policy().name,
        "seq_len": settings.seq_len,
        "tokens_per_sec": round(tokens_trained / fit_seconds, 1) if epochs_run else None,
        "train_loss": round(best["loss"], 4),
        "val_loss": round(val_loss, 4),
        **extra,
    }
    metrics["seconds"] = round(time.time() - started, 1)
    write_json_atomic(os.path.join(out, "metrics.json"), metrics)
    return metrics
