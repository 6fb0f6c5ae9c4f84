"""`TrainSettings`: the shared options, each arch's own settings beside its job, and `train.py`.

The old `TrainSettings` held all 36 options of the four archs in one flat
dataclass; the defaults below are copied from it (and from its
`ARCH_DEFAULTS` / `BPE_DEFAULTS`), so the split changes no default.
"""

import dataclasses
import json
import os
import re
import shlex

import pytest
from conftest import REPO

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.training import (
    ARCH_DEFAULTS,
    BertSettings,
    CharRNNSettings,
    GPTSettings,
    LMSettings,
    Seq2SeqSettings,
    TrainSettings,
)
from keras_transformer.training.trainer import BPE_DEFAULTS, JOB_SETTINGS, _prepare_run_dir

# The old flat TrainSettings() defaults, every field but `arch` and `model`.
OLD_DEFAULTS = dict(
    epochs=20, steps_per_epoch=None, batch_size=64, seq_len=128, learning_rate=2e-3,
    warmup_steps=200, weight_decay=0.1, clipnorm=1.0, seed=0, data=None, dataset="shakespeare",
    train_split=None, eval_split=None, tokenizer="char", vocab_size=None, clean=None, out=None,
    jit=True, mixed_precision=False, strategy="default", cpu_devices=None, replicas=1, verbose=1,
    rnn_units=384, rnn_layers=1, prompt="ROMEO:", sample_tokens=1000, sample_temperature=0.7,
    task="dates", pairs=None, train_examples=32_000, eval_examples=1000, beam_width=4,
    val_batches=20,
)
# Fields added since the split, with their defaults: GPTSettings.init_from (fine-tuning);
# BertSettings.task ("pretrain", see OLD_ARCH_DEFAULTS), BertSettings.init_from and
# Seq2SeqSettings.init_from (fine-tuning a T5); jit became "auto" (XLA but for mixed
# precision on AMX, training/distribute.choose_jit).
NEW_DEFAULTS = dict(init_from=None, backup_every="10m", jit="auto")
# The old ARCH_DEFAULTS (the preset, then what each arch changed), and BPE_DEFAULTS.
OLD_ARCH_DEFAULTS = {
    "gpt": ("gpt-mini", {}),
    "charrnn": ("gpt-mini", {}),
    "bert": ("bert-mini", dict(epochs=10, steps_per_epoch=200, batch_size=64, seq_len=64,
                               learning_rate=1e-3, warmup_steps=100, weight_decay=0.01,
                               task="pretrain")),  # (bert's own task field came later)
    "seq2seq": ("seq2seq-mini", dict(epochs=5, batch_size=64, learning_rate=1e-3,
                                     warmup_steps=100, weight_decay=0.01, train_examples=32_000)),
}
OLD_BPE_DEFAULTS = {"gpt": {"epochs": 16}, "charrnn": {"epochs": 16}}
# Each arch's own options: what it reads of the old flat fields.
OWN_FIELDS = {
    "gpt": ("prompt", "sample_tokens", "sample_temperature", "init_from"),
    "charrnn": ("prompt", "sample_tokens", "sample_temperature", "rnn_units", "rnn_layers"),
    "bert": ("val_batches", "task", "init_from"),
    "seq2seq": ("task", "pairs", "train_examples", "eval_examples", "beam_width", "init_from"),
}
ARCHS = tuple(OWN_FIELDS)


def _flat(settings):
    """The shared fields and the job's fields of `settings` in one dict."""
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    values.update(dataclasses.asdict(values.pop("job")))
    return values


# --- the structure ---------------------------------------------------------------------------


def test_the_shared_settings_hold_no_arch_own_field():
    shared = {f.name for f in dataclasses.fields(TrainSettings)}
    own = {name for names in OWN_FIELDS.values() for name in names}
    assert len(shared) == 27 and "job" in shared and not shared & own  # with backup_every
    # Together they are exactly the 36 old fields (arch and model included), plus `job`.
    assert shared | own == {"arch", "model", "job", *OLD_DEFAULTS, *NEW_DEFAULTS}
    for arch, cls in JOB_SETTINGS.items():
        assert tuple(f.name for f in dataclasses.fields(cls)) == OWN_FIELDS[arch], arch
    classes = {"gpt": GPTSettings, "charrnn": CharRNNSettings, "bert": BertSettings,
               "seq2seq": Seq2SeqSettings}
    assert all(JOB_SETTINGS[arch] is cls for arch, cls in classes.items())
    assert set(JOB_SETTINGS) == set(classes)


