"""Tokenizers as TensorFlow graph ops, for models exported without Python.

`graph_tokenizer(tokenizer)` turns a Python tokenizer (`CharTokenizer`, a
SentencePiece tokenizer with `kind == "bpe"` and its serialized model in
`proto`, or a Hugging Face `ByteLevelBPETokenizer`, `WordPieceTokenizer` or
`T5SentencePieceTokenizer`) into a `tf.Module` whose
`encode` and `decode` are TensorFlow ops giving the same ids and text as the
Python `encode` and `decode`. A SavedModel that holds one needs only
`tensorflow` (and `tensorflow_text` for SentencePiece and WordPiece) to
turn strings into ids and back.

- char: `tf.strings.unicode_split` into code points (Python's characters)
  and a `tf.lookup.StaticHashTable` from character to id. A character
  outside the vocabulary fails an assertion that names it, like
  `CharTokenizer.encode`. Padding (id 0) decodes to nothing, special tokens
  to their names.
- bpe: `tensorflow_text.SentencepieceTokenizer` over the same model proto
  (no BOS/EOS added), which normalizes and byte-falls-back exactly as the
  `sentencepiece` library does.
- byte_level_bpe: `hf_tokenizers.ByteLevelBPEGraphTokenizer`, the same
  TensorFlow ops the Python tokenizer runs (keras-hub's `BytePairTokenizer`
  with Hugging Face's pre-tokenization), its lookup tables and BPE cache
  tracked by the module so that the SavedModel keeps them.
- wordpiece, t5_sentencepiece: `hf_wordpiece.WordPieceGraphTokenizer` and
  `hf_sentencepiece.T5SentencePieceGraphTokenizer`, likewise the Python
  tokenizer's own layer (BERT's normalization and `tensorflow_text`'s
  `FastWordpieceTokenizer`; T5's normalization and `tensorflow_text`'s
  SentencePiece op), its tables and model tracked by the module. A T5
  twin adds no `</s>`, as `encode(text)`.
"""

import importlib

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError


def _quoted(strings):
    """`'a', '\\n'`: one line listing the strings of a 1-D string tensor."""
    # RE2 patterns and rewrites: a backslash becomes two, a newline becomes backslash-n ...
    for pattern, rewrite in ((r"\\", r"\\\\"), (r"\n", r"\\n"), (r"\r", r"\\r"), (r"\t", r"\\t")):
        strings = tf.strings.regex_replace(strings, pattern, rewrite)
    return tf.strings.reduce_join(tf.strings.join(["'", strings, "'"]), separator=", ")


class CharGraphTokenizer(tf.Module):
    """`CharTokenizer` as graph ops.

    Args:
        tokenizer: a `CharTokenizer`.
        vocab_size: ids the model can produce (at least the tokenizer's);
            ids without a character decode to nothing.
    """

    def __init__(self, tokenizer, vocab_size=None, name="char_tokenizer"):
        super().__init__(name=name)
        chars = list(tokenizer.chars)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(chars, tf.string), tf.range(1, len(chars) + 1, dtype=tf.int32)
            ),
            default_value=-1,
        )
        names = ["", *chars, *tokenizer.specials]
        names += [""] * max(0, (vocab_size or 0) - len(names))
        self.names = tf.Variable(names, dtype=tf.string, trainable=False, name="names")

    def encode(self, text):
        """int32 ids (ragged `[batch, None]`) of a batch of strings `[batch]`."""
        chars = tf.strings.unicode_split(text, "UTF-8")
        ids = tf.ragged.map_flat_values(self.table.lookup, chars)
        unknown, _ = tf.unique(tf.boolean_mask(chars.flat_values, ids.flat_values < 0))
        message = tf.strings.join([
            tf.strings.as_string(tf.size(unknown)),
            " character(s) not in the tokenizer's vocabulary: ",
            _quoted(unknown[:10]),
        ])
        check = tf.debugging.Assert(tf.equal(tf.size(unknown), 0), [message])
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def decode(self, ids):
        """One string per row of int `ids` (`[batch, time]`); padding decodes to nothing."""
        return tf.strings.reduce_join(tf.gather(self.names, ids), axis=-1)


