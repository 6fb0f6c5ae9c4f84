"""The SavedModel export: generation in plain TensorFlow equals the library's.

A small GPT is trained for a few steps with a character tokenizer and with a
SentencePiece BPE tokenizer (`keras_transformer.data.SentencePieceTokenizer`), exported,
and loaded in a fresh Python process that imports only `tensorflow` and
`tensorflow_text`.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_TRAIN_FLAGS, make_text

from keras_transformer import TransformerConfig, UserInputError, build_charrnn, build_gpt, generate
from keras_transformer.data import CharTokenizer, SentencePieceTokenizer
from keras_transformer.data.graph_tokenizers import graph_tokenizer
from keras_transformer.generation.export import assertion_message, export_generator

CONTEXT = 32


def _bpe(text, vocab_size=340):
    """The project's SentencePiece BPE tokenizer, trained on `text`."""
    return SentencePieceTokenizer.from_text(text, vocab_size=vocab_size)


def _make_tokenizer(kind, text):
    return CharTokenizer.from_text(text) if kind == "char" else _bpe(text)


def _train_tiny_gpt(tokenizer, text, steps=150, batch=16):
    """A 1-block GPT after `steps` Adam steps on windows of `text`; checks the loss fell."""
    keras.utils.set_random_seed(0)
    ids = tokenizer.encode(text)
    model = build_gpt(TransformerConfig(vocab_size=tokenizer.vocab_size, max_len=CONTEXT,
                                        num_layers=1, d_model=32, num_heads=2))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    starts = np.random.default_rng(0).integers(0, len(ids) - CONTEXT - 1, size=steps * batch)
    x = np.stack([ids[s:s + CONTEXT] for s in starts])
    y = np.stack([ids[s + 1:s + CONTEXT + 1] for s in starts])
    before = model.evaluate(x[:64], y[:64], verbose=0)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    assert model.evaluate(x[:64], y[:64], verbose=0) < before - 2.0
    return model


@pytest.fixture(scope="module", params=["char", "bpe"])
def exported(request, tmp_path_factory):
    """(kind, model, tokenizer, SavedModel directory) of a trained tiny GPT."""
    text = make_text()
    tokenizer = _make_tokenizer(request.param, text)
    model = _train_tiny_gpt(tokenizer, text)
    out = tmp_path_factory.mktemp(f"export_{request.param}") / "saved_model"
    assert export_generator(model, tokenizer, out) == str(out)
    return request.param, model, tokenizer, str(out)


# Runs in a fresh interpreter: only tensorflow and tensorflow_text are imported.
LOAD_AND_GENERATE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece ops

loaded = tf.saved_model.load(sys.argv[1])
calls, token_ids = json.loads(sys.argv[2]), json.loads(sys.argv[3])
texts = []
for call in calls:
    out = loaded.signatures["generate"](
        prompt=tf.constant(call["prompts"]),
        max_new_tokens=tf.constant(call["max_new_tokens"], tf.int32),
        temperature=tf.constant(call["temperature"], tf.float32),
        top_k=tf.constant(call["top_k"], tf.int32),
        top_p=tf.constant(call["top_p"], tf.float32),
        seed=tf.constant(call["seed"], tf.int32),
    )
    texts.append([t.decode("utf-8") for t in out["text"].numpy()])