# --- defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
@pytest.mark.parametrize("arch", ARCHS)
def test_for_arch_defaults_equal_the_old_ones(arch, tokenizer):
    preset, changes = OLD_ARCH_DEFAULTS[arch]
    expected = dict(OLD_DEFAULTS, **NEW_DEFAULTS, **changes, tokenizer=tokenizer)
    if tokenizer == "bpe":
        expected.update(OLD_BPE_DEFAULTS.get(arch, {}))
    settings = TrainSettings.for_arch(arch, tokenizer=tokenizer)
    assert settings.arch == arch and type(settings.job) is JOB_SETTINGS[arch]
    assert settings.model == TransformerConfig.preset(preset)
    flat = _flat(settings)
    del flat["arch"], flat["model"]
    # Every field the arch has holds its old default; the other archs' fields are gone.
    assert flat == {name: value for name, value in expected.items()
                    if name in flat}, arch
    assert set(expected) - set(flat) == {n for a in ARCHS for n in OWN_FIELDS[a]} - set(
        OWN_FIELDS[arch])
    settings.check()


def test_plain_constructor_defaults_and_default_tables():
    gpt = _flat(TrainSettings())
    assert gpt.pop("arch") == "gpt" and gpt.pop("model") == TransformerConfig()
    assert gpt == {name: {**OLD_DEFAULTS, **NEW_DEFAULTS}[name] for name in gpt}
    assert TrainSettings().job == GPTSettings()
    for arch in ARCHS:
        assert TrainSettings(arch=arch).job == JOB_SETTINGS[arch]()
    assert {arch: ARCH_DEFAULTS[arch]["preset"] for arch in ARCHS} == {
        arch: preset for arch, (preset, _) in OLD_ARCH_DEFAULTS.items()}
    assert BPE_DEFAULTS == OLD_BPE_DEFAULTS


# --- routing of for_arch overrides -----------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_the_notebooks_for_arch_calls(fast, tmp_path):
    # notebooks/01_attention.ipynb and 02_positions.ipynb
    gpt = TrainSettings.for_arch(
        "gpt", epochs=1 if fast else 3, steps_per_epoch=10 if fast else None,
        batch_size=16 if fast else 64, out=str(tmp_path / "gpt"),
        sample_tokens=20 if fast else 200, jit=not fast, verbose=2,
    )
    assert (gpt.epochs, gpt.batch_size, gpt.jit, gpt.verbose) == (
        (1, 16, False, 2) if fast else (3, 64, True, 2))
    assert gpt.job == GPTSettings(sample_tokens=20 if fast else 200)
    # notebooks/04_bert_and_seq2seq.ipynb: trained(arch, **settings)
    for arch, own in [("bert", dict(val_batches=2) if fast else {}),
                      ("seq2seq", dict(train_examples=640, eval_examples=20, beam_width=2)
                       if fast else {})]:
        if fast:
            values = dict(dict(epochs=1, steps_per_epoch=10, batch_size=16, jit=False), **own)
        else:
            values = dict({"bert": {"epochs": 7}, "seq2seq": {"epochs": 2}}[arch], **own)
        settings = TrainSettings.for_arch(arch, out=str(tmp_path / arch), verbose=2, **values)
        assert settings.job == JOB_SETTINGS[arch](**own)
        assert settings.epochs == (1 if fast else {"bert": 7, "seq2seq": 2}[arch])
        settings.check()


