"""Fuzzed entry points: `train.py`'s and `generate`'s flags, `load_tokenizer` and
`from_pretrained` on damaged files.

Each test draws at least 300 examples with Hypothesis (derandomized: the same
examples on every run, none stored) and checks the promise of the package's
one error type (`keras_transformer.errors`): any input either works or is a
`UserInputError` with one plain line, which the command-line tools print as
one line on stderr and exit 2. Never a traceback, never a half-made run.

- `train.py`: `prepare(argv)` (everything `main` does before training) on
  random combinations of every flag of its parser, with values negative,
  zero, huge, of the wrong type, NaN or infinite, unknown choices, other
  archs' flags; a run directory that looks finished is never left (nothing
  is written at all), and flags that pass hold values training can use.
- `generate`: `parse_args(argv)` (the flags, checked before any model is
  loaded) the same way; flags that pass sample a token with the library's
  own `sample_next`.
- `load_tokenizer`: folders of each kind of tokenizer (char and SentencePiece
  runs, Hugging Face byte-level BPE, WordPiece and T5 SentencePiece) with one
  file truncated, bit-flipped, emptied, replaced by other JSON or with a
  field of the wrong type; a tokenizer that loads must encode and decode.
- `from_pretrained`: tiny GPT-2 and Llama folders written by
  `save_pretrained`, damaged the same way (config fields, the safetensors
  header and data); a model that loads must run.
"""

import json
import math
import os
import shutil

import numpy as np
import pytest
from checkpoint_checks import one_line
from conftest import make_text
from hf_tokenizer_checks import write_files
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from keras_transformer.cli.common import run
from keras_transformer.errors import UserInputError

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
INT32_MAX = 2**31 - 1

# -------------------------------------------------------------------------------------
# Values of flags and JSON fields
# -------------------------------------------------------------------------------------

# Numbers as a user types them: small, negative, zero, past int32 and int64, floats of
# every kind (NaN, infinities, subnormal, overflowing), and words of the wrong type.
INT_TEXTS = st.one_of(
    st.integers(-3, 300).map(str),
    st.sampled_from(["0", "-1", "2147483647", "2147483648", "4294967295", "4294967296",
                     "-2147483649", str(10**30), str(-10**30)]),
)
FLOAT_TEXTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e-320", "1e400", "0.0", "0.5", "1.0",
                     "2", "1e-3", "-0.0", "-1"]),
)
NUMBER_TEXTS = st.one_of(INT_TEXTS, FLOAT_TEXTS)
WORDS = st.sampled_from(["", " ", "abc", "10m", "90s", "1.5h", "0s", "-5m", "1e3", "x1",
                         "true", "None", "gpt2", "[1]", "{}", "é", "ROMEO:", "--"])
