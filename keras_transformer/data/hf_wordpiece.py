"""Hugging Face WordPiece tokenizers (BERT) as TensorFlow ops, with the ids of `transformers`.

`WordPieceTokenizer` reads a BERT tokenizer folder, either `vocab.txt` (with
the settings of `tokenizer_config.json`: `do_lower_case`, `strip_accents`,
`tokenize_chinese_chars` and the special tokens) or a `tokenizer.json`
(`BertNormalizer`, `BertPreTokenizer`, a `WordPiece` model), and gives the
ids `transformers`' `BertTokenizer` gives. Encoding is TensorFlow ops, so
the same code tokenizes in Python, inside `tf.data` (`tf_tokenizer()`,
`tf_encode_pair()`) and inside a SavedModel.

How the ids are made, step by step as in `tokenizers`:

1. The added tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[MASK]`, `[UNK]` and any
   other `added_tokens`) are cut out of the raw text first, longest match
   first, and map to their ids; written in the text, `[SEP]` is `sep_id`
   (in cased and uncased models alike: they are matched before
   lower-casing).
2. The rest is normalized as `BertNormalizer` does: NUL, U+FFFD and the
   control and format characters (categories Cc but tab, newline and
   carriage return, Cf and Co) are removed, the other white space becomes a
   space; CJK ideographs get a space on both sides; with `strip_accents`
   (which defaults to `do_lower_case`) the text is decomposed (NFD) and its
   non-spacing marks (Mn) removed; with `do_lower_case` every character is
   lower-cased on its own (`"ΑΣ"` -> `"ασ"`: no final sigma; `"İ"` ->
   `"i̇"`, an `i` and U+0307). Lower-casing comes after accent stripping, as
   in `tokenizers`, so the dot of `"İ"` stays.
3. `BertPreTokenizer` splits at white space and makes each punctuation
   character (ASCII punctuation, and Unicode's P categories) a word.
4. A word of more than 100 characters (`max_input_chars_per_word`) is
   `[UNK]`; any other is split greedily into the longest pieces of the
   vocabulary (`##` before each piece after the first), and is `[UNK]` as a
   whole when some part has no piece (`tensorflow_text`'s
   `FastWordpieceTokenizer`, inside keras-hub's `WordPieceTokenizer`).

`tokenizers` carries its own Unicode tables, of several ages (its
punctuation and control-character tables predate Unicode 9, its case
mapping and non-spacing marks are Unicode 16's), which neither
TensorFlow's regex engine (RE2), its ICU, nor Python's `unicodedata` match.
The tables below are those of `tokenizers` 0.23, read off its
`BertNormalizer` and `BertPreTokenizer` one code point at a time (the tests
check them against the installed `tokenizers` for every code point), and
lower-casing is a code point table rather than ICU's (which knows final
sigma and older Unicode). NFD is `tensorflow_text`'s (ICU), except for the
21 characters that ICU's newer tables decompose and `tokenizers` does not
(`_NFD_KEPT`), which are kept whole.

What is reproduced exactly (anything else is refused with a
`UserInputError` naming it): a `WordPiece` model whose ids are `0 .. n-1`;
`BertNormalizer` with `clean_text` (any `handle_chinese_chars`,
`strip_accents`, `lowercase`); `BertPreTokenizer`; the `WordPiece` decoder;
added tokens that are not `normalized` and have no `lstrip`, `rstrip` or
`single_word`. One difference from `transformers` is deliberate:
`tokenizer(a, "")` there encodes `a` alone (an empty second text counts as
none), while `encode_pair(a, "")` gives `[CLS] a [SEP] [SEP]`, what
`transformers` gives for the same pair in a batch.
"""

import functools
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
    WHITE_SPACE,
    literal_pattern,
    re2_class,
    regex_pieces,
    replace_literals,
    static_table,
    subset_rows,
)
from keras_transformer.errors import UserInputError

KIND = "wordpiece"
VOCAB_FILE = "vocab.txt"
ROLES = ("cls", "sep", "pad", "mask", "unk")
DEFAULT_TOKENS = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]",
                  "unk": "[UNK]"}
MAX_INPUT_CHARS_PER_WORD = 100

# ---------------------------------------------------------------------------------------
# The Unicode tables of `tokenizers` 0.23 (code point ranges, hexadecimal)
# ---------------------------------------------------------------------------------------

