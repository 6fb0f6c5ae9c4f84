"""Fine-tuning BERT for classification (`train.py --arch bert --task classify`), the classify
CLI, the TSV reader and its split, `BertClassifier`, and `embed`'s sentence embeddings.

The task is generated here: lines of two styles drawn from disjoint word lists
(55 % / 45 %), which a one-block BERT learns in a few dozen steps. The
Hugging Face checks use small random `transformers` BERTs made in the test,
with every 1-D parameter moved away from its initial value.
"""

import json
import os
import re
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import REPO  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from keras_transformer import TransformerConfig, embed  # noqa: E402
from keras_transformer.cli import classify as classify_cli  # noqa: E402
from keras_transformer.cli import train as train_cli  # noqa: E402
from keras_transformer.data import CharTokenizer  # noqa: E402
from keras_transformer.data.classify import (  # noqa: E402
    encode_texts,
    read_classification_tsv,
    split_examples,
)
from keras_transformer.errors import UserInputError  # noqa: E402
from keras_transformer.models import BERT, BertClassifier  # noqa: E402
from keras_transformer.training.classify import macro_f1  # noqa: E402

VERSE = ("the", "king", "shall", "ride", "at", "dawn", "with", "his", "lords", "and", "knights")
REPORT = ("we", "computed", "the", "mean", "value", "of", "each", "sample", "in", "the", "data",
          "table")
STYLES = {"verse": VERSE, "report": REPORT}
COUNTS = {"verse": 330, "report": 270}
TRAIN_FLAGS = ["--num-layers", "1", "--d-model", "32", "--num-heads", "2", "--max-len", "48",
               "--seq-len", "48", "--epochs", "2", "--steps-per-epoch", "15", "--batch-size",
               "16", "--learning-rate", "3e-3", "--warmup-steps", "5", "--verbose", "0",
               "--no-jit"]
TINY = dict(vocab_size=40, max_len=24, num_layers=2, d_model=32, num_heads=4, num_segments=2,
            norm_first=False, layer_norm_epsilon=1e-12)
SAMPLE_LINE = re.compile(r"line \d+: predicted '([^']*)' \(([0-9.]+)\), true '[^']*': '([^']*)'")


def _sentence(rng, words):
    return " ".join(rng.choice(words, size=int(rng.integers(4, 10))))


def _styles_tsv(path, seed=0):
    """`COUNTS` lines of each style, shuffled: `text<TAB>label`."""
    rng = np.random.default_rng(seed)
    labels = [label for label, n in COUNTS.items() for _ in range(n)]
    rng.shuffle(labels)
    path.write_text("".join(f"{_sentence(rng, STYLES[y])}\t{y}\n" for y in labels),
                    encoding="utf-8")
    return path


def _train(argv):
    assert train_cli.main(["--arch", "bert", "--task", "classify", *argv]) == 0


def _error_line(capsys, call):
    """Run `call()`, which must exit 2, and return its one stderr line."""
    with pytest.raises(SystemExit) as caught:
        call()
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    data = _styles_tsv(root / "styles.tsv")
    _train(["--data", str(data), "--out", str(root / "run"), *TRAIN_FLAGS])
    return data, root / "run"


def _metrics(run):
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


# --- the fine-tuning run ---------------------------------------------------------------------