def test_overrides_go_to_the_shared_or_the_arch_own_settings():
    rnn = TrainSettings.for_arch("charrnn", epochs=3, rnn_units=32, prompt="JULIET:", seed=4)
    assert (rnn.epochs, rnn.seed) == (3, 4)
    assert rnn.job == CharRNNSettings(rnn_units=32, prompt="JULIET:")
    s2s = TrainSettings.for_arch("seq2seq", task="pairs", pairs="p.tsv", batch_size=8)
    assert s2s.batch_size == 8 and s2s.job == Seq2SeqSettings(task="pairs", pairs="p.tsv")
    # A whole job object is accepted too; flat fields then change it.
    bert = TrainSettings.for_arch("bert", job=BertSettings(val_batches=3))
    assert bert.job == BertSettings(val_batches=3)
    lm = TrainSettings.for_arch("gpt", job=GPTSettings(prompt="A"), sample_tokens=7)
    assert lm.job == GPTSettings(prompt="A", sample_tokens=7)
    # A model override still replaces the preset, and an explicit epochs beats BPE_DEFAULTS.
    config = TransformerConfig.preset("gpt-mini", num_layers=1)
    assert TrainSettings.for_arch("gpt", model=config).model is config
    assert TrainSettings.for_arch("gpt", tokenizer="bpe", epochs=2).epochs == 2


@pytest.mark.parametrize(
    "arch, overrides, field",
    [
        ("bert", {"sample_tokens": 5}, "sample_tokens"),
        ("seq2seq", {"prompt": "X"}, "prompt"),
        ("gpt", {"rnn_units": 8}, "rnn_units"),
        ("gpt", {"beam_width": 2}, "beam_width"),
        ("charrnn", {"task": "pairs"}, "task"),
        ("seq2seq", {"val_batches": 2}, "val_batches"),
        ("bert", {"epochs": 2, "train_examples": 10}, "train_examples"),
    ],
)
def test_a_field_of_another_arch_is_refused_in_one_line(arch, overrides, field):
    with pytest.raises(UserInputError) as caught:
        TrainSettings.for_arch(arch, **overrides)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{field} does not apply to arch {arch!r} (only to ")
    owners = [a for a in ARCHS if field in OWN_FIELDS[a]]
    assert all(repr(owner) in message for owner in owners), message


def test_unknown_names_are_refused_in_one_line():
    with pytest.raises(UserInputError, match=r"^unknown setting 'smaple_tokens' for arch 'gpt' "
                       r".*did you mean 'sample_tokens'\?$"):
        TrainSettings.for_arch("gpt", smaple_tokens=5)
    with pytest.raises(UserInputError, match=r"^unknown settings 'foo', 'bar' for arch 'bert'"):
        TrainSettings.for_arch("bert", foo=1, bar=2)
    with pytest.raises(UserInputError, match="unknown arch 'lstm'"):
        TrainSettings.for_arch("lstm")


# --- check() ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job, message",
    [
        (GPTSettings(sample_tokens=-1), "sample_tokens must be >= 0, got -1"),
        (GPTSettings(prompt=""), "--prompt is empty; sample.txt needs at least one character"),
        (GPTSettings(init_from="no/such/dir"), "--init-from no/such/dir is not a directory"),
        (CharRNNSettings(rnn_units=0), "rnn_units must be a positive integer, got 0"),
        (CharRNNSettings(rnn_layers=1.5), "rnn_layers must be a positive integer, got 1.5"),
        (CharRNNSettings(sample_tokens=-2), "sample_tokens must be >= 0, got -2"),
        (BertSettings(val_batches=0), "val_batches must be a positive integer, got 0"),
        (Seq2SeqSettings(train_examples=0), "train_examples must be a positive integer, got 0"),
        (Seq2SeqSettings(eval_examples=-3), "eval_examples must be a positive integer, got -3"),
        (Seq2SeqSettings(beam_width="4"), "beam_width must be a positive integer, got '4'"),
        (Seq2SeqSettings(task="translate-klingon"), "unknown task 'translate-klingon'; choose "
         "one of dates, span-corruption, pairs"),
        (Seq2SeqSettings(task="pairs"), "--task pairs needs --pairs FILE.tsv"),
        (Seq2SeqSettings(pairs="p.tsv"), "--pairs is only used with --task pairs, not dates"),
    ],
)
def test_each_job_check_refuses_bad_values(job, message):
    with pytest.raises(UserInputError) as caught:
        job.check()
    assert str(caught.value) == message
    # TrainSettings.check() runs the job's check after its own.
    arch = next(a for a, cls in JOB_SETTINGS.items() if cls is type(job))
    with pytest.raises(UserInputError) as caught:
        TrainSettings.for_arch(arch, job=job).check()
    assert str(caught.value) == message