# BertNormalizer's clean_text removes these: NUL, U+FFFD, and the Cc (but tab, newline,
# carriage return), Cf and Co characters of its (pre-Unicode 9) tables ...
_CLEAN_REMOVED = (
    "0-8 b-c e-1f 7f-9f ad 600-605 61c 6dd 70f 180e 200b-200f 202a-202e 2060-2064 2066-206f "
    "e000-f8ff feff fff9-fffb fffd 110bd 1bca0-1bca3 1d173-1d17a e0001 e0020-e007f "
    "f0000-ffffd 100000-10fffd"
)
# ... and makes these (tab, newline, carriage return and the White_Space characters that
# are not Cc) a space.
_CLEAN_SPACES = (
    "9-a d a0 1680 2000-200a 2028-2029 202f 205f 3000"
)
# The CJK ideographs that handle_chinese_chars puts between spaces (BERT's blocks).
_CHINESE = (
    "3400-4dbf 4e00-9fff f900-faff 20000-2a6df 2a700-2b81f 2b920-2ceaf 2f800-2fa1f"
)
# BertPreTokenizer splits at white space (`hf_ops.WHITE_SPACE`) and makes each of these a
# word: ASCII punctuation and the P categories of its
# (pre-Unicode 9) tables.
_PUNCTUATION = (
    "21-2f 3a-40 5b-60 7b-7e a1 a7 ab b6-b7 bb bf 37e 387 55a-55f 589-58a 5be 5c0 5c3 5c6 "
    "5f3-5f4 609-60a 60c-60d 61b 61e-61f 66a-66d 6d4 700-70d 7f7-7f9 830-83e 85e 964-965 "
    "970 af0 df4 e4f e5a-e5b f04-f12 f14 f3a-f3d f85 fd0-fd4 fd9-fda 104a-104f 10fb "
    "1360-1368 1400 166d-166e 169b-169c 16eb-16ed 1735-1736 17d4-17d6 17d8-17da 1800-180a "
    "1944-1945 1a1e-1a1f 1aa0-1aa6 1aa8-1aad 1b5a-1b60 1bfc-1bff 1c3b-1c3f 1c7e-1c7f "
    "1cc0-1cc7 1cd3 2010-2027 2030-2043 2045-2051 2053-205e 207d-207e 208d-208e 2308-230b "
    "2329-232a 2768-2775 27c5-27c6 27e6-27ef 2983-2998 29d8-29db 29fc-29fd 2cf9-2cfc "
    "2cfe-2cff 2d70 2e00-2e2e 2e30-2e42 3001-3003 3008-3011 3014-301f 3030 303d 30a0 30fb "
    "a4fe-a4ff a60d-a60f a673 a67e a6f2-a6f7 a874-a877 a8ce-a8cf a8f8-a8fa a8fc a92e-a92f "
    "a95f a9c1-a9cd a9de-a9df aa5c-aa5f aade-aadf aaf0-aaf1 abeb fd3e-fd3f fe10-fe19 "
    "fe30-fe52 fe54-fe61 fe63 fe68 fe6a-fe6b ff01-ff03 ff05-ff0a ff0c-ff0f ff1a-ff1b "
    "ff1f-ff20 ff3b-ff3d ff3f ff5b ff5d ff5f-ff65 10100-10102 1039f 103d0 1056f 10857 1091f "
    "1093f 10a50-10a58 10a7f 10af0-10af6 10b39-10b3f 10b99-10b9c 11047-1104d 110bb-110bc "
    "110be-110c1 11140-11143 11174-11175 111c5-111c9 111cd 111db 111dd-111df 11238-1123d "
    "112a9 114c6 115c1-115d7 11641-11643 1173c-1173e 12470-12474 16a6e-16a6f 16af5 "
    "16b37-16b3b 16b44 1bc9f 1da87-1da8b"
)
# strip_accents removes these after NFD: the Mn characters of its (Unicode 16) tables.
_NONSPACING_MARKS = (
    "300-36f 483-487 591-5bd 5bf 5c1-5c2 5c4-5c5 5c7 610-61a 64b-65f 670 6d6-6dc 6df-6e4 "
    "6e7-6e8 6ea-6ed 711 730-74a 7a6-7b0 7eb-7f3 816-819 81b-823 825-827 829-82d 859-85b "
    "8e3-902 93a 93c 941-948 94d 951-957 962-963 981 9bc 9c1-9c4 9cd 9e2-9e3 a01-a02 a3c "
    "a41-a42 a47-a48 a4b-a4d a51 a70-a71 a75 a81-a82 abc ac1-ac5 ac7-ac8 acd ae2-ae3 b01 "
    "b3c b3f b41-b44 b4d b56 b62-b63 b82 bc0 bcd c00 c3e-c40 c46-c48 c4a-c4d c55-c56 "
    "c62-c63 c81 cbc cbf cc6 ccc-ccd ce2-ce3 d01 d41-d44 d4d d62-d63 dca dd2-dd4 dd6 e31 "
    "e34-e3a e47-e4e eb1 eb4-eb9 ebb-ebc ec8-ecd f18-f19 f35 f37 f39 f71-f7e f80-f84 "
    "f86-f87 f8d-f97 f99-fbc fc6 102d-1030 1032-1037 1039-103a 103d-103e 1058-1059 "
    "105e-1060 1071-1074 1082 1085-1086 108d 109d 135d-135f 1712-1714 1732-1734 1752-1753 "
    "1772-1773 17b4-17b5 17b7-17bd 17c6 17c9-17d3 17dd 180b-180d 18a9 1920-1922 1927-1928 "
    "1932 1939-193b 1a17-1a18 1a1b 1a56 1a58-1a5e 1a60 1a62 1a65-1a6c 1a73-1a7c 1a7f "
    "1ab0-1abd 1b00-1b03 1b34 1b36-1b3a 1b3c 1b42 1b6b-1b73 1b80-1b81 1ba2-1ba5 1ba8-1ba9 "
    "1bab-1bad 1be6 1be8-1be9 1bed 1bef-1bf1 1c2c-1c33 1c36-1c37 1cd0-1cd2 1cd4-1ce0 "
    "1ce2-1ce8 1ced 1cf4 1cf8-1cf9 1dc0-1df5 1dfc-1dff 20d0-20dc 20e1 20e5-20f0 2cef-2cf1 "
    "2d7f 2de0-2dff 302a-302d 3099-309a a66f a674-a67d a69e-a69f a6f0-a6f1 a802 a806 a80b "
    "a825-a826 a8c4 a8e0-a8f1 a926-a92d a947-a951 a980-a982 a9b3 a9b6-a9b9 a9bc a9e5 "
    "aa29-aa2e aa31-aa32 aa35-aa36 aa43 aa4c aa7c aab0 aab2-aab4 aab7-aab8 aabe-aabf aac1 "
    "aaec-aaed aaf6 abe5 abe8 abed fb1e fe00-fe0f fe20-fe2f 101fd 102e0 10376-1037a "
    "10a01-10a03 10a05-10a06 10a0c-10a0f 10a38-10a3a 10a3f 10ae5-10ae6 11001 11038-11046 "
    "1107f-11081 110b3-110b6 110b9-110ba 11100-11102 11127-1112b 1112d-11134 11173 "
    "11180-11181 111b6-111be 111ca-111cc 1122f-11231 11234 11236-11237 112df 112e3-112ea "
    "11300-11301 1133c 11340 11366-1136c 11370-11374 114b3-114b8 114ba 114bf-114c0 "
    "114c2-114c3 115b2-115b5 115bc-115bd 115bf-115c0 115dc-115dd 11633-1163a 1163d "
    "1163f-11640 116ab 116ad 116b0-116b5 116b7 1171d-1171f 11722-11725 11727-1172b "
    "16af0-16af4 16b30-16b36 16f8f-16f92 1bc9d-1bc9e 1d167-1d169 1d17b-1d182 1d185-1d18b "
    "1d1aa-1d1ad 1d242-1d244 1da00-1da36 1da3b-1da6c 1da75 1da84 1da9b-1da9f 1daa1-1daaf "
    "1e8d0-1e8d6 e0100-e01ef"
)
# Characters ICU's NFD (tensorflow_text's) decomposes and the NFD of `tokenizers` does not.
_NFD_KEPT = (
    "105c9 105e4 11383 11385 1138e 11391 113c5 113c7-113c8 11938 16121-16128 16d68-16d6a"
)
# lowercase: each code point's lower case (Unicode 16), as runs `start:count:step:delta`
# (hexadecimal start; U+0130 is the one character that becomes two, done apart).
_LOWERCASE = (
    "41:26:1:32 c0:23:1:32 d8:7:1:32 100:24:2:1 132:3:2:1 139:8:2:1 14a:23:2:1 178:1:1:-121 "
    "179:3:2:1 181:1:1:210 182:2:2:1 186:1:1:206 187:1:1:1 189:2:1:205 18b:1:1:1 18e:1:1:79 "
    "18f:1:1:202 190:1:1:203 191:1:1:1 193:1:1:205 194:1:1:207 196:1:1:211 197:1:1:209 "
    "198:1:1:1 19c:1:1:211 19d:1:1:213 19f:1:1:214 1a0:3:2:1 1a6:1:1:218 1a7:1:1:1 "
    "1a9:1:1:218 1ac:1:1:1 1ae:1:1:218 1af:1:1:1 1b1:2:1:217 1b3:2:2:1 1b7:1:1:219 "
    "1b8:1:1:1 1bc:1:1:1 1c4:1:1:2 1c5:1:1:1 1c7:1:1:2 1c8:1:1:1 1ca:1:1:2 1cb:9:2:1 "
    "1de:9:2:1 1f1:1:1:2 1f2:2:2:1 1f6:1:1:-97 1f7:1:1:-56 1f8:20:2:1 220:1:1:-130 "
    "222:9:2:1 23a:1:1:10795 23b:1:1:1 23d:1:1:-163 23e:1:1:10792 241:1:1:1 243:1:1:-195 "
    "244:1:1:69 245:1:1:71 246:5:2:1 370:2:2:1 376:1:1:1 37f:1:1:116 386:1:1:38 388:3:1:37 "
    "38c:1:1:64 38e:2:1:63 391:17:1:32 3a3:9:1:32 3cf:1:1:8 3d8:12:2:1 3f4:1:1:-60 "
    "3f7:1:1:1 3f9:1:1:-7 3fa:1:1:1 3fd:3:1:-130 400:16:1:80 410:32:1:32 460:17:2:1 "
    "48a:27:2:1 4c0:1:1:15 4c1:7:2:1 4d0:48:2:1 531:38:1:48 10a0:38:1:7264 10c7:1:1:7264 "
    "10cd:1:1:7264 13a0:80:1:38864 13f0:6:1:8 1c89:1:1:1 1c90:43:1:-3008 1cbd:3:1:-3008 "
    "1e00:75:2:1 1e9e:1:1:-7615 1ea0:48:2:1 1f08:8:1:-8 1f18:6:1:-8 1f28:8:1:-8 1f38:8:1:-8 "
    "1f48:6:1:-8 1f59:4:2:-8 1f68:8:1:-8 1f88:8:1:-8 1f98:8:1:-8 1fa8:8:1:-8 1fb8:2:1:-8 "
    "1fba:2:1:-74 1fbc:1:1:-9 1fc8:4:1:-86 1fcc:1:1:-9 1fd8:2:1:-8 1fda:2:1:-100 "
    "1fe8:2:1:-8 1fea:2:1:-112 1fec:1:1:-7 1ff8:2:1:-128 1ffa:2:1:-126 1ffc:1:1:-9 "
    "2126:1:1:-7517 212a:1:1:-8383 212b:1:1:-8262 2132:1:1:28 2160:16:1:16 2183:1:1:1 "
    "24b6:26:1:26 2c00:48:1:48 2c60:1:1:1 2c62:1:1:-10743 2c63:1:1:-3814 2c64:1:1:-10727 "
    "2c67:3:2:1 2c6d:1:1:-10780 2c6e:1:1:-10749 2c6f:1:1:-10783 2c70:1:1:-10782 2c72:1:1:1 "
    "2c75:1:1:1 2c7e:2:1:-10815 2c80:50:2:1 2ceb:2:2:1 2cf2:1:1:1 a640:23:2:1 a680:14:2:1 "
    "a722:7:2:1 a732:31:2:1 a779:2:2:1 a77d:1:1:-35332 a77e:5:2:1 a78b:1:1:1 "
    "a78d:1:1:-42280 a790:2:2:1 a796:10:2:1 a7aa:1:1:-42308 a7ab:1:1:-42319 a7ac:1:1:-42315 "
    "a7ad:1:1:-42305 a7ae:1:1:-42308 a7b0:1:1:-42258 a7b1:1:1:-42282 a7b2:1:1:-42261 "
    "a7b3:1:1:928 a7b4:8:2:1 a7c4:1:1:-48 a7c5:1:1:-42307 a7c6:1:1:-35384 a7c7:2:2:1 "
    "a7cb:1:1:-42343 a7cc:8:2:1 a7dc:1:1:-42561 a7f5:1:1:1 ff21:26:1:32 10400:40:1:40 "
    "104b0:36:1:40 10570:11:1:39 1057c:15:1:39 1058c:7:1:39 10594:2:1:39 10c80:51:1:64 "
    "10d50:22:1:32 118a0:32:1:32 16e40:32:1:32 16ea0:25:1:27 1e900:34:1:34"
)