def test_fine_tuned_bert_beats_the_majority_baseline(single_run):
    _, run = single_run
    metrics = _metrics(run)
    assert metrics["task"] == "classify" and metrics["labels"] == ["report", "verse"]
    # 10 % of each label held out: 33 verse, 27 report; the majority answer (verse, the
    # training split's most frequent label) is right on 33 of 60.
    assert metrics["eval_examples"] == 60 and metrics["train_examples"] == 540
    assert metrics["majority_label"] == "verse"
    assert metrics["majority_baseline_accuracy"] == pytest.approx(33 / 60, abs=1e-4)
    assert metrics["majority_baseline_macro_f1"] == pytest.approx(
        (2 * 33 / (2 * 33 + 27)) / 2, abs=1e-4)
    assert metrics["accuracy"] - metrics["majority_baseline_accuracy"] >= 0.30, metrics
    assert metrics["macro_f1"] >= 0.8 and metrics["num_labels"] == 2 and not metrics["pairs"]
    f1 = metrics["f1_per_label"]
    assert set(f1) == set(COUNTS) and metrics["macro_f1"] == pytest.approx(np.mean(
        list(f1.values())), abs=1e-4)
    assert {"model.keras", "tokenizer.json", "config.json", "sample.txt"} <= set(os.listdir(run))
    settings = json.loads((run / "config.json").read_text())["settings"]
    assert settings["job"] == {"val_batches": 20, "task": "classify", "init_from": None}


def test_train_py_summarises_a_classification_run_in_one_line(single_run):
    _, run = single_run
    for tokenizer in ("char", "bpe"):  # (a bpe run has no language-model figures)
        line = train_cli._summary({**_metrics(run), "tokenizer": tokenizer, "out": str(run)})
        assert re.search(r"accuracy [01]\.\d{4} \(majority class 0\.5500\), macro-F1 [01]\.\d{4} "
                         r"on 60 held-out examples", line), line


def test_classify_cli_in_a_fresh_process_gives_the_trained_probabilities(single_run):
    """`python -m keras_transformer.classify` loads model.keras (safe mode) in a new process;
    its answers equal those the trained model wrote into sample.txt."""
    _, run = single_run
    rows = [SAMPLE_LINE.match(line).groups()
            for line in (run / "sample.txt").read_text(encoding="utf-8").splitlines()[:4]]
    args = [sys.executable, "-m", "keras_transformer.classify", "--model", str(run)]
    for _, _, text in rows:
        args += ["--text", text]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().split("\n")
    assert len(lines) == len(rows)
    for line, (label, probability, _) in zip(lines, rows, strict=True):
        got_label, got_probability = line.split("\t")
        assert got_label == label and got_label in COUNTS
        assert 0.5 <= float(got_probability) <= 1.0
        assert float(got_probability) == pytest.approx(float(probability), abs=1e-4)


def test_classify_cli_answers_each_style(single_run, capsys):
    _, run = single_run
    rng = np.random.default_rng(5)
    texts = {label: [_sentence(rng, words) for _ in range(5)] for label, words in STYLES.items()}
    argv = ["--model", str(run)]
    for label in STYLES:
        argv += [arg for text in texts[label] for arg in ("--text", text)]
    assert classify_cli.main(argv) == 0
    answers = [line.split("\t")[0] for line in capsys.readouterr().out.strip().split("\n")]
    assert answers == ["verse"] * 5 + ["report"] * 5


@pytest.mark.parametrize("case", ["not_a_dir", "unknown_characters", "pair_on_single", "empty"])
def test_classify_cli_bad_input_is_one_line(case, single_run, tmp_path, capsys):
    _, run = single_run
    argv = {
        "not_a_dir": ["--model", str(tmp_path / "absent"), "--text", "the king"],
        "unknown_characters": ["--model", str(run), "--text", "XYZ!"],
        "pair_on_single": ["--model", str(run), "--text", "the king", "--text-b", "the data"],
        "empty": ["--model", str(run), "--text", "  "],
    }[case]
    line = _error_line(capsys, lambda: classify_cli.main(argv))
    expected = {"not_a_dir": "is not a directory", "unknown_characters": "not in the tokenizer",
                "pair_on_single": "trained on single texts", "empty": "--text is empty"}[case]
    assert line.startswith("classify: error: ") and expected in line, line


def test_classify_cli_refuses_a_run_of_another_task(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "tokenizer.json", "metrics.json"):
        (run / name).write_text("{}")
    (run / "config.json").write_text(json.dumps(
        {"arch": "bert", "context": 64, "settings": {"job": {"task": "pretrain"}}}))
    line = _error_line(capsys, lambda: classify_cli.main(["--model", str(run), "--text", "a"]))
    assert "holds a bert --task pretrain run" in line, line


