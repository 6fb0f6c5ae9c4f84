"""Hugging Face BERT folders -> this package's `BERT`: `bert_config_from_hf`, `bert_from_pretrained`.

Two kinds of file load. `BertForPreTraining` names its body `bert.embeddings...`,
`bert.encoder.layer.{i}...`, `bert.pooler...` and adds the masked-LM head
(`cls.predictions.transform.dense`, `.transform.LayerNorm`, the output
`cls.predictions.bias`; its decoder matrix is the word embedding) and the
next-sentence head (`cls.seq_relationship`): it becomes `BERT(heads=True)`.
`BertModel` (how sentence-embedding models ship) names the same body without
the `bert.` prefix and has no heads: it becomes `BERT(heads=False)`, whose
outputs are the last hidden states and the pooled output.

A file with only the masked-LM head (`BertForMaskedLM`, which also has no
pooler) or only the next-sentence head is refused in one line: this
package's `BERT` has both pretraining heads or none.
"""

import os

import numpy as np

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.models.bert import BERT
from keras_transformer.pretrained.checkpoint import CheckpointTensors, _assign, _plan, check_sizes
from keras_transformer.pretrained.hf_config import _fields_of, _refuse, _require

# Hugging Face's `hidden_act` (used by the feed-forward and the masked-LM transform) -> ours.
HIDDEN_ACTS = {"gelu": "gelu_erf", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
BODY_PREFIXES = ("", "bert.")
# Buffers some BERT files carry that are not weights.
BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
MLM, NSP = "cls.predictions.", "cls.seq_relationship."
DECODER_WEIGHT, DECODER_BIAS = "cls.predictions.decoder.weight", "cls.predictions.decoder.bias"
OUTPUT_BIAS = "cls.predictions.bias"


def bert_config_from_hf(hf):
    """A `TransformerConfig` computing what the BERT `config.json` dict `hf` describes.

    Translated: `hidden_act` (`gelu` -> `"gelu_erf"`, `gelu_new` /
    `gelu_pytorch_tanh` -> `"gelu_tanh"`), `type_vocab_size` ->
    `num_segments`, `intermediate_size` -> `d_ff`, `layer_norm_eps`,
    `max_position_embeddings`, `hidden_dropout_prob` -> `dropout`,
    `tie_word_embeddings`. Refused (one line naming the field): any other
    activation, `position_embedding_type` other than `"absolute"`,
    `is_decoder` / `add_cross_attention`, an attention dropout unlike the
    hidden dropout (one rate here), `pad_token_id` other than 0 (id 0 is
    padding here, never attended to), heads that do not divide
    `hidden_size`. Training-only fields (`initializer_range`,
    `classifier_dropout`, `use_cache`, ...) are ignored.

    Example:

    >>> bert_config_from_hf({"model_type": "bert", "vocab_size": 30522, "hidden_size": 768,
    ...     "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    ...     "max_position_embeddings": 512}).activation
    'gelu_erf'
    """
    kind = "bert"
    act = _require(hf, kind, "hidden_act", list(HIDDEN_ACTS),
                   "the feed-forward and masked-LM GELU here are exact or tanh")
    _require(hf, kind, "position_embedding_type", ["absolute"],
             "positions here are a learned absolute table")
    _require(hf, kind, "is_decoder", [False], "this BERT is a bidirectional encoder")
    _require(hf, kind, "add_cross_attention", [False], "this BERT has no cross-attention")
    _require(hf, kind, "pad_token_id", [0], "id 0 is padding here, never attended to")
    with _fields_of(kind):
        d_model, num_heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        if num_heads < 1 or d_model % num_heads:
            _refuse(kind, "num_attention_heads", num_heads,
                    f"heads here split hidden_size={d_model} evenly")
        dropout = float(hf.get("hidden_dropout_prob", 0.1))
        attention_dropout = float(hf.get("attention_probs_dropout_prob", dropout))
        if attention_dropout != dropout:
            _refuse(kind, "attention_probs_dropout_prob", attention_dropout,
                    f"one dropout rate here, and hidden_dropout_prob is {dropout}")
        num_segments = int(hf.get("type_vocab_size", 2))
        if num_segments < 1:
            _refuse(kind, "type_vocab_size", num_segments, "this BERT has segment embeddings")
        return TransformerConfig(
            vocab_size=int(hf["vocab_size"]),
            max_len=int(hf.get("max_position_embeddings", 512)),
            num_layers=int(hf["num_hidden_layers"]),
            d_model=d_model,
            num_heads=num_heads,
            d_ff=int(hf["intermediate_size"]),
            dropout=dropout,
            position="learned",
            norm_first=False,
            activation=HIDDEN_ACTS[act],
            tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
            use_bias=True,
            layer_norm_epsilon=float(hf.get("layer_norm_eps", 1e-12)),
            norm="layer",
            num_segments=num_segments,
        )


class _RenamedTensors:
    """A `CheckpointTensors` whose LayerNorm `gamma` / `beta` (older files' names) are read
    as `weight` / `bias`."""

    def __init__(self, tensors, source):
        self.tensors, self.original, self.shapes = tensors, {}, {}
        for name in tensors:
            new = name
            for old, current in (("LayerNorm.gamma", "LayerNorm.weight"),
                                 ("LayerNorm.beta", "LayerNorm.bias")):
                if name.endswith(old):
                    new = name[: -len(old)] + current
            if new in self.original:
                raise UserInputError(f"{source}: the tensor {new!r} is there twice "
                                     f"({self.original[new]!r} and {name!r})")
            self.original[new], self.shapes[new] = name, tensors.shapes[name]

    def rename(self, name, new):
        """Read the tensor `name` as `new` from now on."""
        self.original[new], self.shapes[new] = self.original.pop(name), self.shapes.pop(name)

    def __contains__(self, name):
        return name in self.shapes

    def __iter__(self):
        return iter(self.shapes)

    def get(self, name):
        return self.tensors.get(self.original[name])


def _skipped(tensors, path, config):
    """The tensors that are there but have no variable of their own: buffers, and copies of
    the masked-LM decoder (checked to be copies).

    Tied (`tie_word_embeddings`), the decoder matrix is the word embedding and its bias is
    `cls.predictions.bias`: a `cls.predictions.decoder.weight` / `.bias` in the file must
    equal them. Untied, `transformers` computes the logits with
    `cls.predictions.decoder.bias`, and `cls.predictions.bias` is left unused (older files,
    where the two were one parameter, may hold either name).
    """
    skip = [name for name in tensors if name.endswith(BUFFERS)]
    if not config.tie_embeddings:
        if DECODER_BIAS in tensors and OUTPUT_BIAS in tensors:
            skip.append(OUTPUT_BIAS)
        elif OUTPUT_BIAS in tensors:
            tensors.rename(OUTPUT_BIAS, DECODER_BIAS)
        return skip
    if DECODER_WEIGHT in tensors:
        embedding = next((name for name in ("bert.embeddings.word_embeddings.weight",
                                            "embeddings.word_embeddings.weight")
                          if name in tensors), None)
        if embedding is None or not np.array_equal(tensors.get(DECODER_WEIGHT),
                                                   tensors.get(embedding)):
            raise UserInputError(f"{path}: {DECODER_WEIGHT} differs from the word embedding, "
                                 "but config.json says tie_word_embeddings")
        skip.append(DECODER_WEIGHT)
    if DECODER_BIAS in tensors and OUTPUT_BIAS not in tensors:
        tensors.rename(DECODER_BIAS, OUTPUT_BIAS)
    elif DECODER_BIAS in tensors:
        if not np.array_equal(tensors.get(DECODER_BIAS), tensors.get(OUTPUT_BIAS)):
            raise UserInputError(f"{path}: {DECODER_BIAS} differs from {OUTPUT_BIAS}, but "
                                 "config.json says tie_word_embeddings (one bias then)")
        skip.append(DECODER_BIAS)
    return skip


def bert_from_pretrained(path, hf, dtype=None):
    """A `BERT` with the weights of a Hugging Face BERT folder (what `from_pretrained` calls).

    Args:
        path: a folder with `config.json` (`model_type` `"bert"`) and
            `model.safetensors` (or shards and their index).
        hf: the dict of its `config.json`.
        dtype: the model's dtype policy (`None`: float32).

    Returns:
        A `BERT`: with both heads (`heads=True`) for a `BertForPreTraining`
        file, outputs `mlm`, `nsp`, `hidden`, `pooled`; without
        (`heads=False`) for a `BertModel` file, outputs `hidden` and `pooled`.
        Padding is token id 0 (Hugging Face's `attention_mask` is
        `token_ids != 0`).

    Raises:
        UserInputError: one line, for a config field this package cannot
            honour, a file with one pretraining head but not the other, a
            missing, unexpected or misshapen tensor, or pickled or damaged files.

    Example:

    >>> model = from_pretrained("checkpoints/bert-base-uncased")
    >>> out = model({"token_ids": np.array([[101, 7592, 102]]),
    ...              "segment_ids": np.zeros((1, 3), "int32")})
    >>> out["hidden"].shape, out["pooled"].shape
    ((1, 3, 768), (1, 768))
    """
    config = bert_config_from_hf(hf)
    tensors = _RenamedTensors(CheckpointTensors(path), path)
    check_sizes(config, tensors, path)
    has_mlm = any(name.startswith(MLM) for name in tensors)
    has_nsp = any(name.startswith(NSP) for name in tensors)
    if has_mlm != has_nsp:
        present, absent = ((f"{MLM}*", f"{NSP}*") if has_mlm else (f"{NSP}*", f"{MLM}*"))
        raise UserInputError(
            f"{path} has {present} but no {absent} (BertForMaskedLM and BertForNextSentence"
            "Prediction files are one head only); this package's BERT loads BertForPreTraining "
            "(both heads) or BertModel (none) files"
        )
    skip = _skipped(tensors, path, config)
    model = BERT(config, heads=has_mlm, name=os.path.basename(os.path.normpath(path)) or "bert",
                 dtype=dtype)
    layout = model.checkpoint_weights()
    heads = tuple(name for name, *_ in layout if name.startswith("cls."))
    _assign(tensors, _plan(tensors, layout, path, skip, prefixes=BODY_PREFIXES, absolute=heads))
    return model