def _lowercase_pairs():
    """`(code points, lower-case code points)` of `_LOWERCASE` (runs `start:count:step:delta`)."""
    keys, values = [], []
    for run in _LOWERCASE.split():
        start, count, step, delta = run.split(":")
        start, count, step, delta = int(start, 16), int(count), int(step), int(delta)
        for i in range(count):
            keys.append(start + i * step)
            values.append(start + i * step + delta)
    return keys, values


CAPITAL_I_WITH_DOT = "\u0130"  # lower-cases to two characters: "i" and U+0307


def longest_first(len_a, len_b, budget):
    """How many tokens of each text `tokenizers`' "longest_first" truncation keeps.

    Args:
        len_a, len_b: the token counts of the two texts.
        budget: tokens left for them (the maximum length minus the special tokens).

    Returns:
        `(keep_a, keep_b)`: the shorter text is kept whole if the longer one
        can give way; otherwise each gets half, the longer one (the second,
        if they are as long) the odd token.

    Example:

    >>> longest_first(10, 3, 9)
    (6, 3)
    >>> longest_first(10, 10, 9)
    (4, 5)
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    swap = len_a > len_b
    short, long = (len_b, len_a) if swap else (len_a, len_b)
    long = short if short > budget else max(short, budget - short)
    if short + long > budget:
        short = budget // 2
        long = short + budget % 2
    return (long, short) if swap else (short, long)


def _tf_longest_first(len_a, len_b, budget):
    """`longest_first` on int64 tensors (one pair per element)."""
    swap = len_a > len_b
    short, long = tf.minimum(len_a, len_b), tf.maximum(len_a, len_b)
    long = tf.where(short > budget, short, tf.maximum(short, budget - short))
    over = short + long > budget
    short = tf.where(over, budget // 2, short)
    long = tf.where(over, budget // 2 + budget % 2, long)
    fits = len_a + len_b <= budget
    keep_a = tf.where(fits, len_a, tf.where(swap, long, short))
    keep_b = tf.where(fits, len_b, tf.where(swap, short, long))
    return keep_a, keep_b


def _first(rows, counts):
    """The first `counts[i]` values of each row of a ragged `[n, (m)]` tensor."""
    keep = tf.ragged.range(rows.row_lengths()) < tf.expand_dims(counts, 1)
    return tf.ragged.boolean_mask(rows, keep)


@functools.cache
def _layer_class():
    """`ExactWordPieceLayer`, defined on first use (keras-hub is imported only then)."""
    import keras_hub
    import tensorflow_text as tf_text

    class ExactWordPieceLayer(ExactLayerMixin, keras_hub.tokenizers.WordPieceTokenizer):
        """keras-hub's `WordPieceTokenizer` with the normalization and splitting of `tokenizers`.

        keras-hub's own pre-tokenization differs from BERT's in `tokenizers`
        (case folding instead of lower-casing, RE2's Unicode tables, no
        removal of control characters, lower-casing after accent
        stripping...); this layer does those steps as `tokenizers` does and
        hands the words to keras-hub's `FastWordpieceTokenizer` (with a
        byte limit high enough for 100 characters of any script: the limit
        of `tokenizers` is 100 characters, applied here).

        Args:
            vocabulary: the WordPiece model's tokens by id (no empty or duplicate token).
            added: `{content: id}` of the added tokens.
            unk_token: the token of unknown words.
            lowercase, strip_accents, chinese_chars: `BertNormalizer`'s settings.
            prefix: the continuing-subword prefix (`##`).
            max_chars: words longer than this are `unk_token`.
            id_to_token: `{id: token}` that `detokenize` shows (default: the vocabulary).
            clean_up_spaces: `transformers`' `clean_up_tokenization` in `detokenize`.
        """

        def __init__(self, vocabulary, added, unk_token, lowercase, strip_accents,
                     chinese_chars, prefix="##", max_chars=MAX_INPUT_CHARS_PER_WORD,
                     id_to_token=None, clean_up_spaces=False, **kwargs):
            super().__init__(vocabulary=None, lowercase=False, strip_accents=False, split=False,
                             suffix_indicator=prefix, oov_token=unk_token, dtype="int32",
                             _allow_python_workflow=False, **kwargs)
            self._max_chars = int(max_chars)
            self._lower = bool(lowercase)
            self._strip = bool(strip_accents)
            self._chinese = bool(chinese_chars)
            self._added = dict(added)
            self._clean_up_spaces = bool(clean_up_spaces)
            self.set_vocabulary(list(vocabulary))
            self.unk_id = self._token_to_id_map[unk_token]
            self.added_table = static_table(self._added, tf.string, tf.int32, -1)
            self.lower_table = static_table(dict(zip(*_lowercase_pairs(), strict=True)),
                                            tf.int64, tf.int64, -1)
            tokens = dict(id_to_token or enumerate(self.vocabulary))
            self.token_table = static_table(tokens, tf.int32, tf.string, "")

        def _set_vocabulary_tf(self):
            self._fast_word_piece = tf_text.FastWordpieceTokenizer(
                vocab=self.vocabulary, token_out_type=self.compute_dtype,
                suffix_indicator=self.suffix_indicator, unknown_token=self.oov_token,
                no_pretokenization=True, support_detokenization=True,
                max_bytes_per_word=4 * getattr(self, "_max_chars", MAX_INPUT_CHARS_PER_WORD),
            )

        @property
        def resources(self):
            """The TensorFlow tables the ops use (a SavedModel must track them all)."""
            return [self.added_table, self.lower_table, self.token_table]

        # -- normalization and pre-tokenization ----------------------------------------

        @staticmethod
        def _strip_accents(text):
            """NFD, then the non-spacing marks removed (characters of `_NFD_KEPT` kept whole)."""
            kept = f"[{re2_class(_NFD_KEPT)}]"
            pieces = regex_pieces(text, kept)
            flat = pieces.flat_values
            flat = tf.where(tf.strings.regex_full_match(flat, kept), flat,
                            tf_text.normalize_utf8(flat, "NFD"))
            text = tf.strings.reduce_join(pieces.with_flat_values(flat), axis=1)
            return tf.strings.regex_replace(text, f"[{re2_class(_NONSPACING_MARKS)}]", "")

        def _lowercase(self, text):
            """Each code point lower-cased on its own, as Rust's `char::to_lowercase`."""
            text = tf.strings.regex_replace(text, CAPITAL_I_WITH_DOT, "i\u0307")
            chars = tf.strings.unicode_decode(text, "UTF-8")
            flat = chars.flat_values
            lower = self.lower_table.lookup(tf.cast(flat, tf.int64))
            flat = tf.where(lower >= 0, tf.cast(lower, tf.int32), flat)
            return tf.strings.unicode_encode(chars.with_flat_values(flat), "UTF-8")

        def normalize(self, text):
            """`BertNormalizer` on strings `[n]` (no added tokens in them)."""
            text = tf.strings.regex_replace(text, f"[{re2_class(_CLEAN_REMOVED)}]", "")
            text = tf.strings.regex_replace(text, f"[{re2_class(_CLEAN_SPACES)}]", " ")
            if self._chinese:
                text = tf.strings.regex_replace(text, f"([{re2_class(_CHINESE)}])", " \\1 ")
            if self._strip:
                text = self._strip_accents(text)
            if self._lower:
                text = self._lowercase(text)
            return text

        def words(self, text):
            """The words `[n, (words)]` of strings `[n]`: normalized and pre-tokenized."""
            text = self.normalize(text)
            marked = tf.strings.regex_replace(text, f"[{re2_class(WHITE_SPACE)}]+", CUT)
            marked = tf.strings.regex_replace(
                marked, f"([{re2_class(_PUNCTUATION)}])", CUT + b"\\1" + CUT
            )
            words = tf.strings.split(marked, sep=CUT)
            return tf.ragged.boolean_mask(words, words != "")

        def _word_ids(self, words):
            """int32 ids `[k, (ids)]` of words `[k]`."""
            long = tf.strings.length(words, unit="UTF8_CHAR") > self._max_chars
            short = tf.logical_not(long)
            pieces = subset_rows(short, self._fast_word_piece.tokenize(tf.boolean_mask(words, short)))
            unknown = tf.RaggedTensor.from_row_lengths(
                tf.fill([tf.reduce_sum(tf.cast(long, tf.int32))], self.unk_id),
                tf.cast(long, tf.int64), validate=False,
            )
            return tf.concat([pieces, unknown], axis=1)

        def _encode_free(self, text):
            words = self.words(text)
            return words.with_flat_values(self._word_ids(words.flat_values)).merge_dims(1, 2)

        def _join_tokens(self, tokens):
            """The text of tokens `[batch, (tokens)]`, as the `WordPiece` decoder joins them.

            The pieces are joined with spaces, a piece starting with the prefix
            joins the one before, and the decoder's cleanup (`" ."` -> `"."`,
            ...) is applied to each piece (`detokenize` is the mixin's). (An
            empty line of `vocab.txt` decodes to nothing here, to a space in
            `decode` and `transformers`.)
            """
            first = tf.ragged.range(tokens.row_lengths()) == 0
            prefix = f"^{literal_pattern([self.suffix_indicator])}"
            continued = tf.ragged.map_flat_values(tf.strings.regex_full_match, tokens,
                                                  prefix + ".*")
            flat = tokens.flat_values
            flat = tf.where(
                first.flat_values, flat,
                tf.where(continued.flat_values, tf.strings.regex_replace(flat, prefix, ""),
                         tf.strings.join([" ", flat])),
            )
            flat = replace_literals(flat, _CLEANUP)
            return tf.strings.reduce_join(tokens.with_flat_values(flat), axis=-1)

    return ExactWordPieceLayer


