"""Text sources, the character tokenizer and the tf.data pipelines."""

import hashlib
import os

import numpy as np
import pytest
from conftest import make_text

from keras_transformer.data import (
    CharTokenizer,
    lm_eval_dataset,
    lm_train_dataset,
    load_text,
    load_tokenizer,
    sources,
    split_text,
    steps_per_pass,
)
from keras_transformer.errors import UserInputError

TEXT = make_text()


def test_tokenizer_round_trip_and_ids():
    tokenizer = CharTokenizer.from_text(TEXT)
    ids = tokenizer.encode(TEXT)
    assert ids.dtype == np.int32 and ids.min() >= 1 and ids.max() == tokenizer.vocab_size - 1
    assert tokenizer.decode(ids) == TEXT
    assert tokenizer.vocab_size == len(set(TEXT)) + 1  # + padding id 0
    assert tokenizer.decode([0, *ids[:5], 0]) == TEXT[:5]


def test_tokenizer_saves_and_loads(tmp_path):
    tokenizer = CharTokenizer.from_text("héllo, wörld ✓\n")
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = load_tokenizer(str(tmp_path / "tokenizer.json"))
    assert loaded.chars == tokenizer.chars
    np.testing.assert_array_equal(loaded.encode("wörld ✓"), tokenizer.encode("wörld ✓"))


def test_tokenizer_names_unknown_characters():
    tokenizer = CharTokenizer.from_text("abc")
    with pytest.raises(UserInputError, match=r"2 character\(s\) not in the tokenizer's vocabulary: 'x', 'z'"):
        tokenizer.encode("abzcx")


def test_split_is_first_90_percent_then_last_10():
    train, val = split_text("x" * 1000)
    assert len(train) == 900 and len(val) == 100
    text = "".join(chr(65 + i % 26) for i in range(1001))
    train, val = split_text(text)
    assert train + val == text and len(train) == int(1001 * 0.9)


def test_train_targets_are_inputs_shifted_by_one():
    ids = np.arange(1, 2001, dtype=np.int32)  # position i holds id i+1: windows are easy to locate
    dataset = lm_train_dataset(ids, seq_len=16, batch_size=4, seed=3)
    for x, y in dataset.take(10):
        x, y = x.numpy(), y.numpy()
        assert x.shape == y.shape == (4, 16)
        np.testing.assert_array_equal(y, x + 1)
        np.testing.assert_array_equal(np.diff(x, axis=1), 1)  # contiguous text


def test_each_pass_uses_a_new_offset_and_order():
    ids = np.arange(1, 2001, dtype=np.int32)
    per_pass = steps_per_pass(len(ids), 16, 4)
    assert per_pass == ((2000 - 16) // 16) // 4
    batches = [x.numpy() for x, _ in lm_train_dataset(ids, 16, 4, seed=3).take(3 * per_pass)]
    passes = [np.concatenate(batches[i * per_pass:(i + 1) * per_pass]) for i in range(3)]
    offsets = {int(p[:, 0].min() - 1) % 16 for p in passes}
    for p in passes:  # within a pass: one offset, no window twice
        assert len({int(s) % 16 for s in p[:, 0] - 1}) == 1
        assert len(set(p[:, 0].tolist())) == len(p)
    assert len(offsets) > 1 or not np.array_equal(passes[0][:, 0], passes[1][:, 0])
    again = [x.numpy() for x, _ in lm_train_dataset(ids, 16, 4, seed=3).take(per_pass)]
    np.testing.assert_array_equal(np.concatenate(again), passes[0])  # seeded: reproducible


def test_eval_dataset_covers_every_window_once_in_order():
    ids = np.arange(1, 1001, dtype=np.int32)
    xs = np.concatenate([x.numpy() for x, _ in lm_eval_dataset(ids, 16, 8)])
    assert len(xs) == (1000 - 16) // 16
    np.testing.assert_array_equal(xs[:, 0], 1 + 16 * np.arange(len(xs)))


def test_text_too_short_for_one_batch_is_a_clear_error():
    with pytest.raises(UserInputError, match="too short"):
        lm_train_dataset(np.arange(50, dtype=np.int32), 16, 8)


@pytest.mark.parametrize(
    "content, message",
    [(None, "not found"), (b"", "empty"), (b"  \n\n ", "empty"), (b"ok \xff\xfe bad", "not UTF-8")],
)
def test_read_text_errors(tmp_path, content, message):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserInputError, match=message):
        load_text(str(path))


def test_shakespeare_comes_from_the_keras_cache(tmp_path, monkeypatch):
    content = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / sources.SHAKESPEARE_FNAME).write_bytes(content)
    monkeypatch.setattr(sources, "SHAKESPEARE_SHA256", hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(sources, "SHAKESPEARE_URL", "http://127.0.0.1:9/unreachable.txt")
    assert load_text(cache_dir=str(tmp_path)) == content.decode()


def test_shakespeare_without_cache_or_network_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "SHAKESPEARE_URL", "http://127.0.0.1:9/unreachable.txt")
    with pytest.raises(UserInputError) as error:
        load_text(cache_dir=str(tmp_path))
    message = str(error.value)
    assert os.path.join(str(tmp_path), "datasets", "tinyshakespeare.txt") in message
    assert "--data" in message and "\n" not in message


def test_shakespeare_download_failure_without_cache_dir_names_the_keras_home(tmp_path, monkeypatch):
    """The default cache (no `cache_dir`): the message names $KERAS_HOME/datasets/..."""

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(sources.keras.utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UserInputError) as error:
        load_text()
    message = str(error.value)
    assert os.path.join(str(tmp_path), "datasets", "tinyshakespeare.txt") in message
    assert "no network" in message and "\n" not in message
