"""Every architecture option in every family: GPT, BERT and the encoder-decoder.

`COMBINATIONS` is a covering design: each value of each option of `OPTIONS`
appears in at least one combination (`test_the_combinations_cover_every_value`
proves it), and every family is built with every combination. Each model is
then checked for the invariants that matter:

- every block received every option (a builder that drops one fails);
- a model with positions is order-sensitive, in each stack: reversing an
  encoder's input does not just reverse its output, and in a one-block
  decoder permuting the earlier tokens changes the last token's output
  (without position information both would be exact symmetries);
- decoders are causal, encoders bidirectional;
- a `.keras` file reloaded in a fresh process gives the same outputs;
- GPT's KV-cached logits equal full recomputation;
- chunked attention equals standard attention, grouped-query attention equals
  multi-head attention with each key/value head repeated, `recompute` keeps
  the gradients, and dropout is applied in training, all on the same weights.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transformer import (
    TransformerConfig,
    UserInputError,
    build_bert,
    build_gpt,
    build_seq2seq,
)
from keras_transformer.config import ACTIVATIONS, ATTENTIONS, NORMS, POSITIONS
from keras_transformer.layers import RMSNormalization, TransformerBlock
from keras_transformer.models import call_with_cache, init_cache

SIZES = dict(vocab_size=17, max_len=16, num_layers=2, num_decoder_layers=2, d_model=16,
             num_heads=4)
HEADS = SIZES["num_heads"]
OPTIONS = {
    "position": POSITIONS,
    "num_kv_heads": (HEADS, 2, 1),
    "norm": NORMS,
    # "gelu" is the older name of "gelu_tanh" (the same function), not an option of its own.
    "activation": tuple(name for name in ACTIVATIONS if name != "gelu"),
    "attention": ATTENTIONS,
    "attention_block_size": (3, 5),
    "norm_first": (True, False),
    "recompute": (False, True),
    "dropout": (0.0, 0.1),
}
COMBINATIONS = {
    "learned-mha-layer-gelu-pre": dict(
        position="learned", num_kv_heads=HEADS, norm="layer", activation="gelu_tanh",
        attention="standard", attention_block_size=3, norm_first=True, recompute=False,
        dropout=0.0,
    ),
    "sinusoidal-gqa-rms-relu-chunked-post-recompute": dict(
        position="sinusoidal", num_kv_heads=2, norm="rms", activation="relu",
        attention="chunked", attention_block_size=3, norm_first=False, recompute=True,
        dropout=0.0,
    ),
    "rope-mqa-rms-swiglu-pre-dropout": dict(
        position="rope", num_kv_heads=1, norm="rms", activation="swiglu",
        attention="standard", attention_block_size=5, norm_first=True, recompute=False,
        dropout=0.1,
    ),
    "rope-gqa-layer-gelu-chunked-post": dict(
        position="rope", num_kv_heads=2, norm="layer", activation="gelu_erf",
        attention="chunked", attention_block_size=5, norm_first=False, recompute=False,
        dropout=0.0,
    ),
    # T5's relative position bias: the encoder-decoder's only (GPT and BERT refuse it).
    "relative-gqa-rms-gated-gelu-pre-recompute": dict(
        position="relative", num_kv_heads=2, norm="rms", activation="gated-gelu",
        attention="standard", attention_block_size=5, norm_first=True, recompute=True,
        dropout=0.0,
    ),
}
FAMILIES = ("gpt", "bert", "seq2seq")
CASES = [(family, name) for family in FAMILIES for name in COMBINATIONS
         if family == "seq2seq" or COMBINATIONS[name]["position"] != "relative"]
BUILDERS = {"gpt": build_gpt, "bert": build_bert, "seq2seq": build_seq2seq}

RNG = np.random.default_rng(0)
IDS = RNG.integers(1, SIZES["vocab_size"], size=(2, 11)).astype("int32")
IDS[1, -3:] = 0  # right padding in the second row (BERT and seq2seq mask it)
TARGET = RNG.integers(1, SIZES["vocab_size"], size=(2, 7)).astype("int32")


def make_config(family, name, **changes):
    values = {**SIZES, **COMBINATIONS[name], **changes}
    if family == "bert":
        values["num_segments"] = 2
    return TransformerConfig(**values)


def build(family, name, seed=0, **changes):
    """The family's model of the combination, its attention sharpened.

    At initialisation the attention scores are so small that every softmax is
    nearly uniform, which hides what positions do: the token embeddings
    (stddev 0.02) reach a post-LN block's attention unnormalised. Embeddings
    10x and query and key kernels 4x larger give scores of order 1.
    """
    keras.utils.set_random_seed(seed)
    model = BUILDERS[family](make_config(family, name, **changes))
    for weight in model.weights:
        if weight.path.endswith(("query/kernel", "key/kernel")):
            weight.assign(4.0 * weight)
        elif weight.path.endswith("token_embedding/embeddings"):
            weight.assign(10.0 * weight)
        elif weight.path.endswith("position_bias/embeddings"):  # T5's relative bias tables
            weight.assign(50.0 * weight)
    return model


def inputs(family, ids=IDS, target=TARGET):
    if family == "gpt":
        return ids[:, :8] if ids is IDS else ids
    if family == "bert":
        return {"token_ids": ids, "segment_ids": (np.arange(ids.shape[1]) >= 5)[None].repeat(
            len(ids), 0).astype("int32")}
    return {"source_ids": ids, "target_ids": target}


def forward(family, model, feed, training=False):
    out = model(feed, training=training)
    return keras.ops.convert_to_numpy(out["mlm"] if family == "bert" else out)


_MODELS = {}


def model_for(family, name):
    """One model per case, shared by the tests of this file."""
    if (family, name) not in _MODELS:
        _MODELS[family, name] = build(family, name)
    return _MODELS[family, name]


def test_the_combinations_cover_every_value_of_every_option():
    for option, values in OPTIONS.items():
        used = {combination[option] for combination in COMBINATIONS.values()}
        assert used == set(values), option
    for combination in COMBINATIONS.values():
        assert set(combination) == set(OPTIONS)


@pytest.mark.parametrize("family, name", CASES)
def test_every_block_takes_every_option(family, name):
    model, options = model_for(family, name), COMBINATIONS[name]
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    assert len(blocks) == (4 if family == "seq2seq" else 2)
    for block in blocks:
        assert block.rotary == (options["position"] == "rope")
        for option in ("num_kv_heads", "norm", "activation", "attention", "attention_block_size",
                       "norm_first", "recompute", "dropout"):
            assert getattr(block, option) == options[option], (block.name, option)
        attentions = [block.self_attention] + ([block.cross_attention_layer]
                                               if block.cross_attention else [])
        for attention in attentions:
            assert attention.num_kv_heads == options["num_kv_heads"]
            assert attention.attention == options["attention"]
            assert attention.attention_block_size == options["attention_block_size"]
            assert attention.rotary == (options["position"] == "rope" and attention is not
                                        getattr(block, "cross_attention_layer", None))
    # Every normalization layer of the model is the configured one (embedding norms too).
    norms = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, (keras.layers.LayerNormalization, RMSNormalization))]
    expected = RMSNormalization if options["norm"] == "rms" else keras.layers.LayerNormalization
    assert norms and all(type(norm) is expected for norm in norms), [type(n) for n in norms]


def _max_diff(a, b):
    return float(np.max(np.abs(a - b)))


@pytest.mark.parametrize("family, name", CASES)
def test_positions_make_every_stack_order_sensitive(family, name):
    model = model_for(family, name)
    ids = IDS[:1, :8]
    reversed_ids = ids[:, ::-1].copy()
    if family == "bert":  # one segment: the segment ids must not break the symmetry
        out = forward(family, model, {"token_ids": ids, "segment_ids": 0 * ids})
        flipped = forward(family, model, {"token_ids": reversed_ids, "segment_ids": 0 * ids})
        assert _max_diff(flipped, out[:, ::-1]) > 1e-3
        return
    if family == "seq2seq":
        # The encoder: without positions, cross-attention over a reversed source
        # would see the same set of encoder states, so the logits would not change.
        out = forward(family, model, inputs(family, ids, TARGET[:1]))
        flipped = forward(family, model, inputs(family, reversed_ids, TARGET[:1]))
        assert _max_diff(out, flipped) > 1e-3
    else:
        out = forward(family, model, ids)
        assert _max_diff(forward(family, model, reversed_ids), out[:, ::-1]) > 1e-3
    # The decoder: with one block and no positions, the last token's output would be
    # the same for any order of the tokens before it.
    one_block = build(family, name, num_layers=1, num_decoder_layers=1)
    tokens = TARGET[:1] if family == "seq2seq" else ids
    permuted = np.concatenate([tokens[:, -2::-1], tokens[:, -1:]], axis=1)
    if family == "seq2seq":
        a = forward(family, one_block, inputs(family, ids, tokens))
        b = forward(family, one_block, inputs(family, ids, permuted))
    else:
        a, b = forward(family, one_block, tokens), forward(family, one_block, permuted)
    assert _max_diff(a[:, -1], b[:, -1]) > 1e-3


@pytest.mark.parametrize("family, name", CASES)
def test_decoders_are_causal_and_encoders_bidirectional(family, name):
    model = model_for(family, name)
    if family == "bert":
        changed = IDS.copy()
        changed[0, 7] = 1 + changed[0, 7] % 16
        a, b = (forward(family, model, inputs(family, x)) for x in (IDS, changed))
        assert _max_diff(a[0, 0], b[0, 0]) > 1e-4  # the first token sees the eighth
        np.testing.assert_allclose(a[1], b[1], atol=1e-6)  # rows stay apart
        return
    if family == "gpt":
        base = IDS[:, :8]
        changed = base.copy()
        changed[:, 5] = 1 + changed[:, 5] % 16
        a, b = forward(family, model, base), forward(family, model, changed)
    else:
        changed = TARGET.copy()
        changed[:, 4] = 1 + changed[:, 4] % 16
        a = forward(family, model, inputs(family))
        b = forward(family, model, inputs(family, IDS, changed))
        source = IDS.copy()
        source[0, 7] = 1 + source[0, 7] % 16
        c = forward(family, model, inputs(family, source))
        assert _max_diff(a[0, 0], c[0, 0]) > 1e-4  # the first target token sees all the source
    t = 5 if family == "gpt" else 4
    np.testing.assert_allclose(a[:, :t], b[:, :t], atol=1e-6)  # the past ignores the future
    assert _max_diff(a[:, t:], b[:, t:]) > 1e-4


RELOAD = """
import json, sys
import numpy as np, keras
import keras_transformer  # noqa: F401  (registers the layers)