logits = loaded.signatures["logits"](token_ids=tf.constant(token_ids, tf.int32))["logits"]
project = sorted(m for m in sys.modules if m.split(".")[0] in ("keras_transformer", "keras_hub"))
print(json.dumps({"texts": texts, "logits": logits.numpy().tolist(), "imported": project}))
"""

PROMPTS = {"char": ["ROMEO:", "JULIET: thou art"], "bpe": ["ROMEO: thou art the", "JULIET:"]}
CALLS = [
    dict(max_new_tokens=14, temperature=0.0, top_k=0, top_p=1.0, seed=0),  # greedy
    dict(max_new_tokens=14, temperature=0.9, top_k=20, top_p=0.95, seed=7),  # seeded sampling
    # past the 32-position context: the window slides, in the graph as in the library
    dict(max_new_tokens=70, temperature=0.9, top_k=0, top_p=1.0, seed=3),
]


@pytest.mark.slow
def test_saved_model_generates_what_the_library_generates_in_plain_tensorflow(exported, tmp_path):
    kind, model, tokenizer, saved_model = exported
    prompts = PROMPTS[kind]
    calls = [dict(call, prompts=prompts) for call in CALLS]
    token_ids = [tokenizer.encode(prompts[0])[:5].tolist(), tokenizer.encode(prompts[1])[:5].tolist()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GENERATE, saved_model, json.dumps(calls),
         json.dumps(token_ids)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["imported"] == []  # neither keras_transformer nor keras_hub
    for call, texts in zip(calls, loaded["texts"], strict=True):
        settings = {k: v for k, v in call.items() if k != "prompts"}
        expected = generate(model, tokenizer, prompts, **settings)
        assert texts == expected, settings
        for prompt, text in zip(prompts, texts, strict=True):
            assert text.startswith(prompt) and len(text) > len(prompt)
    assert loaded["texts"][0] != loaded["texts"][1]  # sampling is not greedy
    np.testing.assert_allclose(
        loaded["logits"], model(np.array(token_ids, np.int32)).numpy(), rtol=1e-5, atol=1e-5
    )


def _call(loaded, prompts, max_new_tokens=4, temperature=0.0, top_k=0, top_p=1.0, seed=0):
    return loaded.signatures["generate"](
        prompt=tf.constant(prompts, tf.string), max_new_tokens=tf.constant(max_new_tokens),
        temperature=tf.constant(temperature), top_k=tf.constant(top_k),
        top_p=tf.constant(top_p), seed=tf.constant(seed),
    )["text"]


@pytest.mark.slow
def test_saved_model_rejects_bad_input_with_one_clear_sentence(exported):
    kind, _, tokenizer, saved_model = exported
    loaded = tf.saved_model.load(saved_model)
    cases = [
        (["ROMEO", ""], {}, "the prompt is empty; give at least one character"),
        (["a" * (CONTEXT + 1)], {}, f"tokens long, longer than the model's context of {CONTEXT}"),
        (["ROMEO:"], {"top_p": 0.0}, "top_p must be in (0, 1], got 0"),
        (["ROMEO:"], {"temperature": -1.0}, "temperature must be >= 0"),
        ([], {}, "no prompts given"),
    ]
    if kind == "char":
        cases.append((["ROMEO: ¿qué?\t"], {}, "4 character(s) not in the tokenizer's "
                                             "vocabulary: '¿', 'q', 'é', '\\t'"))
    for prompts, kwargs, message in cases:
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            _call(loaded, prompts, **kwargs)
        assert message in assertion_message(error.value), (prompts, kwargs)
    # Zero new tokens give the prompts back; the last token may take the last position.
    assert [t.decode() for t in _call(loaded, ["ROMEO:", "JULIET"], 0).numpy()] == ["ROMEO:", "JULIET"]
    fits = CONTEXT - len(tokenizer.encode("ROMEO:")) + 1
    assert len(_call(loaded, ["ROMEO:"], fits).numpy()[0]) > len("ROMEO:")
    # One token more than fits slides the window (the cache is encoded again) instead.
    longer = _call(loaded, ["ROMEO:"], fits + 1).numpy()[0].decode()
    assert longer.startswith(_call(loaded, ["ROMEO:"], fits).numpy()[0].decode())


def test_graph_tokenizers_agree_with_the_python_ones():
    text = make_text(60)
    char = CharTokenizer.from_text(text, specials=["[MASK]"])
    twin = graph_tokenizer(char, vocab_size=char.vocab_size)
    ids = np.array([[0, 0, *char.encode("thou art"), char.special_id("[MASK]")]], np.int32)
    assert twin.decode(tf.constant(ids)).numpy()[0].decode() == char.decode(ids)
    assert twin.encode(tf.constant(["the king"])).to_list() == [char.encode("the king").tolist()]
    bpe = _bpe(text)
    twin = graph_tokenizer(bpe)
    for sample in ["ROMEO: thou art the king", "naïve café ∑"]:  # byte fallback too
        assert twin.encode(tf.constant([sample])).to_list() == [bpe.encode(sample).tolist()]
        ids = bpe.encode(sample)
        assert twin.decode(tf.constant(ids[None, :])).numpy()[0].decode() == bpe.decode(ids)

    class Broken:  # adds BOS, as the graph twin does not
        kind, proto, vocab_size = bpe.kind, bpe.proto, bpe.vocab_size

        def encode(self, text):
            return np.concatenate([[2], bpe.encode(text)]).astype(np.int32)

        def decode(self, ids):
            return bpe.decode(ids)

    with pytest.raises(UserInputError, match="disagrees"):
        graph_tokenizer(Broken())


def test_export_rejects_models_it_cannot_export_and_never_leaves_a_partial_dir(tmp_path):
    tokenizer = CharTokenizer(list("abcdefghijk"))
    rnn = build_charrnn(tokenizer.vocab_size, 8, units=8)
    with pytest.raises(UserInputError, match="not a GPT"):
        export_generator(rnn, tokenizer, tmp_path / "rnn")
    gpt = build_gpt(TransformerConfig(vocab_size=20, max_len=8, num_layers=1, d_model=8, num_heads=2))
    with pytest.raises(UserInputError, match="20 outputs but the tokenizer 12"):
        export_generator(gpt, tokenizer, tmp_path / "vocab")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(UserInputError, match="already exists"):
        export_generator(gpt, tokenizer, tmp_path / "taken")
    assert sorted(os.listdir(tmp_path)) == ["taken"]  # no partial or temporary directory


# The command-line tools: train.py --export, python -m keras_transformer.export,
# python -m keras_transformer.generate --model SAVED_MODEL.


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    """A tiny GPT run trained with `train.py --export`."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("run")
    (root / "play.txt").write_text(make_text(), encoding="utf-8")
    result = run_cli(["train.py", "--arch", "gpt", "--data", "play.txt", "--out", "run",
                      *TINY_TRAIN_FLAGS, "--export"], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Exported a SavedModel" in result.stdout
    return root, root / "run"


GENERATE_ARGS = ["--prompt", "JULIET:", "--max-new-tokens", "20", "--temperature", "0.8",
                 "--top-k", "5", "--seed", "3"]


@pytest.fixture(scope="module")
def run_commands(exported_run):
    """The command lines the tests below check, run on `exported_run` in one process (one
    TensorFlow import): export it again, generate from the run and from its SavedModel, and
    TensorFlow's saved_model_cli on the SavedModel (last: it parses absl flags)."""
    from conftest import run_cli_batch

    root, run = exported_run
    names = ("export", "from_run", "from_saved_model", "saved_model_cli")
    results = run_cli_batch([
        ["-m", "keras_transformer.export", str(run), "again"],
        ["-m", "keras_transformer.generate", "--model", str(run), *GENERATE_ARGS],
        ["-m", "keras_transformer.generate", "--model", str(run / "saved_model"), *GENERATE_ARGS],
        ["-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
         str(run / "saved_model"), "--all"],
    ], cwd=root)
    return dict(zip(names, results, strict=True))


@pytest.mark.slow
def test_train_export_writes_a_saved_model_with_two_signatures(exported_run, run_commands):
    root, run = exported_run
    assert (run / "saved_model" / "saved_model.pb").exists()
    assert not [name for name in os.listdir(run) if name.startswith(".saved_model")]
    shown = run_commands["saved_model_cli"]
    assert shown.returncode == 0, shown.stderr[-2000:]
    for line in ("signature_def['generate']", "signature_def['logits']", "inputs['prompt']",
                 "inputs['max_new_tokens']", "inputs['temperature']", "inputs['top_k']",
                 "inputs['top_p']", "inputs['seed']", "outputs['text']", "inputs['token_ids']",
                 "outputs['logits']"):
        assert line in shown.stdout


@pytest.mark.slow
def test_generate_cli_takes_a_saved_model_or_a_run_directory(run_commands):
    from_run, exported = run_commands["from_run"], run_commands["from_saved_model"]
    assert from_run.returncode == 0, from_run.stderr[-2000:]
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert exported.stdout == from_run.stdout and exported.stdout.startswith("JULIET:")
    assert len(exported.stdout) == len("JULIET:") + 20 + 1


@pytest.mark.slow
def test_export_cli_writes_the_same_generator(exported_run, run_commands):
    root, run = exported_run
    result = run_commands["export"]
    assert result.returncode == 0, result.stderr[-2000:]
    texts = [_call(tf.saved_model.load(str(path)), ["ROMEO:", "NURSE"], 10).numpy().tolist()
             for path in (run / "saved_model", root / "again")]
    assert texts[0] == texts[1]


def _one_line_error(main, argv, capsys, prog):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{prog}: error: "), err
    return err


@pytest.mark.slow
def test_clis_reject_bad_input_in_one_line(exported_run, tmp_path, capsys):
    from keras_transformer.cli import export, generate, train

    root, run = exported_run
    saved_model = str(run / "saved_model")
    for extra, message in [
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "ROMEO: " * 6], "longer than the model's context of 32"),
        (["--prompt", "ROMEO: ¿qué?"], "not in the tokenizer's vocabulary: '¿', 'q', 'é'"),
        (["--slide"], "--slide, --no-slide and --no-cache work with run directories"),
        (["--no-slide"], "--slide, --no-slide and --no-cache work with run directories"),
    ]:
        err = _one_line_error(generate.main, ["--model", saved_model, *extra], capsys, "generate")
        assert message in err
    err = _one_line_error(export.main, [str(run), saved_model], capsys, "export")
    assert "already exists" in err
    err = _one_line_error(export.main, [str(tmp_path), str(tmp_path / "out")], capsys, "export")
    assert "not a finished run" in err
    (tmp_path / "play.txt").write_text(make_text(), encoding="utf-8")
    err = _one_line_error(train.main, ["--arch", "bert", "--export", "--data",
                                       str(tmp_path / "play.txt"), "--out", str(tmp_path / "r")],
                          capsys, "train.py")
    assert "--export works with --arch gpt" in err
    assert sorted(os.listdir(tmp_path)) == ["play.txt"]  # nothing written
