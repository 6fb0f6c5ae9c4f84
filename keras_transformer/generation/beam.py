"""Beam search for an encoder-decoder (`build_seq2seq`) model.

Each source keeps `width` partial translations ("beams") and their summed
log-probabilities. At each step every live beam is extended by every token;
the `width` best extensions survive. A beam that emitted `</s>` is finished:
it is carried over unchanged (extended by padding at no cost) and competes
with the live ones on its score. With `width=1` this is greedy decoding.

A `Seq2Seq` decodes KV-cached (`generation.seq2seq.CachedSteps`): the
encoder runs once on the sources tiled `width` times, and after every step
the self-attention cache follows the surviving beams to their parents.

How this differs from `transformers`' `generate(num_beams=width)`: there a
beam that ends leaves the beam for a list of finished hypotheses, so
`width` beams stay live, and the hypotheses are ranked by
`score / length ** length_penalty` (with an early-stopping heuristic). As
long as no beam ends (no `eos_id`, or none chosen within `max_target`) the
two are the same search and return the same output.
"""

import numpy as np

from keras_transformer.errors import UserInputError
from keras_transformer.generation.seq2seq import _until_eos, decoding_steps


def beam_search(model, source, bos_id, eos_id, max_target, width=4, pad_id=0,
                length_penalty=0.0, step=None, use_cache=None):
    """The best-scoring output of each source under beam search.

    Args:
        model: a `build_seq2seq` model (or a T5 from `from_pretrained`).
        source: int32 `[batch, source_time]` source ids, padded with 0.
        bos_id: the decoder's start token (T5: 0).
        eos_id: the end token (`None`: none; every beam runs to `max_target`).
        max_target: most tokens generated per beam (the `</s>` included).
        width: beams kept per source.
        pad_id: an id never generated, which extends finished beams
            (`None`: every id may be generated; finished beams are extended
            by `eos_id`, also at no cost).
        length_penalty: GNMT's alpha; the final ranking divides the score by
            `((5 + length) / 6) ** alpha` (0: plain log-probability).
        step: a `CachedSteps` or `NextLogits` to reuse (see `greedy_decode`).
        use_cache: KV-cached decoding when `step` is not given (`None`: for
            every `Seq2Seq`): the encoder runs once on the tiled sources and
            each step reorders the self-attention cache by the beams' parents.

    Returns:
        A list of int lists, the best output of each row without `</s>`.

    Example:

    >>> beam_search(model, source_ids, bos, eos, max_target=12, width=4)
    """
    if width < 1:
        raise UserInputError(f"beam width must be >= 1, got {width}")
    source = np.asarray(source, np.int32)
    step = step or decoding_steps(model, pad_id, use_cache=use_cache)
    batch = len(source)
    # Row b * width + k is beam k of source b.
    decoding = step.start(np.repeat(source, width, axis=0), max_target)
    filler = pad_id if pad_id is not None else eos_id
    outputs = np.zeros((batch, width, max_target), np.int32)
    tokens = np.full(batch * width, bos_id, np.int32)
    scores = np.full((batch, width), -np.inf)
    scores[:, 0] = 0.0  # one live beam at the start, so no beam is a duplicate
    finished = np.zeros((batch, width), bool)
    lengths = np.zeros((batch, width), np.int64)
    rows = np.arange(batch)[:, None]
    for t in range(max_target):
        logp = decoding.next(tokens, t).reshape(batch, width, -1)
        vocab = logp.shape[-1]
        if finished.any():  # a finished beam may only be extended by the filler, at no cost
            filler_only = np.full(vocab, -np.inf)
            filler_only[filler] = 0.0
            logp = np.where(finished[:, :, None], filler_only[None, None, :], logp)
        total = (scores[:, :, None] + logp).reshape(batch, width * vocab)
        # A stable sort keeps the lowest index among ties, like argmax.
        best = np.argsort(-total, axis=-1, kind="stable")[:, :width]
        parent, token = best // vocab, best % vocab
        outputs = outputs[rows, parent]
        outputs[:, :, t] = token
        scores = total[rows, best]
        was_finished = finished[rows, parent]
        lengths = lengths[rows, parent] + (~was_finished)
        finished = was_finished | (token == eos_id) if eos_id is not None else was_finished
        if finished.all():
            outputs[:, :, t + 1:] = filler
            break
        decoding.reorder((rows * width + parent).reshape(-1))
        tokens = token.reshape(-1).astype(np.int32)
    ranked = scores / (((5.0 + lengths) / 6.0) ** length_penalty)
    choice = np.argmax(ranked, axis=-1)
    return [_until_eos(outputs[b, choice[b]], eos_id, pad_id) for b in range(batch)]
