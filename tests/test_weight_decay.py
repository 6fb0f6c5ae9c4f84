"""Weight decay of `make_optimizer`'s AdamW, checked by what a step does to each weight.

A step with all-zero gradients leaves Adam's moments at zero, so Adam's own
update is exactly 0 and the only change is the decoupled weight decay,
`v <- v * (1 - lr * wd)`. Which weights should decay is decided here from the
layers that own them, never from variable names: every weight of a
normalisation layer, every layer's `bias` (including the rank-2 `[heads,
head_dim]` biases of the attention projections) and the logit bias stay put;
every Dense / EinsumDense kernel and every embedding table shrinks.
"""

import keras
import numpy as np
import pytest

from keras_transformer import TransformerConfig, build_bert, build_gpt
from keras_transformer.layers import LogitBias, PositionalEmbedding, RMSNormalization
from keras_transformer.training.schedules import make_optimizer

LEARNING_RATE = 0.1
WEIGHT_DECAY = 0.5  # lr * wd = 0.05: a decayed weight becomes 0.95 times itself

SMALL = dict(vocab_size=37, max_len=16, num_layers=2, d_model=16, num_heads=4, num_kv_heads=2,
             use_bias=True)
MODELS = {
    "gpt-layernorm": lambda: build_gpt(TransformerConfig(**SMALL, norm="layer",
                                                         tie_embeddings=False)),
    "gpt-rmsnorm": lambda: build_gpt(TransformerConfig(**SMALL, norm="rms", activation="swiglu",
                                                       tie_embeddings=False)),
    "bert": lambda: build_bert(TransformerConfig(**SMALL, num_segments=2, norm_first=False,
                                                 tie_embeddings=True)),
}


def _is_variable(value):
    return isinstance(value, keras.Variable)


def _classify(model):
    """`(kept, decayed, seen)`: variables (by id) that must not / must decay, and what was found.

    Walks every layer of the model, nested ones included, and sorts the
    weights by the kind of layer and the attribute that holds them.
    """
    kept, decayed = {}, {}
    seen = {"rank2_bias": 0, "layernorm": 0, "rmsnorm": 0, "logit_bias": 0, "kernel": 0,
            "embedding": 0}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, (keras.layers.LayerNormalization, RMSNormalization)):
            for weight in layer.weights:
                kept[id(weight)] = weight
            if isinstance(layer, RMSNormalization):
                assert _is_variable(layer.scale)
                seen["rmsnorm"] += 1
            else:
                assert _is_variable(layer.gamma) and _is_variable(layer.beta)
                seen["layernorm"] += 1
            continue
        bias = getattr(layer, "bias", None)
        if _is_variable(bias):
            kept[id(bias)] = bias
            if len(bias.shape) == 2:
                seen["rank2_bias"] += 1
            if isinstance(layer, LogitBias):
                seen["logit_bias"] += 1
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
            assert _is_variable(layer.kernel) and len(layer.kernel.shape) >= 2
            decayed[id(layer.kernel)] = layer.kernel
            seen["kernel"] += 1
        if isinstance(layer, keras.layers.Embedding):
            decayed[id(layer.embeddings)] = layer.embeddings
            seen["embedding"] += 1
        if isinstance(layer, PositionalEmbedding) and layer.position_embeddings is not None:
            decayed[id(layer.position_embeddings)] = layer.position_embeddings
            seen["embedding"] += 1
    return kept, decayed, seen


def _fill_nonzero(model, seed=0):
    """Give every trainable weight random values of magnitude 0.5 to 1.5.

    Biases and LayerNorm's beta start at 0, where `0 * (1 - lr * wd)` is
    still 0: a decayed bias would look untouched.
    """
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        shape = tuple(variable.shape)
        values = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        variable.assign(values.astype(variable.dtype))


def _step_with_zero_gradients(model):
    """One optimizer step with zero gradients: `(lr, values before, values after)` by id."""
    optimizer = make_optimizer(learning_rate=LEARNING_RATE, total_steps=100, warmup_steps=0,
                               weight_decay=WEIGHT_DECAY)
    variables = model.trainable_variables
    optimizer.build(variables)
    learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    before = {id(v): np.array(v.numpy()) for v in variables}
    optimizer.apply_gradients([(keras.ops.zeros(v.shape, v.dtype), v) for v in variables])
    assert int(optimizer.iterations.numpy()) == 1
    after = {id(v): np.array(v.numpy()) for v in variables}
    return learning_rate, before, after


@pytest.mark.parametrize("name", sorted(MODELS))
def test_weight_decay_applies_to_matrices_and_never_to_biases_or_norms(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    kept, decayed, seen = _classify(model)

    # Nothing is vacuous: the model holds every kind of weight the rule is about.
    assert seen["kernel"] and seen["embedding"], seen
    assert seen["rank2_bias"] >= 3, seen  # query, key and value biases are [heads, head_dim]
    if name == "gpt-rmsnorm":
        assert seen["rmsnorm"] and not seen["layernorm"], seen
    else:
        assert seen["layernorm"] and not seen["rmsnorm"], seen
    if name == "bert":
        assert seen["logit_bias"] == 1, seen
    # The walk classified every trainable variable, and none twice.
    trainable = {id(v): v for v in model.trainable_variables}
    assert not set(kept) & set(decayed)
    assert set(kept) | set(decayed) == set(trainable), sorted(
        v.path for i, v in trainable.items() if i not in kept and i not in decayed
    )

    _fill_nonzero(model)
    learning_rate, before, after = _step_with_zero_gradients(model)
    assert learning_rate == pytest.approx(LEARNING_RATE)  # no warmup: the peak at step 0
    factor = 1.0 - learning_rate * WEIGHT_DECAY
    for key, variable in kept.items():
        assert np.abs(before[key]).min() > 0, variable.path  # decay would show on every entry
        np.testing.assert_array_equal(after[key], before[key], err_msg=f"{variable.path} decayed")
    for key, variable in decayed.items():
        assert np.abs(before[key]).min() > 0, variable.path
        np.testing.assert_allclose(after[key], before[key] * factor, rtol=1e-6, atol=0,
                                   err_msg=f"{variable.path} not decayed by {factor}")