class SentencePieceGraphTokenizer(tf.Module):
    """A SentencePiece tokenizer (`kind == "bpe"`, `proto` bytes) as graph ops."""

    def __init__(self, tokenizer, name="sentencepiece_tokenizer"):
        super().__init__(name=name)
        import tensorflow_text  # registers the SentencePiece ops

        self.sentencepiece = tensorflow_text.SentencepieceTokenizer(
            model=tokenizer.proto, out_type=tf.int32
        )

    def encode(self, text):
        """int32 ids (ragged `[batch, None]`) of a batch of strings `[batch]`."""
        return self.sentencepiece.tokenize(text)

    def decode(self, ids):
        """One string per row of int `ids` (`[batch, time]`)."""
        return self.sentencepiece.detokenize(ids)


# Byte-level BPE encodes any text: white-space runs, contractions, digits, scripts, emoji.
BYTE_LEVEL_PROBE = "Hello, world! It's 2024:\n\n  tabs\t\tand   spaces \u00e9t\u00e9 \u65e5\u672c \U0001f642"


def _probe_text(tokenizer):
    """A text every tokenizer of its kind can encode: its own vocabulary, decoded."""
    if tokenizer.kind == "char":
        return "".join(tokenizer.chars)
    if tokenizer.kind == "byte_level_bpe":
        first, last = tokenizer.ordinary_ids
        return BYTE_LEVEL_PROBE + tokenizer.decode(np.arange(max(first, 256), min(last, 556) + 1))
    return tokenizer.decode(np.arange(4, min(tokenizer.vocab_size, 300), dtype=np.int32))


# The graph twins of the Hugging Face tokenizers: (module, class) by kind.
HF_GRAPH_TOKENIZERS = {
    "byte_level_bpe": ("keras_transformer.data.hf_tokenizers", "ByteLevelBPEGraphTokenizer"),
    "wordpiece": ("keras_transformer.data.hf_wordpiece", "WordPieceGraphTokenizer"),
    "t5_sentencepiece": ("keras_transformer.data.hf_sentencepiece",
                         "T5SentencePieceGraphTokenizer"),
}


def graph_tokenizer(tokenizer, vocab_size=None):
    """The graph-op twin of `tokenizer` (dispatching on `tokenizer.kind`).

    The twin is checked against the Python tokenizer on a text made of the
    tokenizer's own vocabulary: the same ids, and the same text back.

    Raises:
        UserInputError: an unknown tokenizer kind, or a twin that disagrees.
    """
    kind = getattr(tokenizer, "kind", None)
    if kind == "char":
        twin = CharGraphTokenizer(tokenizer, vocab_size)
    elif kind == "bpe":
        twin = SentencePieceGraphTokenizer(tokenizer)
    elif kind in HF_GRAPH_TOKENIZERS:
        module, name = HF_GRAPH_TOKENIZERS[kind]
        twin = getattr(importlib.import_module(module), name)(tokenizer, vocab_size)
    else:
        raise UserInputError(f"cannot put a {kind!r} tokenizer into a TensorFlow graph")
    probe = _probe_text(tokenizer)
    expected = np.asarray(tokenizer.encode(probe), dtype=np.int32)
    got = twin.encode(tf.constant([probe])).to_tensor().numpy()[0]
    decoded = twin.decode(tf.constant(expected[None, :])).numpy()[0].decode("utf-8")
    if not np.array_equal(got, expected) or decoded != tokenizer.decode(expected):
        raise UserInputError(
            f"the in-graph {kind} tokenizer disagrees with the Python one on its own vocabulary"
        )
    return twin
