"""Hugging Face T5 folders (`model_type` `t5`, `T5ForConditionalGeneration`) as this
package's `Seq2Seq`.

Both generations of T5 load: the original T5 (ReLU feed-forward, the output
projection tied to the shared embedding and applied to the decoder output
times `d_model ** -0.5`) and T5 v1.1 / FLAN-T5 (`feed_forward_proj`
`"gated-gelu"`, an untied `lm_head`, no rescale, heads narrower than
`d_model / num_heads`).

How a folder says whether its head is tied: `transformers` 5 writes
`"tie_word_embeddings": true` for every T5 and `"scale_decoder_outputs"`
for the rescale, and stores `lm_head.weight` only when it differs from
`shared.weight`, in which case it keeps the two apart; older folders write
`"tie_word_embeddings": false` for v1.1 (untied, no rescale). This module
does what `transformers` does with either, so the tie of the loaded model's
config (`model.config.tie_embeddings`) may differ from what `config.json`
alone gives (`t5_config_from_hf`).
"""

import dataclasses
import os

import numpy as np

from keras_transformer.config import TransformerConfig
from keras_transformer.errors import UserInputError
from keras_transformer.models.seq2seq import Seq2Seq
from keras_transformer.pretrained.checkpoint import CheckpointTensors, _assign, _plan, check_sizes
from keras_transformer.pretrained.hf_config import _fields_of, _refuse, _require

KIND = "t5"
# feed_forward_proj -> (this package's activation, the dense_act_fn transformers derives)
FEED_FORWARD = {"relu": ("relu", "relu"), "gated-gelu": ("gated-gelu", "gelu_new")}
SHARED = "shared.weight"
# Copies of the shared table some files carry; they must equal it.
EMBEDDING_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# A table old conversions left in the decoder's first cross-attention; T5 never uses it
# (transformers ignores it on loading too).
UNUSED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)


def t5_config_from_hf(hf):
    """The `TransformerConfig` of a Hugging Face T5 `config.json` dict.

    Every field that changes what the model computes is translated or
    refused: `feed_forward_proj` (`"relu"` or `"gated-gelu"`, and the
    `dense_act_fn` / `is_gated_act` derived from it), `d_model`, `d_kv`,
    `num_heads`, `d_ff`, `num_layers` / `num_decoder_layers`,
    `relative_attention_num_buckets` / `relative_attention_max_distance`,
    `layer_norm_epsilon`, `dropout_rate`, `tie_word_embeddings` /
    `scale_decoder_outputs`, `is_encoder_decoder` and `is_decoder` (a
    `T5ForConditionalGeneration` only) and `pad_token_id` (0: the source
    padding id here). Training and tooling fields (`initializer_factor`,
    `use_cache`, `decoder_start_token_id`, ...) are ignored.

    Raises:
        UserInputError: one line naming the field.
    """
    proj = _require(hf, KIND, "feed_forward_proj", list(FEED_FORWARD),
                    "the feed-forward here is T5's ReLU or T5 v1.1's gated GELU")
    activation, act_fn = FEED_FORWARD[proj]
    _require(hf, KIND, "dense_act_fn", [act_fn], f"feed_forward_proj={proj!r} computes {act_fn}")
    _require(hf, KIND, "is_gated_act", [proj == "gated-gelu"],
             f"feed_forward_proj={proj!r} says whether it is gated")
    _require(hf, KIND, "is_encoder_decoder", [True], "this loads T5ForConditionalGeneration")
    _require(hf, KIND, "is_decoder", [False], "this loads T5ForConditionalGeneration")
    _require(hf, KIND, "pad_token_id", [0, None], "source padding is id 0 here")
    architectures = hf.get("architectures") or ["T5ForConditionalGeneration"]
    if "T5ForConditionalGeneration" not in architectures:
        _refuse(KIND, "architectures", architectures,
                "this loads T5ForConditionalGeneration checkpoints")
    with _fields_of(KIND):
        d_model, num_heads, d_kv = int(hf["d_model"]), int(hf["num_heads"]), int(hf["d_kv"])
        num_layers = int(hf["num_layers"])
        tied = hf.get("tie_word_embeddings", True) is not False
        scale = hf.get("scale_decoder_outputs", tied)
        if not isinstance(scale, bool):
            _refuse(KIND, "scale_decoder_outputs", scale, "it is true or false")
        return TransformerConfig(
            vocab_size=int(hf["vocab_size"]),
            max_len=int(hf.get("n_positions") or 512),
            num_layers=num_layers,
            num_decoder_layers=int(hf.get("num_decoder_layers") or num_layers),
            d_model=d_model,
            num_heads=num_heads,
            key_dim=None if d_kv * num_heads == d_model else d_kv,
            d_ff=int(hf["d_ff"]),
            dropout=float(hf.get("dropout_rate", 0.1)),
            position="relative",
            relative_buckets=int(hf.get("relative_attention_num_buckets", 32)),
            relative_max_distance=int(hf.get("relative_attention_max_distance", 128)),
            norm_first=True,
            activation=activation,
            tie_embeddings=tied,
            share_embeddings=True,
            use_bias=False,
            layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-6)),
            norm="rms",
            scale_attention=False,
            scale_output=scale,
        )


def _same(tensors, name, other):
    first, second = tensors.get(name), tensors.get(other)
    return first.shape == second.shape and np.array_equal(first, second)


def t5_from_pretrained(path, hf, dtype=None):
    """A `Seq2Seq` with the weights of the T5 checkpoint folder `path` (config dict `hf`).

    Called by `keras_transformer.from_pretrained` for `model_type` `t5`. Every
    tensor is checked (present, expected, of the right shape) before any
    weight is assigned; `encoder.embed_tokens.weight` /
    `decoder.embed_tokens.weight`, when present, must equal `shared.weight`.

    Args:
        path: the folder (`config.json` and safetensors weights).
        hf: its `config.json` dict.
        dtype: the model's dtype policy (`None`: float32).

    Returns:
        A `Seq2Seq` whose logits equal `T5ForConditionalGeneration`'s for the
        same `source_ids` (0 = padding, the attention mask) and decoder
        inputs (T5 starts them with `decoder_start_token_id`, 0).

    Raises:
        UserInputError: one line (see `from_pretrained`).

    Example:

    >>> model = from_pretrained("checkpoints/t5-small")
    >>> greedy_decode(model, source_ids, bos_id=0, eos_id=1, max_target=20, pad_id=None)
    """
    config = t5_config_from_hf(hf)
    tensors = CheckpointTensors(path)
    check_sizes(config, tensors, path)
    if SHARED not in tensors:
        raise UserInputError(f"{path}: the tensor {SHARED!r} is missing")
    skip = [name for name in UNUSED if name in tensors]
    for name in EMBEDDING_COPIES:
        if name in tensors:
            if not _same(tensors, name, SHARED):
                raise UserInputError(f"{path}: {name} differs from {SHARED}, which T5 uses for "
                                     "both stacks")
            skip.append(name)
    if config.tie_embeddings and "lm_head.weight" in tensors:
        if _same(tensors, "lm_head.weight", SHARED):
            skip.append("lm_head.weight")
        else:  # transformers keeps a stored head that differs from the embedding
            config = dataclasses.replace(config, tie_embeddings=False)
    model = Seq2Seq(config, name=os.path.basename(os.path.normpath(path)) or "t5", dtype=dtype)
    _assign(tensors, _plan(tensors, model.checkpoint_weights("t5"), path, skip, prefixes=("",)))
    return model
