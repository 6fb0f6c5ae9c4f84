"""The checks every layer of the package goes through (see tests/test_layers.py)."""

import os

import keras
import numpy as np

from keras_transformer.layers import GroupedQueryAttention
from keras_transformer.training.distribute import mixed_policy_name


def _call(layer, inputs, kwargs):
    """`layer(x)`, or with a second input the context: `value` of an attention layer,
    `context=` of a block."""
    if len(inputs) == 1:
        return layer(inputs[0], **kwargs)
    if isinstance(layer, GroupedQueryAttention):
        return layer(inputs[0], inputs[1], **kwargs)
    return layer(inputs[0], context=inputs[1], **kwargs)


def _model_around(layer, inputs, call_kwargs):
    symbolic = [keras.Input(shape=x.shape[1:], dtype=str(x.dtype)) for x in inputs]
    outputs = _call(layer, symbolic, call_kwargs)
    return keras.Model(symbolic if len(symbolic) > 1 else symbolic[0], outputs)


def check_layer(make_layer, inputs, tmp_path, call_kwargs=None, expected_shape=None):
    """Config round trip, symbolic and eager calls, a fit step, `.keras` save/load.

    Args:
        make_layer: a no-argument callable returning a fresh layer.
        inputs: list of numpy arrays; a second one is the context (see `_call`).
        tmp_path: a directory for the saved model.
        expected_shape: the output shape of the eager call.
    """
    call_kwargs = call_kwargs or {}
    layer = make_layer()

    # get_config -> from_config gives the same config.
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    # Eager call.
    eager = keras.ops.convert_to_numpy(_call(layer, inputs, call_kwargs))
    if expected_shape is not None:
        assert eager.shape == expected_shape
    assert np.all(np.isfinite(eager))

    # Symbolic call inside a functional model, one training step, save/load.
    model = _model_around(make_layer(), inputs, call_kwargs)
    if model.outputs[0].dtype.startswith("float") and model.trainable_weights:
        model.compile(optimizer="adam", loss="mse")
        target = np.zeros(model.outputs[0].shape[1:], dtype="float32")[None].repeat(
            len(inputs[0]), axis=0
        )
        before = [w.copy() for w in model.get_weights()]
        model.fit(inputs if len(inputs) > 1 else inputs[0], target, epochs=1, verbose=0)
        changed = [not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
        assert any(changed), "a training step changed no weight"
    path = os.path.join(str(tmp_path), "layer.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    feed = inputs if len(inputs) > 1 else inputs[0]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(feed)), keras.ops.convert_to_numpy(reloaded(feed))
    )

    # Mixed precision (the policy train.py would pick here): variables stay float32,
    # the layer computes in the policy's dtype, outputs are finite.
    policy = mixed_policy_name()
    keras.mixed_precision.set_global_policy(policy)
    try:
        mixed = make_layer()
        assert mixed.compute_dtype == keras.DTypePolicy(policy).compute_dtype
        out = keras.ops.convert_to_numpy(keras.ops.cast(_call(mixed, inputs, call_kwargs), "float32"))
        assert all(w.dtype == "float32" for w in mixed.weights)
        assert np.all(np.isfinite(out))
    finally:
        keras.mixed_precision.set_global_policy("float32")