folder = sys.argv[1]
for case in json.load(open(f"{folder}/cases.json")):
    model = keras.saving.load_model(f"{folder}/{case}.keras", safe_mode=True)
    data = np.load(f"{folder}/{case}.npz")
    feed = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
    out = model(feed["x"] if list(feed) == ["x"] else feed, training=False)
    out = keras.ops.convert_to_numpy(out["mlm"] if isinstance(out, dict) else out)
    np.testing.assert_allclose(out, data["out"], rtol=1e-6, atol=1e-6, err_msg=case)
    print("ok", case)
"""


def test_every_model_reloads_in_a_fresh_process_with_equal_outputs(tmp_path):
    names = []
    for family, name in CASES:
        case = f"{family}-{name}"
        model = model_for(family, name)
        feed = inputs(family)
        model.save(tmp_path / f"{case}.keras")
        arrays = {f"in_{k}": v for k, v in feed.items()} if isinstance(feed, dict) else {
            "in_x": feed}
        np.savez(tmp_path / f"{case}.npz", out=forward(family, model, feed), **arrays)
        names.append(case)
    (tmp_path / "cases.json").write_text(json.dumps(names))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split().count("ok") == len(CASES)


@pytest.mark.parametrize("name", sorted(n for n, c in COMBINATIONS.items()
                                         if c["position"] != "relative"))
def test_gpt_cached_logits_equal_full_recomputation(name):
    model = model_for("gpt", name)
    prompt, steps = 5, 6
    ids = IDS[:, : prompt + steps]
    batch, slots = len(ids), prompt + steps
    slot = np.arange(slots)
    positions = np.broadcast_to(np.arange(prompt), (batch, prompt))
    mask = np.broadcast_to(slot[None, None, :] <= np.arange(prompt)[None, :, None],
                           (batch, prompt, slots))
    logits, cache = call_with_cache(model, ids[:, :prompt], positions,
                                    init_cache(model, batch, slots), 0, mask)
    full = forward("gpt", model, ids)
    np.testing.assert_allclose(logits.numpy(), full[:, :prompt], rtol=1e-4, atol=1e-4)
    for index in range(prompt, slots):
        step_mask = np.broadcast_to(slot <= index, (batch, 1, slots))
        logits, cache = call_with_cache(model, ids[:, index:index + 1],
                                        np.full((batch, 1), index), cache, tf.constant(index),
                                        step_mask)
        np.testing.assert_allclose(logits.numpy()[:, 0], full[:, index], rtol=1e-4, atol=1e-4)


def _twin_outputs(family, name, change_weights=lambda path, value: value, **changes):
    """Outputs of the case's model and of a twin with `changes`, on the same weights."""
    model = model_for(family, name)
    twin = build(family, name, seed=1, **changes)
    assert len(twin.weights) == len(model.weights)
    for target, source in zip(twin.weights, model.weights, strict=True):
        target.assign(change_weights(source.path, keras.ops.convert_to_numpy(source)))
    feed = inputs(family)
    return forward(family, model, feed), forward(family, twin, feed)


