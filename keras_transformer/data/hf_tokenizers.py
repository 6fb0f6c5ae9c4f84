"""Hugging Face byte-level BPE tokenizers (GPT-2, Llama 3, SmolLM) as TensorFlow ops.

`ByteLevelBPETokenizer` reads a Hugging Face tokenizer folder, either GPT-2's
`vocab.json` + `merges.txt` or a `tokenizer.json` (the `tokenizers` format),
with the special tokens of `tokenizer_config.json` / `special_tokens_map.json`,
and gives the ids the `tokenizers` library gives (`encode(text,
add_special_tokens=False)`). Encoding runs as TensorFlow ops, so the same
code tokenizes in Python, inside `tf.data` (`tf_tokenizer()`) and inside an
exported SavedModel (`ByteLevelBPEGraphTokenizer`, which `graph_tokenizer`
builds for `export_generator`).

How the ids are made, step by step as in `tokenizers`:

1. Added tokens (the special tokens and any other `added_tokens`) are cut
   out of the text first, longest match first; they map to their ids
   directly. Those not `normalized` are cut before those that are, as
   `tokenizers` does.
2. The rest is pre-tokenized: the steps of the pre-tokenizer (`Digits`,
   `Split` and `ByteLevel`) each split every piece of the previous step.
3. Each piece's UTF-8 bytes become the 256 printable "byte characters" of
   GPT-2 and the BPE merges are applied, lowest rank first, leftmost first
   (keras-hub's `BytePairTokenizer` does this part and caches each piece's
   result); with `ignore_merges` (Llama 3) a piece that is itself in the
   vocabulary is kept whole.

The pre-tokenizer regexes (GPT-2's and Llama 3's) use a look-ahead,
`\\s+(?!\\S)`, that RE2, TensorFlow's regex engine, lacks. It only decides one
thing: a run of two or more white-space characters before a non-space gives
its last character to what follows (in Llama 3's regex, unless that
character is a newline). The run is cut there first (a byte `0xFF`, which
UTF-8 text never holds, marks the cut) and the pieces are then split with
the same regex minus the look-ahead, which gives exactly the pieces of the
original. The regexes also spell out `\\s`, `\\p{L}` and `\\p{N}` as
Oniguruma (the engine of `tokenizers`) has them: RE2's `\\s` is ASCII only,
and its Unicode tables lack the letters and digits of Unicode 16. No
marker character is ever inserted into the text itself (keras-hub's own
GPT-2 splitting inserts `६`, and so mis-splits texts holding it), and all
splitting is `tf.strings` ops, so a SavedModel needs only `tensorflow`.
Strings given to the TensorFlow ops that are not valid UTF-8 are read with
U+FFFD for the invalid bytes, as Python's `bytes.decode(errors="replace")`.

What is reproduced exactly (anything else is refused with a `UserInputError`
naming it): model `BPE` without dropout, word prefixes/suffixes or byte
fallback, over a vocabulary that holds all 256 byte characters; no
normalizer; a pre-tokenizer that is `ByteLevel` (with or without
`add_prefix_space`) or a `Sequence` of `Digits`, `Split` (isolated, with
GPT-2's or Llama 3's regex) and a final `ByteLevel`; the `ByteLevel` decoder;
added tokens without `lstrip`, `rstrip` or `single_word`.
"""

import json
import os

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError

KIND = "byte_level_bpe"
VOCAB_FILE, MERGES_FILE, TOKENIZER_FILE = "vocab.json", "merges.txt", "tokenizer.json"
CONFIG_FILE, SPECIAL_TOKENS_FILE = "tokenizer_config.json", "special_tokens_map.json"
GPT2_END_OF_TEXT = "<|endoftext|>"
ROLES = ("bos", "eos", "pad", "unk")

# The regexes of `tokenizers`: ByteLevel's own (GPT-2's) and Llama 3's `Split` pattern.
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Oniguruma's `\s` (the Unicode White_Space characters), for RE2 character classes.
_SPACE = r"\t\n\x{0b}\x{0c}\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
_SPACE_NOT_NEWLINE = _SPACE.replace(r"\n", "").replace(r"\r", "")
# `\p{L}` and `\p{N}` plus the letters and digits Unicode 16 added (RE2's tables predate them).
_LETTER = (
    r"\p{L}\x{1c89}-\x{1c8a}\x{a7cb}-\x{a7cd}\x{a7da}-\x{a7dc}\x{105c0}-\x{105f3}"
    r"\x{10d4a}-\x{10d65}\x{10d6f}-\x{10d85}\x{10ec2}-\x{10ec4}\x{11380}-\x{11389}\x{1138b}"
    r"\x{1138e}\x{11390}-\x{113b5}\x{113b7}\x{113d1}\x{113d3}\x{11bc0}-\x{11be0}"
    r"\x{13460}-\x{143fa}\x{16100}-\x{1611d}\x{16d40}-\x{16d6c}\x{18cff}\x{1e5d0}-\x{1e5ed}"
    r"\x{1e5f0}\x{2ebf0}-\x{2ee5d}"
)
_NUMBER = (
    r"\p{N}\x{10d40}-\x{10d49}\x{116d0}-\x{116e3}\x{11bf0}-\x{11bf9}\x{16130}-\x{16139}"
    r"\x{16d70}-\x{16d79}\x{1ccf0}-\x{1ccf9}\x{1e5f1}-\x{1e5fa}"
)
_CUT = b"\xff"  # never in UTF-8 text: marks where a white-space run is cut

