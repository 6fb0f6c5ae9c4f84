"""Greedy decoding of an encoder-decoder (`build_seq2seq`) model.

The decoder input is a fixed window `[batch, max_target]`, filled left to
right: `<s>` at position 0, then each chosen token. Because the decoder's
self-attention is causal, the logits at position `t` only depend on the
tokens up to `t`, whatever the window holds after it. One compiled function
(`NextLogits`) computes them, so decoding traces once per batch shape.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError


class NextLogits:
    """`log_softmax` of the logits at decoder position `t`, padding id excluded.

    Args:
        model: a `build_seq2seq` model.
        pad_id: an id that is never generated (`None` allows every id).
        jit_compile: compile the step with XLA.

    Call arguments:
        source: int32 `[batch, source_time]`.
        window: int32 `[batch, max_target]` decoder input.
        t: the position whose next-token distribution is wanted.

    Returns a float64 numpy array `[batch, vocab]` of log-probabilities.
    """

    def __init__(self, model, pad_id=0, jit_compile=True):
        self.model = model
        self.pad_id = pad_id
        self._step = tf.function(self._logits, jit_compile=jit_compile)

    def _logits(self, source, window, t):
        logits = self.model({"source_ids": source, "target_ids": window}, training=False)
        last = tf.gather(logits, t, axis=1)
        if self.pad_id is not None:
            banned = tf.one_hot(self.pad_id, tf.shape(last)[-1], on_value=-float("inf"), off_value=0.0)
            last = last + banned[None, :]
        return tf.nn.log_softmax(last, axis=-1)

    def __call__(self, source, window, t):
        out = self._step(tf.constant(source, tf.int32), tf.constant(window, tf.int32),
                         tf.constant(t, tf.int32))
        return out.numpy().astype(np.float64)


def check_source(source, max_len):
    """Refuse empty or too long sources with a `UserInputError`."""
    for i, row in enumerate(source):
        length = int(np.count_nonzero(row))
        if length == 0:
            raise UserInputError(f"source {i + 1} is empty")
        if length > max_len:
            raise UserInputError(f"source {i + 1} is {length} tokens, longer than max_len={max_len}")


def greedy_decode(model, source, bos_id, eos_id, max_target, pad_id=0, step=None):
    """The most likely next token at every step, until `</s>` or `max_target` tokens.

    Args:
        model: a `build_seq2seq` model.
        source: int32 `[batch, source_time]` padded source ids.
        bos_id, eos_id: the start and end tokens.
        max_target: most tokens generated per row (the `</s>` included).
        step: a `NextLogits` to reuse (one is made otherwise).

    Returns:
        A list of int lists, the generated tokens of each row without `</s>`.

    Example:

    >>> greedy_decode(model, source_ids, tokenizer.special_id("<s>"),
    ...               tokenizer.special_id("</s>"), max_target=12)
    """
    source = np.asarray(source, np.int32)
    step = step or NextLogits(model, pad_id)
    # One extra column holds the last step's token; the model sees `max_target` columns.
    window = np.zeros((len(source), max_target + 1), np.int32)
    window[:, 0] = bos_id
    done = np.zeros(len(source), bool)
    for t in range(max_target):
        tokens = np.argmax(step(source, window[:, :max_target], t), axis=-1)
        tokens = np.where(done, pad_id, tokens)
        window[:, t + 1] = tokens
        done |= tokens == eos_id
        if done.all():
            break
    return [_until_eos(row[1:], eos_id, pad_id) for row in window]


def _until_eos(row, eos_id, pad_id):
    out = []
    for token in row.tolist():
        if token in (eos_id, pad_id):
            break
        out.append(int(token))
    return out
