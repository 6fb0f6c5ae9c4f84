"""A Hugging Face T5 folder used through the commands: `generate` decodes it (greedy and
beams, cached and not) as `transformers` does, `train.py --arch seq2seq --init-from`
fine-tunes it on a pairs file, and the run directory decodes in turn.

The checkpoint is made here, offline: a small random `T5ForConditionalGeneration`
with its norms perturbed, and a T5 SentencePiece tokenizer (`spiece.model`)
trained on Tiny Shakespeare lines, both saved with `save_pretrained`.
"""

import io
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_transformer import from_pretrained, load_tokenizer  # noqa: E402
from keras_transformer.cli import generate as generate_cli  # noqa: E402
from keras_transformer.cli import train as train_cli  # noqa: E402
from keras_transformer.data import shakespeare_path  # noqa: E402
from keras_transformer.generation.translate import translate  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
sentencepiece = pytest.importorskip("sentencepiece")

PROMPTS = ["thou art the king of night", "what say you to this fair day, my lord"]
NEW_TOKENS = 12


def _spiece(lines, vocab_size=300):
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram",
        vocab_size=vocab_size, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    return model.getvalue()


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    """(folder, the transformers model, the transformers tokenizer)."""
    folder = tmp_path_factory.mktemp("t5") / "tiny-t5"
    os.makedirs(folder)
    with open(shakespeare_path(), encoding="utf-8") as handle:
        lines = [line for line in handle.read().splitlines()[:4000] if line.strip()]
    with open(folder / "spiece.model", "wb") as handle:
        handle.write(_spiece(lines))
    tokenizer = transformers.T5Tokenizer.from_pretrained(str(folder))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2,
        num_decoder_layers=2, relative_attention_num_buckets=8,
        relative_attention_max_distance=20, feed_forward_proj="relu", decoder_start_token_id=0,
        eos_token_id=1, pad_token_id=0)
    model = transformers.T5ForConditionalGeneration(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * 0.3)
            elif name != "shared.weight":
                parameter.mul_(3.0)  # blocks that matter next to the token embedding
    model.eval().save_pretrained(folder)
    return str(folder), model, tokenizer


def _reference(t5_folder, prompt, **options):
    _, model, tokenizer = t5_folder
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, **options)
    return tokenizer.decode(out[0], skip_special_tokens=True)


def _stdout(capsys, argv):
    assert generate_cli.main(argv) == 0
    return capsys.readouterr().out.rstrip("\n")


def _error_line(capsys, call):
    with pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_generate_on_a_t5_folder_equals_transformers_greedy(t5_folder, capsys):
    folder = t5_folder[0]
    for prompt in PROMPTS:
        expected = _reference(t5_folder, prompt, num_beams=1)
        assert expected.strip(), "a reference that generates nothing proves nothing"
        argv = ["--model", folder, "--prompt", prompt, "--max-new-tokens", str(NEW_TOKENS)]
        assert _stdout(capsys, argv) == expected
        assert _stdout(capsys, [*argv, "--no-cache"]) == expected


def test_beams_are_cached_and_uncached_alike_through_the_cli(t5_folder, capsys):
    folder = t5_folder[0]
    model, tokenizer = from_pretrained(folder), load_tokenizer(folder)
    beams = translate(model, tokenizer, PROMPTS, NEW_TOKENS, num_beams=3)
    assert translate(model, tokenizer, PROMPTS, NEW_TOKENS, num_beams=3, use_cache=False) == beams
    argv = ["--model", folder, "--prompt", PROMPTS[1], "--max-new-tokens", str(NEW_TOKENS),
            "--num-beams", "3"]
    assert _stdout(capsys, argv) == beams[1]


@pytest.mark.parametrize("extra, message", [
    (["--temperature", "0.8"], "--temperature does not apply to an encoder-decoder"),
    (["--top-k", "5"], "--top-k does not apply to an encoder-decoder"),
    (["--num-beams", "0"], "--num-beams must be >= 1"),
    (["--prompt", ""], "source 1 is empty"),
])
def test_t5_generate_refusals_are_one_line(t5_folder, capsys, extra, message):
    argv = ["--model", t5_folder[0], "--prompt", "thou art", *extra]
    assert message in _error_line(capsys, lambda: generate_cli.main(argv))