# Each supported regex: (RE2 pattern without the look-ahead, where white-space runs are cut).
# A run of 2+ spaces before a non-space is cut before its last character, except (Llama 3)
# when that character is a newline, which `\s*[\r\n]+` keeps with the run.
_REGEXES = {
    GPT2_PATTERN: (
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{_LETTER}]+| ?[{_NUMBER}]+"
        rf"| ?[^{_SPACE}{_LETTER}{_NUMBER}]+|[{_SPACE}]+",
        rf"([{_SPACE}])([{_SPACE}])([^{_SPACE}])",
    ),
    LLAMA3_PATTERN: (
        rf"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n{_LETTER}{_NUMBER}]?[{_LETTER}]+"
        rf"|[{_NUMBER}]{{1,3}}| ?[^{_SPACE}{_LETTER}{_NUMBER}]+[\r\n]*"
        rf"|[{_SPACE}]*[\r\n]+|[{_SPACE}]+",
        rf"([{_SPACE}])([{_SPACE_NOT_NEWLINE}])([^{_SPACE}])",
    ),
}
_REGEX_NAMES = {GPT2_PATTERN: "GPT-2", LLAMA3_PATTERN: "Llama 3"}

GPT2_PRE_TOKENIZER = {
    "type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True,
}


def byte_characters():
    """GPT-2's 256 byte characters: `chars[b]` stands for byte `b` in the vocabulary.

    Printable Latin-1 bytes stand for themselves; the others (control
    characters, space, ...) take the code points from 256 on, in order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in range(256)]


def _literal_pattern(strings):
    """An RE2 pattern matching any of `strings`, the longest one first at each position."""
    def escape(text):
        return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)

    return "|".join(escape(s) for s in sorted(strings, key=lambda s: (-len(s), s)))


# ---------------------------------------------------------------------------------------
# Reading and checking the Hugging Face files
# ---------------------------------------------------------------------------------------


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"{path} is not valid JSON ({error.msg}, line {error.lineno})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read {path}: {error}") from None


def _token_content(value):
    """The text of a special token given as a string or an `AddedToken` dict (or None)."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _check_pre_tokenizer(spec):
    """The steps of a pre-tokenizer spec, or a `UserInputError` naming what is unsupported.

    Returns a list of `("digits", individual)`, `("regex", pattern)` and
    `("prefix_space",)` steps, applied in order, each to every piece so far.
    """
    if spec is None:
        raise UserInputError("a tokenizer without a ByteLevel pre-tokenizer is not supported")
    if not isinstance(spec, dict):
        raise UserInputError(f"unsupported pre_tokenizer {spec!r}")
    parts = spec.get("pretokenizers") if spec.get("type") == "Sequence" else [spec]
    if not isinstance(parts, list) or not parts:
        raise UserInputError("the Sequence pre-tokenizer has no steps")
    steps = []
    for position, part in enumerate(parts):
        if not isinstance(part, dict):
            raise UserInputError(f"unsupported pre-tokenizer step {part!r}")
        kind = part.get("type")
        last = position == len(parts) - 1
        if kind == "ByteLevel":
            if not last:
                raise UserInputError("a pre-tokenizer step after ByteLevel is not supported")
            if part.get("add_prefix_space", True):
                steps.append(("prefix_space",))
            if part.get("use_regex", True):
                steps.append(("regex", GPT2_PATTERN))
        elif kind == "Digits":
            steps.append(("digits", bool(part.get("individual_digits", False))))
        elif kind == "Split":
            pattern = part.get("pattern") or {}
            regex = pattern.get("Regex") if isinstance(pattern, dict) else None
            if regex not in _REGEXES:
                shown = json.dumps(pattern, ensure_ascii=False)[:80]
                raise UserInputError(
                    f"the Split pre-tokenizer pattern {shown} is not supported "
                    "(only GPT-2's and Llama 3's regexes are reproduced in TensorFlow)"
                )
            if part.get("behavior") != "Isolated" or part.get("invert", False):
                raise UserInputError(
                    f"a Split pre-tokenizer with behavior {part.get('behavior')!r}"
                    f"{' inverted' if part.get('invert') else ''} is not supported "
                    "(only Isolated)"
                )
            steps.append(("regex", regex))
        else:
            raise UserInputError(f"the {kind} pre-tokenizer is not supported")
    if parts[-1].get("type") != "ByteLevel":
        raise UserInputError("the pre-tokenizer must end with ByteLevel (a byte-level BPE)")
    return steps


