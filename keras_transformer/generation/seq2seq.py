"""Greedy decoding of an encoder-decoder (`build_seq2seq`, or a T5 from `from_pretrained`).

Decoding feeds the decoder one token per step: the start token at position
0, then each chosen token. Two kinds of steps compute the next-token
log-probabilities, and they compute the same ones:

- `CachedSteps` (the default for a `Seq2Seq`): the encoder runs once per
  batch, every decoder block's cross-attention keys and values of its output
  are projected once, and each new token runs through the decoder alone,
  its self-attention reading the keys and values of the earlier tokens from
  a cache (`Seq2Seq.call_with_cache`). One compiled function per batch
  shape.
- `NextLogits` (uncached): the whole model re-runs on a fixed window
  `[batch, max_target]` of the decoder inputs so far; because the decoder's
  self-attention is causal, the logits at position `t` only depend on the
  tokens up to `t`, whatever the window holds after it.

`decoding_steps(model)` picks one; `greedy_decode` and `beam_search` take
either as `step=`.
"""

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError
from keras_transformer.models.seq2seq import supports_cache


def _log_probs(logits, pad_id):
    """`log_softmax` of float32 `logits [batch, vocab]`, `pad_id` (if any) at -inf."""
    if pad_id is not None:
        banned = tf.one_hot(pad_id, tf.shape(logits)[-1], on_value=-float("inf"), off_value=0.0)
        logits = logits + banned[None, :]
    return tf.nn.log_softmax(logits, axis=-1)


class NextLogits:
    """`log_softmax` of the logits at decoder position `t`, padding id excluded (uncached).

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
        return _log_probs(tf.gather(logits, t, axis=1), self.pad_id)

    def __call__(self, source, window, t):
        out = self._step(tf.constant(source, tf.int32), tf.constant(window, tf.int32),
                         tf.constant(t, tf.int32))
        return out.numpy().astype(np.float64)

    def start(self, source, max_target):
        """A decoding of `source` of at most `max_target` decoder inputs (see `CachedSteps`)."""
        return _WindowDecoding(self, np.asarray(source, np.int32), max_target)


class _WindowDecoding:
    """An uncached decoding: the window of decoder inputs so far, re-run at every step."""

    def __init__(self, step, source, max_target):
        self.step, self.source = step, source
        self.window = np.zeros((len(source), max_target), np.int32)

    def next(self, tokens, t):
        """Log-probabilities `[rows, vocab]` of the token after `tokens` (decoder inputs
        at position `t`)."""
        self.window[:, t] = tokens
        return self.step(self.source, self.window, t)

    def reorder(self, rows):
        """Continue row `rows[i]`'s decoding in row `i` (beam search)."""
        self.window = self.window[rows]


class CachedSteps:
    """KV-cached decoding steps of a `Seq2Seq`, equal to `NextLogits`'s.

    `start(source, max_target)` runs the encoder once and projects every
    decoder block's cross-attention keys and values of its output once; each
    `next(tokens, t)` of the returned decoding runs the decoder on the one new
    token per row, against the self-attention cache of the tokens before it
    (`Seq2Seq.call_with_cache`). The encoding and the step are compiled
    functions, traced once per batch shape.

    Args:
        model: a `Seq2Seq` (from `build_seq2seq` or `from_pretrained`).
        pad_id: an id that is never generated (`None` allows every id, as a
            pretrained T5's vocabulary needs).
        jit_compile: compile with XLA.

    Example:

    >>> steps = CachedSteps(model)
    >>> decoding = steps.start(source_ids, max_target=12)
    >>> log_probs = decoding.next(np.full(len(source_ids), bos_id), 0)  # [batch, vocab]
    """

    def __init__(self, model, pad_id=0, jit_compile=True):
        if not supports_cache(model):
            raise UserInputError(f"model {model.name!r} has no KV cache (it is not a Seq2Seq); "
                                 "decode it with NextLogits")
        self.model = model
        self.pad_id = pad_id
        self._encode = tf.function(self._encoded, jit_compile=jit_compile)
        self._step = tf.function(self._next, jit_compile=jit_compile)

    def _encoded(self, source):
        encoded, source_mask = self.model.encode(source)
        return self.model.cross_cache(encoded), source_mask

    def _next(self, tokens, t, cache, cross, source_mask):
        logits, cache = self.model.call_with_cache(tokens[:, None], t, cache, cross, source_mask)
        return _log_probs(logits[:, -1], self.pad_id), cache

    def start(self, source, max_target):
        """A decoding of `source` (int `[rows, source_time]`) of at most `max_target` tokens."""
        cross, source_mask = self._encode(tf.constant(source, tf.int32))
        cache = self.model.init_cache(len(source), max_target)
        return _CachedDecoding(self, cross, source_mask, cache)


