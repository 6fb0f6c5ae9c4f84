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

import functools
import json
import os

import numpy as np
import tensorflow as tf

from keras_transformer.data import hf_files
from keras_transformer.data.hf_base import (
    ExactLayerMixin,
    HuggingFaceGraphTokenizer,
    HuggingFaceTokenizer,
)
from keras_transformer.data.hf_ops import (
    CUT,
    literal_pattern,
    regex_pieces,
    static_table,
    subset_rows,
    valid_utf8,
)
from keras_transformer.errors import UserInputError

KIND = "byte_level_bpe"
VOCAB_FILE, MERGES_FILE = "vocab.json", "merges.txt"
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


# ---------------------------------------------------------------------------------------
# Reading and checking the Hugging Face files
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# The TensorFlow side: keras-hub's BytePairTokenizer with exact pre-tokenization
# ---------------------------------------------------------------------------------------


@functools.cache
def _layer_class():
    """`ExactBytePairLayer`, defined on first use (keras-hub is imported only then)."""
    import keras_hub

    class ExactBytePairLayer(ExactLayerMixin, keras_hub.tokenizers.BytePairTokenizer):
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
            self._added_patterns = [literal_pattern(g) for g in (sorted(first_added), later) if g]
            self.added_table = static_table(added, tf.string, tf.int32, -1)
            self.id_bytes_table = static_table({i: id_bytes[i] for i in sorted(id_bytes)},
                                               tf.int32, tf.string, b"")

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
            combined = tf.concat([subset_rows(free, parts), kept], axis=1)
            combined_flags = tf.concat(
                [subset_rows(free, part_flags), tf.ones_like(kept, tf.bool)], axis=1
            )
            return (pieces.with_flat_values(combined).merge_dims(1, 2),
                    added.with_flat_values(combined_flags).merge_dims(1, 2))

        @staticmethod
        def _digits(pattern):
            def split(strings):
                parts = regex_pieces(strings, pattern)
                return parts, tf.zeros_like(parts, tf.bool)

            return split

        @staticmethod
        def _added_pieces(pattern):
            def split(strings):
                parts = regex_pieces(strings, pattern)
                return parts, tf.ragged.map_flat_values(tf.strings.regex_full_match, parts, pattern)

            return split

        @staticmethod
        def _pre_tokenizer_regex(regex):
            pattern, cut = _REGEXES[regex]

            def split(strings):
                marked = tf.strings.regex_replace(strings, cut, b"\\1" + CUT + b"\\2\\3")
                chunks = tf.strings.split(marked, sep=CUT)
                parts = chunks.with_flat_values(regex_pieces(chunks.flat_values, pattern))
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

        def _tokenize_valid(self, text):
            """int32 ids `[n, (ids)]` of valid UTF-8 strings `[n]` (`tokenize` is the mixin's)."""
            pieces, added = self.pre_tokenize(text)
            flat, flags = pieces.flat_values, added.flat_values
            free = tf.logical_not(flags)
            bpe = subset_rows(free, self._bpe_ids(tf.boolean_mask(flat, free)))
            special = tf.RaggedTensor.from_row_lengths(
                self.added_table.lookup(tf.boolean_mask(flat, flags)),
                tf.cast(flags, tf.int64), validate=False,
            )
            return pieces.with_flat_values(tf.concat([bpe, special], axis=1)).merge_dims(1, 2)

        @tf.autograph.experimental.do_not_convert
        def detokenize(self, inputs):
            """Text (UTF-8, invalid bytes replaced by U+FFFD) of int ids `[batch, time]`."""
            with tf.device("cpu"):
                ids = inputs if isinstance(inputs, tf.RaggedTensor) else tf.convert_to_tensor(inputs)
                ids = tf.cast(ids, tf.int32)
                if isinstance(ids, tf.RaggedTensor):
                    pieces = tf.ragged.map_flat_values(self.id_bytes_table.lookup, ids)
                else:
                    pieces = self.id_bytes_table.lookup(ids)
                return valid_utf8(tf.strings.reduce_join(pieces, axis=-1))

    return ExactBytePairLayer


# ---------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------