def _check_model(model):
    """Vocabulary, merges and `ignore_merges` of a tokenizer.json `model`."""
    if model.get("type", "BPE") != "BPE":
        raise UserInputError(f"a {model.get('type')} model is not supported (only BPE)")
    for key, allowed in (("dropout", (None, 0)), ("continuing_subword_prefix", (None, "")),
                         ("end_of_word_suffix", (None, "")), ("byte_fallback", (None, False))):
        if model.get(key) not in allowed:
            raise UserInputError(f"a BPE model with {key}={model.get(key)!r} is not supported")
    vocab, merges = model.get("vocab"), model.get("merges")
    if not isinstance(vocab, dict) or not isinstance(merges, list):
        raise UserInputError("the BPE model needs a vocab object and a merges list")
    pairs = []
    for merge in merges:
        if isinstance(merge, str):
            merge = merge.split(" ")
        if not isinstance(merge, list) or len(merge) != 2:
            raise UserInputError(f"bad merge {merge!r} in the BPE model")
        pairs.append((merge[0], merge[1]))
    return vocab, pairs, bool(model.get("ignore_merges", False))


def _check_added_tokens(added):
    tokens = []
    for token in added or ():
        if not isinstance(token, dict) or not isinstance(token.get("content"), str):
            raise UserInputError(f"bad added token {token!r}")
        for flag in ("lstrip", "rstrip", "single_word"):
            if token.get(flag):
                raise UserInputError(
                    f"the added token {token['content']!r} uses {flag}, which is not supported"
                )
        try:
            token_id = int(token["id"])
        except (KeyError, TypeError, ValueError):
            raise UserInputError(f"the added token {token['content']!r} has no id") from None
        tokens.append({"id": token_id, "content": token["content"],
                       "special": bool(token.get("special", False)),
                       "normalized": bool(token.get("normalized", False))})
    return tokens


def _read_config(folder):
    """Special-token roles and flags from tokenizer_config.json / special_tokens_map.json."""
    config_path = os.path.join(folder, CONFIG_FILE)
    config = _read_json(config_path) if os.path.isfile(config_path) else {}
    map_path = os.path.join(folder, SPECIAL_TOKENS_FILE)
    special_map = _read_json(map_path) if os.path.isfile(map_path) else {}
    if not isinstance(config, dict) or not isinstance(special_map, dict):
        raise UserInputError(f"{folder}: {CONFIG_FILE} and {SPECIAL_TOKENS_FILE} must be objects")
    roles = {}
    for role in ROLES:
        key = f"{role}_token"
        roles[role] = _token_content(config.get(key)) or _token_content(special_map.get(key))
    added = []
    for token_id, token in (config.get("added_tokens_decoder") or {}).items():
        if isinstance(token, dict):
            added.append({**token, "id": token_id})
    return config, roles, _check_added_tokens(added)


# ---------------------------------------------------------------------------------------
# The TensorFlow side: keras-hub's BytePairTokenizer with exact pre-tokenization
# ---------------------------------------------------------------------------------------


def _subset_rows(mask, parts):
    """Rows `[n, (m)]`: `parts` (one row per True of `mask`) at `mask`, empty rows elsewhere."""
    lengths = tf.scatter_nd(
        tf.where(mask), parts.row_lengths(), tf.shape(mask, out_type=tf.int64)
    )
    return tf.RaggedTensor.from_row_lengths(parts.flat_values, lengths, validate=False)


def _regex_pieces(strings, pattern):
    """Ragged `[n, (pieces)]`: `strings` cut before and after every match of `pattern`.

    The matches and the text between them are kept, empty pieces dropped.
    (`tensorflow_text.regex_split` would do, but it cuts a string short at a
    NUL character; `tf.strings.regex_replace` does not.)
    """
    marked = tf.strings.regex_replace(strings, f"({pattern})", _CUT + b"\\1" + _CUT)
    parts = tf.strings.split(marked, sep=_CUT)
    return tf.ragged.boolean_mask(parts, parts != "")