def test_good_job_settings_pass_and_a_job_of_another_arch_is_refused():
    for arch in ARCHS:
        JOB_SETTINGS[arch]().check()
    Seq2SeqSettings(task="pairs", pairs="p.tsv").check()
    with pytest.raises(UserInputError, match=r"arch 'bert' needs job=BertSettings\(\.\.\.\), "
                       "not LMSettings"):
        TrainSettings(arch="bert", job=LMSettings()).check()
    with pytest.raises(UserInputError, match="not CharRNNSettings"):
        TrainSettings(arch="gpt", job=CharRNNSettings()).check()
    with pytest.raises(UserInputError, match="epochs must be a positive integer, got 0"):
        TrainSettings.for_arch("bert", epochs=0).check()


# --- to_dict and config.json -----------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_to_dict_nests_the_job_and_round_trips_through_json(arch):
    settings = TrainSettings.for_arch(arch, epochs=3, seed=5)
    values = json.loads(json.dumps(settings.to_dict()))
    assert values["arch"] == arch and values["model"] == settings.model.to_dict()
    assert values["job"] == dataclasses.asdict(JOB_SETTINGS[arch]())
    assert set(values) == {f.name for f in dataclasses.fields(TrainSettings)}
    assert TrainSettings.from_dict(values) == settings


def _old_flat_dict(settings, **own):
    """What the old flat `TrainSettings.to_dict()` wrote: every arch's fields side by side."""
    values = settings.to_dict()
    values.pop("job")
    values.update({k: v for k, v in OLD_DEFAULTS.items() if k not in values}, **own)
    return values


def test_from_dict_reads_the_old_flat_layout():
    settings = TrainSettings.for_arch("seq2seq", beam_width=2)
    old = _old_flat_dict(settings, beam_width=2, sample_tokens=12)
    assert "job" not in old and "val_batches" in old
    assert TrainSettings.from_dict(old) == settings
    rnn = TrainSettings.from_dict(_old_flat_dict(TrainSettings.for_arch("charrnn"), rnn_units=9))
    assert rnn.job == CharRNNSettings(rnn_units=9)


def _write_config(out, settings_dict):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as handle:
        json.dump({"arch": settings_dict["arch"], "context": 128, "settings": settings_dict},
                  handle)


@pytest.mark.parametrize("layout", ["new", "old"])
def test_resuming_compares_the_shared_keys_in_either_layout(layout, tmp_path):
    settings = TrainSettings.for_arch("gpt", batch_size=8)
    written = settings.to_dict() if layout == "new" else _old_flat_dict(settings)
    out = str(tmp_path / "run")
    _write_config(out, written)
    _prepare_run_dir(out, settings)  # the same flags: resumes
    _prepare_run_dir(out, TrainSettings.for_arch("gpt", batch_size=8, sample_tokens=5))
    for changed, key in [(dict(batch_size=16), "batch_size"), (dict(seq_len=64), "seq_len"),
                         (dict(tokenizer="bpe"), "tokenizer")]:
        with pytest.raises(UserInputError, match=f"with a different {key};"):
            _prepare_run_dir(out, TrainSettings.for_arch("gpt", **{"batch_size": 8, **changed}))
    with pytest.raises(UserInputError, match="different arch"):
        _prepare_run_dir(out, TrainSettings.for_arch("charrnn", batch_size=8))
    # A config.json missing keys compares only those it has.
    _write_config(out, {"arch": "gpt"})
    _prepare_run_dir(out, TrainSettings.for_arch("gpt", batch_size=32))


# --- train.py --------------------------------------------------------------------------------

# Every flag that belongs to one arch's own settings, with a value it accepts.
JOB_FLAGS = {
    "prompt": ["--prompt", "JULIET:"], "sample_tokens": ["--sample-tokens", "5"],
    "sample_temperature": ["--sample-temperature", "0.5"], "rnn_units": ["--rnn-units", "8"],
    "rnn_layers": ["--rnn-layers", "2"], "val_batches": ["--val-batches", "2"],
    "task": ["--task", "span-corruption"], "pairs": ["--pairs", "p.tsv"],
    "train_examples": ["--train-examples", "10"], "eval_examples": ["--eval-examples", "3"],
    "beam_width": ["--beam-width", "2"], "init_from": ["--init-from", "checkpoint"],
}
# Read from a real checkpoint folder when given (tests/test_pretrained.py covers it).
NEEDS_A_CHECKPOINT = {"init_from"}


