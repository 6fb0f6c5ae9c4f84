"""T5's relative position bias and the attention options that go with it.

`RelativePositionBias` buckets against `transformers`' own bucketing
function; the attention's additive bias, unscaled scores and precomputed
context keys against the plain computation they stand for; and the config
fields that choose them, with their one-line refusals.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from layer_checks import check_layer  # noqa: E402

from keras_transformer import TransformerConfig, UserInputError  # noqa: E402
from keras_transformer.layers import (  # noqa: E402
    CrossAttention,
    GroupedQueryAttention,
    RelativePositionBias,
    TransformerBlock,
    relative_position_bucket,
)
from keras_transformer.models import build_bert, build_gpt, build_seq2seq  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 7, 16)).astype("float32")
CONTEXT = RNG.normal(size=(2, 11, 16)).astype("float32")
IDS = RNG.integers(1, 50, size=(2, 7)).astype("int32")
# Distances up to 3x the largest max_distance below, both signs.
GRID = np.arange(-400, 401)


@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (8, 20), (6, 7), (33, 100)])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_buckets_are_transformers_buckets(num_buckets, max_distance, bidirectional):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers.models.t5.modeling_t5 import T5Attention

    expected = T5Attention._relative_position_bucket(
        torch.tensor(GRID), bidirectional=bidirectional, num_buckets=num_buckets,
        max_distance=max_distance).numpy()
    ours = np.asarray(relative_position_bucket(GRID, bidirectional, num_buckets, max_distance))
    np.testing.assert_array_equal(ours, expected)
    # What the grid covers: every bucket (but, bidirectional, "distance 0 after the
    # query", which cannot be), and the last one from max_distance on.
    half = num_buckets // 2
    used = set(range(2 * half)) - {half} if bidirectional else set(range(num_buckets))
    assert set(ours.tolist()) == used
    far = GRID + max_distance <= 0
    assert (ours[far] == ours[far][0]).all()


def test_the_bias_is_the_table_at_each_pairs_bucket():
    layer = RelativePositionBias(num_heads=3, num_buckets=8, max_distance=20, bidirectional=False)
    bias = np.asarray(layer(np.zeros((2, 9), "int32")))
    assert bias.shape == (1, 3, 9, 9) and bias.dtype == np.float32
    table = np.asarray(layer.embeddings)
    for q in range(9):
        for k in range(9):
            bucket = int(relative_position_bucket(np.array(k - q), False, 8, 20))
            np.testing.assert_array_equal(bias[0, :, q, k], table[bucket])
    # A cached decoding step: one query at position 6 over 9 cache slots is row 6.
    step = layer(np.zeros((2, 1), "int32"), query_positions=np.array([6]),
                 key_positions=np.arange(9))
    np.testing.assert_array_equal(np.asarray(step)[0, :, 0], bias[0, :, 6])


def test_relative_position_bias_common_checks(tmp_path):
    def make():
        return RelativePositionBias(num_heads=2, num_buckets=8, max_distance=20)

    check_layer(make, [IDS[:1]], tmp_path, expected_shape=(1, 2, 7, 7))


def _reference_attention(layer, query, context, bias, mask, scale):
    """softmax((q k^T) * scale + bias, masked) v, through the layer's own weights."""
    q = np.einsum("btc,cnd->btnd", query, np.asarray(layer.query_dense.kernel))
    k = np.einsum("bsc,cnd->bsnd", context, np.asarray(layer.key_dense.kernel))
    v = np.einsum("bsc,cnd->bsnd", context, np.asarray(layer.value_dense.kernel))
    scores = np.einsum("btnd,bsnd->bnts", q, k) * scale + bias
    scores = np.where(mask[:, None, None, :], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bnts,bsnd->btnd", weights, v)
    return np.einsum("btnd,ndc->btc", out, np.asarray(layer.output_dense.kernel))


@pytest.mark.parametrize("scale_attention", [True, False])
def test_attention_adds_the_bias_and_scales_only_when_asked(scale_attention):
    layer = GroupedQueryAttention(num_heads=2, key_dim=8, use_bias=False,
                                  scale_attention=scale_attention)
    bias = RNG.normal(size=(1, 2, 7, 11)).astype("float32") * 3
    mask = np.ones((2, 11), bool)
    mask[1, 6:] = False
    # A huge bias on a masked key must not make it visible.
    bias[..., 8] = 1e4
    out = np.asarray(layer(X, CONTEXT, key_mask=mask, attention_bias=bias))
    scale = 8 ** -0.5 if scale_attention else 1.0
    expected = _reference_attention(layer, X, CONTEXT, bias, mask, scale)
    np.testing.assert_allclose(out[1], expected[1], rtol=1e-4, atol=1e-5)
    # Row 0 sees key 8, whose bias takes all the weight: its value, projected.
    np.testing.assert_allclose(out[0], expected[0], rtol=1e-4, atol=1e-5)
    other = _reference_attention(layer, X, CONTEXT, bias, mask, 8 ** -0.5 if not
                                 scale_attention else 1.0)
    assert np.abs(other[1] - expected[1]).max() > 1e-3  # the scaling matters here


def test_precomputed_context_keys_give_the_same_cross_attention():
    layer = CrossAttention(num_heads=2, key_dim=8)
    mask = np.ones((2, 11), bool)
    mask[0, 4:] = False
    direct = np.asarray(layer(X, CONTEXT, key_mask=mask))
    keys, values = layer.project_key_value(CONTEXT)
    assert tuple(keys.shape) == (2, 11, 2, 8)
    reused = np.asarray(layer(X, key_value=(keys, values), key_mask=mask))
    np.testing.assert_allclose(reused, direct, rtol=1e-6, atol=1e-6)
    block = TransformerBlock(16, 2, cross_attention=True, scale_attention=False, key_dim=5)
    direct = np.asarray(block(X, context=CONTEXT, context_mask=mask))
    reused = np.asarray(block(X, context_key_value=block.cross_key_value(CONTEXT),
                              context_mask=mask))
    np.testing.assert_allclose(reused, direct, rtol=1e-6, atol=1e-6)
    assert block.self_attention.key_dense.kernel.shape == (16, 2, 5)


def test_a_block_with_a_bias_round_trips_and_chunked_attention_refuses_one():
    block = TransformerBlock(16, 2, key_dim=6, scale_attention=False, causal=False)
    clone = TransformerBlock.from_config(block.get_config())
    assert (clone.key_dim, clone.scale_attention) == (6, False)
    bias = RelativePositionBias(2, 8, 20)(X)
    with_bias = np.asarray(block(X, attention_bias=bias))
    assert np.abs(with_bias - np.asarray(block(X))).max() > 1e-4
    chunked = GroupedQueryAttention(num_heads=2, key_dim=8, attention="chunked")
    with pytest.raises(UserInputError, match="chunked attention takes no attention bias"):
        chunked(X, attention_bias=bias)


TINY = dict(vocab_size=30, max_len=16, num_layers=1, d_model=16, num_heads=2)


@pytest.mark.parametrize("changes, expected", [
    (dict(relative_buckets=16), "relative_buckets=16 and relative_max_distance=128 apply to "
                                "position='relative' only"),
    (dict(position="relative", relative_buckets=3), "relative_buckets must be >= 4"),
    (dict(position="relative", relative_buckets=8, relative_max_distance=4),
     "relative_max_distance (4) must exceed relative_buckets // 2 (4)"),
    (dict(position="relative", attention="chunked"), "attention='chunked' cannot add"),
    (dict(key_dim=0), "key_dim must be a positive integer or None"),
    (dict(scale_attention="no"), "scale_attention must be true or false"),
    (dict(d_model=18, num_heads=4), "d_model (18) must be divisible by num_heads (4)"),
])
def test_bad_t5_fields_are_one_line(changes, expected):
    with pytest.raises(UserInputError) as error:
        TransformerConfig(**{**TINY, **changes})
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("changes, expected", [
    (dict(position="relative"), "position='relative' (T5's relative position bias) applies to "
                                "encoder-decoders only, not to a GPT"),
    (dict(scale_attention=False), "scale_attention=False applies to encoder-decoders only"),
    (dict(scale_output=True), "scale_output=True applies to encoder-decoders only"),
    (dict(key_dim=4), "key_dim=4 (heads narrower or wider than d_model / num_heads) applies"),
])
def test_gpt_and_bert_refuse_t5_options(changes, expected):
    config = TransformerConfig(**{**TINY, **changes})
    for build in (build_gpt, build_bert):
        with pytest.raises(UserInputError) as error:
            build(config)
        assert expected.replace("a GPT", "") in str(error.value)
    # The encoder-decoder honours them: a head width other than d_model / num_heads.
    model = build_seq2seq(TransformerConfig(**{**TINY, "key_dim": 5, "d_model": 18}))
    assert model.decoder_blocks[0].cross_attention_layer.query_dense.kernel.shape == (18, 2, 5)
    keras.backend.clear_session()