def _make_layer_class():
    """`ExactBytePairLayer`, defined on first use (keras-hub is imported only then)."""
    import keras_hub

    class ExactBytePairLayer(keras_hub.tokenizers.BytePairTokenizer):
        """keras-hub's `BytePairTokenizer` with the pre-tokenization of Hugging Face's.

        keras-hub's own splitting approximates GPT-2's regex (inserting a
        marker character, ASCII-only white space); this one reproduces the
        steps of `tokenizers` exactly, cuts out added tokens first and knows
        `ignore_merges`. The BPE merge loop, its cache and the vocabulary
        tables are keras-hub's.

        Args:
            vocabulary: the BPE model's vocabulary, token -> id.
            merges: the merges, `"a b"` strings by rank.
            steps: pre-tokenizer steps (see `_check_pre_tokenizer`).
            added: `{content: id}` of the added tokens.
            first_added: the contents matched before the others (not `normalized`).
            ignore_merges: keep a piece whole when it is in the vocabulary.
            id_bytes: `{id: bytes}`, what each id decodes to.
        """

        def __init__(self, vocabulary, merges, steps, added, first_added, ignore_merges,
                     id_bytes, **kwargs):
            super().__init__(vocabulary, merges, dtype="int32", _allow_python_workflow=False,
                             **kwargs)
            self._steps = list(steps)
            self._ignore_merges = bool(ignore_merges)
            later = sorted(set(added) - set(first_added))
            self._added_patterns = [_literal_pattern(g) for g in (sorted(first_added), later) if g]
            self.added_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(added) or [""], tf.string),
                    tf.constant(list(added.values()) or [-1], tf.int32),
                ),
                default_value=-1,
            )
            ids = sorted(id_bytes)
            self.id_bytes_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(ids, tf.int32), tf.constant([id_bytes[i] for i in ids], tf.string)
                ),
                default_value=b"",
            )

        @property
        def resources(self):
            """Every TensorFlow table the ops use (a SavedModel must track them all)."""
            return [self.byte2unicode, self.unicode2byte, self.token_to_id_map,
                    self.id_to_token_map, self.merge_ranks, self.cache.id2value,
                    self.added_table, self.id_bytes_table]

        # -- pre-tokenization ------------------------------------------------------------

        def _split_free(self, pieces, added, split):
            """Apply `split` (strings [k] -> ragged [k, (m)]) to the pieces not added tokens."""
            flat, flags = pieces.flat_values, added.flat_values
            free = tf.logical_not(flags)
            parts, part_flags = split(tf.boolean_mask(flat, free))
            kept = tf.RaggedTensor.from_row_lengths(
                tf.boolean_mask(flat, flags), tf.cast(flags, tf.int64), validate=False
            )
            combined = tf.concat([_subset_rows(free, parts), kept], axis=1)
            combined_flags = tf.concat(
                [_subset_rows(free, part_flags), tf.ones_like(kept, tf.bool)], axis=1
            )
            return (pieces.with_flat_values(combined).merge_dims(1, 2),
                    added.with_flat_values(combined_flags).merge_dims(1, 2))

        @staticmethod
        def _digits(pattern):
            def split(strings):
                parts = _regex_pieces(strings, pattern)
                return parts, tf.zeros_like(parts, tf.bool)

            return split

        @staticmethod
        def _added_pieces(pattern):
            def split(strings):
                parts = _regex_pieces(strings, pattern)
                return parts, tf.ragged.map_flat_values(tf.strings.regex_full_match, parts, pattern)

            return split

        @staticmethod
        def _pre_tokenizer_regex(regex):
            pattern, cut = _REGEXES[regex]

            def split(strings):
                marked = tf.strings.regex_replace(strings, cut, b"\\1" + _CUT + b"\\2\\3")
                chunks = tf.strings.split(marked, sep=_CUT)
                parts = chunks.with_flat_values(_regex_pieces(chunks.flat_values, pattern))
                parts = parts.merge_dims(1, 2)
                return parts, tf.zeros_like(parts, tf.bool)

            return split

        @staticmethod
        def _prefix_space(strings):
            starts = tf.strings.substr(strings, 0, 1) == " "
            spaced = tf.where(starts, strings, tf.strings.join([" ", strings]))
            parts = tf.RaggedTensor.from_row_lengths(
                spaced, tf.ones_like(strings, tf.int64), validate=False
            )
            return parts, tf.zeros_like(parts, tf.bool)

        def pre_tokenize(self, text):
            """Pieces `[batch, (pieces)]` of strings `[batch]`, and which are added tokens."""
            pieces = tf.RaggedTensor.from_tensor(tf.reshape(text, [-1, 1]))
            pieces = tf.ragged.boolean_mask(pieces, pieces != "")  # an empty text has no pieces
            added = tf.zeros_like(pieces, tf.bool)
            for pattern in self._added_patterns:
                pieces, added = self._split_free(pieces, added, self._added_pieces(pattern))
            for step in self._steps:
                if step[0] == "digits":
                    number = f"[{_NUMBER}]" if step[1] else f"[{_NUMBER}]+"
                    split = self._digits(number)
                elif step[0] == "prefix_space":
                    split = self._prefix_space
                else:
                    split = self._pre_tokenizer_regex(step[1])
                pieces, added = self._split_free(pieces, added, split)
            return pieces, added

        # -- BPE ---------------------------------------------------------------------------

        def _bpe_merge_and_update_cache_tf(self, tokens):
            """Merge the pieces not in the cache yet (each once) and cache the results."""
            tokens, _ = tf.unique(tokens)
            chars = self.byte2unicode.lookup(tf.strings.bytes_split(tokens))
            merged = tf.strings.reduce_join(self._bpe_merge_tf(chars), axis=1, separator=" ")
            if self._ignore_merges:
                whole = tf.strings.reduce_join(chars, axis=1)
                merged = tf.where(self.token_to_id_map.lookup(whole) >= 0, whole, merged)
            self.cache.insert(tokens, merged)

        def _bpe_ids(self, words):
            """int32 ids `[k, (ids)]` of the pieces `words` `[k]` (none an added token)."""
            cached = self.cache.lookup(words)

            def merge_unseen():
                self._bpe_merge_and_update_cache_tf(tf.boolean_mask(words, cached == ""))
                return self.cache.lookup(words)

            merged = tf.cond(tf.reduce_any(cached == ""), merge_unseen, lambda: cached)
            return tf.ragged.map_flat_values(
                self.token_to_id_map.lookup, tf.strings.split(merged, sep=" ")
            )

        def tokenize(self, inputs):
            """int32 ids: `[None]` for a string, ragged `[batch, None]` for strings `[batch]`."""
            with tf.device("cpu"):
                text = tf.convert_to_tensor(inputs, tf.string)
                scalar = text.shape.rank == 0
                text = tf.strings.unicode_transcode(
                    tf.reshape(text, [-1]), "UTF-8", "UTF-8", errors="replace",
                    replacement_char=0xFFFD,
                )
                pieces, added = self.pre_tokenize(text)
                flat, flags = pieces.flat_values, added.flat_values
                free = tf.logical_not(flags)
                bpe = _subset_rows(free, self._bpe_ids(tf.boolean_mask(flat, free)))
                special = tf.RaggedTensor.from_row_lengths(
                    self.added_table.lookup(tf.boolean_mask(flat, flags)),
                    tf.cast(flags, tf.int64), validate=False,
                )
                ids = pieces.with_flat_values(tf.concat([bpe, special], axis=1)).merge_dims(1, 2)
                return ids[0] if scalar else ids

        def detokenize(self, inputs):
            """Text (UTF-8, invalid bytes replaced by U+FFFD) of int ids `[batch, time]`."""
            with tf.device("cpu"):
                ids = inputs if isinstance(inputs, tf.RaggedTensor) else tf.convert_to_tensor(inputs)
                ids = tf.cast(ids, tf.int32)
                if isinstance(ids, tf.RaggedTensor):
                    pieces = tf.ragged.map_flat_values(self.id_bytes_table.lookup, ids)
                else:
                    pieces = self.id_bytes_table.lookup(ids)
                return tf.strings.unicode_transcode(
                    tf.strings.reduce_join(pieces, axis=-1), "UTF-8", "UTF-8",
                    errors="replace", replacement_char=0xFFFD,
                )

    return ExactBytePairLayer


