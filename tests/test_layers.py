"""Behaviour of each layer: causality, masks, positions, and the common checks."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_transformer.layers import (
    CausalSelfAttention,
    CrossAttention,
    FeedForward,
    GlobalSelfAttention,
    PositionalEmbedding,
    TransformerBlock,
    sinusoidal_positions,
)
from keras_transformer.layers.folded_bias import matmul_folded_bias

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 7, 16)).astype("float32")
CONTEXT = RNG.normal(size=(2, 11, 16)).astype("float32")  # a different length on purpose
IDS = RNG.integers(1, 50, size=(2, 7)).astype("int32")

LAYERS = {
    "embedding_learned": (lambda: PositionalEmbedding(50, 16, 32, position="learned"), [IDS], (2, 7, 16)),
    "embedding_sinusoidal": (lambda: PositionalEmbedding(50, 16, 32, position="sinusoidal"), [IDS], (2, 7, 16)),
    "causal_attention": (lambda: CausalSelfAttention(num_heads=2, key_dim=8), [X], (2, 7, 16)),
    "global_attention": (lambda: GlobalSelfAttention(num_heads=2, key_dim=8), [X], (2, 7, 16)),
    "cross_attention": (lambda: CrossAttention(num_heads=2, key_dim=8), [X, CONTEXT], (2, 7, 16)),
    "feed_forward_gelu": (lambda: FeedForward(16, activation="gelu"), [X], (2, 7, 16)),
    "feed_forward_relu": (lambda: FeedForward(16, 24, activation="relu"), [X], (2, 7, 16)),
    "block_pre_ln": (lambda: TransformerBlock(16, 2), [X], (2, 7, 16)),
    "block_post_ln": (lambda: TransformerBlock(16, 2, norm_first=False, causal=False), [X], (2, 7, 16)),
    "block_cross": (lambda: TransformerBlock(16, 2, cross_attention=True), [X, CONTEXT], (2, 7, 16)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_common_checks(name, tmp_path):
    make_layer, inputs, shape = LAYERS[name]
    check_layer(make_layer, inputs, tmp_path, expected_shape=shape)


def test_sinusoidal_table_matches_the_formula():
    d_model = 16
    table = sinusoidal_positions(50, d_model)
    for pos in (0, 1, 7, 49):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_embedding_adds_the_table_to_scaled_tokens():
    layer = PositionalEmbedding(50, 16, 32, position="sinusoidal")
    out = keras.ops.convert_to_numpy(layer(IDS))
    tokens = keras.ops.convert_to_numpy(layer.token_embedding(IDS)) * math.sqrt(16)
    np.testing.assert_allclose(out - tokens, np.broadcast_to(sinusoidal_positions(7, 16), out.shape), atol=1e-5)
    assert not layer.trainable_weights[1:], "sinusoidal positions must not be trained"


def test_learned_positions_start_normal_with_std_002():
    layer = PositionalEmbedding(10, 64, 512, position="learned")
    layer.build((None, None))
    table = keras.ops.convert_to_numpy(layer.position_embeddings)
    assert table.std() == pytest.approx(0.02, rel=0.05)
    assert abs(table.mean()) < 0.002


def test_embedding_rejects_sequences_longer_than_max_len():
    layer = PositionalEmbedding(50, 16, max_len=4)
    with pytest.raises(ValueError, match="longer than max_len"):
        layer(IDS)


def test_embedding_propagates_padding_mask_when_asked():
    layer = PositionalEmbedding(50, 16, 32, mask_zero=True)
    ids = np.array([[5, 6, 0, 0]], "int32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.compute_mask(ids)), [[True, True, False, False]])
    assert PositionalEmbedding(50, 16, 32).compute_mask(ids) is None


def test_reverse_embedding_is_the_transposed_token_table():
    layer = PositionalEmbedding(50, 16, 32)
    layer(IDS)
    logits = keras.ops.convert_to_numpy(layer(X, reverse=True))
    table = keras.ops.convert_to_numpy(layer.token_embedding.embeddings)
    np.testing.assert_allclose(logits, X @ table.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_class", [CausalSelfAttention, TransformerBlock])
def test_causal_layers_ignore_the_future(layer_class):
    layer = layer_class(num_heads=2, key_dim=8) if layer_class is CausalSelfAttention else layer_class(16, 2)
    base = keras.ops.convert_to_numpy(layer(X))
    for t in range(X.shape[1] - 1):
        changed = X.copy()
        changed[:, t + 1:] = RNG.normal(size=changed[:, t + 1:].shape)
        out = keras.ops.convert_to_numpy(layer(changed))
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-3)


def test_global_attention_sees_the_future():
    layer = GlobalSelfAttention(num_heads=2, key_dim=8)
    base = keras.ops.convert_to_numpy(layer(X))
    changed = X.copy()
    changed[:, -1] += 1.0
    out = keras.ops.convert_to_numpy(layer(changed))
    assert not np.allclose(out[:, 0], base[:, 0], atol=1e-4)


@pytest.mark.parametrize("layer_class", [CausalSelfAttention, GlobalSelfAttention])
def test_padded_positions_get_no_attention(layer_class):
    layer = layer_class(num_heads=2, key_dim=8)
    # Row 0 is left-padded: the causal mask lets its real queries see those keys, so
    # only the padding mask can hide them. Row 1 is right-padded.
    mask = np.array([[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0]], bool)
    out, scores = layer(X, key_mask=mask, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores)
    for row, real in zip(scores, mask, strict=True):
        from_real = row[:, real]  # [heads, real queries, keys]
        assert np.all(from_real[..., ~real] == 0)
        np.testing.assert_allclose(from_real[..., real].sum(-1), 1.0, rtol=1e-5)
    changed = X.copy()
    changed[~mask] = RNG.normal(size=changed[~mask].shape) * 10
    out2 = keras.ops.convert_to_numpy(layer(changed, key_mask=mask))
    np.testing.assert_allclose(out2[mask], keras.ops.convert_to_numpy(out)[mask], atol=1e-5)


def test_cross_attention_respects_the_context_mask():
    layer = CrossAttention(num_heads=2, key_dim=8)
    context_mask = np.ones((2, 11), bool)
    context_mask[0, 5:] = False
    base = keras.ops.convert_to_numpy(layer(X, CONTEXT, key_mask=context_mask))
    changed = CONTEXT.copy()
    changed[0, 5:] += 5.0
    out = keras.ops.convert_to_numpy(layer(X, changed, key_mask=context_mask))
    np.testing.assert_allclose(out, base, atol=1e-5)
    unmasked = keras.ops.convert_to_numpy(layer(X, changed))
    assert not np.allclose(unmasked[0], base[0], atol=1e-3)


def test_post_ln_block_output_is_normalised_and_pre_ln_is_not():
    post = keras.ops.convert_to_numpy(TransformerBlock(16, 2, norm_first=False)(X * 5))
    pre = keras.ops.convert_to_numpy(TransformerBlock(16, 2, norm_first=True)(X * 5))
    np.testing.assert_allclose(post.mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(post.std(-1), 1, atol=1e-2)
    assert pre.std(-1).mean() > 2  # pre-LN keeps the residual stream's scale


def test_feed_forward_defaults_to_four_times_d_model():
    ffn = FeedForward(16)
    ffn(X)
    assert ffn.hidden.kernel.shape == (16, 64)


def test_matmul_folded_bias_is_the_product_plus_the_bias():
    """`[x, 1] @ [kernel; bias]` equals `x @ kernel + bias`, compiled with XLA as in a
    decoding loop and not, with and without a bias, in the input's dtype."""
    rng = np.random.default_rng(0)
    x, kernel, bias = rng.normal(size=(2, 3, 5)), rng.normal(size=(5, 4)), rng.normal(size=4)
    x = x.astype("float32")
    compiled = tf.function(matmul_folded_bias, jit_compile=True)
    for fn in (matmul_folded_bias, compiled):
        np.testing.assert_allclose(fn(x, kernel, bias), x @ kernel + bias, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fn(x, kernel), x @ kernel, rtol=1e-5, atol=1e-5)
    half = matmul_folded_bias(keras.ops.cast(x, "bfloat16"), kernel, bias)
    assert half.dtype == "bfloat16"
    np.testing.assert_allclose(keras.ops.cast(half, "float32"), x @ kernel + bias, rtol=0.05, atol=0.1)
