"""RoPE, grouped-query attention, RMSNorm, SwiGLU, chunked attention, the fused activations and batched_matmul, checked against references."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_transformer import TransformerConfig, UserInputError, build_gpt
from keras_transformer.layers import (
    CausalSelfAttention,
    FeedForward,
    GlobalSelfAttention,
    GroupedQueryAttention,
    PositionalEmbedding,
    RMSNormalization,
    RotaryEmbedding,
    TransformerBlock,
    activations,
    chunked_attention,
)
from keras_transformer.layers.batched_matmul import batched_matmul

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 7, 16)).astype("float32")
HEADS = RNG.normal(size=(2, 7, 4, 8)).astype("float32")
IDS = RNG.integers(1, 50, size=(2, 7)).astype("int32")
PADDING = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)

LAYERS = {
    "rotary": (lambda: RotaryEmbedding(), [HEADS], (2, 7, 4, 8)),
    "rms_norm": (lambda: RMSNormalization(), [X], (2, 7, 16)),
    "feed_forward_swiglu": (lambda: FeedForward(16, 24, activation="swiglu"), [X], (2, 7, 16)),
    "embedding_rope": (lambda: PositionalEmbedding(50, 16, 32, position="rope"), [IDS], (2, 7, 16)),
    "grouped_query_attention": (
        lambda: GroupedQueryAttention(num_heads=4, key_dim=4, num_kv_heads=2), [X], (2, 7, 16)),
    "causal_attention_gqa_rope": (
        lambda: CausalSelfAttention(num_heads=4, key_dim=4, num_kv_heads=1, rotary=True), [X], (2, 7, 16)),
    "causal_attention_chunked": (
        lambda: CausalSelfAttention(num_heads=2, key_dim=8, attention="chunked", attention_block_size=3), [X], (2, 7, 16)),
    "global_attention_chunked": (
        lambda: GlobalSelfAttention(num_heads=2, key_dim=8, num_kv_heads=1, attention="chunked", attention_block_size=4),
        [X], (2, 7, 16)),
    "block_modern": (
        lambda: TransformerBlock(16, 4, num_kv_heads=2, rotary=True, norm="rms", activation="swiglu"),
        [X], (2, 7, 16)),
    "block_chunked": (
        lambda: TransformerBlock(16, 2, attention="chunked", attention_block_size=4), [X], (2, 7, 16)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_new_layer_common_checks(name, tmp_path):
    make_layer, inputs, shape = LAYERS[name]
    check_layer(make_layer, inputs, tmp_path, expected_shape=shape)


# --- RoPE -------------------------------------------------------------------

def _rope_at(vector, position):
    rope = RotaryEmbedding()
    return keras.ops.convert_to_numpy(
        rope(vector[None, None, None, :], positions=np.array([position], "int32"))
    )[0, 0, 0]


def test_rope_score_depends_only_on_the_relative_position():
    q, k = RNG.normal(size=(2, 16)).astype("float32")
    for m, n in [(0, 0), (5, 2), (3, 9), (40, 1)]:
        score = _rope_at(q, m) @ _rope_at(k, n)
        for shift in (1, 7, 100):
            shifted = _rope_at(q, m + shift) @ _rope_at(k, n + shift)
            assert shifted == pytest.approx(score, rel=1e-4, abs=1e-4)
    # ... and it does depend on the relative position.
    assert abs(_rope_at(q, 5) @ _rope_at(k, 2) - _rope_at(q, 2) @ _rope_at(k, 5)) > 1e-3


def test_rope_preserves_norms_and_is_the_identity_at_position_zero():
    rotated = keras.ops.convert_to_numpy(RotaryEmbedding()(HEADS))
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=-1), np.linalg.norm(HEADS, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(rotated[:, 0], HEADS[:, 0], atol=1e-6)
    assert not np.allclose(rotated[:, 1:], HEADS[:, 1:], atol=1e-3)


def test_rope_position_adds_no_parameters():
    tiny = dict(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4)
    learned = build_gpt(TransformerConfig(**tiny)).count_params()
    rope = build_gpt(TransformerConfig(**tiny, position="rope")).count_params()
    assert learned - rope == 16 * 32


# --- grouped-query attention ---------------------------------------------------

def _copy_weights(source, target):
    target.set_weights(source.get_weights())


@pytest.mark.parametrize("causal", [False, True])
def test_gqa_with_all_kv_heads_equals_keras_multi_head_attention(causal):
    ours = GroupedQueryAttention(num_heads=4, key_dim=4, causal=causal)
    theirs = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4)
    ours(X, X)
    theirs(X, X)
    _copy_weights(theirs, ours)
    mask = PADDING[:, None, :].repeat(7, axis=1)
    expected = theirs(X, X, attention_mask=mask, use_causal_mask=causal)
    got = ours(X, X, key_mask=PADDING)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(expected),
                               rtol=1e-5, atol=1e-6)
    causal_layer = CausalSelfAttention(num_heads=4, key_dim=4, num_kv_heads=1)
    causal_layer(X)
    assert isinstance(causal_layer, keras.layers.MultiHeadAttention) and causal_layer.causal


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("shapes", [((2, 3, 8, 4), (2, 3, 4, 8)),   # a no larger: swap(a) @ dy
                                    ((2, 3, 8, 8), (2, 3, 8, 2))])  # a larger: swap(swap(dy) @ a)
def test_batched_matmul_has_the_values_and_gradients_of_matmul(shapes, jit):
    a, b = (tf.constant(RNG.normal(size=shape), tf.float32) for shape in shapes)
    upstream = tf.constant(RNG.normal(size=shapes[0][:-1] + shapes[1][-1:]), tf.float32)

    def value_and_grads(matmul):
        @tf.function(jit_compile=jit)
        def run(a, b):
            with tf.GradientTape() as tape:
                tape.watch([a, b])
                y = matmul(a, b)
                loss = tf.reduce_sum(y * upstream)
            return [y, *tape.gradient(loss, [a, b])]
        return [t.numpy() for t in run(a, b)]

    for got, want in zip(value_and_grads(batched_matmul), value_and_grads(tf.matmul), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_kv_heads", [4, 2])
def test_attention_gradients_equal_keras_multi_head_attention(num_kv_heads):
    """The batched matmuls' own gradient (`batched_matmul`) gives autodiff's gradients: ours
    with every kv head against keras' MultiHeadAttention; with fewer, the gradients of its
    query and output weights, and the sums over each group of its key and value weights."""
    ours = GroupedQueryAttention(num_heads=4, key_dim=4, num_kv_heads=num_kv_heads, causal=True,
                                 bias_initializer="random_normal")
    theirs = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4,
                                             bias_initializer="random_normal")
    ours(X, X)
    theirs(X, X)
    if num_kv_heads == 4:
        _copy_weights(theirs, ours)
    else:  # their key and value heads: ours repeated for each group
        for mine, other in zip(ours.weights, theirs.weights, strict=True):
            value = keras.ops.convert_to_numpy(mine)
            if mine.shape != other.shape:
                value = np.repeat(value, 4 // num_kv_heads, axis=-2)
            other.assign(value)
    x = tf.constant(X)

    @tf.function(jit_compile=True)
    def grads(layer, causal):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, x, use_causal_mask=True) if causal is None else layer(x, x)
            loss = tf.reduce_sum(out * tf.sin(tf.range(16, dtype=tf.float32)))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    got = [g.numpy() for g in grads(ours, False)]
    want = [g.numpy() for g in grads(theirs, None)]
    for mine, theirs_grad, weight in zip(got, want, [x, *ours.trainable_weights], strict=True):
        if mine.shape != theirs_grad.shape:  # a kv weight: sum the gradient over its group
            theirs_grad = theirs_grad.reshape(
                theirs_grad.shape[:-2] + (num_kv_heads, -1, theirs_grad.shape[-1])).sum(-2)
        np.testing.assert_allclose(mine, theirs_grad, rtol=1e-4, atol=1e-5,
                                   err_msg=getattr(weight, "path", "input"))


KERAS_ACTIVATIONS = {
    "gelu_tanh": lambda x: keras.activations.gelu(x, approximate=True),
    "gelu_erf": lambda x: keras.activations.gelu(x, approximate=False),
    "silu": keras.activations.silu,
}


@pytest.mark.parametrize("compiled", [None, False, True])
@pytest.mark.parametrize("name", sorted(KERAS_ACTIVATIONS))
def test_fused_activations_have_the_values_and_gradients_of_keras(name, compiled):
    """Each fused activation (its derivative written out) against Keras' (autodiff's): eager,
    inside a graph, and inside an XLA-compiled function; bfloat16 in gives bfloat16 out."""
    ours, theirs = getattr(activations, name), KERAS_ACTIVATIONS[name]
    x = tf.constant(np.linspace(-7.0, 7.0, 301), tf.float32)
    upstream = tf.constant(RNG.normal(size=301), tf.float32)

    def value_and_grad(function):
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(x)
            return y, tape.gradient(y, x, output_gradients=upstream)
        if compiled is not None:
            run = tf.function(run, jit_compile=compiled)
        return [t.numpy() for t in run(x)]

    for got, want in zip(value_and_grad(ours), value_and_grad(theirs), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    half = ours(tf.cast(x, tf.bfloat16))
    assert half.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(half, tf.float32).numpy(), theirs(x).numpy(),
                               rtol=1e-2, atol=1e-2)


def _numpy_gqa(layer, x, causal):
    """Explicit reference: project, repeat each kv head for its group, softmax attention."""
    w = [keras.ops.convert_to_numpy(v) for v in layer.weights]
    names = [v.path.split("/")[-2] + "/" + v.name for v in layer.weights]
    p = dict(zip(names, w, strict=True))
    q = np.einsum("btd,dnh->btnh", x, p["query/kernel"]) + p["query/bias"]
    k = np.einsum("btd,dnh->btnh", x, p["key/kernel"]) + p["key/bias"]
    v = np.einsum("btd,dnh->btnh", x, p["value/kernel"]) + p["value/bias"]
    groups = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2)
    scores = np.einsum("bqnh,bknh->bnqk", q, k) / np.sqrt(q.shape[-1])
    if causal:
        scores = np.where(np.tril(np.ones((x.shape[1], x.shape[1]), bool)), scores, -1e9)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.einsum("bnqk,bknh->bqnh", probs, v)
    return np.einsum("bqnh,nhd->bqd", out, p["attention_output/kernel"]) + p["attention_output/bias"]


@pytest.mark.parametrize("num_kv_heads", [2, 1])
@pytest.mark.parametrize("causal", [False, True])
def test_gqa_with_fewer_kv_heads_matches_a_repeat_kv_reference(num_kv_heads, causal):
    layer = GroupedQueryAttention(num_heads=4, key_dim=4, num_kv_heads=num_kv_heads,
                                  causal=causal, bias_initializer="random_normal")
    got = keras.ops.convert_to_numpy(layer(X, X))
    assert layer._key_dense.kernel.shape == (16, num_kv_heads, 4)
    np.testing.assert_allclose(got, _numpy_gqa(layer, X, causal), rtol=1e-5, atol=1e-5)


def test_fewer_kv_heads_mean_fewer_parameters_and_a_smaller_cache():
    tiny = dict(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4)
    mha = TransformerConfig(**tiny)
    mqa = TransformerConfig(**tiny, num_kv_heads=1)
    diff = build_gpt(mha).count_params() - build_gpt(mqa).count_params()
    assert diff == 2 * 2 * (32 * 24 + 24)  # 2 layers x (key, value) x 3 fewer heads of 8
    assert mha.kv_cache_bytes_per_token() == 4 * mqa.kv_cache_bytes_per_token()
    with pytest.raises(UserInputError, match="num_kv_heads"):
        TransformerConfig(**{**tiny, "num_kv_heads": 3})


# --- RMSNorm and SwiGLU --------------------------------------------------------

def test_rms_norm_matches_the_formula():
    layer = RMSNormalization(epsilon=1e-6)
    out = keras.ops.convert_to_numpy(layer(X * 3))
    expected = X * 3 / np.sqrt(np.mean((X * 3) ** 2, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_swiglu_is_gated_with_two_thirds_width():
    ffn = FeedForward(16, 48, activation="swiglu", use_bias=False)
    out = keras.ops.convert_to_numpy(ffn(X))
    assert ffn.gate.kernel.shape == (16, 32) and ffn.hidden.kernel.shape == (16, 32)
    g, h, o = (keras.ops.convert_to_numpy(w) for w in (ffn.gate.kernel, ffn.hidden.kernel,
                                                       ffn.output_dense.kernel))
    gate = X @ g
    np.testing.assert_allclose(out, (gate / (1 + np.exp(-gate)) * (X @ h)) @ o, rtol=1e-4, atol=1e-5)


def test_modern_config_options_build_a_causal_gpt():
    config = TransformerConfig(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4,
                               position="rope", num_kv_heads=2, norm="rms", activation="swiglu",
                               attention="chunked", attention_block_size=5)
    model = build_gpt(TransformerConfig.from_dict(config.to_dict()))
    ids = RNG.integers(1, 40, size=(2, 16)).astype("int32")
    base = model.predict(ids, verbose=0)
    changed = ids.copy()
    changed[:, 9:] = (changed[:, 9:] % 39) + 1
    out = model.predict(changed, verbose=0)
    np.testing.assert_allclose(out[:, :9], base[:, :9], atol=1e-5)
    assert not np.allclose(out[:, 9:], base[:, 9:], atol=1e-4)
    standard = build_gpt(TransformerConfig(**{**config.to_dict(), "attention": "standard"}))
    standard.set_weights(model.get_weights())
    np.testing.assert_allclose(standard.predict(ids, verbose=0), base, rtol=1e-4, atol=1e-5)
    with pytest.raises(UserInputError, match="chunked"):
        TransformerConfig(attention="chunked", dropout=0.1)


# --- chunked attention ---------------------------------------------------------

def _assert_close(got, expected, rel=1e-5, scale=None):
    """Equal to `rel` relative error, measured against the tensor's scale.

    Some gradients, e.g. of the key bias, are mathematically zero and hold
    only float noise; `scale` (the largest value among all the gradients of
    the same call) then sets the error floor: `rel * scale`, or 1e-6.
    """
    expected = np.asarray(expected)
    atol = max(rel * np.abs(expected).max(), rel * (scale or 0.0), 1e-6)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=rel, atol=atol)


def _standard(q, k, v, key_mask, causal):
    scores = tf.einsum("bqhd,bkhd->bhqk", q, k)
    allowed = tf.ones_like(scores, dtype=bool)
    if key_mask is not None:
        allowed &= tf.constant(key_mask)[:, None, None, :]
    if causal:
        allowed &= tf.constant(np.tril(np.ones((q.shape[1], k.shape[1]), bool)))[None, None]
    probs = tf.nn.softmax(tf.where(allowed, scores, -1e9), axis=-1)
    return tf.einsum("bhqk,bkhd->bqhd", probs, v)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("block_size", [3, 7, 16])
def test_chunked_attention_equals_standard_in_outputs_and_gradients(causal, padded, block_size):
    rng = np.random.default_rng(block_size)
    q, k, v = (tf.constant(rng.normal(size=(2, 7, 3, 4)).astype("float32")) for _ in range(3))
    key_mask = PADDING if padded else None
    upstream = tf.constant(rng.normal(size=(2, 7, 3, 4)).astype("float32"))
    results = []
    for fn in (_standard, lambda *a: chunked_attention(*a, block_size=block_size)):
        with tf.GradientTape() as tape:
            tape.watch([q, k, v])
            out = fn(q, k, v, key_mask, causal)
            loss = tf.reduce_sum(out * upstream)
        results.append([out, *tape.gradient(loss, [q, k, v])])
    for expected, got in zip(*results, strict=True):
        _assert_close(got.numpy(), expected.numpy())


@pytest.mark.parametrize("layer_class", [CausalSelfAttention, GlobalSelfAttention])
def test_chunked_attention_layer_equals_standard_layer_with_gradients(layer_class):
    standard = layer_class(num_heads=4, key_dim=4, num_kv_heads=2)
    chunked = layer_class(num_heads=4, key_dim=4, num_kv_heads=2, attention="chunked",
                          attention_block_size=3)
    x = tf.constant(X)
    standard(x)
    chunked(x)
    chunked.set_weights(standard.get_weights())
    results = []
    for layer in (standard, chunked):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer(x, key_mask=PADDING)
            loss = tf.reduce_sum(tf.sin(out))
        results.append([out, *tape.gradient(loss, [x, *layer.trainable_weights])])
    scale = max(float(np.abs(g.numpy()).max()) for g in results[0][1:])
    for expected, got in zip(*results, strict=True):
        _assert_close(got.numpy(), expected.numpy(), scale=scale)