_CLASSES = {}


def _layer_class():
    if "layer" not in _CLASSES:
        _CLASSES["layer"] = _make_layer_class()
    return _CLASSES["layer"]


# ---------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------


class ByteLevelBPETokenizer:
    """A Hugging Face byte-level BPE tokenizer (GPT-2, Llama 3, SmolLM) with the same ids.

    Build one with `from_directory` (a folder with `tokenizer.json`, or
    `vocab.json` + `merges.txt`), `from_file` (a `tokenizer.json`), or
    `load_tokenizer(path)`. Encoding is TensorFlow ops (keras-hub's
    `BytePairTokenizer` with exact pre-tokenization), the same in Python, in
    `tf.data` (`tf_tokenizer()`) and in a SavedModel
    (`ByteLevelBPEGraphTokenizer`). `encode` adds no special tokens (as
    `tokenizers`' `encode(text, add_special_tokens=False)`), but special
    tokens written in the text (e.g. `<|endoftext|>`) become their ids, as in
    `tokenizers`.

    Args:
        vocabulary: the BPE vocabulary, token (in byte characters) -> id.
        merges: the merges by rank, `(a, b)` pairs or `"a b"` strings.
        added_tokens: Hugging Face added tokens, dicts with `id`, `content`,
            `special` and `normalized` (as in `tokenizer.json`).
        pre_tokenizer: the `pre_tokenizer` of a `tokenizer.json` (default
            GPT-2's: `ByteLevel` without prefix space).
        ignore_merges: keep a piece whole when it is in the vocabulary
            (Llama 3).
        bos_token, eos_token, pad_token, unk_token: the special tokens of
            those roles (added to `added_tokens` if missing; one not in the
            vocabulary gets the next id, as in `transformers`).
        add_bos_token: whether the model expects `bos_id` first (what
            `tokenizers` adds with `add_special_tokens=True`; `encode` never
            adds it).
        post_processor: the `post_processor` of a `tokenizer.json`, only
            kept for `save`.

    Attributes:
        kind: `"byte_level_bpe"`.
        vocab_size: number of ids (the largest id + 1).
        ordinary_ids: `(first, last)`, the range of the BPE vocabulary's ids.
        specials: the contents of the special added tokens, by id.
        bos_id, eos_id, pad_id, unk_id: ids of the roles (or `None`), and
            `bos_token`, ... their text.
        vocabulary, merges, added_tokens, pre_tokenizer, ignore_merges,
            add_bos_token: as given (merges as `(a, b)` pairs).

    Methods: `encode(text)`, `encode_batch(texts)`, `decode(ids)`,
    `special_id(name)`, `tf_tokenizer()` (the keras-hub layer for
    `tf.data`), `make_layer()`, `save(path)` and `to_json()`.

    Example:

    >>> tokenizer = ByteLevelBPETokenizer.from_directory("checkpoints/gpt2")
    >>> tokenizer.encode("Hello world")
    array([15496,   995], dtype=int32)
    >>> tokenizer.decode([15496, 995, tokenizer.eos_id])
    'Hello world<|endoftext|>'
    """

    kind = KIND

    def __init__(self, vocabulary, merges, added_tokens=(), pre_tokenizer=None,
                 ignore_merges=False, bos_token=None, eos_token=None, pad_token=None,
                 unk_token=None, add_bos_token=False, post_processor=None):
        self.pre_tokenizer = dict(pre_tokenizer or GPT2_PRE_TOKENIZER)
        self.post_processor = post_processor
        self._steps = _check_pre_tokenizer(self.pre_tokenizer)
        self.vocabulary = self._checked_vocabulary(vocabulary)
        self.merges = self._checked_merges(merges)
        self.ignore_merges = bool(ignore_merges)
        self.added_tokens = self._with_roles(
            _check_added_tokens(added_tokens),
            {"bos": bos_token, "eos": eos_token, "pad": pad_token, "unk": unk_token},
        )
        self.add_bos_token = bool(add_bos_token)
        self._layer = None
        self._encode_fn = None
        self._id_bytes = None

    # -- construction --------------------------------------------------------------------

    def _checked_vocabulary(self, vocabulary):
        if not isinstance(vocabulary, dict) or not vocabulary:
            raise UserInputError("the vocabulary must be a non-empty token -> id mapping")
        if not all(isinstance(t, str) and isinstance(i, int) and i >= 0
                   for t, i in vocabulary.items()):
            raise UserInputError("the vocabulary must map strings to non-negative integer ids")
        if len(set(vocabulary.values())) != len(vocabulary):
            raise UserInputError("the vocabulary gives the same id to two tokens")
        missing = [c for c in byte_characters() if c not in vocabulary]
        if missing:
            raise UserInputError(
                f"the vocabulary lacks {len(missing)} of the 256 byte characters "
                f"(e.g. {missing[0]!r}): not a byte-level BPE vocabulary"
            )
        return dict(vocabulary)

    def _checked_merges(self, merges):
        pairs = []
        for merge in merges:
            pair = merge.split(" ") if isinstance(merge, str) else list(merge)
            if len(pair) != 2 or not all(isinstance(p, str) and p and " " not in p for p in pair):
                raise UserInputError(f"bad merge {merge!r}: expected two tokens")
            a, b = pair
            for token in (a, b, a + b):
                if token not in self.vocabulary:
                    raise UserInputError(
                        f"the merge {a!r} {b!r} uses {token!r}, which is not in the vocabulary"
                    )
            pairs.append((a, b))
        # `tokenizers` keeps the last rank of a pair listed twice.
        last_rank = {pair: rank for rank, pair in enumerate(pairs)}
        return [pair for rank, pair in enumerate(pairs) if last_rank[pair] == rank]

    def _with_roles(self, added, roles):
        """`added` plus the role tokens, and the role attributes set."""
        by_id = {}
        for token in added:
            if by_id.get(token["id"], token)["content"] != token["content"]:
                raise UserInputError(f"two added tokens have the id {token['id']}")
            by_id[token["id"]] = token
        next_id = max([*self.vocabulary.values(), *by_id]) + 1
        for role in ROLES:
            content = roles[role]
            setattr(self, f"{role}_token", content)
            setattr(self, f"{role}_id", None)
            if content is None:
                continue
            known = [i for i, t in by_id.items() if t["content"] == content]
            token_id = known[0] if known else self.vocabulary.get(content)
            if token_id is None:
                token_id, next_id = next_id, next_id + 1
            if not known:
                by_id[token_id] = {"id": token_id, "content": content, "special": True,
                                   "normalized": False}
            setattr(self, f"{role}_id", token_id)
        return [by_id[i] for i in sorted(by_id)]

    @classmethod
    def from_file(cls, path):
        """The tokenizer of a Hugging Face `tokenizer.json` (special tokens from its folder).

        Args:
            path: the `tokenizer.json`; `tokenizer_config.json` and
                `special_tokens_map.json` beside it give the bos/eos/pad/unk
                roles.

        Raises:
            UserInputError: a missing or corrupt file, or a tokenizer this
                class cannot reproduce (the message names what).
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise UserInputError(f"tokenizer file not found: {path}")
        spec = _read_json(path)
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
            raise UserInputError(f"{path} is not a Hugging Face tokenizer.json (no model)")
        try:
            return cls._from_spec(spec, os.path.dirname(path))
        except UserInputError as error:
            raise UserInputError(f"{path}: {error}") from None

    @classmethod
    def _from_spec(cls, spec, folder):
        normalizer = spec.get("normalizer")
        if normalizer and not (isinstance(normalizer, dict) and normalizer.get("type") == "Sequence"
                               and not normalizer.get("normalizers")):
            kind = normalizer.get("type") if isinstance(normalizer, dict) else normalizer
            raise UserInputError(f"the {kind} normalizer is not supported")
        decoder = spec.get("decoder")
        kind = decoder.get("type") if isinstance(decoder, dict) else decoder
        if kind != "ByteLevel":
            raise UserInputError(f"the {kind} decoder is not supported (only ByteLevel)")
        vocab, merges, ignore_merges = _check_model(spec["model"])
        config, roles, config_added = _read_config(folder)
        added = _check_added_tokens(spec.get("added_tokens"))
        known = {token["id"] for token in added}
        added += [token for token in config_added if token["id"] not in known]
        add_bos = config.get("add_bos_token")
        if add_bos is None:
            add_bos = _template_starts_with_special(spec.get("post_processor"))
        return cls(vocab, merges, added, spec.get("pre_tokenizer"), ignore_merges,
                   add_bos_token=bool(add_bos), post_processor=spec.get("post_processor"),
                   **{f"{r}_token": roles[r] for r in ROLES})

    @classmethod
    def from_vocab_and_merges(cls, folder):
        """The tokenizer of GPT-2's `vocab.json` + `merges.txt` in `folder`.

        `tokenizer_config.json` (if there) gives `add_prefix_space`, the
        special tokens and `added_tokens_decoder`; without one the roles are
        GPT-2's `<|endoftext|>`, as in `transformers`' `GPT2Tokenizer`.
        """
        folder = os.fspath(folder)
        vocab_path, merges_path = (os.path.join(folder, f) for f in (VOCAB_FILE, MERGES_FILE))
        for required in (vocab_path, merges_path):
            if not os.path.isfile(required):
                raise UserInputError(f"tokenizer file not found: {required}")
        vocab = _read_json(vocab_path)
        if not isinstance(vocab, dict):
            raise UserInputError(f"{vocab_path} must map tokens to ids")
        try:
            with open(merges_path, encoding="utf-8") as handle:
                lines = handle.read().split("\n")
        except (OSError, UnicodeDecodeError) as error:
            raise UserInputError(f"cannot read {merges_path}: {error}") from None
        merges = [line for line in lines[1 if lines[0].startswith("#version") else 0:]
                  if line.strip()]
        config, roles, added = _read_config(folder)
        if not os.path.isfile(os.path.join(folder, CONFIG_FILE)):
            defaults = GPT2_END_OF_TEXT if GPT2_END_OF_TEXT in vocab else None
            roles = {role: roles[role] or (defaults if role != "pad" else None) for role in ROLES}
        pre_tokenizer = dict(GPT2_PRE_TOKENIZER,
                             add_prefix_space=bool(config.get("add_prefix_space", False)))
        try:
            return cls(vocab, merges, added, pre_tokenizer,
                       add_bos_token=bool(config.get("add_bos_token", False)),
                       **{f"{r}_token": roles[r] for r in ROLES})
        except UserInputError as error:
            raise UserInputError(f"{folder}: {error}") from None

    @classmethod
    def from_directory(cls, folder):
        """The tokenizer of a Hugging Face folder: `tokenizer.json`, else `vocab.json` + `merges.txt`.

        Args:
            folder: a checkpoint or tokenizer folder.

        Raises:
            UserInputError: neither is there, a file is corrupt, or the
                tokenizer is of a kind this class cannot reproduce.

        Example:

        >>> ByteLevelBPETokenizer.from_directory("checkpoints/SmolLM-135M").eos_token
        '<|endoftext|>'
        """
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise UserInputError(f"tokenizer folder not found: {folder}")
        if os.path.isfile(os.path.join(folder, TOKENIZER_FILE)):
            return cls.from_file(os.path.join(folder, TOKENIZER_FILE))
        if os.path.isfile(os.path.join(folder, VOCAB_FILE)):
            return cls.from_vocab_and_merges(folder)
        raise UserInputError(
            f"no tokenizer in {folder}: expected {TOKENIZER_FILE}, or {VOCAB_FILE} and {MERGES_FILE}"
        )

    # -- the tokenizer interface ---------------------------------------------------------

    @property
    def vocab_size(self):
        """Number of ids: the largest id (vocabulary or added token) + 1."""
        return max([*self.vocabulary.values(), *(t["id"] for t in self.added_tokens)]) + 1

    @property
    def ordinary_ids(self):
        """`(first, last)`: the range of the BPE vocabulary's ids (what text encodes to)."""
        added = {t["id"] for t in self.added_tokens}
        ids = [i for i in self.vocabulary.values() if i not in added]
        return min(ids), max(ids)

    @property
    def specials(self):
        """The contents of the special added tokens, by id."""
        return [t["content"] for t in self.added_tokens if t["special"]]

    def special_id(self, name):
        """The id of the added token `name` (e.g. `"<|endoftext|>"`)."""
        for token in self.added_tokens:
            if token["content"] == name:
                return token["id"]
        raise UserInputError(f"the tokenizer has no special token {name!r}")

    def _id_to_bytes(self):
        """`{id: bytes}` as `tokenizers`' ByteLevel decoder turns each token into bytes.

        A token made of byte characters gives those bytes; any other (an added
        token such as `<｜end▁of▁sentence｜>`) its own UTF-8 text.
        """
        if self._id_bytes is None:
            byte_of = {c: bytes([b]) for b, c in enumerate(byte_characters())}
            tokens = {i: t for t, i in self.vocabulary.items()}
            tokens.update({t["id"]: t["content"] for t in self.added_tokens})
            self._id_bytes = {
                i: (b"".join(byte_of[c] for c in token)
                    if all(c in byte_of for c in token) else token.encode("utf-8"))
                for i, token in tokens.items()
            }
        return self._id_bytes

    def make_layer(self):
        """A new keras-hub `BytePairTokenizer` layer of this tokenizer (with its own cache)."""
        merges = [f"{a} {b}" for a, b in self.merges]
        added = {t["content"]: t["id"] for t in self.added_tokens if t["content"]}
        first = [t["content"] for t in self.added_tokens if t["content"] and not t["normalized"]]
        return _layer_class()(self.vocabulary, merges, self._steps, added, first,
                              self.ignore_merges, self._id_to_bytes())

    def tf_tokenizer(self, sampling=False):
        """The keras-hub layer that tokenizes inside `tf.data`: `tokenize(strings) -> int32 ids`.

        A string gives `[None]` ids, a batch `[batch]` a ragged `[batch, None]`.
        Keep this tokenizer alive while a dataset uses the layer (its tables
        are the layer's).

        Args:
            sampling: not available (BPE-dropout is not implemented); must be False.
        """
        if sampling:
            raise UserInputError("a byte-level BPE tokenizer has no sampling (BPE-dropout)")
        if self._layer is None:
            self._layer = self.make_layer()
        return self._layer

    def encode_batch(self, texts):
        """Ids of each of `texts` (a list of strings), as int32 numpy arrays."""
        if self._encode_fn is None:
            layer = self.tf_tokenizer()
            self._encode_fn = tf.function(
                layer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)]
            )
        if not texts:
            return []
        ids = self._encode_fn(tf.constant([t.encode("utf-8", "replace") for t in texts]))
        values, splits = ids.flat_values.numpy(), ids.row_splits.numpy()
        return [values[a:b] for a, b in zip(splits[:-1], splits[1:], strict=True)]

    def encode(self, text):
        """Ids of `text` as an int32 numpy array (no bos/eos added)."""
        return self.encode_batch([text])[0]

    def decode(self, ids, skip_special_tokens=False):
        """Text of `ids`, as `tokenizers`' `decode` (invalid UTF-8 becomes U+FFFD).

        Args:
            ids: integer ids; ids outside the vocabulary decode to nothing.
            skip_special_tokens: leave out the special added tokens.
        """
        id_bytes = self._id_to_bytes()
        skip = {t["id"] for t in self.added_tokens if t["special"]} if skip_special_tokens else ()
        pieces = [id_bytes.get(i, b"") for i in np.asarray(ids).reshape(-1).tolist()
                  if i not in skip]
        return b"".join(pieces).decode("utf-8", "replace")

    def to_json(self):
        """The Hugging Face `tokenizer.json` content (a dict) of this tokenizer."""
        added = [{"id": t["id"], "content": t["content"], "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": t["normalized"], "special": t["special"]}
                 for t in self.added_tokens]
        return {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None, "pre_tokenizer": self.pre_tokenizer,
            "post_processor": self.post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": self.ignore_merges, "vocab": self.vocabulary,
                      "merges": [list(pair) for pair in self.merges]},
        }

    def save(self, path):
        """Write `path` as a Hugging Face `tokenizer.json` and `tokenizer_config.json` beside it.

        `load_tokenizer(path)`, `from_directory` and `transformers`'
        `AutoTokenizer` read the pair back.
        """
        path = os.fspath(path)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, ensure_ascii=False)
        config = {"tokenizer_class": "PreTrainedTokenizerFast",
                  "add_bos_token": self.add_bos_token}
        config.update({f"{r}_token": getattr(self, f"{r}_token") for r in ROLES
                       if getattr(self, f"{r}_token") is not None})
        with open(os.path.join(os.path.dirname(path), CONFIG_FILE), "w",
                  encoding="utf-8") as handle:
            json.dump(config, handle, ensure_ascii=False, indent=2)