# The `WordPiece` decoder's cleanup, applied to each decoded piece in this order.
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"),
            (" 're", "'re")]


# ---------------------------------------------------------------------------------------
# Reading the Hugging Face files
# ---------------------------------------------------------------------------------------


def _read_vocab_txt(path):
    """The tokens of a `vocab.txt`, one a line (ids are line numbers), read as `transformers` does."""
    try:
        with open(path, encoding="utf-8") as handle:
            tokens = [line.rstrip("\n") for line in handle.readlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read {path}: {error}") from None
    if not tokens:
        raise UserInputError(f"{path} is empty: no WordPiece vocabulary")
    return tokens


def _check_normalizer(normalizer):
    """`(lowercase, strip_accents, chinese_chars)` of a `BertNormalizer` spec."""
    if hf_files.kind_of(normalizer) != "BertNormalizer":
        raise UserInputError(f"the {hf_files.kind_of(normalizer)} normalizer is not supported "
                             "(only BertNormalizer)")
    if not normalizer.get("clean_text", True):
        raise UserInputError("a BertNormalizer without clean_text is not supported")
    lowercase = bool(normalizer.get("lowercase", True))
    strip = normalizer.get("strip_accents")
    return lowercase, lowercase if strip is None else bool(strip), \
        bool(normalizer.get("handle_chinese_chars", True))


# ---------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------


class WordPieceTokenizer(HuggingFaceTokenizer):
    """A Hugging Face WordPiece tokenizer (BERT, cased or uncased) with the same ids.

    Build one with `from_directory` (a folder with `vocab.txt` or
    `tokenizer.json`), `from_file` (a `tokenizer.json`) or
    `load_tokenizer(folder)`. Encoding is TensorFlow ops (see the module
    docstring for the steps), the same in Python, in `tf.data`
    (`tf_tokenizer()`, `tf_encode_pair()`) and in a SavedModel. `encode`
    adds no special tokens (as `tokenizer(text, add_special_tokens=False)`);
    `encode_pair` packs one or two texts as BERT wants them, `[CLS] a [SEP]`
    or `[CLS] a [SEP] b [SEP]`.

    Args:
        vocabulary: the WordPiece tokens by id (`vocab.txt`'s lines).
        lowercase: lower-case the text (`do_lower_case`).
        strip_accents: remove accents (NFD, then the non-spacing marks);
            `None` follows `lowercase`, as in BERT.
        tokenize_chinese_chars: make each CJK ideograph a word.
        added_tokens: Hugging Face added tokens beyond the roles, dicts with
            `id`, `content` and `special` (as in `tokenizer.json`).
        cls_token, sep_token, pad_token, mask_token, unk_token: the special
            tokens of those roles (an added token each; one missing from the
            vocabulary gets the next id, as in `transformers`). `unk_token`
            is required.
        prefix: the continuing-subword prefix.
        max_input_chars_per_word: longer words are `[UNK]`.
        cleanup: the `WordPiece` decoder's cleanup of `decode` (`" ."` -> `"."`, ...).
        clean_up_tokenization_spaces: `transformers`' cleanup of decoded text.
        model_max_length: kept for `save` (the model's context, if known).

    Attributes:
        kind: `"wordpiece"`.
        vocab_size: number of ids (vocabulary and added tokens).
        ordinary_ids: `(first, last)`, the range of the vocabulary's ids
            that are no added token (what masking draws random tokens from).
        cls_id, sep_id, pad_id, mask_id, unk_id: ids of the roles (`None`
            if a role has no token), and `cls_token`, ... their text.
        vocabulary, lowercase, strip_accents, tokenize_chinese_chars,
            added_tokens: as given (`strip_accents` resolved to a bool).

    Methods: `encode(text)`, `encode_batch(texts)`, `encode_pair(a, b,
    max_len)`, `decode(ids)`, `special_id(name)`, `tf_tokenizer()`,
    `tf_encode_pair(a, b, max_len)`, `make_layer()`, `save(folder)`.

    Example:

    >>> tokenizer = WordPieceTokenizer.from_directory("checkpoints/bert-base-uncased")
    >>> tokenizer.encode("Hello, World!")
    array([7592, 1010, 2088,  999], dtype=int32)
    >>> ids, segments, mask = tokenizer.encode_pair("Hello", "World", max_len=6)
    >>> ids.tolist(), segments.tolist()
    ([101, 7592, 102, 2088, 102, 0], [0, 0, 0, 1, 1, 0])
    """

    kind = KIND
    roles = ROLES
    default_tokens = DEFAULT_TOKENS
    other_files = (VOCAB_FILE,)

    def __init__(self, vocabulary, lowercase=True, strip_accents=None,
                 tokenize_chinese_chars=True, added_tokens=(), cls_token="[CLS]",
                 sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]", unk_token="[UNK]",
                 prefix="##", max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD, cleanup=True,
                 clean_up_tokenization_spaces=False, model_max_length=None):
        super().__init__()
        self.vocabulary = self._checked_vocabulary(vocabulary)
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        if not isinstance(prefix, str) or not prefix:
            raise UserInputError("the WordPiece continuing-subword prefix must be a non-empty string")
        self.prefix = prefix
        self.max_input_chars_per_word = int(max_input_chars_per_word)
        self.cleanup = bool(cleanup)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.model_max_length = model_max_length
        self._index = {token: i for i, token in enumerate(self.vocabulary)}
        roles = {"cls": cls_token, "sep": sep_token, "pad": pad_token, "mask": mask_token,
                 "unk": unk_token}
        if unk_token is None or unk_token not in self._index:
            raise UserInputError(f"the unknown token {unk_token!r} is not in the vocabulary")
        self.added_tokens = self._with_roles(hf_files.check_added_tokens(added_tokens), roles)

    # -- construction --------------------------------------------------------------------

    @staticmethod
    def _checked_vocabulary(vocabulary):
        tokens = list(vocabulary)
        if not tokens or not all(isinstance(t, str) for t in tokens):
            raise UserInputError("the WordPiece vocabulary must be a non-empty list of strings")
        return tokens

    def _model_vocabulary(self):
        """The vocabulary as `FastWordpieceTokenizer` takes it: every token once, none empty.

        `transformers` reads `vocab.txt` into a dict, so a token listed twice
        has the id of its last line, and an empty line is a token no word
        matches; the ids they leave are given stand-ins no word matches
        either (words hold no white space).
        """
        return [token if token and self._index[token] == i else f"\u2028{i}\u2028"
                for i, token in enumerate(self.vocabulary)]

    def _model_ids(self):
        return range(len(self.vocabulary))

    def _model_tokens(self):
        return {i: token for token, i in self._index.items()}  # (the last of a repeated token)

    def _token_id(self, content):
        return self._index.get(content)

    @classmethod
    def from_vocab_txt(cls, folder):
        """The tokenizer of BERT's `vocab.txt` in `folder`, set up by its `tokenizer_config.json`.

        Without a config the settings are `transformers`' defaults: lower-casing
        (and so accent stripping), CJK ideographs split, `[CLS]`, `[SEP]`,
        `[PAD]`, `[MASK]`, `[UNK]`.
        """
        folder = os.fspath(folder)
        path = os.path.join(folder, VOCAB_FILE)
        if not os.path.isfile(path):
            raise UserInputError(f"tokenizer file not found: {path}")
        vocabulary = _read_vocab_txt(path)
        config, special_map = hf_files.read_configs(folder)
        try:
            return cls(
                vocabulary, lowercase=config.get("do_lower_case", True),
                strip_accents=config.get("strip_accents"),
                tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
                added_tokens=hf_files.config_added_tokens(config),
                clean_up_tokenization_spaces=config.get("clean_up_tokenization_spaces", False),
                model_max_length=config.get("model_max_length"),
                **cls._role_arguments(cls._roles_of(config, special_map)),
            )
        except UserInputError as error:
            raise UserInputError(f"{folder}: {error}") from None

    _from_other_files = from_vocab_txt

    @classmethod
    def _from_spec(cls, spec, folder):
        pre_kind = hf_files.kind_of(spec.get("pre_tokenizer"))
        if pre_kind != "BertPreTokenizer":
            raise UserInputError(
                f"a WordPiece model is not supported with the {pre_kind} pre-tokenizer "
                "(only with BERT's BertPreTokenizer)"
            )
        model = spec["model"]
        if model.get("type") != "WordPiece":
            raise UserInputError(f"a {model.get('type')} model is not supported (only WordPiece)")
        lowercase, strip, chinese = _check_normalizer(spec.get("normalizer"))
        decoder = spec.get("decoder")
        if hf_files.kind_of(decoder) != "WordPiece":
            raise UserInputError(f"the {hf_files.kind_of(decoder)} decoder is not supported "
                                 "(only WordPiece)")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            raise UserInputError("the WordPiece model has no vocab object")
        ids = sorted(vocab.values()) if all(isinstance(i, int) for i in vocab.values()) else None
        if ids != list(range(len(vocab))):
            raise UserInputError("the WordPiece vocab ids must be 0 .. n-1, each once")
        vocabulary = [None] * len(vocab)
        for token, i in vocab.items():
            vocabulary[i] = token
        config, special_map = hf_files.read_configs(folder)
        roles = cls._roles_of(config, special_map)
        roles["unk"] = model.get("unk_token") or roles["unk"]
        added = hf_files.merged_added_tokens(spec.get("added_tokens"),
                                             hf_files.config_added_tokens(config))
        return cls(
            vocabulary, lowercase=lowercase, strip_accents=strip, tokenize_chinese_chars=chinese,
            added_tokens=added, prefix=model.get("continuing_subword_prefix") or "##",
            max_input_chars_per_word=model.get("max_input_chars_per_word")
            or MAX_INPUT_CHARS_PER_WORD,
            cleanup=decoder.get("cleanup", True),
            clean_up_tokenization_spaces=config.get("clean_up_tokenization_spaces", False),
            model_max_length=config.get("model_max_length"),
            **cls._role_arguments(roles),
        )

    # -- the tokenizer interface ---------------------------------------------------------

    def make_layer(self):
        """A new keras-hub `WordPieceTokenizer` layer of this tokenizer (exact normalization)."""
        added = {t["content"]: t["id"] for t in self.added_tokens}
        return _layer_class()(self._model_vocabulary(), added, self.unk_token, self.lowercase,
                              self.strip_accents, self.tokenize_chinese_chars, self.prefix,
                              self.max_input_chars_per_word, id_to_token=self._id_to_token(),
                              clean_up_spaces=self.clean_up_tokenization_spaces)

    def _check_pair_roles(self, max_len, pair):
        if self.cls_id is None or self.sep_id is None:
            raise UserInputError("packing needs the [CLS] and [SEP] tokens, and this tokenizer "
                                 "lacks one")
        specials = 3 if pair else 2
        if max_len is not None and max_len < specials:
            raise UserInputError(
                f"max_len {max_len} leaves no room: {'a pair' if pair else 'one text'} needs "
                f"{specials} special tokens"
            )
        if max_len is not None and self.pad_id is None:
            raise UserInputError("padding to max_len needs a [PAD] token, and this tokenizer "
                                 "has none")

    def encode_pair(self, text_a, text_b=None, max_len=None):
        """BERT's input for one text (`[CLS] a [SEP]`) or two (`[CLS] a [SEP] b [SEP]`).

        The same ids as `transformers`' `tokenizer(a, b, truncation=True,
        max_length=max_len, padding="max_length")`: over `max_len`, the texts
        are cut as its "longest_first" truncation cuts them (see
        `longest_first`).

        Args:
            text_a: the first text.
            text_b: the second text, or None for one text (`""` is an empty
                second text: `[CLS] a [SEP] [SEP]`).
            max_len: the length to truncate and pad to (`pad_id`); None keeps
                every token and adds no padding.

        Returns:
            `(token_ids, segment_ids, padding_mask)`: int32, int32 and bool
            numpy arrays; segment 0 is `[CLS] a [SEP]`, segment 1 `b [SEP]`,
            and the mask is True on tokens, False on padding.

        Example:

        >>> ids, segments, mask = tokenizer.encode_pair("a b c", "d", max_len=6)
        >>> tokenizer.decode(ids)
        '[CLS] a b [SEP] d [SEP]'
        """
        pair = text_b is not None
        self._check_pair_roles(max_len, pair)
        a, b = self._encode_batch([text_a, text_b]) if pair else \
            (self.encode(text_a), np.zeros([0], np.int32))
        if max_len is not None:
            keep_a, keep_b = longest_first(len(a), len(b), max_len - (3 if pair else 2))
            a, b = a[:keep_a], b[:keep_b]
        parts = [[self.cls_id], a, [self.sep_id]] + ([b, [self.sep_id]] if pair else [])
        ids = np.concatenate([np.asarray(p, np.int32) for p in parts])
        segments = np.concatenate([np.zeros(len(a) + 2, np.int32),
                                   np.ones(len(b) + 1 if pair else 0, np.int32)])
        length = len(ids) if max_len is None else max_len
        token_ids = np.full([length], self.pad_id if self.pad_id is not None else 0, np.int32)
        token_ids[:len(ids)] = ids
        segment_ids = np.zeros([length], np.int32)
        segment_ids[:len(ids)] = segments
        return token_ids, segment_ids, np.arange(length) < len(ids)

    @tf.autograph.experimental.do_not_convert
    def tf_encode_pair(self, text_a, text_b=None, max_len=512):
        """`encode_pair` as TensorFlow ops, for `tf.data`: one text or a batch of texts.

        Args:
            text_a: a string `[]` or strings `[batch]`.
            text_b: the second texts (same shape), or None for single texts.
            max_len: the length to truncate and pad to (BERT's 512 by default).

        Returns:
            `(token_ids, segment_ids, padding_mask)`, each `[max_len]` (or
            `[batch, max_len]`): int32, int32 and bool.

        Example:

        >>> pairs = tf.data.Dataset.from_tensor_slices((premises, hypotheses)).batch(32)
        >>> pairs = pairs.map(lambda a, b: tokenizer.tf_encode_pair(a, b, max_len=128))
        """
        pair = text_b is not None
        if max_len is None:
            raise UserInputError("tf_encode_pair needs a max_len (the length of its arrays)")
        self._check_pair_roles(max_len, pair)
        layer = self.tf_tokenizer()
        with tf.device("cpu"):
            text_a = tf.convert_to_tensor(text_a, tf.string)
            scalar = text_a.shape.rank == 0
            text_a = tf.reshape(text_a, [-1])
            n = tf.shape(text_a, out_type=tf.int64)[0]
            if pair:  # both texts in one call: one tokenizer graph, not two
                both = layer.tokenize(tf.concat(
                    [text_a, tf.reshape(tf.convert_to_tensor(text_b, tf.string), [-1])], axis=0))
                a, b = both[:n], both[n:]
                keep_a, keep_b = _tf_longest_first(a.row_lengths(), b.row_lengths(),
                                                   tf.constant(max_len - 3, tf.int64))
                a, b = _first(a, keep_a), _first(b, keep_b)
            else:
                a = layer.tokenize(text_a)
                a = _first(a, tf.minimum(a.row_lengths(), max_len - 2))

            def column(value):
                return tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.constant(value, tf.int32)))

            parts = [column(self.cls_id), a, column(self.sep_id)]
            segments = [tf.zeros_like(p) for p in parts]
            if pair:
                parts += [b, column(self.sep_id)]
                segments += [tf.ones_like(b), tf.ones_like(parts[-1])]
            ids = tf.concat(parts, axis=1)
            shape = [None, max_len]
            token_ids = ids.to_tensor(default_value=self.pad_id, shape=shape)
            segment_ids = tf.concat(segments, axis=1).to_tensor(default_value=0, shape=shape)
            mask = tf.ones_like(ids, tf.bool).to_tensor(default_value=False, shape=shape)
            if scalar:
                return token_ids[0], segment_ids[0], mask[0]
            return token_ids, segment_ids, mask

    def decode(self, ids, skip_special_tokens=False):
        """Text of `ids`, as `transformers`' `decode` (ids outside the vocabulary give nothing).

        Args:
            ids: integer ids.
            skip_special_tokens: leave out the special added tokens.
        """
        pieces = []
        for i, token in enumerate(self._kept_tokens(ids, skip_special_tokens)):
            if i:
                token = token[len(self.prefix):] if token.startswith(self.prefix) else f" {token}"
            if self.cleanup:
                for dirty, clean in _CLEANUP:
                    token = token.replace(dirty, clean)
            pieces.append(token)
        return self._clean_up("".join(pieces))

    def save(self, folder):
        """Write `vocab.txt` and `tokenizer_config.json` into `folder` (made if missing).

        `load_tokenizer(folder)`, `from_directory` and `transformers`'
        `AutoTokenizer.from_pretrained(folder)` read them back.
        """
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, VOCAB_FILE), "w", encoding="utf-8", newline="\n") as handle:
            handle.write("".join(f"{token}\n" for token in self.vocabulary))
        config = {
            "tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
        }
        self._write_config(folder, config)


class WordPieceGraphTokenizer(HuggingFaceGraphTokenizer):
    """A `WordPieceTokenizer` as graph ops a SavedModel can hold (`HuggingFaceGraphTokenizer`).

    The reloaded model needs `tensorflow` and `tensorflow_text` (`import
    tensorflow_text` registers the ops of `FastWordpieceTokenizer` and NFD).

    Example:

    >>> WordPieceGraphTokenizer(tokenizer).encode(tf.constant(["Hello, World!"]))
    <tf.RaggedTensor [[7592, 1010, 2088, 999]]>
    """
