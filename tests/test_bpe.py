"""The SentencePiece BPE tokenizer: round trips, byte fallback, sampling, saving, errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, make_text
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_transformer.data import load_tokenizer
from keras_transformer.data.bpe import SentencePieceTokenizer
from keras_transformer.data.pipelines import lm_train_dataset, sampled_ids

SHAKESPEARE = os.path.join(REPO, "..", "shared", "data", "tinyshakespeare.txt")
TEXT = make_text()
NUM_LINES = 4000  # 3,000 to train the tokenizer on, 1,000 held out


def _generated_play(num_lines=NUM_LINES, seed=0):
    """`num_lines` lines of a play like `make_text`'s, with a vocabulary large enough
    for 600 pieces (`make_text`'s 20 words support fewer than 500)."""
    rng = np.random.default_rng(seed)
    syllables = ["th", "ou", "ar", "ki", "ng", "lo", "rd", "ni", "ght", "sh", "al", "me", "wh",
                 "at", "fa", "ir", "da", "y", "be", "st", "en", "or", "qu", "ee", "no", "ble",
                 "gr", "ace", "mi", "ne", "'s", "dea", "th", "lov", "e", "sw", "ea", "r"]
    words = sorted({"".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(1500)})
    frequency = 1.0 / np.arange(1, len(words) + 1)  # a few common words, many rare ones
    speakers = [word.upper() for word in rng.choice(words, size=12, replace=False)]
    lines = []
    while len(lines) < num_lines:
        lines.append(f"{rng.choice(speakers)}:\n")
        for _ in range(rng.integers(1, 5)):
            sentence = " ".join(rng.choice(words, size=rng.integers(3, 10),
                                           p=frequency / frequency.sum()))
            lines.append(sentence.capitalize() + rng.choice([".", ",", "!", "?", ";", ":"]) + "\n")
        lines.append("\n")
    return lines[:num_lines]


def _shakespeare_lines():
    """The first 4,000 lines of Tiny Shakespeare (the shared copy)."""
    with open(SHAKESPEARE, encoding="utf-8") as handle:
        return handle.read().splitlines(keepends=True)[:NUM_LINES]


# Every test of this fixture runs on the generated play (no file needed) and, when
# the shared copy is there, on Tiny Shakespeare too.
@pytest.fixture(scope="module", params=["generated", "shakespeare"])
def shakespeare_bpe(request):
    if request.param == "generated":
        lines = _generated_play()
    elif os.path.exists(SHAKESPEARE):
        lines = _shakespeare_lines()
    else:
        pytest.skip(f"no shared Tiny Shakespeare copy at {os.path.normpath(SHAKESPEARE)}; "
                    "the generated play still runs these tests")
    train, held_out = lines[:3000], lines[3000:]
    assert len(lines) == NUM_LINES, "the text must leave 1,000 held-out lines"
    assert sum(line not in set(train) for line in held_out) > 300  # lines never trained on
    return SentencePieceTokenizer.from_text("".join(train), vocab_size=600), lines


@pytest.fixture(scope="module")
def bert_bpe():
    return SentencePieceTokenizer.from_text(TEXT, vocab_size=360, specials=["[CLS]", "[SEP]", "[MASK]"])


def test_ids_layout_and_specials(bert_bpe):
    tokenizer = bert_bpe
    assert tokenizer.kind == "bpe" and tokenizer.vocab_size == 360
    assert [tokenizer.special_id(n) for n in ("<pad>", "<unk>", "<s>", "</s>")] == [0, 1, 2, 3]
    assert [tokenizer.special_id(n) for n in ("[CLS]", "[SEP]", "[MASK]")] == [4, 5, 6]
    assert tokenizer.ordinary_ids == (7, 359)
    ids = tokenizer.encode(TEXT)
    assert ids.dtype == np.int32
    assert ids.min() >= 7 and ids.max() <= 359  # text never encodes to a special
    assert tokenizer.encode("[MASK]").tolist() != [6]  # the name in text is just characters
    # Specials decode by name, padding and <s>/</s> vanish.
    hello = tokenizer.encode("thou art").tolist()
    assert tokenizer.decode([0, 2, 4, *hello, 6, 3, 0]) == "[CLS]thou art[MASK]"


def test_round_trip_on_shakespeare_lines(shakespeare_bpe):
    tokenizer, lines = shakespeare_bpe
    held_out = lines[3000:]  # lines the tokenizer was not trained on
    for line in held_out[:500]:
        assert tokenizer.decode(tokenizer.encode(line)) == tokenizer.normalize(line)
    block = "".join(held_out)
    ids = tokenizer.encode(block)
    assert tokenizer.decode(ids) == tokenizer.normalize(block) == block  # ASCII: NFKC keeps it
    # Line by line ids concatenate to the ids of the whole text (what sampled_ids relies on).
    np.testing.assert_array_equal(np.concatenate([tokenizer.encode(x) for x in held_out]), ids)
    assert len(ids) < 0.6 * len(block)  # merges were learned: fewer tokens than characters


# Any Unicode text that is valid UTF-8 (no lone surrogates).
unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(text=unicode_text)
def test_round_trip_on_random_unicode(shakespeare_bpe, text):
    tokenizer, _ = shakespeare_bpe
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == tokenizer.normalize(text)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab Z.\n\t\r  \x0b"), max_size=60))
def test_whitespace_and_ascii_round_trip_exactly(shakespeare_bpe, text):
    # NFKC leaves ASCII alone: leading, trailing and repeated spaces, tabs and
    # newlines must all come back (the tokenizer's own normalizer is not the judge).
    tokenizer, _ = shakespeare_bpe
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=80))
def test_byte_fallback_never_gives_unk(shakespeare_bpe, data):
    tokenizer, _ = shakespeare_bpe
    text = data.decode("utf-8", errors="replace")  # any bytes made into valid UTF-8 text
    ids = tokenizer.encode(text)
    assert tokenizer.special_id("<unk>") not in ids.tolist()
    assert 0 not in ids.tolist()


