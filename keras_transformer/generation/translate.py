"""`translate`: text in, text out, for an encoder-decoder and its tokenizer.

It puts together what decoding an encoder-decoder needs: the source ids
(with T5's `</s>` after each source), the decoder's start token, the end
token that stops a row, and greedy (`num_beams=1`) or beam search, KV-cached
by default (`generation.seq2seq.CachedSteps`).

Two kinds of model and tokenizer are understood:

- a Hugging Face T5 (`from_pretrained(folder)`) with its SentencePiece
  tokenizer (`load_tokenizer(folder)`): every id is a real token, the
  decoder starts with the checkpoint's `decoder_start_token_id` (the pad id,
  0) and stops at `</s>`;
- a `train.py --arch seq2seq` run's model and tokenizer: `<s>` starts the
  decoder, `</s>` ends it, id 0 is padding and never generated.
"""

import numpy as np

from keras_transformer.data.seq2seq import decode_target, encode_source, pair_special_ids
from keras_transformer.errors import UserInputError
from keras_transformer.generation.beam import beam_search
from keras_transformer.generation.seq2seq import check_source, decoding_steps, greedy_decode


def source_ids(tokenizer, texts, max_len):
    """int32 `[len(texts), longest]` source ids, padded with 0 (T5: each ends in `</s>`)."""
    rows = [encode_source(tokenizer, text) for text in texts]
    source = np.zeros((len(rows), max(1, max(map(len, rows)))), np.int32)
    for i, row in enumerate(rows):
        source[i, :len(row)] = row
    check_source(source, max_len)
    return source


def translate(model, tokenizer, texts, max_new_tokens=64, num_beams=1, use_cache=True,
              decoder_start_id=None, length_penalty=0.0):
    """The decoder's output text for each source text.

    Args:
        model: a `Seq2Seq` (from `from_pretrained` or a seq2seq run).
        tokenizer: its tokenizer.
        texts: a string or a list of strings.
        max_new_tokens: most tokens generated per text (`</s>` included).
        num_beams: 1 for greedy decoding, more for beam search.
        use_cache: KV-cached decoding (the encoder once, cross-attention keys
            and values once, the decoder one token a step); `False` re-runs
            the whole model on the window of decoder inputs at every step.
            Both give the same tokens.
        decoder_start_id: the decoder's first input (`None`: see the module
            docstring).
        length_penalty: GNMT's alpha for beam search's final ranking.

    Returns:
        A string for a string, else a list of strings.

    Example:

    >>> model = from_pretrained("checkpoints/tiny-t5")
    >>> translate(model, load_tokenizer("checkpoints/tiny-t5"), "translate: hello", 8)
    """
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    if not texts:
        return []
    if num_beams < 1:
        raise UserInputError(f"num_beams must be >= 1, got {num_beams}")
    if max_new_tokens < 1:
        raise UserInputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    empty = next((i for i, text in enumerate(texts, start=1) if not text.strip()), None)
    if empty is not None:
        raise UserInputError(f"source {empty} is empty; give at least one character")
    bos, eos, pad = pair_special_ids(tokenizer, decoder_start_id)
    source = source_ids(tokenizer, texts, model.config.max_len)
    step = decoding_steps(model, pad, use_cache=use_cache)
    if num_beams == 1:
        out = greedy_decode(model, source, bos, eos, max_new_tokens, pad_id=pad, step=step)
    else:
        out = beam_search(model, source, bos, eos, max_new_tokens, width=num_beams, pad_id=pad,
                          length_penalty=length_penalty, step=step)
    decoded = [decode_target(tokenizer, ids) for ids in out]
    return decoded[0] if single else decoded
