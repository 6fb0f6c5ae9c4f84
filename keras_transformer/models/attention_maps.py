"""What a trained model looks at: the attention weights of every block.

The models' forward pass does not keep attention weights (it would cost
memory at every step for nothing). These functions re-run a model's layers
eagerly, in inference mode, asking each `TransformerBlock` for its weights
(`return_attention_scores=True`), so a notebook can draw them as heatmaps.
"""

import numpy as np
from keras import ops

from keras_transformer.errors import UserInputError
from keras_transformer.layers import TransformerBlock
from keras_transformer.models.gpt import _parts


def gpt_attention_maps(model, token_ids):
    """Self-attention weights of each block of a GPT from `build_gpt`.

    Args:
        model: a GPT (see `keras_transformer.models.build_gpt`).
        token_ids: int `[batch, time]` (no padding).

    Returns:
        A list with one numpy array `[batch, heads, time, time]` per block:
        row `t` of head `h` is how position `t` spreads its attention over
        positions `0 .. t` (the causal mask zeroes the rest); rows sum to 1.

    Example:

    >>> model = build_gpt(TransformerConfig(vocab_size=10, num_layers=2, d_model=16, num_heads=2))
    >>> [m.shape for m in gpt_attention_maps(model, np.ones((1, 5), "int32"))]
    [(1, 2, 5, 5), (1, 2, 5, 5)]
    """
    embedding, blocks, _, _ = _parts(model)
    x = embedding(ops.convert_to_tensor(token_ids, "int32"))
    maps = []
    for block in blocks:
        x, scores = block(x, training=False, return_attention_scores=True)
        maps.append(ops.convert_to_numpy(scores["self_attention"]))
    return maps


def _layer(model, *names):
    for name in names:
        try:
            return model.get_layer(name)
        except ValueError:
            continue
    return None


def seq2seq_cross_attention_maps(model, source_ids, target_ids):
    """Cross-attention weights of each decoder block of a `build_seq2seq` model.

    Args:
        model: an encoder-decoder from `keras_transformer.models.build_seq2seq`.
        source_ids: int `[batch, source_time]`, 0 = padding.
        target_ids: int `[batch, target_time]`, the decoder input (start
            token followed by the target so far).

    Returns:
        A list with one numpy array `[batch, heads, target_time, source_time]`
        per decoder block: which source tokens each target position reads.
        Padded source positions get zero weight.
    """
    source_embedding = _layer(model, "source_embedding", "embedding")
    target_embedding = _layer(model, "target_embedding", "embedding")
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    encoder = [block for block in blocks if block.name.startswith("encoder_block_")]
    decoder = [block for block in blocks if block.name.startswith("decoder_block_")]
    if source_embedding is None or not encoder or not decoder:
        raise UserInputError(f"model {model.name!r} is not an encoder-decoder from build_seq2seq")
    source_ids = ops.convert_to_tensor(np.asarray(source_ids), "int32")
    target_ids = ops.convert_to_tensor(np.asarray(target_ids), "int32")
    source_mask = ops.not_equal(source_ids, 0)
    target_mask = ops.not_equal(target_ids, 0)

    x = source_embedding(source_ids)
    for block in encoder:
        x = block(x, padding_mask=source_mask, training=False)
    encoder_norm = _layer(model, "encoder_norm")
    if encoder_norm is not None:
        x = encoder_norm(x)

    y = target_embedding(target_ids)
    maps = []
    for block in decoder:
        y, scores = block(
            y,
            padding_mask=target_mask,
            context=x,
            context_mask=source_mask,
            training=False,
            return_attention_scores=True,
        )
        maps.append(ops.convert_to_numpy(scores["cross_attention"]))
    return maps