def test_characters_never_seen_become_bytes(shakespeare_bpe):
    tokenizer, _ = shakespeare_bpe
    text = "✓ 漢字 🙂"
    ids = tokenizer.encode(text)
    assert 1 not in ids.tolist()
    byte_ids = [i for i in ids.tolist() if tokenizer._sp.is_byte(i)]
    assert len(byte_ids) == len("✓漢字🙂".encode())  # every unseen character is its UTF-8 bytes
    assert tokenizer.decode(ids) == text


def test_sampling_varies_while_evaluation_encoding_is_deterministic(shakespeare_bpe):
    tokenizer, lines = shakespeare_bpe
    line = tf.constant(["".join(lines[3000:3010])])
    sampler = tokenizer.tf_tokenizer(sampling=True)
    samples = [tuple(sampler.tokenize(line).flat_values.numpy().tolist()) for _ in range(8)]
    assert len(set(samples)) > 1, "subword sampling gave the same segmentation every time"
    for sample in samples:  # every sample spells the same text
        assert tokenizer.decode(sample) == "".join(lines[3000:3010])
    exact = tokenizer.tf_tokenizer(sampling=False)
    runs = [exact.tokenize(line).flat_values.numpy() for _ in range(3)]
    expected = tokenizer.encode("".join(lines[3000:3010]))
    for run in runs:
        np.testing.assert_array_equal(run, expected)


def test_training_passes_see_other_segmentations(shakespeare_bpe):
    tokenizer, lines = shakespeare_bpe
    text = "".join(lines[:600])
    ids = tokenizer.encode(text)
    resample = sampled_ids(lambda: tokenizer.tf_tokenizer(sampling=True), text)
    first, second = (resample(tf.constant([0, i], tf.int64)).numpy() for i in range(2))
    assert tokenizer.decode(first) == tokenizer.decode(second) == text
    assert not np.array_equal(first, second)
    dataset = lm_train_dataset(ids, seq_len=32, batch_size=4, seed=0, resample=resample)
    for x, y in dataset.take(5):
        x, y = x.numpy(), y.numpy()
        assert x.shape == y.shape == (4, 32)
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets: inputs shifted by one


def test_training_is_deterministic(shakespeare_bpe):
    tokenizer, lines = shakespeare_bpe
    again = SentencePieceTokenizer.from_text("".join(lines[:3000]), vocab_size=600)
    assert again.proto == tokenizer.proto


def test_saves_and_loads_beside_the_json(tmp_path, bert_bpe):
    path = tmp_path / "tokenizer.json"
    bert_bpe.save(str(path))
    assert (tmp_path / "tokenizer.model").read_bytes() == bert_bpe.proto
    spec = json.loads(path.read_text())
    assert spec["kind"] == "bpe" and spec["model"] == "tokenizer.model"
    assert spec["vocab_size"] == 360 and spec["specials"] == ["[CLS]", "[SEP]", "[MASK]"]
    loaded = load_tokenizer(str(path))
    assert isinstance(loaded, SentencePieceTokenizer)
    np.testing.assert_array_equal(loaded.encode(TEXT), bert_bpe.encode(TEXT))
    assert loaded.special_id("[MASK]") == 6 and loaded.ordinary_ids == bert_bpe.ordinary_ids


def test_missing_or_corrupt_model_file_is_a_clear_error(tmp_path, bert_bpe):
    from keras_transformer.errors import UserInputError

    path = tmp_path / "tokenizer.json"
    bert_bpe.save(str(path))
    (tmp_path / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(UserInputError, match="not a SentencePiece model"):
        load_tokenizer(str(path))
    os.remove(tmp_path / "tokenizer.model")
    with pytest.raises(UserInputError, match="SentencePiece model of .* is missing"):
        load_tokenizer(str(path))


@pytest.mark.parametrize("vocab_size, message", [
    (100_000, r"--vocab-size 100000 is larger than this training text supports: SentencePiece "
              r"can make at most (\d+) pieces from it; use --vocab-size \1 or less"),
    (200, r"--vocab-size 200 is too small for this training text: it needs at least \d+"),
])
def test_vocabulary_size_the_text_cannot_support(vocab_size, message):
    from keras_transformer.errors import UserInputError

    with pytest.raises(UserInputError, match=message) as error:
        SentencePieceTokenizer.from_text(TEXT, vocab_size=vocab_size)
    assert "\n" not in str(error.value)
    if vocab_size > 1000:  # the size the message names does train
        largest = int(str(error.value).split("at most ")[1].split()[0])
        assert SentencePieceTokenizer.from_text(TEXT, vocab_size=largest).vocab_size == largest