def _settings(argv):
    from keras_transformer.cli.train import build_parser, settings_from_args

    return settings_from_args(build_parser().parse_args(argv))


def test_train_py_defaults_are_the_settings_defaults():
    for arch in ARCHS:
        assert _settings(["--arch", arch]) == TrainSettings.for_arch(arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_train_py_takes_the_arch_own_flags_into_its_job(arch):
    for name in OWN_FIELDS[arch]:
        if name in NEEDS_A_CHECKPOINT:
            continue
        flags = JOB_FLAGS[name] + (["--task", "pairs"] if name == "pairs" else [])
        job = _settings(["--arch", arch, *flags]).job
        parsed = type(getattr(JOB_SETTINGS[arch](), name) or "")(JOB_FLAGS[name][1])
        assert getattr(job, name) == parsed, name


@pytest.mark.parametrize("arch", ARCHS)
def test_train_py_refuses_every_flag_of_another_arch(arch, tmp_path, monkeypatch, capsys):
    from keras_transformer.cli.train import main

    monkeypatch.chdir(tmp_path)
    for name, flags in JOB_FLAGS.items():
        if name in OWN_FIELDS[arch]:
            continue
        with pytest.raises(SystemExit) as caught:
            main(["--arch", arch, "--out", "run", *flags])
        assert caught.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("train.py: error: " + flags[0]), err
        assert f"does not apply to --arch {arch} (only to --arch " in err[0]
        owners = [a for a in ARCHS if name in OWN_FIELDS[a]]
        assert all(f"--arch {owner}" in err[0] for owner in owners), err[0]
    assert os.listdir(tmp_path) == []


REFUSED_ELSEWHERE = [
    ("gpt", ["--beam-width", "2"], "seq2seq"),
    ("bert", ["--sample-tokens", "5", "--prompt", "X"], "gpt"),
    ("charrnn", ["--val-batches", "2"], "bert"),
    ("seq2seq", ["--rnn-units", "8"], "charrnn"),
]


@pytest.fixture(scope="module")
def refused_elsewhere(tmp_path_factory):
    """arch -> (its directory, the train.py result): every case in one process, each in a
    directory of its own."""
    from conftest import run_cli_batch

    root = tmp_path_factory.mktemp("refused")
    commands = []
    for arch, flags, _ in REFUSED_ELSEWHERE:
        (root / arch).mkdir()
        commands.append((["train.py", "--arch", arch, "--out", "run", *flags, "--epochs", "1",
                          "--steps-per-epoch", "1", "--no-jit"], {"cwd": root / arch}))
    results = run_cli_batch(commands, cwd=root)
    return {arch: (root / arch, result)
            for (arch, _, _), result in zip(REFUSED_ELSEWHERE, results, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("arch, flags, owner", REFUSED_ELSEWHERE)
def test_train_py_refuses_a_flag_of_another_arch_before_writing(arch, flags, owner,
                                                                refused_elsewhere):
    tmp_path, result = refused_elsewhere[arch]
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("train.py")]
    assert len(ours) == 1 and ours[0] == result.stderr.strip().splitlines()[-1]
    assert ours[0].startswith("train.py: error: --")
    assert all(flag in ours[0] for flag in flags[::2]), ours[0]
    assert f"not apply to --arch {arch} (only to --arch {owner}" in ours[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def _documented_train_commands():
    """`python train.py ...` of every bash block in README.md and benchmarks/RESULTS.md."""
    commands = []
    for name in ("README.md", os.path.join("benchmarks", "RESULTS.md")):
        with open(os.path.join(REPO, name), encoding="utf-8") as handle:
            text = handle.read()
        for block in re.findall(r"^```bash[ \t]*\n(.*?)^```", text, flags=re.S | re.M):
            for line in re.sub(r"\\\n", " ", block).splitlines():
                if "python train.py" in line:
                    line = line[line.index("python train.py"):].replace("$p", "rope")
                    commands.append(shlex.split(line, comments=True)[2:])
    return commands


def test_every_documented_train_command_still_parses():
    commands = _documented_train_commands()
    assert len(commands) >= 20
    for argv in commands:
        if "--init-from" in argv:  # reads a checkpoint the README makes first: see
            continue               # tests/test_readme_commands.py, which runs it as printed
        _settings(argv).check()
