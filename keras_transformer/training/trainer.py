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
- `backup/`: the run's exact state while training runs (`backup.py`: weights,
  optimizer, random state, position in the data), every `--backup-every`
  steps or minutes and at every epoch's end; starting again with the same
  `--out` continues the same run from it,
- `.lock`: held (`fcntl.flock`) by the process training in the directory,
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
from keras_transformer.training.backup import (
    DEFAULT_BACKUP_EVERY,
    RunBackup,
    parse_backup_every,
    read_backup,
    remove_backup,
)
from keras_transformer.training.bert import BertSettings
from keras_transformer.training.distribute import (
    STRATEGIES,
    choose_jit,
    is_chief,
    make_strategy,
    precision_policy,
)
from keras_transformer.training.guards import (
    AtomicCheckpoint,
    NonFiniteGuard,
    RunLock,
    write_failed,
)
from keras_transformer.training.job import check_count, check_number, check_positive_ints
from keras_transformer.training.lm import CharRNNSettings, GPTSettings
from keras_transformer.training.reports import plot_history, read_history, write_json_atomic
from keras_transformer.training.schedules import make_optimizer
from keras_transformer.training.seq2seq import Seq2SeqSettings

ARCHS = ("gpt", "charrnn", "bert", "seq2seq")
# The seeds NumPy, Python and TensorFlow all take (`keras.utils.set_random_seed`).
SEED_MAX = 2**32 - 1

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
        jit: compile the train step with XLA: `True`, `False` or `"auto"`
            (XLA, except for mixed precision on a CPU with bfloat16 matrix
            units, where oneDNN's matmuls use them; `distribute.choose_jit`).
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
        backup_every: how often the run is backed up besides every epoch's
            end: a number of steps (`"500"`), a time (`"10m"`, `"90s"`) or
            `"0"` (epoch ends only); see `backup.parse_backup_every`.
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
    jit: bool | str = "auto"
    mixed_precision: bool = False
    strategy: str = "default"
    cpu_devices: int | None = None
    replicas: int = 1
    verbose: int | str = 1
    backup_every: str = DEFAULT_BACKUP_EVERY
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
        check_positive_ints(self, *[name for name in ("steps_per_epoch", "vocab_size")
                                    if getattr(self, name) is not None])
        check_count(self, "warmup_steps")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not (
                0 <= self.seed <= SEED_MAX):
            raise UserInputError(f"seed must be an integer from 0 to {SEED_MAX}, got {self.seed!r}")
        if self.arch in ("gpt", "bert") and self.seq_len > self.model.max_len:
            raise UserInputError(
                f"--seq-len {self.seq_len} is above the model's max_len {self.model.max_len}; "
                f"lower --seq-len or raise --max-len"
            )
        if isinstance(self.learning_rate, (int, float)) and self.learning_rate <= 0:
            raise UserInputError(f"learning_rate must be positive, got {self.learning_rate}")
        check_number(self, "learning_rate", above=True)
        check_number(self, "weight_decay")
        check_number(self, "clipnorm")
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
        if not (isinstance(self.jit, bool) or self.jit == "auto"):
            raise UserInputError(f"jit must be True, False or 'auto', got {self.jit!r}")
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
        if self.cpu_devices is not None:
            check_positive_ints(self, "cpu_devices")
        if self.dataset != "wikitext2" and (self.train_split or self.eval_split):
            raise UserInputError("--train-split and --eval-split are for --dataset wikitext2")
        parse_backup_every(self.backup_every)
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


# Settings a resumed run may change: they touch neither the weights nor the data.
RESUMABLE_CHANGES = ("out", "verbose", "backup_every", "jit", "job.prompt", "job.sample_tokens",
                     "job.sample_temperature")
# The settings named first when they differ (the rest follow in name order).
_FIRST_NAMED = ("arch", "model", "batch_size", "seq_len", "tokenizer", "dataset")
# What `train()` writes in a run directory (what `--force-new` removes).
RUN_FILES = ("config.json", "tokenizer.json", "tokenizer.model", "history.csv", "history.png",
             "logs", "backup", "backup.new", "backup.old", "checkpoints", "model.keras",
             "model.tmp.keras", "sample.txt", "metrics.json", "metrics.json.tmp",
             "config.json.tmp")


def _flat(values, prefix=""):
    """`{"model.d_model": 128, ...}`: nested dicts flattened with dotted names."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short_value(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def settings_differences(previous, settings):
    """`[(name, stored, now)]`: the settings of a run directory's `config.json` that differ.

    Only the names `previous` holds are compared (an older `config.json` may
    lack some), except `RESUMABLE_CHANGES`; arch-only settings stored flat
    (the layout before `"job"`) are compared with `job.NAME`. The list starts
    with `_FIRST_NAMED`.
    """
    now = _flat(settings.to_dict())
    differences = []
    for name, value in _flat(previous).items():
        key = name if name in now else f"job.{name}"
        if key not in now or key in RESUMABLE_CHANGES:
            continue
        if now[key] != value:
            differences.append((key, value, now[key]))

    def rank(item):
        head = item[0].split(".")[0]
        return (_FIRST_NAMED.index(head) if head in _FIRST_NAMED else len(_FIRST_NAMED), item[0])

    return sorted(differences, key=rank)


def _clear_run_dir(out):
    """Remove what an earlier run wrote in `out` (`--force-new`); other files stay."""
    for name in RUN_FILES:
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)


def _prepare_run_dir(out, settings, force_new=False):
    """Create (or reopen, to resume) the run directory; refuse a finished or different one.

    With `force_new` whatever an earlier run wrote there is removed first.
    """
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UserInputError(f"--out {out} exists and is not a directory")
    if force_new and os.path.isdir(out):
        _clear_run_dir(out)
    if os.path.exists(os.path.join(out, "metrics.json")):
        raise UserInputError(f"{out} already holds a finished run; choose another --out "
                             f"(or --force-new to replace it)")
    config_path = os.path.join(out, "config.json")
    if os.path.exists(config_path):
        try:
            with open(config_path, encoding="utf-8") as handle:
                previous = json.load(handle).get("settings", {})
            if not isinstance(previous, dict):
                raise ValueError("settings is not an object")
        except (ValueError, AttributeError) as error:
            raise UserInputError(f"{config_path} is damaged ({error}); use --force-new to start "
                                 f"over or choose another --out") from None
        differences = settings_differences(previous, settings)
        if differences:
            listed = ", ".join(f"{name} {_short_value(old)} -> {_short_value(new)}"
                               for name, old, new in differences)
            first = differences[0][0].split(".")[0]
            raise UserInputError(
                f"{out} holds an unfinished run with a different {first}; stored -> this "
                f"command: {listed}; resume it with the same flags, --force-new to start over, "
                f"or choose another --out"
            )
    os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)


def _lock_run_dir(out):
    """The `RunLock` of `out` (created if needed), or a one-line error if another run holds it."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UserInputError(f"--out {out} exists and is not a directory")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise write_failed(error, f"--out {out}") from None
    return RunLock(out).acquire()


def _add_history_row(path, logs):
    """Append `logs` (`{"epoch", ...}`) to `history.csv` as `CSVLogger` would, unless there."""
    import csv

    epoch = int(logs["epoch"])
    if any(int(row["epoch"]) == epoch for row in read_history(path)):
        return
    fields = None
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, newline="") as handle:
            fields = next(csv.reader(handle), None)
    fields = fields or ["epoch", *sorted(k for k in logs if k != "epoch")]
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        if not handle.tell():
            writer.writeheader()
        writer.writerow({k: logs.get(k, "NA") for k in fields} | {"epoch": epoch})


