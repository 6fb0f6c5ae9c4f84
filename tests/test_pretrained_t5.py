"""Hugging Face T5 checkpoints in this package's `Seq2Seq`, against `transformers`.

The reference checkpoints are made here, offline: small randomly initialised
`T5ForConditionalGeneration` models (the original T5's ReLU feed-forward
with the tied, rescaled head; T5 v1.1's gated GELU with an untied head and
heads narrower than d_model / num_heads; encoder and decoder of different
depths) with every 1-D parameter (the RMSNorm scales) moved away from 1 and
the relative position tables enlarged, so that a tensor loaded into the
wrong place, a bucket counted the wrong way or a missing rescale changes the
logits.
"""

import dataclasses
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from checkpoint_checks import edit_config, edit_tensors  # noqa: E402

from keras_transformer import TransformerConfig, UserInputError, from_pretrained  # noqa: E402
from keras_transformer.generation.beam import beam_search  # noqa: E402
from keras_transformer.generation.seq2seq import (  # noqa: E402
    CachedSteps,
    NextLogits,
    greedy_decode,
)
from keras_transformer.models import build_seq2seq  # noqa: E402
from keras_transformer.models.seq2seq import Seq2Seq  # noqa: E402
from keras_transformer.pretrained.checkpoint import CheckpointTensors  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 100
T5 = dict(vocab_size=VOCAB, d_model=32, num_heads=4, d_ff=40, relative_attention_num_buckets=8,
          relative_attention_max_distance=20, decoder_start_token_id=0)
CHECKPOINTS = {
    "relu_tied": dict(feed_forward_proj="relu", d_kv=8, num_layers=2, num_decoder_layers=3),
    "gated_untied": dict(feed_forward_proj="gated-gelu", d_kv=6, num_layers=3,
                         num_decoder_layers=2, tie_word_embeddings=False),
}
# Seeds whose models generate varied tokens (not one token over and over).
SEEDS = {"relu_tied": 1, "gated_untied": 3}
MAX_TARGET = 20  # one length for every decoding: one trace per batch shape
RNG = np.random.default_rng(0)
SOURCE = RNG.integers(1, VOCAB, size=(2, 13)).astype("int32")  # 0 is padding
SOURCE[1, 8:] = 0
TARGET = RNG.integers(0, VOCAB, size=(2, 9)).astype("int32")
TARGET[:, 0] = 0  # T5's decoder start token is the padding id