def _pairs_file(path, count=240):
    """`words<TAB>the same words reversed`: a task a small T5 can start to learn."""
    rng = np.random.default_rng(1)
    words = ["thou", "art", "the", "king", "of", "night", "and", "shall", "not", "sleep"]
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(count):
            source = [words[i] for i in rng.integers(0, len(words), size=4)]
            handle.write(" ".join(source) + "\t" + " ".join(source[::-1]) + "\n")
    return str(path)


def test_train_init_from_t5_fine_tunes_and_the_run_decodes(t5_folder, tmp_path, monkeypatch,
                                                           capsys):
    monkeypatch.chdir(tmp_path)
    pairs = _pairs_file(tmp_path / "pairs.tsv")
    argv = ["--arch", "seq2seq", "--task", "pairs", "--pairs", pairs, "--init-from",
            t5_folder[0], "--epochs", "2", "--steps-per-epoch", "25", "--batch-size", "16",
            "--learning-rate", "3e-3", "--warmup-steps", "5", "--eval-examples", "8",
            "--beam-width", "2", "--no-jit", "--verbose", "0", "--out", "run"]
    assert train_cli.main(argv) == 0
    capsys.readouterr()
    with open(tmp_path / "run" / "history.csv", encoding="utf-8") as handle:
        rows = handle.read().splitlines()
    header = rows[0].split(",")
    losses = [float(row.split(",")[header.index("loss")]) for row in rows[1:]]
    assert losses[-1] < losses[0] - 0.3, losses
    with open(tmp_path / "run" / "metrics.json", encoding="utf-8") as handle:
        metrics = json.load(handle)
    assert metrics["eval_examples"] == 8 and 0.0 <= metrics["exact_match_beam"] <= 1.0
    # The run's tokenizer.json is a file (naming the checkpoint tokenizer's folder beside it).
    assert os.path.isfile(tmp_path / "run" / "tokenizer.json")
    assert os.path.isfile(tmp_path / "run" / "tokenizer" / "spiece.model")
    with open(tmp_path / "run" / "config.json", encoding="utf-8") as handle:
        assert json.load(handle)["settings"]["model"]["position"] == "relative"
    # The run decodes with the checkpoint's tokenizer, and differently from where it began.
    tuned = _stdout(capsys, ["--model", "run", "--prompt", PROMPTS[0], "--max-new-tokens",
                             str(NEW_TOKENS)])
    start = _stdout(capsys, ["--model", t5_folder[0], "--prompt", PROMPTS[0],
                             "--max-new-tokens", str(NEW_TOKENS)])
    assert tuned != start


@pytest.mark.parametrize("extra, message", [
    (["--task", "dates"], "--init-from works with --arch seq2seq --task pairs"),
    (["--task", "pairs", "--pairs", "PAIRS", "--d-model", "64"], "--d-model does not apply"),
    (["--task", "pairs", "--pairs", "PAIRS", "--tokenizer", "bpe"],
     "--tokenizer and --vocab-size do not apply with --init-from"),
])
def test_train_init_from_t5_refusals_are_one_line(t5_folder, tmp_path, monkeypatch, capsys,
                                                  extra, message):
    monkeypatch.chdir(tmp_path)
    pairs = _pairs_file(tmp_path / "pairs.tsv", count=40)
    extra = [pairs if arg == "PAIRS" else arg for arg in extra]
    argv = ["--arch", "seq2seq", "--init-from", t5_folder[0], *extra, "--out", "run"]
    assert message in _error_line(capsys, lambda: train_cli.main(argv))
    assert not os.path.exists(tmp_path / "run" / "model.keras")


def test_a_bert_folder_does_not_generate(tmp_path, capsys):
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=20)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    capsys.readouterr()  # transformers' progress bar
    argv = ["--model", str(tmp_path / "bert"), "--prompt", "hi"]
    assert "does not generate" in _error_line(capsys, lambda: generate_cli.main(argv))
