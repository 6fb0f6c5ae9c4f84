"""`train.py --arch bert` and `--arch seq2seq` end to end, and their bad-input errors."""

import json
import os

import pytest
from conftest import make_text

pytestmark = pytest.mark.slow

RUN_FILES = {"metrics.json", "history.png", "model.keras", "tokenizer.json", "sample.txt",
             "config.json", "history.csv"}
TINY_MODEL = ["--num-layers", "1", "--d-model", "32", "--num-heads", "2", "--verbose", "2",
              "--no-jit", "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8"]


def _assert_one_line_error(result, expected):
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: "), result.stderr[-2000:]
    assert expected in last, last


def test_bert_trains_end_to_end(tmp_path, cli):
    (tmp_path / "play.txt").write_text(make_text(), encoding="utf-8")
    result = cli(["train.py", "--arch", "bert", "--data", "play.txt", "--out", "run",
                  "--seq-len", "32", "--max-len", "32", "--val-batches", "2", *TINY_MODEL],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert set(os.listdir(run)) >= RUN_FILES
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("masked_token_accuracy", "unigram_baseline_accuracy", "sentence_pair_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["arch"] == "bert" and metrics["masked_tokens_evaluated"] > 0
    assert "[MASK]" in (run / "sample.txt").read_text(encoding="utf-8")


def test_seq2seq_dates_trains_end_to_end(tmp_path, cli):
    result = cli(["train.py", "--arch", "seq2seq", "--out", "run", "--train-examples", "200",
                  "--eval-examples", "20", *TINY_MODEL], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert set(os.listdir(run)) >= RUN_FILES
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "dates" and metrics["eval_examples"] == 20
    assert metrics["beam_width"] == 4
    assert 0.0 <= metrics["exact_match_greedy"] <= 1.0
    assert 0.0 <= metrics["exact_match_beam"] <= 1.0
    assert "greedy" in (run / "sample.txt").read_text(encoding="utf-8")


def test_seq2seq_trains_on_a_pairs_file(tmp_path, cli):
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    lines = [f"{a} {b}\t{b} {a}" for a in words for b in words]
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli(["train.py", "--arch", "seq2seq", "--task", "pairs", "--pairs", "pairs.tsv",
                  "--out", "run", *TINY_MODEL], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "pairs" and metrics["eval_examples"] == 6


@pytest.mark.parametrize("case", ["malformed_line", "empty_source", "target_too_long",
                                  "unknown_task", "pairs_without_file"])
def test_seq2seq_rejects_bad_input_in_one_line(case, tmp_path, cli):
    good = "".join(f"a{i}\tb{i}\n" for i in range(20))
    pairs = {
        "malformed_line": good + "no tab here\n",
        "empty_source": good + "\tlonely target\n",
        "target_too_long": good + "short\t" + "x" * 80 + "\n",
    }.get(case, good)
    (tmp_path / "pairs.tsv").write_text(pairs, encoding="utf-8")
    args = {
        "unknown_task": ["--task", "translate-klingon"],
        "pairs_without_file": ["--task", "pairs"],
    }.get(case, ["--task", "pairs", "--pairs", "pairs.tsv", "--max-len", "32"])
    result = cli(["train.py", "--arch", "seq2seq", "--out", "run", *args], cwd=tmp_path)
    expected = {
        "malformed_line": "pairs.tsv line 21: expected 'source<TAB>target'",
        "empty_source": "pairs.tsv line 21: the source is empty",
        "target_too_long": "pairs.tsv line 21: the target has 80 characters",
        "unknown_task": "unknown task 'translate-klingon'",
        "pairs_without_file": "--task pairs needs --pairs",
    }[case]
    _assert_one_line_error(result, expected)
    assert not (tmp_path / "run").exists(), "a run directory was left behind"
