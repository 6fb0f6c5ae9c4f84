"""Attention weights read back from trained-model layers (what the notebooks draw)."""

import numpy as np
import pytest

from keras_transformer import TransformerConfig, UserInputError, build_gpt, build_seq2seq
from keras_transformer.layers import TransformerBlock
from keras_transformer.models.attention_maps import (
    gpt_attention_maps,
    seq2seq_cross_attention_maps,
)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_returns_the_scores_of_its_attention_without_changing_its_output(norm_first):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 16)).astype("float32")
    context = rng.normal(size=(2, 4, 16)).astype("float32")
    context_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    block = TransformerBlock(16, 2, cross_attention=True, norm_first=norm_first)
    plain = block(x, context=context, context_mask=context_mask)
    out, scores = block(x, context=context, context_mask=context_mask, return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(out), np.asarray(plain), atol=1e-6)
    h = block.self_attention_norm(x) if norm_first else x
    _, expected = block.self_attention(h, return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(scores["self_attention"]), np.asarray(expected), atol=1e-6)
    cross = np.asarray(scores["cross_attention"])
    assert cross.shape == (2, 2, 6, 4)
    np.testing.assert_array_equal(cross[0, :, :, 3], 0.0)
    np.testing.assert_array_equal(cross[1, :, :, 2:], 0.0)
    with pytest.raises(ValueError, match="cached"):
        block(x, cache=(x, x), return_attention_scores=True)


def test_gpt_maps_are_causal_distributions_one_per_block():
    config = TransformerConfig(vocab_size=12, max_len=16, num_layers=3, d_model=16, num_heads=4)
    model = build_gpt(config)
    ids = np.random.default_rng(1).integers(1, 12, size=(2, 9)).astype("int32")
    maps = gpt_attention_maps(model, ids)
    assert [m.shape for m in maps] == [(2, 4, 9, 9)] * 3
    for weights in maps:
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(np.triu(weights, k=1), 0.0)
    # Later blocks see what earlier blocks made of the tokens: their maps differ.
    assert not np.allclose(maps[0], maps[1])


def test_seq2seq_cross_attention_ignores_padded_source_tokens():
    config = TransformerConfig(vocab_size=20, max_len=16, num_layers=2, d_model=16, num_heads=2)
    model = build_seq2seq(config)
    source = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 0, 0, 0, 0]], "int32")
    target = np.array([[1, 4, 4], [1, 3, 0]], "int32")
    maps = seq2seq_cross_attention_maps(model, source, target)
    assert [m.shape for m in maps] == [(2, 2, 3, 6)] * 2
    for weights in maps:
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(weights[0, :, :, 4:], 0.0)
        np.testing.assert_array_equal(weights[1, :, :, 2:], 0.0)
    with pytest.raises(UserInputError, match="not an encoder-decoder"):
        seq2seq_cross_attention_maps(build_gpt(config), source, target)