# JSON values for a damaged field: every JSON type, NaN and huge numbers, and the
# strings a config holds (model types, activations).
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(),
        st.integers(-3, 300), st.sampled_from([0, -1, 10**8, 2**31, 2**63, 10**30]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
        st.sampled_from(["gpt2", "llama", "bert", "t5", "gelu_new", "silu", "relu", "BPE",
                         "WordPiece", "Unigram", "F32", "BF16", "I64", "bpe", "char"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6,
)


def _outcome(body, prog, capsys):
    """`(exit status, stderr lines)` of `body` run as the command-line tool `prog` runs it.

    `cli.common.run` turns a `UserInputError` into one line and exit 2;
    argparse exits 2 itself. Any other exception propagates: the test fails
    with the example that raised it.
    """
    try:
        run(body, prog)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.splitlines()


def _assert_one_line_or_success(code, lines, *progs):
    """Exit 0 and nothing on stderr, or exit 2 and one line `PROG: error: MESSAGE`
    (`progs`: the names the tool and its argument parser use)."""
    if code == 0:
        assert lines == [], lines
        return
    assert code == 2, (code, lines)
    assert len(lines) == 1, lines
    prefix = next((f"{prog}: error: " for prog in progs if lines[0].startswith(prog)), None)
    assert prefix and len(lines[0]) > len(prefix) and "Traceback" not in lines[0], lines


def _files_under(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, dirs, files in os.walk(root) for name in dirs + files)


def _option_argv(action, values):
    """A strategy of the argv pieces of one parser action: the flag and (if it takes one)
    a value: one of its choices, a number or a word."""
    flags = st.sampled_from(action.option_strings)
    if action.nargs == 0:
        return flags.map(lambda flag: [flag])
    if action.choices:
        values = st.one_of(st.sampled_from([str(c) for c in action.choices]), values)
    return st.tuples(flags, values).map(list)


def _argv(parser, paths, extra=()):
    """Random argv for `parser`: up to 8 of its flags (help aside) with random values,
    paths among `paths` for the flags that take one, and unknown flags now and then."""
    pieces = []
    for action in parser._actions:
        if "--help" in action.option_strings or not action.option_strings:
            continue
        takes_path = action.metavar in ("PATH", "DIR", "FILE.tsv", "HF_DIR") or \
            action.dest in ("model", "out", "data")
        if takes_path:
            values = st.sampled_from(paths)
        else:  # mostly of the flag's type (so that the other checks are reached), else any
            typed = {int: INT_TEXTS, float: FLOAT_TEXTS}.get(action.type, WORDS)
            values = st.one_of(typed, typed, typed, NUMBER_TEXTS, WORDS)
        pieces.append(_option_argv(action, values))
    unknown = st.sampled_from([["--bogus"], ["--d_model", "8"], ["--lr", "1"], ["-x"],
                               ["stray"], ["--num", "2"], *extra])
    # Mostly a few flags, so that the examples that parse are many; unknown ones rarely.
    flags = st.one_of(*pieces)
    some = st.one_of(st.lists(flags, max_size=3), st.lists(flags, max_size=3),
                     st.lists(st.one_of(flags, unknown), max_size=8))
    return some.map(lambda parts: [arg for part in parts for arg in part])


# -------------------------------------------------------------------------------------
# train.py
# -------------------------------------------------------------------------------------


def _numbers_in(values, path=""):
    """`[(path, value)]`: every int and float in the nested dict/list `values`."""
    if isinstance(values, dict):
        return [item for key, value in values.items() for item in _numbers_in(value, f"{path}.{key}")]
    if isinstance(values, (list, tuple)):
        return [item for i, value in enumerate(values) for item in _numbers_in(value, f"{path}.{i}")]
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return [(path, values)]
    return []


@pytest.fixture
def train_dir(tmp_path, monkeypatch):
    """A working directory with a file, an empty folder and a GPT-2 config folder (the
    paths the train flags draw), entered for the test."""
    (tmp_path / "file.txt").write_text(make_text(30), encoding="utf-8")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "vocab_size": 50, "n_positions": 32, "n_embd": 16, "n_layer": 1,
        "n_head": 2}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


TRAIN_PATHS = ["file.txt", "emptydir", "ckpt", "missing", "missing/dir", "", "."]


def _train_argv():
    from keras_transformer.cli.train import build_parser

    arch = st.sampled_from([[], ["--arch", "gpt"], ["--arch", "charrnn"], ["--arch", "bert"],
                            ["--arch", "seq2seq"], ["--arch", "gpt2"]])
    return st.tuples(arch, _argv(build_parser(), TRAIN_PATHS)).map(lambda p: p[0] + p[1])


@FUZZ
@given(argv=_train_argv())
def test_train_flags_run_or_stop_with_one_line_and_write_nothing(train_dir, capsys, argv):
    from keras_transformer.cli.train import prepare

    before = _files_under(train_dir)
    prepared = []
    code, lines = _outcome(lambda: prepared.append(prepare(argv)), "train.py", capsys)
    event(f"exit {code}")
    _assert_one_line_or_success(code, lines, "train.py")
    assert _files_under(train_dir) == before  # nothing written, no metrics.json above all
    if code == 0:
        # What passes is what training can use: finite floats, counts TensorFlow holds.
        _, train_settings, _ = prepared[0]
        for name, value in _numbers_in(train_settings.to_dict()):
            assert math.isfinite(value), (name, value)
            limit = 2**32 - 1 if name == ".seed" else INT32_MAX
            assert -INT32_MAX <= value <= limit, (name, value)
        assert train_settings.seed >= 0


@pytest.mark.parametrize("flags, message", [
    (["--learning-rate", "nan"], "learning_rate must be a finite number above 0, got nan"),
    (["--weight-decay", "inf"], "weight_decay must be a finite number at least 0, got inf"),
    (["--clipnorm", "-1"], "clipnorm must be a finite number at least 0, got -1.0"),
    (["--warmup-steps", "-5"], "warmup_steps must be >= 0, got -5"),
    (["--seed", "-1"], "seed must be an integer from 0 to 4294967295, got -1"),
    (["--seed", str(2**32)], "seed must be an integer from 0 to 4294967295"),
    (["--sample-temperature", "nan"], "sample_temperature must be a finite number at least 0"),
    (["--sample-temperature", "-0.5"], "sample_temperature must be a finite number at least 0"),
    (["--batch-size", str(2**31)], "batch_size must be at most 2147483647"),
    (["--max-len", str(10**30)], "max_len must be at most 2147483647"),
    (["--layer-norm-epsilon", "0"], "layer_norm_epsilon must be positive"),
    (["--layer-norm-epsilon", "nan"], "layer_norm_epsilon must be a finite number"),
    (["--position", "rope", "--rotary-max-wavelength", "inf"],
     "rotary_max_wavelength must be a finite number"),
])
def test_train_values_the_fuzz_found_stop_before_training(train_dir, capsys, flags, message):
    # Each was accepted before (a NaN learning rate trained NaN weights, a negative seed
    # crashed in set_random_seed, a bad --sample-temperature failed after the whole run).
    from keras_transformer.cli.train import prepare

    code, lines = _outcome(lambda: prepare(flags), "train.py", capsys)
    assert (code, len(lines)) == (2, 1), lines
    assert message in lines[0]


# -------------------------------------------------------------------------------------
# generate
# -------------------------------------------------------------------------------------


def _generate_argv():
    from keras_transformer.cli.generate import build_parser

    model = st.sampled_from([[], ["--model", "run"], ["--model", "missing"]])
    return st.tuples(model, _argv(build_parser(), ["run", "missing", "", "."])).map(
        lambda p: p[0] + p[1])


@FUZZ
@given(argv=_generate_argv())
def test_generate_flags_are_checked_before_a_model_loads(tmp_path, capsys, argv):
    import tensorflow as tf

    from keras_transformer.cli.generate import parse_args
    from keras_transformer.generation import sample_next

    parsed = []
    code, lines = _outcome(lambda: parsed.append(parse_args(argv)), "generate", capsys)
    event(f"exit {code}")
    _assert_one_line_or_success(code, lines, "generate", "python -m keras_transformer.generate")
    if code == 0:
        args = parsed[0]
        temperature = 0.7 if args.temperature is None else args.temperature
        assert math.isfinite(temperature) and temperature >= 0
        assert args.max_new_tokens >= 0 and args.num_beams >= 1
        # The decoding loop takes them: one token from 5 logits, in range.
        logits = tf.constant([[0.5, 2.0, -1.0, 0.0, 1.0]])
        seed = tf.stack([tf.constant(args.seed, tf.int32), 0])
        token = sample_next(logits, temperature, args.top_k, args.top_p, seed)
        assert 0 <= int(token[0]) < 5


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "nan"], "--temperature must be a finite number >= 0"),
    (["--temperature", "inf"], "--temperature must be a finite number >= 0"),
    (["--seed", str(2**31)], "--seed must be an int32"),
    (["--seed", str(-2**31 - 1)], "--seed must be an int32"),
    (["--top-k", "-1"], "--top-k must be >= 0"),
    (["--top-k", str(2**31)], "--top-k must be >= 0"),
    (["--top-p", "2"], "--top-p must be in (0, 1]"),
    (["--top-p", "nan"], "--top-p must be in (0, 1]"),
    (["--max-new-tokens", str(2**31), "--no-cache"], "--max-new-tokens must be at most"),
    (["--max-new-tokens", str(10**9), "--no-cache"], "GiB for the ids alone"),
    (["--max-new-tokens", "-1"], "--max-new-tokens must be >= 0"),
])
def test_generate_values_the_fuzz_found_stop_before_the_model(tmp_path, capsys, monkeypatch,
                                                               flags, message):
    # The model path does not exist: the value is refused before it is looked at. Before,
    # NaN decoded greedily, infinity sampled uniformly, an int32 overflow of --seed,
    # --top-k or --max-new-tokens was a TensorFlow traceback, ids past the memory a
    # MemoryError (--no-cache) and --top-k -1 / --top-p 2 were refused only after the
    # model had loaded. (A machine of 4 GiB: 10**9 ids need 7.5.)
    from keras_transformer.cli import generate
    from keras_transformer.cli.generate import main

    monkeypatch.setattr(generate, "_memory_bytes", lambda: 4 * 2**30)

    code, lines = _outcome(lambda: main(["--model", str(tmp_path / "missing"), *flags]),
                           "generate", capsys)
    assert (code, len(lines)) == (2, 1), lines
    assert message in lines[0]