class ByteLevelBPETokenizer(HuggingFaceTokenizer):
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
    roles = ROLES
    other_files = (VOCAB_FILE, MERGES_FILE)
    normalized_added_tokens = True

    def __init__(self, vocabulary, merges, added_tokens=(), pre_tokenizer=None,
                 ignore_merges=False, bos_token=None, eos_token=None, pad_token=None,
                 unk_token=None, add_bos_token=False, post_processor=None):
        super().__init__()
        self.pre_tokenizer = dict(pre_tokenizer or GPT2_PRE_TOKENIZER)
        self.post_processor = post_processor
        self._steps = _check_pre_tokenizer(self.pre_tokenizer)
        self.vocabulary = self._checked_vocabulary(vocabulary)
        self.merges = self._checked_merges(merges)
        self.ignore_merges = bool(ignore_merges)
        self.added_tokens = self._with_roles(
            hf_files.check_added_tokens(added_tokens),
            {"bos": bos_token, "eos": eos_token, "pad": pad_token, "unk": unk_token},
        )
        self.add_bos_token = bool(add_bos_token)
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

    def _model_ids(self):
        return self.vocabulary.values()

    def _model_tokens(self):
        return {i: t for t, i in self.vocabulary.items()}

    def _token_id(self, content):
        return self.vocabulary.get(content)

    @classmethod
    def _from_spec(cls, spec, folder):
        normalizer = spec.get("normalizer")
        if normalizer and not (isinstance(normalizer, dict) and normalizer.get("type") == "Sequence"
                               and not normalizer.get("normalizers")):
            raise UserInputError(f"the {hf_files.kind_of(normalizer)} normalizer is not supported")
        kind = hf_files.kind_of(spec.get("decoder"))
        if kind != "ByteLevel":
            raise UserInputError(f"the {kind} decoder is not supported (only ByteLevel)")
        vocab, merges, ignore_merges = _check_model(spec["model"])
        config, special_map = hf_files.read_configs(folder)
        added = hf_files.merged_added_tokens(spec.get("added_tokens"),
                                             hf_files.config_added_tokens(config))
        add_bos = config.get("add_bos_token")
        if add_bos is None:
            add_bos = _template_starts_with_special(spec.get("post_processor"))
        return cls(vocab, merges, added, spec.get("pre_tokenizer"), ignore_merges,
                   add_bos_token=bool(add_bos), post_processor=spec.get("post_processor"),
                   **cls._role_arguments(cls._roles_of(config, special_map)))

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
        vocab = hf_files.read_json(vocab_path)
        if not isinstance(vocab, dict):
            raise UserInputError(f"{vocab_path} must map tokens to ids")
        try:
            with open(merges_path, encoding="utf-8") as handle:
                lines = handle.read().split("\n")
        except (OSError, UnicodeDecodeError) as error:
            raise UserInputError(f"cannot read {merges_path}: {error}") from None
        merges = [line for line in lines[1 if lines[0].startswith("#version") else 0:]
                  if line.strip()]
        config, special_map = hf_files.read_configs(folder)
        roles, added = cls._roles_of(config, special_map), hf_files.config_added_tokens(config)
        if not os.path.isfile(os.path.join(folder, hf_files.CONFIG_FILE)):
            defaults = GPT2_END_OF_TEXT if GPT2_END_OF_TEXT in vocab else None
            roles = {role: roles[role] or (defaults if role != "pad" else None) for role in ROLES}
        pre_tokenizer = dict(GPT2_PRE_TOKENIZER,
                             add_prefix_space=bool(config.get("add_prefix_space", False)))
        try:
            return cls(vocab, merges, added, pre_tokenizer,
                       add_bos_token=bool(config.get("add_bos_token", False)),
                       **cls._role_arguments(roles))
        except UserInputError as error:
            raise UserInputError(f"{folder}: {error}") from None

    _from_other_files = from_vocab_and_merges

    # -- the tokenizer interface ---------------------------------------------------------

    def _id_to_bytes(self):
        """`{id: bytes}` as `tokenizers`' ByteLevel decoder turns each token into bytes.

        A token made of byte characters gives those bytes; any other (an added
        token such as `<｜end▁of▁sentence｜>`) its own UTF-8 text.
        """
        if self._id_bytes is None:
            byte_of = {c: bytes([b]) for b, c in enumerate(byte_characters())}
            tokens = self._id_to_token()
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
        return self._cached_layer()

    def decode(self, ids, skip_special_tokens=False):
        """Text of `ids`, as `tokenizers`' `decode` (invalid UTF-8 becomes U+FFFD).

        Args:
            ids: integer ids; ids outside the vocabulary decode to nothing.
            skip_special_tokens: leave out the special added tokens.
        """
        id_bytes, skip = self._id_to_bytes(), self._skipped_ids(skip_special_tokens)
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
        hf_files.write_json(path, self.to_json())
        self._write_config(os.path.dirname(path), {"tokenizer_class": "PreTrainedTokenizerFast",
                                                   "add_bos_token": self.add_bos_token},
                           added_tokens_decoder=False)


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


class ByteLevelBPEGraphTokenizer(HuggingFaceGraphTokenizer):
    """A `ByteLevelBPETokenizer` as graph ops that a SavedModel can hold.

    See `HuggingFaceGraphTokenizer`: the module owns a fresh layer (its own,
    empty BPE cache) and tracks every table the layer uses; the reloaded
    model needs only `tensorflow`.

    >>> ByteLevelBPEGraphTokenizer(tokenizer).encode(tf.constant(["Hello world"]))
    <tf.RaggedTensor [[15496, 995]]>
    """