class _CachedDecoding:
    """A cached decoding: the cross-attention keys and values and the self-attention cache."""

    def __init__(self, steps, cross, source_mask, cache):
        self.steps, self.cross, self.source_mask, self.cache = steps, cross, source_mask, cache

    def next(self, tokens, t):
        """Log-probabilities `[rows, vocab]` (float64 numpy) of the token after `tokens`
        (int `[rows]`, the decoder inputs at position `t`)."""
        log_probs, self.cache = self.steps._step(
            tf.constant(tokens, tf.int32), tf.constant(t, tf.int32), self.cache, self.cross,
            self.source_mask)
        return log_probs.numpy().astype(np.float64)

    def reorder(self, rows):
        """Continue row `rows[i]`'s decoding in row `i` (beam search). The rows must stay
        with their own source (beams of one source share its encoder output), so only
        the self-attention cache moves."""
        rows = tf.constant(rows, tf.int32)
        self.cache = [(tf.gather(keys, rows), tf.gather(values, rows))
                      for keys, values in self.cache]


def decoding_steps(model, pad_id=0, jit_compile=True, use_cache=None):
    """The decoding steps of `model`: `CachedSteps` for a `Seq2Seq` (unless `use_cache` is
    `False`), `NextLogits` otherwise (e.g. a functional model of an earlier version)."""
    cached = supports_cache(model) if use_cache is None else use_cache
    return (CachedSteps if cached else NextLogits)(model, pad_id, jit_compile)


def check_source(source, max_len):
    """Refuse empty or too long sources with a `UserInputError`."""
    for i, row in enumerate(source):
        length = int(np.count_nonzero(row))
        if length == 0:
            raise UserInputError(f"source {i + 1} is empty")
        if length > max_len:
            raise UserInputError(f"source {i + 1} is {length} tokens, longer than max_len={max_len}")


def greedy_decode(model, source, bos_id, eos_id, max_target, pad_id=0, step=None,
                  use_cache=None):
    """The most likely next token at every step, until `</s>` or `max_target` tokens.

    Args:
        model: a `build_seq2seq` model (or a T5 from `from_pretrained`).
        source: int32 `[batch, source_time]` source ids, padded with 0.
        bos_id: the decoder's start token (T5: 0, its `decoder_start_token_id`).
        eos_id: the end token (`None`: none; every row runs to `max_target`).
        max_target: most tokens generated per row (the `</s>` included).
        pad_id: an id never generated, which also ends a row's output
            (`None`: every id may be generated, as with T5's vocabulary).
        step: a `CachedSteps` or `NextLogits` to reuse (made otherwise by
            `decoding_steps(model, pad_id, use_cache=use_cache)`).
        use_cache: KV-cached decoding when `step` is not given (`None`: for
            every `Seq2Seq`).

    Returns:
        A list of int lists, the generated tokens of each row without `</s>`.

    Example:

    >>> greedy_decode(model, source_ids, tokenizer.special_id("<s>"),
    ...               tokenizer.special_id("</s>"), max_target=12)
    """
    source = np.asarray(source, np.int32)
    step = step or decoding_steps(model, pad_id, use_cache=use_cache)
    decoding = step.start(source, max_target)
    filler = pad_id if pad_id is not None else eos_id  # what a finished row is fed
    out = np.zeros((len(source), max_target), np.int32)
    tokens = np.full(len(source), bos_id, np.int32)
    done = np.zeros(len(source), bool)
    for t in range(max_target):
        tokens = np.argmax(decoding.next(tokens, t), axis=-1).astype(np.int32)
        tokens = np.where(done, filler, tokens) if done.any() else tokens
        out[:, t] = tokens
        if eos_id is not None:
            done |= tokens == eos_id
        if done.all():
            out[:, t + 1:] = filler
            break
    return [_until_eos(row, eos_id, pad_id) for row in out]


def _until_eos(row, eos_id, pad_id):
    out = []
    for token in row.tolist():
        if token in (eos_id, pad_id):
            break
        out.append(int(token))
    return out