# --- bad files and flags ---------------------------------------------------------------------


@pytest.mark.parametrize("case", ["columns", "mixed_layouts", "empty_label", "empty_text"])
def test_a_malformed_line_is_one_error_naming_the_line(case, tmp_path, capsys):
    good = "".join(f"the king {i}\tverse\nthe data {i}\treport\n" for i in range(20))
    bad = {"columns": "no tab at all", "mixed_layouts": "a\tb\tverse",
           "empty_label": "the king\t  ", "empty_text": " \treport"}[case]
    path = tmp_path / "bad.tsv"
    path.write_text(good + "\n" + bad + "\n" + good, encoding="utf-8")  # the bad one: line 42
    expected = {
        "columns": "bad.tsv line 42: expected 'text<TAB>label' (2 columns, as on line 1), "
                   "found 1 column(s)",
        "mixed_layouts": "bad.tsv line 42: expected 'text<TAB>label' (2 columns, as on line 1),"
                         " found 3 column(s)",
        "empty_label": "bad.tsv line 42: the label is empty",
        "empty_text": "bad.tsv line 42: the text is empty",
    }[case]
    line = _error_line(capsys, lambda: train_cli.main(
        ["--arch", "bert", "--task", "classify", "--data", str(path), "--out",
         str(tmp_path / "run")]))
    assert line.startswith("train.py: error: ") and line.endswith(expected), line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--arch", "seq2seq", "--task", "classify"],
     "--task classify does not apply to --arch seq2seq (only to --arch bert)"),
    (["--arch", "gpt", "--task", "classify"], "--task does not apply to --arch gpt"),
    (["--arch", "bert", "--task", "classify", "--val-batches", "3"],
     "--val-batches applies to --task pretrain"),
    (["--arch", "bert", "--task", "classify"], "--task classify needs --data FILE.tsv"),
    (["--arch", "bert", "--task", "classify", "--dataset", "wikitext2"],
     "--task classify reads a labelled file"),
    (["--arch", "bert", "--task", "sentiment"], "unknown task 'sentiment' for --arch bert"),
    (["--arch", "bert", "--init-from", "."], "--init-from works with --arch bert --task classify"),
])
def test_train_py_refuses_what_classify_cannot_honour(argv, expected, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--init-from" in argv:  # a folder with a BERT config.json
        (tmp_path / "config.json").write_text(json.dumps(
            {"model_type": "bert", "vocab_size": 30, "hidden_size": 32,
             "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}))
    line = _error_line(capsys, lambda: train_cli.main([*argv, "--out", "run"]))
    assert line.startswith("train.py: error: ") and expected in line, line
    assert not (tmp_path / "run").exists()


def test_the_tsv_reader_takes_headers_pairs_and_any_labels(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("text_a\ttext_b\tlabel\n\nA man sleeps.\tNobody sleeps.\t contradiction \n"
                    "A dog runs\tAn animal moves\tentailment\n\n", encoding="utf-8")
    data = read_classification_tsv(path)
    assert data.pairs and data.labels == ["contradiction", "entailment"]
    assert [(e.text_a, e.text_b, e.label, e.line) for e in data.examples] == [
        ("A man sleeps.", "Nobody sleeps.", "contradiction", 3),
        ("A dog runs", "An animal moves", "entailment", 4)]
    assert data.label_ids().tolist() == [0, 1]
    path.write_text("only one\tlabel\nanother\tlabel\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="every example has the label 'label'"):
        read_classification_tsv(path)
    with pytest.raises(UserInputError, match="classification file not found"):
        read_classification_tsv(tmp_path / "absent.tsv")


def test_the_held_out_split_is_stratified_and_seeded(tmp_path):
    data = read_classification_tsv(_styles_tsv(tmp_path / "styles.tsv"))
    train, held = split_examples(data.examples, seed=3)
    assert sorted(e.line for e in train + held) == list(range(1, 601))
    assert [e.line for e in held] == sorted(e.line for e in held)  # file order
    assert sum(e.label == "verse" for e in held) == 33
    assert sum(e.label == "report" for e in held) == 27
    assert split_examples(data.examples, seed=3) == (train, held)
    assert split_examples(data.examples, seed=4)[1] != held
    with pytest.raises(UserInputError, match="too few for a held-out split"):
        split_examples(data.examples[:8], seed=0)


# --- packing ---------------------------------------------------------------------------------


def test_packing_single_texts_and_pairs():
    tokenizer = CharTokenizer.from_text("abcdef", ["[CLS]", "[SEP]"])
    cls, sep = tokenizer.special_id("[CLS]"), tokenizer.special_id("[SEP]")
    ids, segments, cut = encode_texts(tokenizer, ["ab", "abcd"], ["c", "ef"], seq_len=16)
    a, b, c, d, e, f = (int(i) for i in tokenizer.encode("abcdef"))
    assert ids.tolist() == [[cls, a, b, sep, c, sep, 0, 0, 0],
                            [cls, a, b, c, d, sep, e, f, sep]]
    assert segments.tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1, 1]]
    assert cut == 0
    # Over seq_len the longer text gives way first ("longest_first").
    ids, segments, cut = encode_texts(tokenizer, ["abcdef"], ["ab"], seq_len=7)
    assert ids.tolist() == [[cls, a, b, sep, a, b, sep]] and cut == 1
    ids, segments, cut = encode_texts(tokenizer, ["abcdef", "a"], seq_len=4)
    assert ids.tolist() == [[cls, a, b, sep], [cls, a, sep, 0]] and segments.max() == 0


# --- metrics ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_macro_f1_is_the_mean_f1_of_the_labels_seen(pairs):
    y_true, y_pred = (np.array(column) for column in zip(*pairs, strict=True))
    scores = []
    for label in sorted(set(y_true) | set(y_pred)):
        tp = np.sum((y_true == label) & (y_pred == label))
        precision = tp / max(1, np.sum(y_pred == label))
        recall = tp / max(1, np.sum(y_true == label))
        scores.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    assert macro_f1(y_true, y_pred) == pytest.approx(np.mean(scores))


# --- the model and embed ---------------------------------------------------------------------


def _ids(rng, lengths, vocab=40):
    """Token ids of texts of `lengths`, padded with 0, and zero segment ids."""
    ids = np.zeros((len(lengths), max(lengths)), "int32")
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, vocab, size=n)
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids)}


@pytest.fixture(scope="module")
def tiny_bert():
    keras.utils.set_random_seed(0)
    return BERT(TransformerConfig(**TINY), heads=False)


def test_classifier_from_bert_has_the_bert_backbone_and_a_linear_head(tiny_bert, tmp_path):
    model = BertClassifier.from_bert(tiny_bert, labels=["a", "b", "c"])
    inputs = _ids(np.random.default_rng(0), [7, 12, 3])
    pooled = keras.ops.convert_to_numpy(tiny_bert(inputs)["pooled"])
    head = model.get_layer("classifier")
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (head.kernel, head.bias))
    logits = keras.ops.convert_to_numpy(model(inputs))
    np.testing.assert_allclose(logits, pooled @ kernel + bias, atol=1e-5)
    assert logits.dtype == np.float32 and logits.shape == (3, 3)
    # A classifier built afresh has other backbone weights: the copy is what made them equal.
    fresh = BertClassifier(tiny_bert.config, labels=["a", "b", "c"])
    fresh.get_layer("classifier").set_weights([kernel, bias])
    assert not np.allclose(keras.ops.convert_to_numpy(fresh(inputs)), logits, atol=1e-3)
    model.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras", safe_mode=True)
    assert isinstance(loaded, BertClassifier) and loaded.labels == ["a", "b", "c"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)), logits, atol=1e-6)
    with pytest.raises(UserInputError, match="num_labels >= 2"):
        BertClassifier(tiny_bert.config, labels=["only"])