def _keep_history_before(path, epoch):
    """Drop `history.csv` rows of epoch `epoch` and later (they are trained again)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    kept = lines[:1]
    for line in lines[1:]:
        head = line.split(",", 1)[0]
        if head.isdigit() and int(head) < epoch:
            kept.append(line)
    if kept != lines:
        with open(path + ".tmp", "w", newline="") as handle:
            handle.writelines(kept)
        os.replace(path + ".tmp", path)


def train(settings: TrainSettings, force_new=False, callbacks=()):
    """Train the model `settings` describe and fill its run directory.

    The strategy (`settings.strategy`) is made first, before any other
    TensorFlow work; the model, optimizer and metrics are created in its
    scope. With several workers every worker runs every step (training,
    evaluation, the sample), but only the chief writes the run directory:
    the others write into a scratch directory that is deleted at the end.

    The chief holds `RunLock` on the run directory while it trains, and
    backs the run up (`backup.py`) so that the same command continues it
    exactly after a kill. `force_new` starts over in a directory holding
    another run. A non-finite loss, another live run in the directory,
    changed flags, a damaged backup or a failed write stop it with a
    one-line `UserInputError` (`TrainingStopped`), the files written before
    kept whole.

    Returns the metrics dict that is also written to `metrics.json` (plus
    `out`, and `chief`: whether this process wrote it).

    `callbacks` are more Keras callbacks for `model.fit` (a profiler, a
    timer), called after the run's own.
    """
    started = time.time()
    settings.check()
    strategy = make_strategy(settings.strategy, settings.cpu_devices)
    settings.replicas = strategy.num_replicas_in_sync
    chief = is_chief(strategy)
    xla, note = choose_jit(settings.jit, settings.mixed_precision)
    if note and chief:
        print(note)
    with precision_policy(settings.mixed_precision):
        # Everything a user can get wrong fails here, before the run directory exists.
        job = make_job(settings)
        run_dir = settings.out or default_run_dir(settings.arch)
        out = run_dir if chief else tempfile.mkdtemp(prefix="keras_transformer-worker-")
        lock = _lock_run_dir(out) if chief else None
        try:
            metrics = _train(settings, job, strategy, chief, run_dir, out, started, force_new,
                             callbacks, xla)
        except OSError as error:
            raise write_failed(error, f"into {out}") from None
        finally:
            if lock is not None:
                lock.release()
            if not chief:
                shutil.rmtree(out, ignore_errors=True)
    metrics.update(out=run_dir, chief=chief)
    return metrics


def _train(settings, job, strategy, chief, run_dir, out, started, force_new=False,
           extra_callbacks=(), xla=True):
    """The body of `train()`: `out` is `run_dir` on the chief, a scratch directory elsewhere."""
    if chief:
        _prepare_run_dir(out, settings, force_new)
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
            jit_compile=xla,
        )

    # The history and the backup are the chief's (in `run_dir`): every worker
    # resumes from them, only the chief writes them.
    history_path = os.path.join(run_dir, "history.csv")
    best_path = os.path.join(out, "checkpoints", "best.weights.h5")
    backup_dir = os.path.join(run_dir, "backup")
    steps = job.steps_per_epoch
    with strategy.scope():
        resumed = read_backup(backup_dir, model, steps, writable=chief)
    start = resumed.step if resumed else 0
    if chief:  # the epochs from the backup's on are trained again
        _keep_history_before(history_path, start // steps)
        if resumed and resumed.epoch_logs:
            _add_history_row(history_path, resumed.epoch_logs)
    earlier = read_history(history_path)
    best_so_far = min((row["val_loss"] for row in earlier if "val_loss" in row), default=None)
    if chief and resumed:
        how = ("" if resumed.exact else "; a Keras epoch backup: the epoch's data order and "
               "random state start again")
        print(f"Resuming from the backup in {backup_dir} ({start // steps} epoch(s) done): step "
              f"{start}, epoch {start // steps + 1} at step {start % steps} of {steps}{how}")
    every_steps, every_seconds = parse_backup_every(settings.backup_every)
    per_pass = getattr(job.train_data, "batches_per_pass", None)

    def data_position(step):
        if not per_pass:
            return {"stream_step": step}
        return {"stream_step": step, "pass": step // per_pass, "batch_in_pass": step % per_pass,
                "batches_per_pass": per_pass, "seed": settings.seed}

    backup = RunBackup(backup_dir, steps, every_steps, every_seconds, chief=chief,
                       start_step=start, metrics=resumed.metrics if resumed else None,
                       data=data_position)
    # The guard comes first: it stops a non-finite step before any callback
    # writes; the backup follows the best checkpoint and precedes the history
    # row (which it holds, for a run killed between the two).
    callbacks = [
        NonFiniteGuard(steps, start),
        AtomicCheckpoint(
            best_path,
            monitor="val_loss",
            save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        backup,
    ]
    if chief:
        callbacks += [
            keras.callbacks.CSVLogger(history_path, append=True),
            keras.callbacks.TensorBoard(os.path.join(out, "logs")),
        ]
    callbacks += list(extra_callbacks)
    replicas = f" on {settings.replicas} replicas" if settings.replicas > 1 else ""
    precision = f", {keras.config.dtype_policy().name}" if settings.mixed_precision else ""
    print(f"{settings.arch}: {model.count_params():,} parameters{replicas}{precision}, "
          f"{job.describe}")
    fit_started = time.time()
    losses = _fit_from(model, job, settings, start, backup, dict(
        validation_data=job.val_data,
        callbacks=callbacks,
        verbose=settings.verbose if chief else 0,
        shuffle=False,  # the datasets shuffle themselves
    ))
    fit_seconds = time.time() - fit_started
    epochs_run = len(losses)

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
        best = {"epoch": epochs_run - 1, "loss": losses[-1] if losses else math.nan}
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
        "xla": xla,
        "seq_len": settings.seq_len,
        "tokens_per_sec": round(tokens_trained / fit_seconds, 1) if epochs_run else None,
        "train_loss": round(best["loss"], 4),
        "val_loss": round(val_loss, 4),
        **extra,
    }
    metrics["seconds"] = round(time.time() - started, 1)
    write_json_atomic(os.path.join(out, "metrics.json"), metrics)
    if chief:  # the run is finished: its backup is no longer needed
        remove_backup(backup_dir)
    return metrics


def _fit_from(model, job, settings, start, backup, fit_args):
    """Run `fit` from global step `start` to the end; the epochs' training losses.

    The training stream is `job.train_data` from batch `start` on (one
    endless stream per run, so the step is the position in the data). A
    start inside an epoch first finishes that epoch (a `fit` of its
    remaining steps, stopped after it by `backup`), then the other epochs
    follow in a second `fit`.
    """
    steps = job.steps_per_epoch
    epoch, within = divmod(start, steps)
    losses = []
    if within and epoch < settings.epochs:
        backup.stop_after_epoch = True
        history = model.fit(job.train_data.skip(start), initial_epoch=epoch,
                            epochs=settings.epochs, steps_per_epoch=steps - within, **fit_args)
        losses += history.history.get("loss", [])
        epoch += 1
    if epoch < settings.epochs:
        data = job.train_data.skip(epoch * steps) if epoch else job.train_data
        history = model.fit(data, initial_epoch=epoch, epochs=settings.epochs,
                            steps_per_epoch=steps, **fit_args)
        losses += history.history.get("loss", [])
    return losses
