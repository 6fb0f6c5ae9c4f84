"""TensorFlow string ops shared by the Hugging Face tokenizers (byte-level BPE, WordPiece, T5).

Everything here is `tf.strings` / `tf.lookup` ops on batches of strings, so
a SavedModel that uses them needs only `tensorflow`. Texts are split into
ragged `[n, (pieces)]` tensors by marking cuts with a byte `0xFF` (`CUT`),
which UTF-8 text never holds, and splitting there; no marker character is
ever inserted into the text itself.

Example:

>>> regex_pieces(tf.constant(["a<s>b"]), literal_pattern(["<s>"])).to_list()
[[b'a', b'<s>', b'b']]
"""

import tensorflow as tf

CUT = b"\xff"  # never in UTF-8 text: marks where a string is cut

# Rust's `char::is_whitespace` (Unicode's White_Space), where BERT's and T5's
# pre-tokenizers in `tokenizers` split.
WHITE_SPACE = "9-d 20 85 a0 1680 2000-200a 2028-2029 202f 205f 3000"

# `transformers`' `clean_up_tokenization` (with `clean_up_tokenization_spaces`), on decoded text.
TRANSFORMERS_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                        (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"),
                        (" 're", "'re")]


def literal_pattern(strings):
    """An RE2 pattern matching any of `strings`, the longest one first at each position."""
    def escape(text):
        return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)

    return "|".join(escape(s) for s in sorted(strings, key=lambda s: (-len(s), s)))


def re2_class(ranges):
    """The inside of an RE2 character class (`\\x{41}-\\x{5a}...`) for `"41-5a ..."`."""
    parts = []
    for item in ranges.split():
        first, _, last = item.partition("-")
        parts.append(f"\\x{{{first}}}" + (f"-\\x{{{last}}}" if last else ""))
    return "".join(parts)


def subset_rows(mask, parts):
    """Rows `[n, (m)]`: `parts` (one row per True of `mask`) at `mask`, empty rows elsewhere."""
    lengths = tf.scatter_nd(
        tf.where(mask), parts.row_lengths(), tf.shape(mask, out_type=tf.int64)
    )
    return tf.RaggedTensor.from_row_lengths(parts.flat_values, lengths, validate=False)


def regex_pieces(strings, pattern):
    """Ragged `[n, (pieces)]`: `strings` cut before and after every match of `pattern`.

    The matches and the text between them are kept, empty pieces dropped.
    (`tensorflow_text.regex_split` would do, but it cuts a string short at a
    NUL character; `tf.strings.regex_replace` does not.)
    """
    marked = tf.strings.regex_replace(strings, f"({pattern})", CUT + b"\\1" + CUT)
    parts = tf.strings.split(marked, sep=CUT)
    return tf.ragged.boolean_mask(parts, parts != "")


def split_added_tokens(text, added, table, encode_free):
    """int32 ids `[n, (ids)]` of strings `[n]`: added tokens cut out first, the rest encoded.

    Args:
        text: strings `[n]` (valid UTF-8).
        added: the contents of the added tokens (may be empty).
        table: a `StaticHashTable` from added token content to id.
        encode_free: strings `[k]` -> int32 ids `[k, (ids)]`, for the text between.
    """
    if added:
        pattern = literal_pattern(added)
        pieces = regex_pieces(text, pattern)
        flags = tf.ragged.map_flat_values(tf.strings.regex_full_match, pieces, pattern)
    else:
        pieces = tf.RaggedTensor.from_tensor(tf.reshape(text, [-1, 1]))
        pieces = tf.ragged.boolean_mask(pieces, pieces != "")
        flags = tf.zeros_like(pieces, tf.bool)
    flat, is_added = pieces.flat_values, flags.flat_values
    free = tf.logical_not(is_added)
    free_ids = subset_rows(free, encode_free(tf.boolean_mask(flat, free)))
    added_ids = tf.RaggedTensor.from_row_lengths(
        table.lookup(tf.boolean_mask(flat, is_added)), tf.cast(is_added, tf.int64),
        validate=False,
    )
    ids = tf.concat([free_ids, added_ids], axis=1)
    return pieces.with_flat_values(ids).merge_dims(1, 2)


def static_table(mapping, key_dtype, value_dtype, default):
    """A `tf.lookup.StaticHashTable` of a Python dict (an empty one gives `default` for all).

    Example:

    >>> static_table({"[CLS]": 101}, tf.string, tf.int32, -1).lookup(tf.constant(["[CLS]", "x"]))
    <tf.Tensor: shape=(2,), dtype=int32, numpy=array([101,  -1], dtype=int32)>
    """
    keys, values = list(mapping), list(mapping.values())
    if not keys:  # a table needs one entry: a key that gives the default anyway
        keys, values = ["" if key_dtype == tf.string else -1], [default]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, key_dtype), tf.constant(values, value_dtype)
        ),
        default_value=default,
    )


def valid_utf8(strings):
    """`strings` with each invalid UTF-8 byte replaced by U+FFFD (Python's `errors="replace"`)."""
    return tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace",
                                        replacement_char=0xFFFD)


def replace_literals(text, pairs):
    """`text.replace(a, b)` for each `(a, b)` of `pairs` in turn, on strings."""
    for dirty, clean in pairs:
        text = tf.strings.regex_replace(text, literal_pattern([dirty]), clean)
    return text


def ragged_ids(inputs):
    """int32 ids as a ragged `[batch, (time)]`, from a ragged or dense `[batch, time]` (or `[time]`)."""
    ids = inputs if isinstance(inputs, tf.RaggedTensor) else tf.convert_to_tensor(inputs)
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(tf.reshape(ids, [-1, tf.shape(ids)[-1]]))
    return tf.cast(ids, tf.int32)
