"""Hugging Face BERT checkpoints (`BertForPreTraining`, `BertModel`) in this package's `BERT`,
against `transformers`.

The reference checkpoints are made here, offline: small randomly initialised
`transformers` models (weights of standard deviation 0.2, so that the
feed-forward and masked-LM pre-activations reach where the exact and the tanh
GELU differ) with every 1-D parameter (LayerNorm scales and offsets, biases)
moved away from its initial value, so that a tensor loaded into the wrong
place, transposed or left out changes the outputs. The inputs are sentence
pairs (segment ids 0 and 1, or 0..2) with padding (id 0, which is `[PAD]`
in BERT's vocabularies and masked by `attention_mask` there).
"""

import dataclasses
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from checkpoint_checks import (  # noqa: E402
    edit_config,
    edit_tensors,
    one_line,
    save_checkpoints,
)

from keras_transformer import BERT, TransformerConfig, from_pretrained  # noqa: E402
from keras_transformer.errors import UserInputError  # noqa: E402
from keras_transformer.pretrained.hf_config import config_to_hf, hf_model_type  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 61
COMMON = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=48, max_position_embeddings=24, initializer_range=0.2,
              pad_token_id=0)
CHECKPOINTS = {
    # bert-base-uncased's kind: the exact GELU, tied decoder, two segments.
    "pretraining": lambda: transformers.BertForPreTraining(transformers.BertConfig(**COMMON)),
    # The tanh GELU, an untied decoder, three segments, another LayerNorm epsilon.
    "pretraining_tanh_untied": lambda: transformers.BertForPreTraining(transformers.BertConfig(
        **COMMON, hidden_act="gelu_new", tie_word_embeddings=False, type_vocab_size=3,
        layer_norm_eps=1e-5)),
    # A sentence-embedding model's file: the body and pooler only.
    "model": lambda: transformers.BertModel(transformers.BertConfig(**COMMON)),
}


def _inputs(segments=2):
    """Three sentence pairs of lengths 13, 9 and 5, padded with id 0 to 13."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, size=(3, 13)).astype("int32")
    segment_ids = np.zeros_like(ids)
    for row, (length, split) in enumerate(((13, 6), (9, 4), (5, 3))):
        ids[row, length:] = 0
        segment_ids[row, split:length] = 1
    if segments > 2:
        segment_ids[0, 10:] = 2
    return {"token_ids": ids, "segment_ids": segment_ids}


def _reference(model, x):
    """The reference's outputs on `x`, with `attention_mask` = not padding."""
    args = dict(input_ids=torch.tensor(x["token_ids"], dtype=torch.long),
                token_type_ids=torch.tensor(x["segment_ids"], dtype=torch.long),
                attention_mask=torch.tensor(x["token_ids"] != 0, dtype=torch.long))
    with torch.no_grad():
        if isinstance(model, transformers.BertForPreTraining):
            out = model(**args, output_hidden_states=True)
            body = model.bert(**args)
            return {"mlm": out.prediction_logits.numpy(), "nsp": out.seq_relationship_logits.numpy(),
                    "hidden": body.last_hidden_state.numpy(), "pooled": body.pooler_output.numpy()}
        out = model(**args)
        return {"hidden": out.last_hidden_state.numpy(), "pooled": out.pooler_output.numpy()}


def _close(ours, reference):
    """Whether `ours` equals `reference` to 1e-4 of the reference's largest magnitude."""
    scale = np.abs(reference).max()
    return np.abs(np.asarray(ours) - reference).max() <= 1e-4 * scale