def _template_starts_with_special(post_processor):
    """Whether a post-processor adds a special token before the text (Llama 3's bos)."""
    if not isinstance(post_processor, dict):
        return False
    if post_processor.get("type") == "Sequence":
        return any(_template_starts_with_special(p) for p in post_processor.get("processors", []))
    single = post_processor.get("single") if post_processor.get("type") == "TemplateProcessing" else None
    return bool(single) and isinstance(single[0], dict) and "SpecialToken" in single[0]


def is_hf_tokenizer_json(spec):
    """Whether a parsed JSON file is a Hugging Face tokenizer.json (not this package's format)."""
    return isinstance(spec, dict) and "kind" not in spec and isinstance(spec.get("model"), dict)


class _Untracked:
    """Holds `value` without TensorFlow tracking it (a plain object, not a Trackable)."""

    def __init__(self, value):
        self.value = value


class ByteLevelBPEGraphTokenizer(tf.Module):
    """A `ByteLevelBPETokenizer` as graph ops that a SavedModel can hold.

    keras-hub's layers do not let a SavedModel track their lookup tables and
    BPE cache (keras-hub#2015: "Tried to export a function which references
    an 'untracked' resource"); this module owns a fresh layer (its own,
    empty cache) and tracks every table the layer uses, so
    `tf.saved_model.save` works and the reloaded model needs only
    `tensorflow`.

    Args:
        tokenizer: a `ByteLevelBPETokenizer`.
        vocab_size: ids the model can produce (unused: ids without a token
            decode to nothing anyway).

    Example:

    >>> module = ByteLevelBPEGraphTokenizer(tokenizer)
    >>> module.encode(tf.constant(["Hello world"]))
    <tf.RaggedTensor [[15496, 995]]>
    """

    def __init__(self, tokenizer, vocab_size=None, name="byte_level_bpe_tokenizer"):
        super().__init__(name=name)
        del vocab_size
        layer = tokenizer.make_layer()
        self._holder = _Untracked(layer)  # the SavedModel keeps the layer's tables, not the layer
        self.tables = list(layer.resources)

    def encode(self, text):
        """int32 ids (ragged `[batch, None]`) of a batch of strings `[batch]`."""
        return self._holder.value.tokenize(text)

    def decode(self, ids):
        """One string per row of int `ids` (`[batch, time]`)."""
        return self._holder.value.detokenize(ids)


def graph_module(tokenizer, vocab_size=None):
    """The `ByteLevelBPEGraphTokenizer` of `tokenizer` (what `graph_tokenizer` returns)."""
    return ByteLevelBPEGraphTokenizer(tokenizer, vocab_size)
