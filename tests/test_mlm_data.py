"""BERT pretraining data: masking statistics, special tokens, sentence pairs."""

import numpy as np
import tensorflow as tf
from conftest import make_text

from keras_transformer.data import CharTokenizer
from keras_transformer.data.mlm import SPECIALS, mask_tokens, mlm_train_dataset


def test_masking_statistics_and_never_special_or_padding():
    num_chars, mask_id = 60, 63  # ids 61, 62, 63: [CLS], [SEP], [MASK]
    rng = np.random.default_rng(0)
    ids = rng.integers(1, num_chars + 1, size=(400, 256)).astype("int32")
    ids[:, 0] = 61
    ids[:, 100] = 62
    ids[:, -1] = 62
    ids[::3, 200:] = 0  # padding in a third of the rows
    inputs, labels, weights = (t.numpy() for t in mask_tokens(ids, tf.constant([3, 4]), num_chars,
                                                               mask_id))
    np.testing.assert_array_equal(labels, ids)
    ordinary = (ids >= 1) & (ids <= num_chars)
    chosen = weights > 0
    # Never special tokens or padding, and those positions keep their id.
    assert not chosen[~ordinary].any()
    np.testing.assert_array_equal(inputs[~ordinary], ids[~ordinary])
    # Unchosen positions are untouched.
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])
    n = chosen.sum()
    assert abs(n / ordinary.sum() - 0.15) < 0.005
    masked = (inputs == mask_id) & chosen
    kept = (inputs == ids) & chosen
    randomised = chosen & ~masked & ~kept
    assert abs(masked.sum() / n - 0.80) < 0.01
    # A random replacement equals the original 1 time in num_chars: counted as kept.
    assert abs(kept.sum() / n - (0.10 + 0.10 / num_chars)) < 0.01
    assert abs(randomised.sum() / n - (0.10 - 0.10 / num_chars)) < 0.01
    assert ((inputs[randomised] >= 1) & (inputs[randomised] <= num_chars)).all()


def test_sentence_pair_batches():
    text = make_text(2000)
    tokenizer = CharTokenizer.from_text(text, SPECIALS)
    cls, sep, mask = (tokenizer.special_id(s) for s in SPECIALS)
    ids = tokenizer.encode(text)
    x, y, w = next(iter(mlm_train_dataset(ids, tokenizer, seq_len=48, batch_size=256, seed=1)))
    tokens, segments = x["token_ids"].numpy(), x["segment_ids"].numpy()
    labels, is_next = y["mlm"].numpy(), y["nsp"].numpy()
    weights = w["mlm"].numpy()
    assert tokens.shape == segments.shape == (256, 48)
    assert (labels[:, 0] == cls).all() and (labels[:, -1] == sep).all()
    assert ((labels == sep).sum(axis=1) == 2).all()
    assert (weights[labels > tokenizer.num_chars] == 0).all()  # no loss on [CLS]/[SEP]
    assert ((tokens == mask) == ((weights > 0) & (tokens == mask))).all()
    for row in range(256):
        second = np.flatnonzero(labels[row] == sep)[0]
        np.testing.assert_array_equal(segments[row], (np.arange(48) > second).astype(int))
    assert 0.35 < is_next.mean() < 0.65
    # "B follows A": the row without specials is a contiguous stretch of the text.
    text_ids = ids.tolist()
    joined = "".join(map(chr, text_ids))
    for row in np.flatnonzero(is_next)[:20]:
        plain = [t for t in labels[row] if t <= tokenizer.num_chars]
        assert "".join(map(chr, plain)) in joined