def _manual_embedding(model_hidden, tokenizer, text):
    """The mean over `[CLS] text [SEP]` of the hidden states of the text alone, unpadded."""
    ids = np.array([[tokenizer.special_id("[CLS]"), *tokenizer.encode(text),
                     tokenizer.special_id("[SEP]")]], "int32")
    hidden = model_hidden({"token_ids": ids, "segment_ids": np.zeros_like(ids)})
    return keras.ops.convert_to_numpy(hidden)[0].mean(0)


@pytest.mark.parametrize("kind", ["bert", "pre_ln_bert_with_heads", "classifier"])
def test_embed_is_the_mean_over_real_tokens_whatever_the_padding(kind):
    tokenizer = CharTokenizer.from_text("abcdefghij ", ["[CLS]", "[SEP]"])
    # A pre-LN config ends with final_norm: the hidden states are read after it.
    config = TransformerConfig(**{**TINY, "vocab_size": tokenizer.vocab_size,
                                  "norm_first": kind.startswith("pre_ln")})
    keras.utils.set_random_seed(1)
    bert = BERT(config, heads=kind.endswith("heads"))
    model = BertClassifier.from_bert(bert, num_labels=2) if kind == "classifier" else bert
    texts = ["abc", "a bad jig head", "", "hi"]
    batched = embed(model, tokenizer, texts)
    assert batched.shape == (4, 32) and batched.dtype == np.float32
    def hidden(x):
        return bert(x)["hidden"]
    for i, text in enumerate(texts):
        # (each text computed alone, without padding: the batch's padding changed nothing)
        np.testing.assert_allclose(batched[i], _manual_embedding(hidden, tokenizer, text),
                                   atol=1e-5)
    # Long texts are truncated to max_len tokens, [CLS] and [SEP] included.
    long = embed(model, tokenizer, ["abcdefghij" * 5])[0]
    np.testing.assert_allclose(long, _manual_embedding(hidden, tokenizer, "abcdefghij" * 2 + "ab"),
                               atol=1e-5)
    with pytest.raises(UserInputError, match="needs a BERT or a BertClassifier"):
        embed(keras.Sequential([keras.layers.Dense(2)]), tokenizer, texts)


