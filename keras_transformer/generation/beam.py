"""Beam search for an encoder-decoder (`build_seq2seq`) model.

Each source keeps `width` partial translations ("beams") and their summed
log-probabilities. At each step every live beam is extended by every token;
the `width` best extensions survive. A beam that emitted `</s>` is finished:
it is carried over unchanged (extended by padding at no cost) and competes
with the live ones on its score. With `width=1` this is greedy decoding.
"""

import numpy as np

from keras_transformer.errors import UserInputError
from keras_transformer.generation.seq2seq import NextLogits, _until_eos


def beam_search(model, source, bos_id, eos_id, max_target, width=4, pad_id=0,
                length_penalty=0.0, step=None):
    """The best-scoring output of each source under beam search.

    Args:
        model: a `build_seq2seq` model.
        source: int32 `[batch, source_time]` padded source ids.
        bos_id, eos_id: the start and end tokens.
        max_target: most tokens generated per beam (the `</s>` included).
        width: beams kept per source.
        length_penalty: GNMT's alpha; the final ranking divides the score by
            `((5 + length) / 6) ** alpha` (0: plain log-probability).
        step: a `NextLogits` to reuse.

    Returns:
        A list of int lists, the best output of each row without `</s>`.

    Example:

    >>> beam_search(model, source_ids, bos, eos, max_target=12, width=4)
    """
    if width < 1:
        raise UserInputError(f"beam width must be >= 1, got {width}")
    source = np.asarray(source, np.int32)
    step = step or NextLogits(model, pad_id)
    batch = len(source)
    tiled_source = np.repeat(source, width, axis=0)  # row b * width + k is beam k of source b
    window = np.zeros((batch, width, max_target + 1), np.int32)
    window[:, :, 0] = bos_id
    scores = np.full((batch, width), -np.inf)
    scores[:, 0] = 0.0  # one live beam at the start, so no beam is a duplicate
    finished = np.zeros((batch, width), bool)
    lengths = np.zeros((batch, width), np.int64)
    for t in range(max_target):
        logp = step(tiled_source, window[:, :, :max_target].reshape(batch * width, -1), t)
        logp = logp.reshape(batch, width, -1)
        vocab = logp.shape[-1]
        # A finished beam may only be extended by padding, at no cost.
        pad_only = np.full(vocab, -np.inf)
        pad_only[pad_id] = 0.0
        logp = np.where(finished[:, :, None], pad_only[None, None, :], logp)
        total = (scores[:, :, None] + logp).reshape(batch, width * vocab)
        # A stable sort keeps the lowest index among ties, like argmax.
        best = np.argsort(-total, axis=-1, kind="stable")[:, :width]
        parent, token = best // vocab, best % vocab
        rows = np.arange(batch)[:, None]
        window = window[rows, parent]
        window[:, :, t + 1] = token
        scores = total[rows, best]
        was_finished = finished[rows, parent]
        lengths = lengths[rows, parent] + (~was_finished)
        finished = was_finished | (token == eos_id)
        if finished.all():
            break
    ranked = scores / (((5.0 + lengths) / 6.0) ** length_penalty)
    choice = np.argmax(ranked, axis=-1)
    return [_until_eos(window[b, choice[b], 1:], eos_id, pad_id) for b in range(batch)]
