"""`train.py --tokenizer bpe` and `--dataset wikitext2` end to end, and their bad input."""

import json
import math
import os

import pytest
from conftest import REPO, TINY_TRAIN_FLAGS, make_text

pytestmark = pytest.mark.slow

SHARED_WIKITEXT = os.path.join(REPO, "..", "shared", "data", "wikitext-2")
BPE = ["--tokenizer", "bpe", "--vocab-size", "400"]
TINY_MODEL = ["--num-layers", "1", "--d-model", "32", "--num-heads", "2", "--verbose", "2",
              "--no-jit", "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8"]


def _assert_one_line_error(result, prog, expected):
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: "), result.stderr[-2000:]
    assert expected in last, last
    return last


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    """One tiny finished GPT run with a 400-piece BPE tokenizer."""
    from conftest import run_cli

    root = tmp_path_factory.mktemp("bpe")
    (root / "play.txt").write_text(make_text(), encoding="utf-8")
    result = run_cli(["train.py", "--arch", "gpt", "--data", "play.txt", "--out", "run", *BPE,
                      *TINY_TRAIN_FLAGS], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, root / "run", result


def test_bpe_run_stores_its_model_and_reports_per_character(bpe_run):
    _, run, result = bpe_run
    tokenizer = json.loads((run / "tokenizer.json").read_text())
    assert tokenizer["kind"] == "bpe" and tokenizer["vocab_size"] == 400
    assert (run / tokenizer["model"]).read_bytes()[:1] == b"\n"  # a serialized ModelProto
    settings = json.loads((run / "config.json").read_text())["settings"]
    assert settings["tokenizer"] == "bpe" and settings["model"]["vocab_size"] == 400
    assert settings["clean"] is None and settings["epochs"] == 2  # --epochs beats BPE_DEFAULTS
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tokenizer"] == "bpe" and metrics["cleaned"] is True
    assert metrics["chars_per_token"] > 1.5  # merges: a token spans several characters
    # Per character = per token * tokens / characters, and bits = nats / ln 2.
    per_char = metrics["val_loss"] * metrics["val_tokens"] / metrics["val_chars"]
    assert abs(metrics["val_loss_per_char"] - per_char) < 1e-3
    assert abs(metrics["val_bpc"] - metrics["val_loss_per_char"] / math.log(2)) < 1e-3
    assert abs(math.log(metrics["val_perplexity"]) - metrics["val_loss"]) < 1e-3
    per_word = metrics["val_loss"] * metrics["val_tokens"] / metrics["val_words"]
    assert abs(math.log(metrics["val_word_perplexity"]) - per_word) < 1e-3
    assert "nats/char" in result.stdout and "per word" in result.stdout
    assert (run / "sample.txt").read_text(encoding="utf-8").startswith("ROMEO:")


def test_generate_continues_a_prompt_with_a_bpe_run(bpe_run, cli_batch):
    root, run, _ = bpe_run
    args = ["-m", "keras_transformer.generate", "--model", str(run), "--prompt", "JULIET: ¿qué?",
            "--max-new-tokens", "12", "--seed", "3"]
    first, again = cli_batch([args, args], cwd=root)  # characters the training text lacks: byte fallback
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.startswith("JULIET: ¿qué?") and len(first.stdout) > len("JULIET: ¿qué?\n")
    assert again.stdout == first.stdout


@pytest.fixture(scope="module")
def bad_prompts(bpe_run):
    """case -> the generate result: both cases in one process."""
    from conftest import run_cli_batch

    root, run, _ = bpe_run
    prompts = {"empty_prompt": "", "prompt_too_long": "thou art the king of night " * 10}
    results = run_cli_batch([["-m", "keras_transformer.generate", "--model", str(run), "--prompt",
                              prompt, "--max-new-tokens", "5"] for prompt in prompts.values()],
                            cwd=root)
    return dict(zip(prompts, results, strict=True))


@pytest.mark.parametrize("case", ["empty_prompt", "prompt_too_long"])
def test_generate_rejects_bad_prompts_for_bpe(case, bad_prompts):
    _assert_one_line_error(bad_prompts[case], "generate", {
        "empty_prompt": "the prompt is empty",
        "prompt_too_long": "longer than the model's context of 32"}[case])


BAD_SUBWORD_INPUT = {
    "vocab_too_large": (["--data", "play.txt", "--tokenizer", "bpe", "--vocab-size", "50000"],
                        "is larger than this training text supports"),
    "vocab_too_small": (["--data", "play.txt", "--tokenizer", "bpe", "--vocab-size", "100"],
                        "is too small for this training text"),
    "non_utf8_data": (["--data", "latin1.txt", *BPE], "not UTF-8 text"),
    "empty_prompt": (["--data", "play.txt", *BPE, "--prompt", ""], "--prompt is empty"),
    "prompt_too_long": (["--data", "play.txt", *BPE, "--max-len", "16", "--seq-len", "16",
                         "--prompt", "thou art the king " * 8],
                        "--prompt is longer than the model's context of 16 tokens"),
    "splits_without_wikitext": (["--data", "play.txt", "--eval-split", "test"],
                                "are for --dataset wikitext2"),
    "wikitext_missing_split": (["--dataset", "wikitext2", "--data", "wt2"],
                               "has no train split"),
    "wikitext_without_data": (["--dataset", "wikitext2"], "'datasets' package"),
}


@pytest.fixture(scope="module")
def bad_subword_input(tmp_path_factory):
    """case -> (its directory, the train.py result): every case in one process (whose path
    has a `datasets` that cannot be imported, even if installed), each in a directory of its
    own."""
    from conftest import run_cli_batch

    root = tmp_path_factory.mktemp("bad_subword_input")
    (root / "no_datasets").mkdir()
    (root / "no_datasets" / "datasets.py").write_text("raise ImportError('hidden')\n")
    commands = []
    for case, (args, _) in BAD_SUBWORD_INPUT.items():
        folder = root / case
        folder.mkdir()
        (folder / "play.txt").write_text(make_text(), encoding="utf-8")
        (folder / "latin1.txt").write_bytes(make_text().encode() + "caf\xe9\n".encode("latin-1"))
        (folder / "wt2").mkdir()
        (folder / "wt2" / "valid.txt").write_text(" = A = \n text . \n", encoding="utf-8")
        commands.append((["train.py", "--out", "run", *args], {"cwd": folder}))
    env = {"PYTHONPATH": REPO + os.pathsep + str(root / "no_datasets")}
    results = run_cli_batch(commands, cwd=root, env=env)
    return {case: (root / case, result)
            for case, result in zip(BAD_SUBWORD_INPUT, results, strict=True)}


@pytest.mark.parametrize("case", list(BAD_SUBWORD_INPUT))
def test_train_rejects_bad_subword_input_in_one_line(case, bad_subword_input):
    folder, result = bad_subword_input[case]
    _assert_one_line_error(result, "train.py", BAD_SUBWORD_INPUT[case][1])
    assert not (folder / "run").exists(), "a run directory was left behind"


@pytest.mark.skipif(not os.path.isfile(os.path.join(SHARED_WIKITEXT, "valid.txt")),
                    reason="no shared WikiText-2 copy")
def test_wikitext2_trains_on_valid_and_reports_perplexity_on_test(tmp_path, cli):
    result = cli(["train.py", "--arch", "gpt", "--dataset", "wikitext2", "--data", SHARED_WIKITEXT,
                  "--train-split", "valid", "--eval-split", "test", "--tokenizer", "bpe",
                  "--vocab-size", "1000", "--out", "run", *TINY_TRAIN_FLAGS,
                  # batches of 64 (not 8) windows: the test split's ~1,200 batches of 8 per
                  # epoch were most of this test's time
                  "--batch-size", "64"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == "wikitext2:valid->test"
    assert metrics["train_articles"] > 10 and metrics["val_articles"] > 10
    assert metrics["val_perplexity"] > 1 and metrics["val_word_perplexity"] > metrics["val_perplexity"]
    assert metrics["val_words"] > 100_000  # most of the test split is scored
    assert "perplexity" in result.stdout.splitlines()[-1]


def test_bert_trains_with_bpe(tmp_path, cli):
    (tmp_path / "play.txt").write_text(make_text(), encoding="utf-8")
    result = cli(["train.py", "--arch", "bert", "--data", "play.txt", "--out", "run", *BPE,
                  "--seq-len", "32", "--max-len", "32", "--val-batches", "2", *TINY_MODEL],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["masked_tokens_evaluated"] > 0 and 0 <= metrics["masked_token_accuracy"] <= 1
    tokenizer = json.loads((tmp_path / "run" / "tokenizer.json").read_text())
    assert tokenizer["specials"] == ["[CLS]", "[SEP]", "[MASK]"]
    assert "[MASK]" in (tmp_path / "run" / "sample.txt").read_text(encoding="utf-8")


def test_seq2seq_dates_trains_with_bpe(tmp_path, cli):
    result = cli(["train.py", "--arch", "seq2seq", "--out", "run", "--tokenizer", "bpe",
                  "--vocab-size", "350", "--train-examples", "300", "--eval-examples", "20",
                  *TINY_MODEL], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "dates" and metrics["eval_examples"] == 20
    assert json.loads((tmp_path / "run" / "tokenizer.json").read_text())["vocab_size"] == 350