def _assert_same(ours, reference):
    assert set(ours) == set(reference)
    for name, value in reference.items():
        assert _close(ours[name], value), name


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> (folder, the transformers model it holds)."""
    return save_checkpoints(tmp_path_factory.mktemp("bert_checkpoints"), CHECKPOINTS)


@pytest.fixture(scope="module")
def loaded(checkpoints):
    """name -> our model loaded from the checkpoint folder."""
    return {name: from_pretrained(folder) for name, (folder, _) in checkpoints.items()}


def _hf_config(folder):
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.parametrize("name", ["pretraining", "pretraining_tanh_untied"])
def test_pretraining_logits_equal_transformers(checkpoints, loaded, name):
    folder, reference = checkpoints[name]
    model = loaded[name]
    assert type(model).__name__ == "BERT" and model.has_heads
    x = _inputs(segments=3 if "tanh" in name else 2)
    # Masked-LM and next-sentence logits, and the body's hidden states and pooled output,
    # at every position (padded ones too: both mask padded keys only).
    _assert_same(model(x), _reference(reference, x))
    hf = _hf_config(folder)
    assert model.config == TransformerConfig.from_hf(hf)
    assert model.config.activation == {"gelu": "gelu_erf", "gelu_new": "gelu_tanh"}[
        hf["hidden_act"]]
    # Every weight came from the file (an untied file also holds cls.predictions.bias,
    # which transformers' forward never reads: cls.predictions.decoder.bias is the one).
    unused = 0 if model.config.tie_embeddings else VOCAB
    assert model.count_params() == sum(p.numel() for p in reference.parameters()) - unused


def test_bert_model_hidden_states_and_pooled_output_equal_transformers(checkpoints, loaded):
    _, reference = checkpoints["model"]
    model = loaded["model"]
    assert not model.has_heads and model.head_layers == []
    x = _inputs()
    _assert_same(model(x), _reference(reference, x))  # outputs: hidden and pooled only
    assert model.count_params() == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize("name, others", [
    # The exact-GELU file computed with the tanh GELU in both places, or only in the FFN.
    ("pretraining", ["gelu_tanh", "gelu"]),
    # The tanh-GELU file computed with the exact GELU in both places, or only in the MLM head.
    ("pretraining_tanh_untied", ["gelu_erf", "gelu"]),
])
def test_the_gelu_kind_of_the_checkpoint_is_used_in_the_ffn_and_the_mlm_head(
        checkpoints, loaded, name, others):
    _, reference = checkpoints[name]
    model = loaded[name]
    x = _inputs(segments=model.config.num_segments)
    expected = _reference(reference, x)["mlm"]
    assert _close(model(x)["mlm"], expected)
    for activation in others:  # the same weights, another GELU: the test would see it
        other = BERT(dataclasses.replace(model.config, activation=activation))
        other.set_weights(model.get_weights())
        assert not _close(other(x)["mlm"], expected), activation


def test_older_files_tensor_names_load(checkpoints, loaded, tmp_path):
    from safetensors.numpy import load_file, save_file

    # Older BertForPreTraining files: LayerNorm gamma / beta, the position ids buffer, and
    # the tied decoder's weight and bias stored beside what they copy.
    folder = shutil.copytree(checkpoints["pretraining"][0], tmp_path / "old")
    tensors = load_file(folder / "model.safetensors")
    renamed = {name.replace("LayerNorm.weight", "LayerNorm.gamma")
               .replace("LayerNorm.bias", "LayerNorm.beta"): value
               for name, value in tensors.items()}
    renamed["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
    renamed["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"]
    renamed["bert.embeddings.position_ids"] = np.arange(24, dtype=np.int64)[None]
    save_file(renamed, folder / "model.safetensors")
    x = _inputs()
    _assert_same(from_pretrained(str(folder))(x), _reference(checkpoints["pretraining"][1], x))

    # An untied file from when the decoder's bias was cls.predictions.bias itself.
    folder = shutil.copytree(checkpoints["pretraining_tanh_untied"][0], tmp_path / "old_untied")
    tensors = load_file(folder / "model.safetensors")
    tensors["cls.predictions.bias"] = tensors.pop("cls.predictions.decoder.bias")
    save_file(tensors, folder / "model.safetensors")
    x = _inputs(segments=3)
    _assert_same(from_pretrained(str(folder))(x),
                 _reference(checkpoints["pretraining_tanh_untied"][1], x))


@pytest.mark.parametrize("name", ["pretraining", "model"])
def test_a_loaded_model_saves_and_reloads_in_safe_mode(loaded, name, tmp_path):
    model = loaded[name]
    model.save(tmp_path / "bert.keras")
    reloaded = keras.saving.load_model(tmp_path / "bert.keras", safe_mode=True)
    assert type(reloaded) is BERT and reloaded.has_heads == model.has_heads
    assert reloaded.config == model.config
    x = _inputs()
    expected, got = model(x), reloaded(x)
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(expected[key]))


def test_presets_name_the_gelu_of_the_published_models():
    # bert-base-uncased's and gpt2's published config.json (their computing fields).
    bert_base_uncased = {
        "model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 30522,
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute", "use_cache": True,
    }
    gpt2 = {
        "model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768,
        "n_layer": 12, "n_head": 12, "n_inner": None, "activation_function": "gelu_new",
        "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5,
    }
    assert TransformerConfig.from_hf(bert_base_uncased) == TransformerConfig.preset("bert-base")
    assert TransformerConfig.from_hf(gpt2) == TransformerConfig.preset("gpt2-small")
    assert TransformerConfig.preset("gpt-mini").activation == "gelu_tanh"
    assert TransformerConfig.preset("bert-mini").activation == "gelu_erf"
    # BERT-base's backbone (embeddings, blocks, pooler) is BertModel's: the published count.
    # (`test_encoder_models` counts the backbone of the model with heads.)
    with keras.StatelessScope():
        model = BERT(TransformerConfig.preset("bert-base"), heads=False)
        assert model.count_params() == 109_482_240 == model.backbone_params()


def test_gpt2_layout_takes_the_tanh_gelu_by_either_name():
    base = dict(vocab_size=50, max_len=16, num_layers=1, d_model=16, num_heads=2)
    for name in ("gelu_tanh", "gelu"):  # "gelu": what older configs call the tanh GELU
        config = TransformerConfig(**base, activation=name)
        assert hf_model_type(config) == "gpt2"
        assert TransformerConfig.from_hf(config_to_hf(config)).activation == "gelu_tanh"
    with pytest.raises(UserInputError, match="activation='gelu_erf', while a gpt2 model has "
                                             "activation='gelu_tanh'"):
        hf_model_type(TransformerConfig(**base, activation="gelu_erf"))


# --- bad checkpoints: one line each, nothing half-loaded -------------------------------


def _pop(*names):
    return lambda tensors: [tensors.pop(name) for name in names]


@pytest.mark.parametrize("name, change, expected", [
    ("pretraining", lambda d: edit_config(d, hidden_act="relu"),
     "hidden_act='relu' is not supported"),
    ("pretraining", lambda d: edit_config(d, position_embedding_type="relative_key"),
     "position_embedding_type='relative_key' is not supported"),
    ("pretraining", lambda d: edit_config(d, is_decoder=True), "is_decoder=True is not supported"),
    ("pretraining", lambda d: edit_config(d, add_cross_attention=True),
     "add_cross_attention=True is not supported"),
    ("pretraining", lambda d: edit_config(d, pad_token_id=3), "pad_token_id=3 is not supported"),
    ("pretraining", lambda d: edit_config(d, attention_probs_dropout_prob=0.3),
     "attention_probs_dropout_prob=0.3 is not supported"),
    ("pretraining", lambda d: edit_config(d, num_attention_heads=5),
     "num_attention_heads=5 is not supported"),
    ("pretraining", lambda d: edit_config(d, hidden_size="<drop>"),
     "the field 'hidden_size' is missing"),
    ("pretraining", lambda d: edit_config(d, num_hidden_layers=3),
     "'bert.encoder.layer.2.attention.self.query.weight' is missing"),
    ("pretraining", lambda d: edit_config(d, type_vocab_size=3),
     "'bert.embeddings.token_type_embeddings.weight' has shape [2, 32]"),
    ("pretraining", lambda d: edit_tensors(d, _pop("bert.pooler.dense.bias")),
     "'bert.pooler.dense.bias' is missing"),
    ("model", lambda d: edit_tensors(d, _pop("pooler.dense.weight")),
     "'pooler.dense.weight' is missing"),
    ("pretraining", lambda d: edit_tensors(d, lambda t: t.update(extra=np.zeros(3, np.float32))),
     "unexpected tensor 'extra'"),
    ("pretraining", lambda d: edit_tensors(d, lambda t: t.update({
        "bert.encoder.layer.1.attention.self.key.weight": np.zeros((32, 31), np.float32)})),
     "'bert.encoder.layer.1.attention.self.key.weight' has shape [32, 31]"),
    ("pretraining", lambda d: edit_tensors(d, _pop("cls.seq_relationship.weight",
                                                    "cls.seq_relationship.bias")),
     "has cls.predictions.* but no cls.seq_relationship.*"),
    ("pretraining", lambda d: edit_tensors(d, lambda t: t.update({
        "cls.predictions.decoder.weight": np.ones((VOCAB, 32), np.float32)})),
     "cls.predictions.decoder.weight differs from the word embedding"),
    ("pretraining", lambda d: edit_tensors(d, lambda t: t.update({
        "cls.predictions.decoder.bias": np.ones(VOCAB, np.float32)})),
     "cls.predictions.decoder.bias differs from cls.predictions.bias"),
])
def test_a_bad_checkpoint_isone_line(checkpoints, tmp_path, name, change, expected):
    folder = shutil.copytree(checkpoints[name][0], tmp_path / "bad")
    change(str(folder))
    with pytest.raises(UserInputError) as error:
        from_pretrained(str(folder))
    assert expected in one_line(error)


@pytest.mark.parametrize("head, expected", [
    ("BertForMaskedLM", "has cls.predictions.* but no cls.seq_relationship.*"),
    ("BertForNextSentencePrediction", "has cls.seq_relationship.* but no cls.predictions.*"),
    ("BertForSequenceClassification", "unexpected tensor 'classifier.bias'"),
])
def test_other_bert_heads_are_refused_inone_line(tmp_path, head, expected):
    getattr(transformers, head)(transformers.BertConfig(**COMMON)).save_pretrained(tmp_path / head)
    with pytest.raises(UserInputError) as error:
        from_pretrained(str(tmp_path / head))
    assert expected in one_line(error)


def test_pickles_truncated_files_and_missing_shards_areone_line(checkpoints, tmp_path):
    folder, reference = checkpoints["pretraining"]
    pickled = shutil.copytree(folder, tmp_path / "pickled")
    os.remove(pickled / "model.safetensors")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04 not unpickled")
    with pytest.raises(UserInputError) as error:
        from_pretrained(str(pickled))
    assert "pytorch_model.bin" in one_line(error) and "never unpickles" in str(error.value)

    truncated = shutil.copytree(folder, tmp_path / "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError) as error:
        from_pretrained(str(truncated))
    assert "could not read" in one_line(error)

    # Shards: whole, they load; with one missing, one line.
    reference.save_pretrained(tmp_path / "shards", max_shard_size="20KB")
    shards = sorted(f for f in os.listdir(tmp_path / "shards") if f.endswith(".safetensors"))
    assert len(shards) > 2
    x = _inputs()
    _assert_same(from_pretrained(str(tmp_path / "shards"))(x), _reference(reference, x))
    os.remove(tmp_path / "shards" / shards[0])
    with pytest.raises(UserInputError) as error:
        from_pretrained(str(tmp_path / "shards"))
    assert f"lacks the shard {shards[0]}" in one_line(error)


def test_inspect_shows_a_bert_checkpoints_config(checkpoints):
    from keras_transformer.cli.inspect import describe, load_config

    folder, reference = checkpoints["pretraining_tanh_untied"]
    config, family = load_config(folder)
    assert family == "bert"
    rows = {line[:12].strip(): line[13:] for line in describe(config, family=family)}
    assert rows["family"] == "bert (encoder-only)"
    assert rows["activation"] == "gelu_tanh"
    total = sum(p.numel() for p in reference.parameters()) - VOCAB  # the unused bias
    assert rows["parameters"].startswith(f"{total:,} ")