# -------------------------------------------------------------------------------------
# Damaged files
# -------------------------------------------------------------------------------------


def _json_paths(value, path=()):
    """Every path (tuple of keys and indexes) into a JSON value, the root included."""
    paths = [path]
    if isinstance(value, dict):
        for key, inner in value.items():
            paths += _json_paths(inner, (*path, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value[:4]):
            paths += _json_paths(inner, (*path, i))
    return paths


def _replace_at(value, path, new, delete=False):
    """`value` with the element at `path` replaced by `new` (or deleted)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replace_at(copy[head], rest, new, delete)
    return copy


class Damaged(bytes):
    """Damaged file contents, shown in a failing example by what was done (not all bytes)."""

    how = ""

    def __repr__(self):
        return f"<{len(self)} bytes: {self.how}>"


def _damaged(data, how):
    result = Damaged(data)
    result.how = how
    return result


@st.composite
def damaged(draw, data):
    """Bytes `data` damaged: truncated, bit-flipped, emptied, replaced by JSON, or (for
    JSON, or the JSON header of a safetensors file) with one field changed or removed
    (a `Damaged`, which says which)."""
    kinds = ["truncate", "flip", "empty", "json"]
    text = header = None
    try:
        text = json.loads(data)
    except ValueError:
        if data[8:9] == b"{":  # safetensors: an 8-byte length, then the JSON header
            size = int.from_bytes(data[:8], "little")
            try:
                header = json.loads(data[8:8 + size])
            except ValueError:
                header = None
    if text is not None or header is not None:
        kinds += ["field", "field", "field"]
    kind = draw(st.sampled_from(kinds))
    if kind == "truncate":
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        return _damaged(data[:at], f"truncated to {at} bytes")
    if kind == "flip":
        flipped, bits = bytearray(data), []
        for _ in range(draw(st.integers(1, 3))):
            at, bit = draw(st.integers(0, len(data) - 1)), draw(st.integers(0, 7))
            flipped[at] ^= 1 << bit
            bits.append((at, bit))
        return _damaged(bytes(flipped), f"bits flipped (byte, bit): {bits}")
    if kind == "empty":
        return _damaged(b"", "empty")
    if kind == "json":
        value = draw(JSON_VALUES)
        return _damaged(json.dumps(value).encode(), f"replaced by the JSON {value!r}")
    spec = text if text is not None else header
    path = draw(st.sampled_from(_json_paths(spec)))
    delete = bool(path) and draw(st.booleans())
    value = draw(JSON_VALUES)
    changed = json.dumps(_replace_at(spec, path, value, delete)).encode()
    how = f"{list(path)} " + ("deleted" if delete else f"set to {value!r}")
    if text is not None:
        return _damaged(changed, how)
    return _damaged(len(changed).to_bytes(8, "little") + changed + data[8 + size:],
                    f"safetensors header: {how}")


@st.composite
def damaged_folder(draw, folders):
    """`(style, file name, damaged bytes, load the folder or the file)` of `folders`."""
    style = draw(st.sampled_from(sorted(folders)))
    names = sorted(os.listdir(folders[style]))
    name = draw(st.sampled_from(names))
    with open(os.path.join(folders[style], name), "rb") as handle:
        data = handle.read()
    return style, name, draw(damaged(data)), draw(st.booleans())


def _copy_with(folder, name, data, target):
    if os.path.exists(target):
        shutil.rmtree(target)
    shutil.copytree(folder, target)
    with open(os.path.join(target, name), "wb") as handle:
        handle.write(data)
    return target


# -------------------------------------------------------------------------------------
# load_tokenizer
# -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_folders(tmp_path_factory):
    """`{kind: folder}`: a tokenizer of each kind `load_tokenizer` reads, trained on a play."""
    import sentencepiece
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from keras_transformer.data import CharTokenizer, SentencePieceTokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    text = make_text(300)
    lines = [line for line in text.splitlines() if line.strip()]
    folders = {kind: str(root / kind) for kind in ("char", "bpe", "byte_bpe", "wordpiece", "t5")}
    for folder in folders.values():
        os.makedirs(folder)
    CharTokenizer.from_text(text, ["<s>"]).save(os.path.join(folders["char"], "tokenizer.json"))
    SentencePieceTokenizer.from_text(text, 320).save(os.path.join(folders["bpe"],
                                                                  "tokenizer.json"))
    byte_bpe = tokenizers.Tokenizer(models.BPE())
    byte_bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    byte_bpe.decoder = decoders.ByteLevel()
    byte_bpe.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    byte_bpe.save(os.path.join(folders["byte_bpe"], "tokenizer.json"))
    words = sorted({word for line in lines for word in line.lower().replace(":", " :").split()})
    write_files(folders["wordpiece"], {
        "vocab.txt": "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words,
                                *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]) + "\n",
        "tokenizer_config.json": {"do_lower_case": True, "tokenizer_class": "BertTokenizer"},
    })
    with open(os.path.join(folders["t5"], "spiece.model"), "wb") as handle:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=handle, model_type="unigram",
            vocab_size=60, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    for kind, folder in folders.items():  # each loads, before it is damaged
        from keras_transformer.data import load_tokenizer

        assert load_tokenizer(folder).decode(load_tokenizer(folder).encode("thou art")), kind
    return folders


# The Hugging Face tokenizers encode through a keras-hub layer that takes 0.5 to 2 s to
# build, so a tokenizer of theirs that loads is only loaded here; FUZZ_ENCODE_ALL=1 encodes
# with it too (a run of some minutes, done by hand when the loaders change).
ENCODED = ("char", "bpe", "byte_bpe", "wordpiece", "t5") if os.environ.get(
    "FUZZ_ENCODE_ALL") else ("char", "bpe")


@FUZZ
@given(case=st.data())
def test_load_tokenizer_on_damaged_files_loads_or_is_one_line(tokenizer_folders, tmp_path, case):
    from keras_transformer.data import load_tokenizer

    style, name, data, whole_folder = case.draw(damaged_folder(tokenizer_folders))
    folder = _copy_with(tokenizer_folders[style], name, data, str(tmp_path / "tokenizer"))
    try:
        tokenizer = load_tokenizer(folder if whole_folder else os.path.join(folder, name))
        if style in ENCODED:
            tokenizer.decode(tokenizer.encode("thou art the king"))
        event(f"{style}: loaded")
    except UserInputError as error:
        message = str(error)
        assert message and "\n" not in message, message
        event(f"{style}: UserInputError")


# -------------------------------------------------------------------------------------
# from_pretrained
# -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_folders(tmp_path_factory):
    """`{kind: folder}`: tiny GPT-2 and Llama checkpoints written by `save_pretrained`."""
    import keras

    from keras_transformer.config import TransformerConfig
    from keras_transformer.models import build_gpt
    from keras_transformer.pretrained import save_pretrained

    root = tmp_path_factory.mktemp("checkpoints")
    keras.utils.set_random_seed(0)
    small = dict(vocab_size=24, max_len=8, num_layers=1, d_model=8, num_heads=2, d_ff=16)
    configs = {
        "gpt2": TransformerConfig(**small, activation="gelu_tanh"),
        "llama": TransformerConfig(**small, position="rope", norm="rms", activation="swiglu",
                                   use_bias=False, num_kv_heads=1, tie_embeddings=False),
    }
    folders = {}
    for kind, config in configs.items():
        folders[kind] = str(root / kind)
        save_pretrained(build_gpt(config), None, folders[kind])
    return folders


@FUZZ
@given(case=st.data())
def test_from_pretrained_on_damaged_files_loads_or_is_one_line(checkpoint_folders, tmp_path,
                                                               case):
    from keras_transformer.pretrained import from_pretrained

    style, name, data, _ = case.draw(damaged_folder(checkpoint_folders))
    folder = _copy_with(checkpoint_folders[style], name, data, str(tmp_path / "checkpoint"))
    try:
        model = from_pretrained(folder)
        logits = model(np.array([[1, 2, 3]]))
        assert logits.shape[:2] == (1, 3)
        event(f"{style} {name}: loaded")
    except UserInputError as error:
        message = str(error)
        assert message and "\n" not in message, message
        event(f"{style} {name}: UserInputError")


@pytest.mark.parametrize("style, field", [("gpt2", "vocab_size"), ("gpt2", "n_positions"),
                                          ("gpt2", "n_layer"), ("llama", "intermediate_size"),
                                          ("llama", "num_hidden_layers")])
def test_a_config_far_bigger_than_the_weights_is_refused_before_the_model_is_built(
        checkpoint_folders, tmp_path, style, field):
    # Before, the model of 10**8 was built first (gigabytes, or 10**8 blocks) and only then
    # compared with the tensors; now the headers are compared first.
    import time

    from checkpoint_checks import edit_config

    from keras_transformer.pretrained import from_pretrained

    folder = str(tmp_path / "big")
    shutil.copytree(checkpoint_folders[style], folder)
    edit_config(folder, **{field: 10**8})
    started = time.perf_counter()
    with pytest.raises(UserInputError) as error:
        from_pretrained(folder)
    assert "config.json describes" in one_line(error)
    assert time.perf_counter() - started < 5
