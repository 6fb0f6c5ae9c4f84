"""Sampling rules and the decoding loop, checked against plain numpy references."""

import numpy as np
import pytest
import tensorflow as tf
from decoding_reference import reference_greedy

from keras_transformer import TransformerConfig, UserInputError, build_gpt, generate
from keras_transformer.data import CharTokenizer
from keras_transformer.generation import Decoder, filter_logits, sample_next

LOGITS = np.log(np.array([[0.05, 0.4, 0.1, 0.3, 0.15], [0.2, 0.2, 0.2, 0.2, 0.2]], "float32"))


def _kept(filtered):
    return np.isfinite(filtered.numpy())


def test_top_k_keeps_the_k_largest():
    kept = _kept(filter_logits(LOGITS[:1], top_k=2, top_p=1.0))
    np.testing.assert_array_equal(kept, [[False, True, False, True, False]])
    assert _kept(filter_logits(LOGITS, top_k=0, top_p=1.0)).all()


def test_top_p_keeps_the_smallest_nucleus():
    # sorted probabilities 0.4, 0.3, 0.15, 0.1, 0.05: 0.4 + 0.3 >= 0.6 -> two tokens
    kept = _kept(filter_logits(LOGITS[:1], top_k=0, top_p=0.6))
    np.testing.assert_array_equal(kept, [[False, True, False, True, False]])
    kept = _kept(filter_logits(LOGITS[:1], top_k=0, top_p=0.71))
    np.testing.assert_array_equal(kept, [[False, True, False, True, True]])
    assert _kept(filter_logits(LOGITS[:1], top_k=0, top_p=0.01)).sum() == 1


def test_temperature_zero_is_greedy():
    tokens = sample_next(LOGITS, 0.0, 0, 1.0, tf.constant([1, 2]))
    np.testing.assert_array_equal(tokens.numpy(), np.argmax(LOGITS, -1))


def test_sampling_follows_the_softmax_and_is_seeded():
    logits = np.repeat(LOGITS[:1], 20000, axis=0)
    tokens = sample_next(logits, 1.0, 0, 1.0, tf.constant([7, 0])).numpy()
    frequencies = np.bincount(tokens, minlength=5) / len(tokens)
    np.testing.assert_allclose(frequencies, [0.05, 0.4, 0.1, 0.3, 0.15], atol=0.015)
    again = sample_next(logits, 1.0, 0, 1.0, tf.constant([7, 0])).numpy()
    np.testing.assert_array_equal(tokens, again)
    other = sample_next(logits, 1.0, 0, 1.0, tf.constant([8, 0])).numpy()
    assert not np.array_equal(tokens, other)
    filtered = sample_next(logits, 1.0, 2, 1.0, tf.constant([7, 0])).numpy()
    assert set(np.unique(filtered)) == {1, 3}


@pytest.fixture(scope="module")
def tiny_model():
    return build_gpt(TransformerConfig(vocab_size=12, max_len=8, num_layers=2, d_model=16, num_heads=2))


def test_greedy_decoding_matches_full_recomputation_for_a_ragged_batch(tiny_model):
    prompts = [[3, 4, 5], [7], [1, 2, 3, 4, 5, 6, 7]]
    # 12 new tokens push every row past the 8-token window, so sliding is tested too.
    for use_cache, keep in ((True, 4), (False, None)):
        decoded = Decoder(tiny_model, slide=True, use_cache=use_cache)(
            prompts, max_new_tokens=12, temperature=0.0
        )
        expected = reference_greedy(tiny_model, prompts, 12, context=8, keep=keep)
        assert [new.tolist() for new in decoded] == expected, use_cache


def test_generate_returns_prompt_plus_continuation_and_is_reproducible(tiny_model):
    tokenizer = CharTokenizer(list("abcdefghijk"))
    first = generate(tiny_model, tokenizer, ["abc", "k"], max_new_tokens=9, temperature=1.0, seed=5)
    assert [len(t) for t in first] == [12, 10] and first[0].startswith("abc") and first[1].startswith("k")
    assert generate(tiny_model, tokenizer, ["abc", "k"], max_new_tokens=9, temperature=1.0, seed=5) == first
    single = generate(tiny_model, tokenizer, "abc", max_new_tokens=3, temperature=0.0)
    assert isinstance(single, str) and len(single) == 6


@pytest.mark.parametrize(
    "prompt, kwargs, message",
    [
        ("", {}, "empty"),
        ("abcdefghijk", {}, "longer than the model's context"),
        ("abz", {}, "not in the tokenizer's vocabulary"),
        ("abc", {"top_p": 0.0}, "top_p"),
        ("abc", {"top_k": -1}, "top_k"),
        ("abc", {"temperature": -1.0}, "temperature"),
    ],
)
def test_generate_rejects_bad_input(tiny_model, prompt, kwargs, message):
    tokenizer = CharTokenizer(list("abcdefghijk"))
    with pytest.raises(UserInputError, match=message):
        generate(tiny_model, tokenizer, prompt, max_new_tokens=2, **kwargs)
