"""Sentence embeddings from a BERT: the mean of its last hidden states over a text's tokens.

    from keras_transformer import embed, from_pretrained, load_tokenizer

    model = from_pretrained("checkpoints/all-MiniLM-L6-v2")      # a BertModel folder
    vectors = embed(model, load_tokenizer("checkpoints/all-MiniLM-L6-v2"),
                    ["A cat sits on the mat.", "A dog lies on the rug."])
    vectors.shape                                                # (2, 384)

This is the mean pooling of sentence-transformers: each text is packed as
`[CLS] text [SEP]`, and its vector is the average of the encoder's last
hidden states over those real tokens (`[CLS]` and `[SEP]` included, padding
excluded). Padding is never attended to, so a text's vector does not depend
on the other texts of its batch.
"""

import keras
import numpy as np

from keras_transformer.data.classify import encode_texts
from keras_transformer.errors import UserInputError
from keras_transformer.models.bert import BERT
from keras_transformer.models.bert_classifier import BertClassifier


def hidden_states_model(model):
    """A functional model of `model`'s layers: its inputs -> the last hidden states.

    Works for a `BERT` (with or without heads) and a `BertClassifier`: the
    output is the backbone's last block (after `final_norm` for a pre-LN
    config), `[batch, time, d_model]`, without running any head.
    """
    if not isinstance(model, (BERT, BertClassifier)):
        raise UserInputError(
            f"embed needs a BERT or a BertClassifier, not {type(model).__name__}"
        )
    last = model.final_norm if model.final_norm is not None else model.blocks[-1]
    return keras.Model(model.input, last.output, name=f"{model.name}_hidden_states")


def embed(model, tokenizer, texts, batch_size=32, max_len=None):
    """Mean-pooled sentence embeddings of `texts`: numpy float32 `[len(texts), d_model]`.

    Args:
        model: a `BERT` (e.g. `from_pretrained` of a `BertModel` or
            `BertForPreTraining` folder) or a `BertClassifier`.
        tokenizer: its tokenizer (a `WordPieceTokenizer`, or the
            `tokenizer.json` of a run: it needs `[CLS]` and `[SEP]` and pads
            with id 0).
        texts: a list of strings (a single string counts as one text).
        batch_size: texts run through the model at once.
        max_len: tokens per text, `[CLS]` and `[SEP]` included; longer texts
            are truncated (default: the model's `max_len`).

    Returns:
        Row `i` is the mean of the last hidden states over the tokens of
        `[CLS] texts[i] [SEP]`.

    Raises:
        UserInputError: another kind of model, a text with ids beyond the
            model's vocabulary, or a tokenizer without `[CLS]` / `[SEP]`.

    Example:

    >>> embed(model, tokenizer, ["hello world", "good night"]).shape
    (2, 32)
    """
    encoder = hidden_states_model(model)
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not all(isinstance(text, str) for text in texts):
        raise UserInputError("embed takes a list of strings")
    max_len = model.config.max_len if max_len is None else max_len
    if max_len > model.config.max_len:
        raise UserInputError(f"max_len {max_len} is above the model's max_len "
                             f"{model.config.max_len}")
    vectors = np.zeros((len(texts), model.config.d_model), np.float32)
    for start in range(0, len(texts), batch_size):
        token_ids, segment_ids, _ = encode_texts(tokenizer, texts[start:start + batch_size],
                                                 seq_len=max_len)
        if token_ids.max() >= model.config.vocab_size:
            raise UserInputError(
                f"the tokenizer gives id {token_ids.max()}, beyond the model's vocabulary of "
                f"{model.config.vocab_size}; use the model's own tokenizer"
            )
        hidden = encoder({"token_ids": token_ids, "segment_ids": segment_ids}, training=False)
        hidden = keras.ops.convert_to_numpy(keras.ops.cast(hidden, "float32"))
        real = (token_ids != 0).astype(np.float32)[..., None]
        vectors[start:start + len(token_ids)] = (hidden * real).sum(1) / real.sum(1)
    return vectors