# --- Hugging Face checkpoints ----------------------------------------------------------------

HF_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(VERSE + REPORT)),
            *"abcdefghijklmnopqrstuvwxyz", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]


def _hf_checkpoint(folder, make, seed):
    """Save a perturbed random `transformers` BERT with a vocab.txt into `folder`."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=len(HF_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=40, type_vocab_size=2,
        layer_norm_eps=1e-12)
    torch.manual_seed(seed)
    model = getattr(transformers, make)(config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    model.eval().save_pretrained(folder)
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in HF_VOCAB), encoding="utf-8")
    return model


@pytest.fixture(scope="module")
def hf_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_bert")
    made = {}
    for seed, make in enumerate(("BertModel", "BertForPreTraining")):
        made[make] = (root / make, _hf_checkpoint(root / make, make, seed))
    return made


@pytest.fixture(scope="module")
def hf_tokenizer(hf_checkpoints):
    """The checkpoints' `WordPieceTokenizer` (one instance: each traces its encoder once)."""
    from keras_transformer import load_tokenizer

    return load_tokenizer(str(hf_checkpoints["BertModel"][0]))


HF_TEXTS = ["the king shall ride at dawn", "we computed the mean", "knights",
            "each sample in the data table and his lords"]


def _hf_reference(model, tokenizer_folder, texts):
    """`(mean-pooled last hidden states, pooler output)` of a `transformers` BERT."""
    import torch
    import transformers

    tokenizer = transformers.BertTokenizer.from_pretrained(str(tokenizer_folder))
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    bert = model.bert if hasattr(model, "bert") else model
    with torch.no_grad():
        out = bert(**batch)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
    return mean.numpy(), out.pooler_output.numpy()


