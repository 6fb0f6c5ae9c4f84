"""BERT and the encoder-decoder: what attends to what, padding, presets, saving."""

import os
import subprocess
import sys

import numpy as np
import pytest

from keras_transformer import TransformerConfig
from keras_transformer.models import backbone_params, build_bert, build_seq2seq
from keras_transformer.models.seq2seq import T5_SMALL_PUBLISHED_PARAMS

BERT_TINY = dict(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4,
                 num_segments=2, norm_first=False, layer_norm_epsilon=1e-12)
S2S_TINY = dict(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4)


def _bert_inputs(ids):
    segments = np.zeros_like(ids)
    segments[:, ids.shape[1] // 2:] = 1
    return {"token_ids": ids, "segment_ids": segments}


def _run(model, inputs):
    out = model(inputs, training=False)
    if isinstance(out, dict):
        return {k: np.asarray(v) for k, v in out.items()}
    return np.asarray(out)


def test_bert_encoder_sees_the_whole_sequence():
    model = build_bert(TransformerConfig(**BERT_TINY))
    ids = np.random.default_rng(0).integers(1, 40, size=(2, 12)).astype("int32")
    base = _run(model, _bert_inputs(ids))
    changed = ids.copy()
    changed[:, 9] = np.where(changed[:, 9] == 5, 6, 5)
    out = _run(model, _bert_inputs(changed))
    # A later token changes the outputs at every earlier position.
    for t in range(9):
        assert not np.allclose(out["mlm"][:, t], base["mlm"][:, t], atol=1e-5), t
    assert not np.allclose(out["nsp"], base["nsp"], atol=1e-6)


def test_seq2seq_encoder_is_bidirectional_and_decoder_is_causal():
    model = build_seq2seq(TransformerConfig(**S2S_TINY))
    rng = np.random.default_rng(1)
    source = rng.integers(1, 40, size=(2, 10)).astype("int32")
    target = rng.integers(1, 40, size=(2, 8)).astype("int32")
    base = _run(model, {"source_ids": source, "target_ids": target})
    # The last source token reaches every decoder position.
    changed_source = source.copy()
    changed_source[:, -1] = np.where(source[:, -1] == 5, 6, 5)
    out = _run(model, {"source_ids": changed_source, "target_ids": target})
    for t in range(8):
        assert not np.allclose(out[:, t], base[:, t], atol=1e-5), t
    # A target token only reaches later decoder positions.
    for t in (0, 3, 6):
        changed = target.copy()
        changed[:, t + 1:] = (changed[:, t + 1:] % 39) + 1
        out = _run(model, {"source_ids": source, "target_ids": changed})
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6, rtol=0)
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_bert_padding_changes_no_output_at_real_positions(norm_first):
    model = build_bert(TransformerConfig(**{**BERT_TINY, "norm_first": norm_first}))
    ids = np.random.default_rng(2).integers(1, 40, size=(3, 7)).astype("int32")
    segments = np.array([[0, 0, 0, 0, 1, 1, 1]] * 3, "int32")
    short = _run(model, {"token_ids": ids, "segment_ids": segments})
    padded_ids = np.concatenate([ids, np.zeros((3, 5), "int32")], axis=1)
    padded_segments = np.concatenate([segments, np.ones((3, 5), "int32")], axis=1)
    padded = _run(model, {"token_ids": padded_ids, "segment_ids": padded_segments})
    np.testing.assert_allclose(padded["mlm"][:, :7], short["mlm"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(padded["nsp"], short["nsp"], atol=1e-5, rtol=0)


def test_seq2seq_source_and_target_padding_change_no_real_output():
    model = build_seq2seq(TransformerConfig(**S2S_TINY, share_embeddings=False))
    rng = np.random.default_rng(3)
    source = rng.integers(1, 40, size=(2, 6)).astype("int32")
    target = rng.integers(1, 40, size=(2, 5)).astype("int32")
    base = _run(model, {"source_ids": source, "target_ids": target})
    padded_source = np.concatenate([source, np.zeros((2, 7), "int32")], axis=1)
    padded_target = np.concatenate([target, np.zeros((2, 4), "int32")], axis=1)
    # Encoder and cross-attention ignore source padding ...
    out = _run(model, {"source_ids": padded_source, "target_ids": target})
    np.testing.assert_allclose(out, base, atol=1e-5, rtol=0)
    # ... and padding the decoder input changes nothing at real target positions.
    out = _run(model, {"source_ids": padded_source, "target_ids": padded_target})
    np.testing.assert_allclose(out[:, :5], base, atol=1e-5, rtol=0)


def test_bert_base_preset_has_the_published_parameter_count():
    model = build_bert(TransformerConfig.preset("bert-base"))
    assert backbone_params(model) == 109_482_240
    # The heads: MLM transform + norm + output bias, and the 2-way classifier.
    assert model.count_params() - 109_482_240 == (768 * 768 + 768) + 2 * 768 + 30522 + (768 * 2 + 2)


def test_t5_small_preset_counts_the_published_parameters():
    model = build_seq2seq(TransformerConfig.preset("t5-small"))
    params = model.count_params()
    assert params == T5_SMALL_PUBLISHED_PARAMS == 60_506_624
    # What makes up the count: one relative position table (32 buckets x 8 heads) per
    # stack, RMSNorm scales only, no biases, and the one shared 32128 x 512 table.
    assert model.encoder_position_bias.count_params() == 32 * 8
    assert model.decoder_position_bias.count_params() == 32 * 8
    parts = model.parameter_parts()
    assert parts["shared embedding"] == 32128 * 512 and sum(parts.values()) == params
    print(f"t5-small preset: {params:,} parameters (published T5-small: 60,506,624)")


def test_shared_embeddings_share_one_table():
    shared = build_seq2seq(TransformerConfig(**S2S_TINY))
    separate = build_seq2seq(TransformerConfig(**S2S_TINY, share_embeddings=False))
    assert separate.count_params() - shared.count_params() == 40 * 32 + 16 * 32


LOAD_SCRIPT = """
import sys, numpy as np, keras
import keras_transformer  # registers the layers; nothing else is needed
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
inputs = dict(np.load(sys.argv[2]))
out = model.predict(inputs, verbose=0)
out = out if isinstance(out, dict) else {"logits": out}
np.savez(sys.argv[3], **out)
"""


@pytest.mark.parametrize("arch", ["bert", "seq2seq"])
def test_saved_model_reloads_in_a_fresh_process_with_identical_outputs(arch, tmp_path):
    rng = np.random.default_rng(4)
    if arch == "bert":
        model = build_bert(TransformerConfig(**BERT_TINY))
        ids = rng.integers(0, 40, size=(2, 12)).astype("int32")
        inputs = _bert_inputs(ids)
    else:
        model = build_seq2seq(TransformerConfig(**S2S_TINY, position="sinusoidal",
                                                share_embeddings=False))
        inputs = {"source_ids": rng.integers(0, 40, size=(2, 9)).astype("int32"),
                  "target_ids": rng.integers(0, 40, size=(2, 7)).astype("int32")}
    expected = model.predict(inputs, verbose=0)
    expected = expected if isinstance(expected, dict) else {"logits": expected}
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "inputs.npz", **inputs)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "model.keras"),
         str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    reloaded = np.load(tmp_path / "out.npz")
    assert set(reloaded.files) == set(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(reloaded[key], value)