@pytest.mark.parametrize("family, name", [c for c in CASES
                                          if COMBINATIONS[c[1]]["attention"] == "chunked"])
def test_chunked_attention_equals_standard_attention(family, name):
    chunked, standard = _twin_outputs(family, name, attention="standard")
    np.testing.assert_allclose(chunked, standard, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family, name", [c for c in CASES
                                          if COMBINATIONS[c[1]]["num_kv_heads"] < HEADS])
def test_grouped_query_attention_equals_its_repeated_kv_reference(family, name):
    groups = HEADS // COMBINATIONS[name]["num_kv_heads"]

    def repeat_kv_heads(path, value):
        # key/value kernels [d_model, kv_heads, head_dim], biases [kv_heads, head_dim]:
        # query head h reads kv head h // groups.
        if "/key/" in path or "/value/" in path:
            return np.repeat(value, groups, axis=value.ndim - 2)
        return value

    grouped, reference = _twin_outputs(family, name, repeat_kv_heads, num_kv_heads=HEADS)
    np.testing.assert_allclose(grouped, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family, name", [c for c in CASES if COMBINATIONS[c[1]]["recompute"]])
def test_recompute_keeps_the_gradients(family, name):
    model = model_for(family, name)
    plain = build(family, name, seed=1, recompute=False)
    plain.set_weights(model.get_weights())
    feed = inputs(family)
    gradients = []
    for m in (model, plain):
        with tf.GradientTape() as tape:
            out = m(feed, training=True)
            loss = tf.reduce_sum(tf.square(out["mlm"] if family == "bert" else out))
        gradients.append(tape.gradient(loss, m.trainable_weights))
    pairs = [(np.asarray(tf.convert_to_tensor(a)), np.asarray(tf.convert_to_tensor(b)))
             for a, b in zip(*gradients, strict=True) if a is not None or b is not None]
    # (BERT's sentence-pair head gets no gradient from the masked-LM logits.)
    scale = max(np.abs(b).max() for _, b in pairs)
    for a, b in pairs:  # key biases have zero gradients up to rounding: scale atol globally
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("family, name", [c for c in CASES if COMBINATIONS[c[1]]["dropout"]])
def test_dropout_is_applied_in_training_only(family, name):
    model, feed = model_for(family, name), inputs(family)
    inference = forward(family, model, feed)
    np.testing.assert_allclose(forward(family, model, feed), inference, atol=1e-6)
    assert _max_diff(forward(family, model, feed, training=True), inference) > 1e-3


@pytest.mark.parametrize("family", ["gpt", "seq2seq"])
def test_an_option_a_family_cannot_honour_is_refused_in_one_line(family):
    with pytest.raises(UserInputError, match="num_segments=2 does not apply to") as error:
        BUILDERS[family](TransformerConfig(**SIZES, num_segments=2))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("family", ["gpt", "bert"])
def test_relative_positions_are_refused_outside_the_encoder_decoder(family):
    with pytest.raises(UserInputError, match="position='relative'.*applies to encoder-decoders "
                                             "only") as error:
        build(family, "relative-gqa-rms-gated-gelu-pre-recompute")
    assert "\n" not in str(error.value)


def test_recompute_with_dropout_is_refused_in_one_line():
    # The recomputed forward pass would draw other dropout masks than the forward pass
    # (measured before the refusal: gradients off by 1.8 for a largest gradient of 8.4).
    with pytest.raises(UserInputError, match="recompute=True needs dropout=0") as error:
        TransformerConfig(**SIZES, recompute=True, dropout=0.1)
    assert "\n" not in str(error.value)
    with pytest.raises(UserInputError, match="recompute=True needs dropout=0"):
        TransformerBlock(d_model=16, num_heads=4, dropout=0.1, recompute=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_honours_the_rope_base(family):
    # Hugging Face's rope_theta: every self-attention rotates with it, and it changes the output.
    name = "rope-mqa-rms-swiglu-pre-dropout"
    base = build(family, name, dropout=0.0)
    other = build(family, name, dropout=0.0, rotary_max_wavelength=50.0)
    blocks = [layer for layer in other.layers if isinstance(layer, TransformerBlock)]
    assert blocks and all(b.self_attention.rotary_max_wavelength == 50.0 for b in blocks)
    feed = inputs(family)
    assert _max_diff(forward(family, base, feed), forward(family, other, feed)) > 1e-3
    with pytest.raises(UserInputError, match="applies to position='rope' only"):
        make_config(family, "learned-mha-layer-gelu-pre", rotary_max_wavelength=50.0)
