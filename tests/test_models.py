"""Behaviour of the functional models: causality, sizes, saving."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_transformer import TransformerConfig, UserInputError, build_charrnn, build_gpt
from keras_transformer.training.distribute import mixed_policy_name

TINY = dict(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"position": "sinusoidal", "norm_first": False, "activation": "relu"},
        {"tie_embeddings": False, "dropout": 0.1},
    ],
)
def test_gpt_logits_ignore_future_tokens(overrides):
    model = build_gpt(TransformerConfig(**TINY, **overrides))
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 40, size=(3, 16)).astype("int32")
    base = model.predict(ids, verbose=0)
    assert base.shape == (3, 16, 40) and base.dtype == np.float32
    for t in (0, 5, 14):
        changed = ids.copy()
        changed[:, t + 1:] = (changed[:, t + 1:] + rng.integers(1, 39, size=changed[:, t + 1:].shape)) % 40
        out = model.predict(changed, verbose=0)
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6, rtol=0)
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-4)


def test_charrnn_logits_ignore_future_tokens():
    model = build_charrnn(40, embedding_dim=8, units=16)
    ids = np.random.default_rng(2).integers(0, 40, size=(2, 12)).astype("int32")
    base = model.predict(ids, verbose=0)
    changed = ids.copy()
    changed[:, 6:] = (changed[:, 6:] + 1) % 40
    out = model.predict(changed, verbose=0)
    np.testing.assert_allclose(out[:, :6], base[:, :6], atol=1e-6, rtol=0)


def test_gpt2_small_preset_has_the_published_parameter_count():
    model = build_gpt(TransformerConfig.preset("gpt2-small"))
    assert model.count_params() == 124_439_808


def test_tied_embeddings_share_the_token_table():
    tied = build_gpt(TransformerConfig(**TINY))
    untied = build_gpt(TransformerConfig(**TINY, tie_embeddings=False))
    assert untied.count_params() - tied.count_params() == 40 * 32
    assert "lm_head" not in [layer.name for layer in tied.layers]


def test_config_validation_and_round_trip():
    config = TransformerConfig(**TINY)
    assert TransformerConfig.from_dict(config.to_dict()) == config
    assert config.d_ff == 128
    with pytest.raises(UserInputError, match="divisible"):
        TransformerConfig(d_model=30, num_heads=4)
    with pytest.raises(UserInputError, match="position"):
        TransformerConfig(position="rotary-ish")
    with pytest.raises(UserInputError, match="unknown preset"):
        TransformerConfig.preset("gpt-5")


def test_mixed_precision_model_keeps_float32_variables_and_logits():
    policy = mixed_policy_name()  # the policy train.py --mixed-precision picks here
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_gpt(TransformerConfig(**TINY))
        assert model.get_layer("block_0").compute_dtype == keras.DTypePolicy(policy).compute_dtype
        logits = model(np.ones((1, 8), "int32"))
        assert logits.dtype == "float32"
        assert all(v.dtype == "float32" for v in model.weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")


LOAD_SCRIPT = """
import sys, numpy as np, keras
import keras_transformer  # registers the layers; nothing else is needed
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
"""


@pytest.mark.parametrize("arch", ["gpt", "charrnn"])
def test_saved_model_reloads_in_a_fresh_process_with_identical_logits(arch, tmp_path):
    if arch == "gpt":
        model = build_gpt(TransformerConfig(**TINY, position="sinusoidal"))
    else:
        model = build_charrnn(40, embedding_dim=8, units=16)
    ids = np.random.default_rng(3).integers(0, 40, size=(2, 16)).astype("int32")
    expected = model.predict(ids, verbose=0)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "ids.npy", ids)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "model.keras"), str(tmp_path / "ids.npy"),
         str(tmp_path / "out.npy")],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_saved_model_has_no_lambda_layers(tmp_path):
    model = build_gpt(TransformerConfig(**TINY))
    names = {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}
    assert "Lambda" not in names
