"""What a trained model looks at: the attention weights of every block.

The models' forward pass does not keep attention weights (it would cost
memory at every step for nothing). The models re-run their layers eagerly,
in inference mode, asking each `TransformerBlock` for its weights
(`GPT.attention_maps`, `Seq2Seq.cross_attention_maps`), so a notebook can
draw them as heatmaps; these two functions call them.
"""

from keras_transformer.errors import UserInputError
from keras_transformer.models.gpt import GPT
from keras_transformer.models.seq2seq import Seq2Seq


def gpt_attention_maps(model, token_ids):
    """`model.attention_maps(token_ids)` of a `GPT`: one `[batch, heads, time, time]` per block.

    Example:

    >>> model = build_gpt(TransformerConfig(vocab_size=10, num_layers=2, d_model=16, num_heads=2))
    >>> [m.shape for m in gpt_attention_maps(model, np.ones((1, 5), "int32"))]
    [(1, 2, 5, 5), (1, 2, 5, 5)]
    """
    if not isinstance(model, GPT):
        raise UserInputError(f"model {model.name!r} is not a GPT from build_gpt")
    return model.attention_maps(token_ids)


def seq2seq_cross_attention_maps(model, source_ids, target_ids):
    """`model.cross_attention_maps(...)` of a `Seq2Seq`: one `[batch, heads, target, source]`
    per decoder block."""
    if not isinstance(model, Seq2Seq):
        raise UserInputError(f"model {model.name!r} is not an encoder-decoder from build_seq2seq")
    return model.cross_attention_maps(source_ids, target_ids)