@pytest.mark.parametrize("make", ["BertModel", "BertForPreTraining"])
def test_embed_equals_mean_pooling_of_transformers(make, hf_checkpoints, hf_tokenizer):
    from keras_transformer import from_pretrained

    folder, reference = hf_checkpoints[make]
    model = from_pretrained(str(folder))
    assert model.has_heads == (make == "BertForPreTraining")
    expected, pooled = _hf_reference(reference, folder, HF_TEXTS)
    np.testing.assert_allclose(embed(model, hf_tokenizer, HF_TEXTS), expected, atol=2e-5)
    # The classifier built on it keeps the checkpoint's pooler: its head reads that vector.
    classifier = BertClassifier.from_bert(model, labels=["x", "y"])
    ids, segments, _ = encode_texts(hf_tokenizer, HF_TEXTS, seq_len=40)
    ours = keras.Model(classifier.input, classifier.get_layer("pooler").output)(
        {"token_ids": ids, "segment_ids": segments})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), pooled, atol=2e-5)


def _pairs_tsv(path, count=200, seed=2):
    """`text_a<TAB>text_b<TAB>label` lines: "same" when both texts are of one style."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(count):
        first, second = rng.choice(["verse", "report"], size=2)
        lines.append(f"{_sentence(rng, STYLES[first])}\t{_sentence(rng, STYLES[second])}\t"
                     f"{'same' if first == second else 'mixed'}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_init_from_a_checkpoint_fine_tunes_on_text_pairs(hf_checkpoints, tmp_path, capsys):
    """A pairs file (three columns) through `--init-from`: the checkpoint's config, weights
    and WordPiece tokenizer, and the classify CLI with `--text-b`."""
    from keras_transformer import load_tokenizer

    folder, _ = hf_checkpoints["BertForPreTraining"]
    data = _pairs_tsv(tmp_path / "pairs.tsv")
    _train(["--data", str(data), "--out", str(tmp_path / "run"), "--init-from", str(folder),
            "--seq-len", "32", "--epochs", "1", "--steps-per-epoch", "5", "--batch-size", "16",
            "--learning-rate", "3e-3", "--warmup-steps", "2", "--verbose", "0", "--no-jit"])
    run = tmp_path / "run"
    metrics = _metrics(run)
    assert metrics["init_from"] == str(folder) and metrics["tokenizer"] == "wordpiece"
    assert metrics["pairs"] and metrics["labels"] == ["mixed", "same"]
    assert metrics["eval_examples"] == 20 and 0.0 <= metrics["accuracy"] <= 1.0
    settings = json.loads((run / "config.json").read_text())["settings"]
    assert settings["model"]["d_model"] == 32 and settings["model"]["max_len"] == 40
    # The run's tokenizer is the checkpoint's.
    saved = load_tokenizer(str(run / "tokenizer.json"))
    assert saved.kind == "wordpiece" and saved.vocabulary == HF_VOCAB
    assert (saved.cls_id, saved.sep_id, saved.pad_id) == (2, 3, 0)
    capsys.readouterr()
    assert classify_cli.main(["--model", str(run), "--text", "the king shall ride",
                              "--text-b", "we computed the mean"]) == 0
    label, probability = capsys.readouterr().out.strip().split("\t")
    assert label in ("mixed", "same") and 0.5 <= float(probability) <= 1.0
    line = _error_line(capsys, lambda: classify_cli.main(
        ["--model", str(run), "--text", "the king"]))
    assert "trained on text pairs; give --text-b too" in line
    # The checkpoint sets the architecture: a model flag is refused in one line.
    line = _error_line(capsys, lambda: train_cli.main(
        ["--arch", "bert", "--task", "classify", "--data", str(data), "--init-from",
         str(folder), "--d-model", "64", "--out", str(tmp_path / "other")]))
    assert "--d-model does not apply with --init-from" in line, line