def _make(name):
    torch.manual_seed(SEEDS[name])
    model = transformers.T5ForConditionalGeneration(
        transformers.T5Config(**T5, **CHECKPOINTS[name]))
    with torch.no_grad():
        if not CHECKPOINTS[name].get("tie_word_embeddings", True):
            # transformers 5 ties every T5 it builds; a v1.1 head of its own is untied.
            model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, T5["d_model"]))
        for pname, parameter in model.named_parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * 0.3)
            elif "relative_attention_bias" in pname:
                parameter.mul_(4.0)  # positions that matter
            elif pname not in ("shared.weight", "lm_head.weight"):
                parameter.mul_(2.0)  # blocks that matter next to the token embedding
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> (folder, the transformers model it holds, our model loaded from it)."""
    root = tmp_path_factory.mktemp("t5")
    made = {}
    for name in sorted(CHECKPOINTS):
        _make(name).save_pretrained(root / name)
        reference = transformers.T5ForConditionalGeneration.from_pretrained(root / name).eval()
        made[name] = (str(root / name), reference, from_pretrained(str(root / name)))
    return made


@pytest.fixture(scope="module")
def steps(checkpoints):
    """name -> (cached, uncached) decoding steps of the loaded model, traced once per shape
    and reused (not XLA-compiled: compiling takes longer than these decodings)."""
    return {name: (CachedSteps(model, pad_id=None, jit_compile=False),
                   NextLogits(model, pad_id=None, jit_compile=False))
            for name, (_, _, model) in checkpoints.items()}


def _reference_logits(reference, source=SOURCE, target=TARGET):
    with torch.no_grad():
        return reference(input_ids=torch.tensor(source, dtype=torch.long),
                         attention_mask=torch.tensor(source != 0, dtype=torch.long),
                         decoder_input_ids=torch.tensor(target, dtype=torch.long)).logits.numpy()


def _logits(model, source=SOURCE, target=TARGET):
    return np.asarray(model({"source_ids": source, "target_ids": target}, training=False))


def _assert_same_logits(ours, reference):
    assert np.abs(np.asarray(ours) - reference).max() <= 1e-4 * np.abs(reference).max()


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_logits_equal_transformers(checkpoints, name):
    folder, reference, model = checkpoints[name]
    assert isinstance(model, Seq2Seq)
    expected = _reference_logits(reference)
    _assert_same_logits(_logits(model), expected)
    config = model.config
    options = CHECKPOINTS[name]
    assert (config.num_layers, config.num_decoder_layers) == (options["num_layers"],
                                                              options["num_decoder_layers"])
    assert config.head_dim == options["d_kv"] and config.position == "relative"
    untied = name == "gated_untied"
    assert (config.tie_embeddings, config.scale_output) == (not untied, not untied)
    # transformers 5 writes tie_word_embeddings=true for every T5; the untied head is the
    # lm_head.weight stored beside shared.weight.
    with open(os.path.join(folder, "config.json")) as handle:
        hf = json.load(handle)
    assert config == dataclasses.replace(TransformerConfig.from_hf(hf), tie_embeddings=not untied)
    assert ("lm_head.weight" in CheckpointTensors(folder)) == untied
    assert model.count_params() == sum(p.numel() for p in reference.parameters())
    # Source padding is masked: a longer padded tail gives the same logits.
    longer = np.concatenate([SOURCE, np.zeros((2, 3), "int32")], axis=1)
    np.testing.assert_allclose(_logits(model, longer)[1], _logits(model)[1], atol=1e-5)


def test_an_older_v1_1_config_loads_the_same_model(checkpoints, tmp_path):
    """Folders written before transformers 5 say `tie_word_embeddings: false` for T5 v1.1
    (untied head, no rescale) and have no `scale_decoder_outputs`."""
    folder, reference, _ = checkpoints["gated_untied"]
    older = shutil.copytree(folder, tmp_path / "older")
    hf = json.loads((older / "config.json").read_text())
    assert hf["tie_word_embeddings"] is True and hf["scale_decoder_outputs"] is False
    hf["tie_word_embeddings"] = False
    del hf["scale_decoder_outputs"]
    (older / "config.json").write_text(json.dumps(hf))
    model = from_pretrained(str(older))
    assert (model.config.tie_embeddings, model.config.scale_output) == (False, False)
    _assert_same_logits(_logits(model), _reference_logits(reference))


def test_the_t5_options_change_the_logits(checkpoints):
    """What the logits test would catch: each T5 option, changed alone, moves the logits
    far past its tolerance."""
    _, reference, model = checkpoints["relu_tied"]
    expected = _reference_logits(reference)
    tolerance = 1e-4 * np.abs(expected).max()
    changes = [dict(scale_output=False), dict(scale_attention=True), dict(relative_buckets=10),
               dict(layer_norm_epsilon=1e-1)]
    for change in changes:
        other = Seq2Seq(TransformerConfig(**{**model.config.to_dict(), **change}))
        if "relative_buckets" not in change:
            other.set_weights(model.get_weights())
        else:  # the same table, read with other buckets
            for mine, theirs in zip(other.weights, model.weights, strict=True):
                mine.assign(np.resize(np.asarray(theirs), mine.shape))
        assert np.abs(_logits(other) - expected).max() > 100 * tolerance, change
    # The decoder's bias is causal: read bidirectionally, the logits move.
    model.decoder_position_bias.bidirectional = True
    try:
        assert np.abs(_logits(model) - expected).max() > 100 * tolerance
    finally:
        model.decoder_position_bias.bidirectional = False


def _generate(reference, **settings):
    config = reference.config
    with torch.no_grad():
        out = reference.generate(
            input_ids=torch.tensor(SOURCE, dtype=torch.long),
            attention_mask=torch.tensor(SOURCE != 0, dtype=torch.long), do_sample=False,
            pad_token_id=0, max_new_tokens=MAX_TARGET, eos_token_id=None,
            # transformers 5.24's decoder cache has as many layers as the encoder: it
            # fails on a deeper decoder, which then decodes uncached.
            use_cache=config.num_decoder_layers <= config.num_layers, **settings)
    return out[:, 1:].numpy()  # without the decoder start token


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_greedy_decoding_equals_transformers_generate(checkpoints, steps, name):
    _, reference, model = checkpoints[name]
    expected = _generate(reference, num_beams=1)
    assert expected.shape == (2, MAX_TARGET)
    assert min(len(set(row)) for row in expected.tolist()) >= 3  # not one token repeated
    cached, uncached = steps[name]
    got = greedy_decode(model, SOURCE, bos_id=0, eos_id=None, max_target=MAX_TARGET,
                        pad_id=None, step=cached)
    np.testing.assert_array_equal(np.array(got), expected)
    if name == "relu_tied":  # uncached, once (each kind of step is traced once per shape)
        assert greedy_decode(model, SOURCE, 0, None, MAX_TARGET, pad_id=None,
                             step=uncached) == got
    # With an end token (one of row 0's greedy tokens), each row stops before its first
    # one: greedy decoding with an end token is the prefix of greedy decoding without.
    stop = int(expected[0, 6])
    stopped = greedy_decode(model, SOURCE, 0, stop, MAX_TARGET, pad_id=None, step=cached)
    for row, ids in zip(expected, stopped, strict=True):
        end = np.flatnonzero(row == stop)
        np.testing.assert_array_equal(ids, row[: end[0]] if len(end) else row)
    assert len(stopped[0]) <= 6
    if name == "gated_untied":  # the default: cached and XLA-compiled, the same tokens
        default = greedy_decode(model, SOURCE, bos_id=0, eos_id=None, max_target=MAX_TARGET,
                                pad_id=None)
        np.testing.assert_array_equal(np.array(default), expected)


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_beam_search_equals_transformers_generate(checkpoints, steps, name):
    _, reference, model = checkpoints[name]
    expected = _generate(reference, num_beams=3)
    cached, uncached = steps[name]
    got = beam_search(model, SOURCE, bos_id=0, eos_id=None, max_target=MAX_TARGET, width=3,
                      pad_id=None, step=cached)
    np.testing.assert_array_equal(np.array(got), expected)
    greedy = greedy_decode(model, SOURCE, 0, None, MAX_TARGET, pad_id=None, step=cached)
    assert (expected != np.array(greedy)).any(), "beam search found what greedy decoding does"
    # Finished beams (an end token that some beams choose early): cached and uncached agree.
    if name == "relu_tied":
        stop = int(expected[1, 3])
        for width in (1, 3):
            outputs = [beam_search(model, SOURCE, 0, stop, MAX_TARGET, width=width,
                                   pad_id=None, length_penalty=1.0, step=step)
                       for step in (cached, uncached)]
            assert outputs[0] == outputs[1]
        assert len(outputs[0][1]) < MAX_TARGET, outputs


def _teacher_forced_by_steps(model, source, target, chunks):
    """The logits of `target` fed to `call_with_cache` in `chunks` (lengths summing to its
    length), after one `encode` and one `cross_cache`."""
    encoded, source_mask = model.encode(source)
    cross = model.cross_cache(encoded)
    cache = model.init_cache(len(source), target.shape[1])
    logits, start = [], 0
    for length in chunks:
        step_logits, cache = model.call_with_cache(target[:, start:start + length], start, cache,
                                                   cross, source_mask)
        logits.append(np.asarray(step_logits))
        start += length
    return np.concatenate(logits, axis=1)


TINY = dict(vocab_size=VOCAB, max_len=24, num_layers=2, num_decoder_layers=1, d_model=32,
            num_heads=4, dropout=0.0)


@pytest.mark.parametrize("kind", ["t5", "learned", "sinusoidal", "rope_gqa"])
def test_cached_decoding_equals_uncached(checkpoints, kind):
    """Teacher forcing through `call_with_cache` (one token at a time, and several at once)
    gives the graph's logits, for T5 and for the encoder-decoders trained here; their
    greedy and beam decodings are the same cached and uncached."""
    if kind == "t5":
        model = checkpoints["relu_tied"][2]
    else:
        options = {"learned": {}, "sinusoidal": dict(position="sinusoidal"),
                   "rope_gqa": dict(position="rope", num_kv_heads=2, norm="rms",
                                    activation="swiglu", tie_embeddings=False)}[kind]
        keras.utils.set_random_seed(5)
        model = build_seq2seq(TransformerConfig(**TINY, **options))
        rng = np.random.default_rng(5)  # sharp, source-dependent distributions
        model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5
                           for w in model.get_weights()])
    target = TARGET.copy()
    target[:, 0] = 0 if kind == "t5" else 2
    full = _logits(model, SOURCE, target)
    for chunks in ([1] * 9, [4, 1, 4]):
        np.testing.assert_allclose(_teacher_forced_by_steps(model, SOURCE, target, chunks), full,
                                   atol=1e-5 * np.abs(full).max())
    if kind != "learned":  # decoding itself: once, for what train.py's runs have
        return
    beams = [beam_search(model, SOURCE, 2, 3, 10, width=3, length_penalty=0.6, step=step)
             for step in (CachedSteps(model, jit_compile=False),
                          NextLogits(model, jit_compile=False))]
    assert beams[0] == beams[1]
    assert len(set(beams[0][0])) > 1 and beams[0][0] != beams[0][1], beams


def test_a_loaded_t5_saves_and_reloads_as_keras(checkpoints, tmp_path):
    _, reference, model = checkpoints["gated_untied"]
    path = str(tmp_path / "t5.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, Seq2Seq) and reloaded.config == model.config
    np.testing.assert_array_equal(_logits(reloaded), _logits(model))
    _assert_same_logits(_logits(reloaded), _reference_logits(reference))


# --- bad checkpoints: one line each, nothing half-loaded -------------------------------


def _truncate(folder):
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])


def _pickles_only(folder):
    os.remove(os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "pytorch_model.bin"), "wb") as handle:
        handle.write(b"\x80\x04 not unpickled")


SHARED_COPY = "decoder.embed_tokens.weight"


@pytest.mark.parametrize("change, expected", [
    (lambda d: edit_config(d, feed_forward_proj="gated-silu"),
     "feed_forward_proj='gated-silu' is not supported"),
    (lambda d: edit_config(d, dense_act_fn="gelu"), "dense_act_fn='gelu' is not supported"),
    (lambda d: edit_config(d, is_encoder_decoder=False), "is_encoder_decoder=False is not"),
    (lambda d: edit_config(d, architectures=["T5EncoderModel"]),
     "architectures=['T5EncoderModel'] is not supported"),
    (lambda d: edit_config(d, pad_token_id=5), "pad_token_id=5 is not supported"),
    (lambda d: edit_config(d, relative_attention_max_distance=2),
     "relative_max_distance (2) must exceed relative_buckets // 2 (4)"),
    (lambda d: edit_config(d, num_decoder_layers=4),
     "'decoder.block.3.layer.0.SelfAttention.q.weight' is missing"),
    (lambda d: edit_config(d, d_kv=4),
     "'encoder.block.0.layer.0.SelfAttention.q.weight' has shape [32, 32], this model's config "
     "needs [16, 32]"),
    (lambda d: edit_tensors(d, lambda t: t.pop("encoder.final_layer_norm.weight")),
     "'encoder.final_layer_norm.weight' is missing"),
    (lambda d: edit_tensors(d, lambda t: t.pop(
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")),
     "'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight' is missing"),
    (lambda d: edit_tensors(d, lambda t: t.pop("shared.weight")), "'shared.weight' is missing"),
    (lambda d: edit_tensors(d, lambda t: t.update(extra=np.zeros(3, np.float32))),
     "unexpected tensor 'extra'"),
    (lambda d: edit_tensors(d, lambda t: t.update({
        "decoder.block.1.layer.1.EncDecAttention.k.weight": np.zeros((32, 31), np.float32)})),
     "'decoder.block.1.layer.1.EncDecAttention.k.weight' has shape [32, 31]"),
    (lambda d: edit_tensors(d, lambda t: t.update({SHARED_COPY: t["shared.weight"] + 1})),
     "decoder.embed_tokens.weight differs from shared.weight"),
    (_truncate, "could not read"),
    (_pickles_only, "holds only pytorch_model.bin, which this package never unpickles"),
])
def test_a_bad_t5_checkpoint_is_one_line(checkpoints, tmp_path, change, expected):
    folder = str(shutil.copytree(checkpoints["relu_tied"][0], tmp_path / "bad"))
    change(folder)
    with pytest.raises(UserInputError) as error:
        from_pretrained(folder)
    message = str(error.value)
    assert expected in message and "\n" not in message, message


def test_stored_copies_of_the_shared_table_and_unused_tables_load(checkpoints, tmp_path):
    """Older files carry the shared table under each stack's name too, and an unused
    relative-position table in the decoder's first cross-attention."""
    folder, reference, _ = checkpoints["relu_tied"]
    folder = str(shutil.copytree(folder, tmp_path / "copies"))

    def add_copies(tensors):
        for stack in ("encoder", "decoder"):
            tensors[f"{stack}.embed_tokens.weight"] = tensors["shared.weight"].copy()
        tensors["lm_head.weight"] = tensors["shared.weight"].copy()
        tensors["decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"] = \
            np.ones((8, 4), np.float32)

    edit_tensors(folder, add_copies)
    model = from_pretrained(folder)
    assert model.config.tie_embeddings and model.lm_head is None
    _assert_same_logits(_logits(model), _reference_logits(reference))
