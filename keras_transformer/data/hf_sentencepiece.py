"""T5's SentencePiece tokenizer as TensorFlow ops, with the ids of `transformers`' `T5Tokenizer`.

`T5SentencePieceTokenizer` reads a T5 tokenizer folder, either `spiece.model`
(a SentencePiece unigram model, with the settings of `tokenizer_config.json`:
`extra_ids` and the special tokens) or a `tokenizer.json` (a `Unigram`
model, the `Precompiled` normalizer, `WhitespaceSplit` and `Metaspace`), and
gives the ids `transformers`' `T5Tokenizer` gives: the SentencePiece pieces,
then the 100 sentinels `<extra_id_99>` .. `<extra_id_0>` (so `<extra_id_0>`
is the last id), `</s>` appended by `encode(text, add_eos=True)` as
`tokenizer(text)` does. Encoding is TensorFlow ops, so the same code
tokenizes in Python, inside `tf.data` (`tf_tokenizer()`) and inside a
SavedModel.

`transformers` does not run SentencePiece itself: it converts the model to a
`tokenizers` pipeline, which differs from SentencePiece on some texts. This
module follows that pipeline, step by step:

1. The added tokens (`<pad>`, `</s>`, `<unk>`, the sentinels, any other
   `added_tokens`) are cut out of the raw text first, longest match first,
   and map to their ids (WikiText's `<unk>` is the id of `<unk>`). Each text
   between is normalized and split on its own, so each starts a new word
   (`"a<extra_id_0>b"` is `▁a`, `<extra_id_0>`, `▁b`).
2. The `Precompiled` normalizer applies SentencePiece's normalization table
   (T5's `nmt_nfkc`: NFKC, control characters removed, white space made a
   space) the way `tokenizers` does, not the way SentencePiece does: the
   text is cut into grapheme clusters (Unicode 16's extended clusters, emoji
   ZWJ sequences and Indic conjuncts included; Hangul syllable sequences and
   regional-indicator pairs are not joined, which changes nothing with T5's
   table: none of their characters is in it, and their clusters are six bytes
   or more); a cluster shorter than six bytes of which a prefix
   is in the table becomes the normalization of its *shortest* such prefix,
   and the rest of the cluster is dropped (`"Ａ\\u0308"` -> `"A"`, not `"Ä"`;
   decomposed `"e\\u0323\\u0302"` -> `"ẹ"`); any other cluster is normalized
   one character at a time (so decomposed Hangul stays decomposed, where
   SentencePiece composes it).
3. `WhitespaceSplit` cuts at every Unicode white-space character (U+0085
   too, which the table keeps), `Metaspace` puts `▁` before each word and
   cuts before every `▁` in it.
4. Each piece is segmented by SentencePiece's unigram Viterbi search
   (keras-hub's `SentencePieceTokenizer`, i.e. `tensorflow_text`), over a
   copy of the model without normalization in which every piece can be
   matched, as in `tokenizers`' `Unigram` model: `</s>`, `<pad>`, `<unk>`
   and the sentinels too, so a text that normalizes to `"</s>"` (the
   full-width `"＜/s＞"`) gives the id of `</s>`, as in `transformers`.
   Characters without a piece become `<unk>`, one for a run of them.

What is reproduced exactly (anything else is refused with a `UserInputError`
naming it): a unigram model without byte fallback; `spiece.model` with
SentencePiece's `add_dummy_prefix` (T5's); in a `tokenizer.json`, the
`Precompiled` normalizer (alone, or followed by a no-op `Replace` of space
runs), the pre-tokenizer `WhitespaceSplit` + `Metaspace` with
`prepend_scheme` "always", the `Metaspace` decoder; added tokens without
`lstrip`, `rstrip` or `single_word`. Two corners are not reproduced:
segmentations that tie in score (two paths with the same float sum; and
SentencePiece adds float32 scores where `tokenizers` adds float64 ones) may
be broken differently than `tokenizers` breaks them (none occurred in the
tests), and a normalization table other than T5's that holds Hangul jamo or
regional indicators would need the Hangul and regional-indicator cluster
rules (`from_directory` does not check for this).
"""

import base64
import contextlib
import functools
import os
import struct

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
    re2_class,
    regex_pieces,
    static_table,
)
from keras_transformer.errors import UserInputError

KIND = "t5_sentencepiece"
MODEL_FILE = "spiece.model"
ROLES = ("eos", "pad", "unk")
DEFAULT_TOKENS = {"eos": "</s>", "pad": "<pad>", "unk": "<unk>"}
EXTRA_IDS = 100
META = "\u2581"  # SentencePiece's `▁`, the space of a piece
# SentencePiece piece types (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_NOT_A_NORMALIZATION = b"\xff"  # never valid UTF-8: "no entry" in the normalization table
_SHORT_CLUSTER = 6  # `tokenizers` normalizes clusters of fewer bytes as a whole

# Grapheme cluster classes of Unicode 16 (code point ranges, hexadecimal), as the
# `unicode-segmentation` crate of `tokenizers` has them (the tests check every code point
# against the installed `tokenizers`): what extends a cluster (Extend, ZWJ, SpacingMark) ...
_GRAPHEME_EXTEND = (
    "300-36f 483-489 591-5bd 5bf 5c1-5c2 5c4-5c5 5c7 610-61a 64b-65f 670 6d6-6dc 6df-6e4 "
    "6e7-6e8 6ea-6ed 711 730-74a 7a6-7b0 7eb-7f3 7fd 816-819 81b-823 825-827 829-82d "
    "859-85b 897-89f 8ca-8e1 8e3-903 93a-93c 93e-94f 951-957 962-963 981-983 9bc 9be-9c4 "
    "9c7-9c8 9cb-9cd 9d7 9e2-9e3 9fe a01-a03 a3c a3e-a42 a47-a48 a4b-a4d a51 a70-a71 a75 "
    "a81-a83 abc abe-ac5 ac7-ac9 acb-acd ae2-ae3 afa-aff b01-b03 b3c b3e-b44 b47-b48 "
    "b4b-b4d b55-b57 b62-b63 b82 bbe-bc2 bc6-bc8 bca-bcd bd7 c00-c04 c3c c3e-c44 c46-c48 "
    "c4a-c4d c55-c56 c62-c63 c81-c83 cbc cbe-cc4 cc6-cc8 cca-ccd cd5-cd6 ce2-ce3 cf3 "
    "d00-d03 d3b-d3c d3e-d44 d46-d48 d4a-d4d d57 d62-d63 d81-d83 dca dcf-dd4 dd6 dd8-ddf "
    "df2-df3 e31 e33-e3a e47-e4e eb1 eb3-ebc ec8-ece f18-f19 f35 f37 f39 f3e-f3f f71-f84 "
    "f86-f87 f8d-f97 f99-fbc fc6 102d-1037 1039-103e 1056-1059 105e-1060 1071-1074 1082 "
    "1084-1086 108d 109d 135d-135f 1712-1715 1732-1734 1752-1753 1772-1773 17b4-17d3 17dd "
    "180b-180d 180f 1885-1886 18a9 1920-192b 1930-193b 1a17-1a1b 1a55-1a5e 1a60 1a62 "
    "1a65-1a7c 1a7f 1ab0-1add 1ae0-1aeb 1b00-1b04 1b34-1b44 1b6b-1b73 1b80-1b82 1ba1-1bad "
    "1be6-1bf3 1c24-1c37 1cd0-1cd2 1cd4-1ce8 1ced 1cf4 1cf7-1cf9 1dc0-1dff 200c-200d "
    "20d0-20f0 2cef-2cf1 2d7f 2de0-2dff 302a-302f 3099-309a a66f-a672 a674-a67d a69e-a69f "
    "a6f0-a6f1 a802 a806 a80b a823-a827 a82c a880-a881 a8b4-a8c5 a8e0-a8f1 a8ff a926-a92d "
    "a947-a953 a980-a983 a9b3-a9c0 a9e5 aa29-aa36 aa43 aa4c-aa4d aa7c aab0 aab2-aab4 "
    "aab7-aab8 aabe-aabf aac1 aaeb-aaef aaf5-aaf6 abe3-abea abec-abed fb1e fe00-fe0f "
    "fe20-fe2f ff9e-ff9f 101fd 102e0 10376-1037a 10a01-10a03 10a05-10a06 10a0c-10a0f "
    "10a38-10a3a 10a3f 10ae5-10ae6 10d24-10d27 10d69-10d6d 10eab-10eac 10efa-10eff "
    "10f46-10f50 10f82-10f85 11000-11002 11038-11046 11070 11073-11074 1107f-11082 "
    "110b0-110ba 110c2 11100-11102 11127-11134 11145-11146 11173 11180-11182 111b3-111c0 "
    "111c9-111cc 111ce-111cf 1122c-11237 1123e 11241 112df-112ea 11300-11303 1133b-1133c "
    "1133e-11344 11347-11348 1134b-1134d 11357 11362-11363 11366-1136c 11370-11374 "
    "113b8-113c0 113c2 113c5 113c7-113ca 113cc-113d0 113d2 113e1-113e2 11435-11446 1145e "
    "114b0-114c3 115af-115b5 115b8-115c0 115dc-115dd 11630-11640 116ab-116b7 1171d-1171f "
    "11722-1172b 1182c-1183a 11930-11935 11937-11938 1193b-1193e 11940 11942-11943 "
    "119d1-119d7 119da-119e0 119e4 11a01-11a0a 11a33-11a39 11a3b-11a3e 11a47 11a51-11a5b "
    "11a8a-11a99 11b60-11b67 11c2f-11c36 11c38-11c3f 11c92-11ca7 11ca9-11cb6 11d31-11d36 "
    "11d3a 11d3c-11d3d 11d3f-11d45 11d47 11d8a-11d8e 11d90-11d91 11d93-11d97 11ef3-11ef6 "
    "11f00-11f01 11f03 11f34-11f3a 11f3e-11f42 11f5a 13440 13447-13455 1611e-1612f "
    "16af0-16af4 16b30-16b36 16f4f 16f51-16f87 16f8f-16f92 16fe4 16ff0-16ff1 1bc9d-1bc9e "
    "1cf00-1cf2d 1cf30-1cf46 1d165-1d169 1d16d-1d172 1d17b-1d182 1d185-1d18b 1d1aa-1d1ad "
    "1d242-1d244 1da00-1da36 1da3b-1da6c 1da75 1da84 1da9b-1da9f 1daa1-1daaf 1e000-1e006 "
    "1e008-1e018 1e01b-1e021 1e023-1e024 1e026-1e02a 1e08f 1e130-1e136 1e2ae 1e2ec-1e2ef "
    "1e4ec-1e4ef 1e5ee-1e5ef 1e6e3 1e6e6 1e6ee-1e6ef 1e6f5 1e8d0-1e8d6 1e944-1e94a "
    "1f3fb-1f3ff e0020-e007f e0100-e01ef"
)
# ... what joins the cluster after it (Prepend) ...
_PREPEND = (
    "600-605 6dd 70f 890-891 8e2 d4e 110bd 110cd 111c2-111c3 113d1 1193f 11941 11a84-11a89 "
    "11d46 11f02"
)
# ... and what stands alone (Control, CR, LF: nothing joins them).
_CONTROL = (
    "0-1f 7f-9f ad 61c 180e 200b 200e-200f 2028-202e 2060-206f feff fff0-fffb 13430-1343f "
    "1bca0-1bca3 1d173-1d17a e0000-e001f e0080-e00ff e01f0-e0fff"
)

# Rule GB11 (emoji ZWJ sequences): an Extended_Pictographic character, Extend characters
# (only those: not ZWJ or SpacingMark), a ZWJ and another pictographic one are one cluster
# (the tables below come from the `regex` module's `\X`, which agrees with `tokenizers`) ...
_PICTOGRAPHIC = (
    "a9 ae 203c 2049 2122 2139 2194-2199 21a9-21aa 231a-231b 2328 23cf 23e9-23f3 23f8-23fa "
    "24c2 25aa-25ab 25b6 25c0 25fb-25fe 2600-2604 260e 2611 2614-2615 2618 261d 2620 "
    "2622-2623 2626 262a 262e-262f 2638-263a 2640 2642 2648-2653 265f-2660 2663 2665-2666 "
    "2668 267b 267e-267f 2692-2697 2699 269b-269c 26a0-26a1 26a7 26aa-26ab 26b0-26b1 "
    "26bd-26be 26c4-26c5 26c8 26ce-26cf 26d1 26d3-26d4 26e9-26ea 26f0-26f5 26f7-26fa 26fd "
    "2702 2705 2708-270d 270f 2712 2714 2716 271d 2721 2728 2733-2734 2744 2747 274c 274e "
    "2753-2755 2757 2763-2764 2795-2797 27a1 27b0 27bf 2934-2935 2b05-2b07 2b1b-2b1c 2b50 "
    "2b55 3030 303d 3297 3299 1f004 1f02c-1f02f 1f094-1f09f 1f0af-1f0b0 1f0c0 1f0cf-1f0d0 "
    "1f0f6-1f0ff 1f170-1f171 1f17e-1f17f 1f18e 1f191-1f19a 1f1ae-1f1e5 1f201-1f20f 1f21a "
    "1f22f 1f232-1f23a 1f23c-1f23f 1f249-1f25f 1f266-1f321 1f324-1f393 1f396-1f397 "
    "1f399-1f39b 1f39e-1f3f0 1f3f3-1f3f5 1f3f7-1f3fa 1f400-1f4fd 1f4ff-1f53d 1f549-1f54e "
    "1f550-1f567 1f56f-1f570 1f573-1f57a 1f587 1f58a-1f58d 1f590 1f595-1f596 1f5a4-1f5a5 "
    "1f5a8 1f5b1-1f5b2 1f5bc 1f5c2-1f5c4 1f5d1-1f5d3 1f5dc-1f5de 1f5e1 1f5e3 1f5e8 1f5ef "
    "1f5f3 1f5fa-1f64f 1f680-1f6c5 1f6cb-1f6d2 1f6d5-1f6e5 1f6e9 1f6eb-1f6f0 1f6f3-1f6ff "
    "1f7da-1f7ff 1f80c-1f80f 1f848-1f84f 1f85a-1f85f 1f888-1f88f 1f8ae-1f8af 1f8bc-1f8bf "
    "1f8c2-1f8cf 1f8d9-1f8ff 1f90c-1f93a 1f93c-1f945 1f947-1f9ff 1fa58-1fa5f 1fa6e-1faff "
    "1fc00-1fffd"
)
_EXTEND_ONLY = (
    "300-36f 483-489 591-5bd 5bf 5c1-5c2 5c4-5c5 5c7 610-61a 64b-65f 670 6d6-6dc 6df-6e4 "
    "6e7-6e8 6ea-6ed 711 730-74a 7a6-7b0 7eb-7f3 7fd 816-819 81b-823 825-827 829-82d "
    "859-85b 897-89f 8ca-8e1 8e3-902 93a 93c 941-948 94d 951-957 962-963 981 9bc 9be "
    "9c1-9c4 9cd 9d7 9e2-9e3 9fe a01-a02 a3c a41-a42 a47-a48 a4b-a4d a51 a70-a71 a75 "
    "a81-a82 abc ac1-ac5 ac7-ac8 acd ae2-ae3 afa-aff b01 b3c b3e-b3f b41-b44 b4d b55-b57 "
    "b62-b63 b82 bbe bc0 bcd bd7 c00 c04 c3c c3e-c40 c46-c48 c4a-c4d c55-c56 c62-c63 c81 "
    "cbc cbf-cc0 cc2 cc6-cc8 cca-ccd cd5-cd6 ce2-ce3 d00-d01 d3b-d3c d3e d41-d44 d4d d57 "
    "d62-d63 d81 dca dcf dd2-dd4 dd6 ddf e31 e34-e3a e47-e4e eb1 eb4-ebc ec8-ece f18-f19 "
    "f35 f37 f39 f71-f7e f80-f84 f86-f87 f8d-f97 f99-fbc fc6 102d-1030 1032-1037 1039-103a "
    "103d-103e 1058-1059 105e-1060 1071-1074 1082 1085-1086 108d 109d 135d-135f 1712-1715 "
    "1732-1734 1752-1753 1772-1773 17b4-17b5 17b7-17bd 17c6 17c9-17d3 17dd 180b-180d 180f "
    "1885-1886 18a9 1920-1922 1927-1928 1932 1939-193b 1a17-1a18 1a1b 1a56 1a58-1a5e 1a60 "
    "1a62 1a65-1a6c 1a73-1a7c 1a7f 1ab0-1add 1ae0-1aeb 1b00-1b03 1b34-1b3d 1b42-1b44 "
    "1b6b-1b73 1b80-1b81 1ba2-1ba5 1ba8-1bad 1be6 1be8-1be9 1bed 1bef-1bf3 1c2c-1c33 "
    "1c36-1c37 1cd0-1cd2 1cd4-1ce0 1ce2-1ce8 1ced 1cf4 1cf8-1cf9 1dc0-1dff 200c 20d0-20f0 "
    "2cef-2cf1 2d7f 2de0-2dff 302a-302f 3099-309a a66f-a672 a674-a67d a69e-a69f a6f0-a6f1 "
    "a802 a806 a80b a825-a826 a82c a8c4-a8c5 a8e0-a8f1 a8ff a926-a92d a947-a951 a953 "
    "a980-a982 a9b3 a9b6-a9b9 a9bc-a9bd a9c0 a9e5 aa29-aa2e aa31-aa32 aa35-aa36 aa43 aa4c "
    "aa7c aab0 aab2-aab4 aab7-aab8 aabe-aabf aac1 aaec-aaed aaf6 abe5 abe8 abed fb1e "
    "fe00-fe0f fe20-fe2f ff9e-ff9f 101fd 102e0 10376-1037a 10a01-10a03 10a05-10a06 "
    "10a0c-10a0f 10a38-10a3a 10a3f 10ae5-10ae6 10d24-10d27 10d69-10d6d 10eab-10eac "
    "10efa-10eff 10f46-10f50 10f82-10f85 11001 11038-11046 11070 11073-11074 1107f-11081 "
    "110b3-110b6 110b9-110ba 110c2 11100-11102 11127-1112b 1112d-11134 11173 11180-11181 "
    "111b6-111be 111c0 111c9-111cc 111cf 1122f-11231 11234-11237 1123e 11241 112df "
    "112e3-112ea 11300-11301 1133b-1133c 1133e 11340 1134d 11357 11366-1136c 11370-11374 "
    "113b8 113bb-113c0 113c2 113c5 113c7-113c9 113ce-113d0 113d2 113e1-113e2 11438-1143f "
    "11442-11444 11446 1145e 114b0 114b3-114b8 114ba 114bd 114bf-114c0 114c2-114c3 115af "
    "115b2-115b5 115bc-115bd 115bf-115c0 115dc-115dd 11633-1163a 1163d 1163f-11640 116ab "
    "116ad 116b0-116b7 1171d 1171f 11722-11725 11727-1172b 1182f-11837 11839-1183a 11930 "
    "1193b-1193e 11943 119d4-119d7 119da-119db 119e0 11a01-11a0a 11a33-11a38 11a3b-11a3e "
    "11a47 11a51-11a56 11a59-11a5b 11a8a-11a96 11a98-11a99 11b60 11b62-11b64 11b66 "
    "11c30-11c36 11c38-11c3d 11c3f 11c92-11ca7 11caa-11cb0 11cb2-11cb3 11cb5-11cb6 "
    "11d31-11d36 11d3a 11d3c-11d3d 11d3f-11d45 11d47 11d90-11d91 11d95 11d97 11ef3-11ef4 "
    "11f00-11f01 11f36-11f3a 11f40-11f42 11f5a 13440 13447-13455 1611e-16129 1612d-1612f "
    "16af0-16af4 16b30-16b36 16f4f 16f8f-16f92 16fe4 16ff0-16ff1 1bc9d-1bc9e 1cf00-1cf2d "
    "1cf30-1cf46 1d165-1d169 1d16d-1d172 1d17b-1d182 1d185-1d18b 1d1aa-1d1ad 1d242-1d244 "
    "1da00-1da36 1da3b-1da6c 1da75 1da84 1da9b-1da9f 1daa1-1daaf 1e000-1e006 1e008-1e018 "
    "1e01b-1e021 1e023-1e024 1e026-1e02a 1e08f 1e130-1e136 1e2ae 1e2ec-1e2ef 1e4ec-1e4ef "
    "1e5ee-1e5ef 1e6e3 1e6e6 1e6ee-1e6ef 1e6f5 1e8d0-1e8d6 1e944-1e94a 1f3fb-1f3ff "
    "e0020-e007f e0100-e01ef"
)
# ... and rule GB9c (Indic conjuncts): a consonant, then linkers (viramas) and extending
# characters with at least one linker, then another consonant (InCB = Consonant, Linker, Extend).
_CONJUNCT_CONSONANT = (
    "915-939 958-95f 978-97f 995-9a8 9aa-9b0 9b2 9b6-9b9 9dc-9dd 9df 9f0-9f1 a95-aa8 "
    "aaa-ab0 ab2-ab3 ab5-ab9 af9 b15-b28 b2a-b30 b32-b33 b35-b39 b5c-b5d b5f b71 c15-c28 "
    "c2a-c39 c58-c5a d15-d3a 1000-102a 103f 1050-1055 105a-105d 1061 1065-1066 106e-1070 "
    "1075-1081 108e 1780-17b3 1a20-1a54 1b0b-1b0c 1b13-1b33 1b45-1b4c 1b83-1ba0 1bae-1baf "
    "1bbb-1bbd a989-a98b a98f-a9b2 a9e0-a9e4 a9e7-a9ef a9fa-a9fe aa60-aa6f aa71-aa73 aa7a "
    "aa7e-aa7f aae0-aaea abc0-abda 10a00 10a10-10a13 10a15-10a17 10a19-10a35 11103-11126 "
    "11144 11147 11380-11389 1138b 1138e 11390-113b5 11900-11906 11909 1190c-11913 "
    "11915-11916 11918-1192f 11a00 11a0b-11a32 11a50 11a5c-11a83 11f04-11f10 11f12-11f33"
)
_CONJUNCT_LINKER = (
    "94d 9cd acd b4d c4d d4d 1039 17d2 1a60 1b44 1bab a9c0 aaf6 10a3f 11133 113d0 1193e "
    "11a47 11a99 11f42"
)
_CONJUNCT_EXTEND = (
    "300-36f 483-489 591-5bd 5bf 5c1-5c2 5c4-5c5 5c7 610-61a 64b-65f 670 6d6-6dc 6df-6e4 "
    "6e7-6e8 6ea-6ed 711 730-74a 7a6-7b0 7eb-7f3 7fd 816-819 81b-823 825-827 829-82d "
    "859-85b 897-89f 8ca-8e1 8e3-902 93a 93c 941-948 951-957 962-963 981 9bc 9be 9c1-9c4 "
    "9d7 9e2-9e3 9fe a01-a02 a3c a41-a42 a47-a48 a4b-a4d a51 a70-a71 a75 a81-a82 abc "
    "ac1-ac5 ac7-ac8 ae2-ae3 afa-aff b01 b3c b3e-b3f b41-b44 b55-b57 b62-b63 b82 bbe bc0 "
    "bcd bd7 c00 c04 c3c c3e-c40 c46-c48 c4a-c4c c55-c56 c62-c63 c81 cbc cbf-cc0 cc2 "
    "cc6-cc8 cca-ccd cd5-cd6 ce2-ce3 d00-d01 d3b-d3c d3e d41-d44 d57 d62-d63 d81 dca dcf "
    "dd2-dd4 dd6 ddf e31 e34-e3a e47-e4e eb1 eb4-ebc ec8-ece f18-f19 f35 f37 f39 f71-f7e "
    "f80-f84 f86-f87 f8d-f97 f99-fbc fc6 102d-1030 1032-1037 103a 103d-103e 1058-1059 "
    "105e-1060 1071-1074 1082 1085-1086 108d 109d 135d-135f 1712-1715 1732-1734 1752-1753 "
    "1772-1773 17b4-17b5 17b7-17bd 17c6 17c9-17d1 17d3 17dd 180b-180d 180f 1885-1886 18a9 "
    "1920-1922 1927-1928 1932 1939-193b 1a17-1a18 1a1b 1a56 1a58-1a5e 1a62 1a65-1a6c "
    "1a73-1a7c 1a7f 1ab0-1add 1ae0-1aeb 1b00-1b03 1b34-1b3d 1b42-1b43 1b6b-1b73 1b80-1b81 "
    "1ba2-1ba5 1ba8-1baa 1bac-1bad 1be6 1be8-1be9 1bed 1bef-1bf3 1c2c-1c33 1c36-1c37 "
    "1cd0-1cd2 1cd4-1ce0 1ce2-1ce8 1ced 1cf4 1cf8-1cf9 1dc0-1dff 200d 20d0-20f0 2cef-2cf1 "
    "2d7f 2de0-2dff 302a-302f 3099-309a a66f-a672 a674-a67d a69e-a69f a6f0-a6f1 a802 a806 "
    "a80b a825-a826 a82c a8c4-a8c5 a8e0-a8f1 a8ff a926-a92d a947-a951 a953 a980-a982 a9b3 "
    "a9b6-a9b9 a9bc-a9bd a9e5 aa29-aa2e aa31-aa32 aa35-aa36 aa43 aa4c aa7c aab0 aab2-aab4 "
    "aab7-aab8 aabe-aabf aac1 aaec-aaed abe5 abe8 abed fb1e fe00-fe0f fe20-fe2f ff9e-ff9f "
    "101fd 102e0 10376-1037a 10a01-10a03 10a05-10a06 10a0c-10a0f 10a38-10a3a 10ae5-10ae6 "
    "10d24-10d27 10d69-10d6d 10eab-10eac 10efa-10eff 10f46-10f50 10f82-10f85 11001 "
    "11038-11046 11070 11073-11074 1107f-11081 110b3-110b6 110b9-110ba 110c2 11100-11102 "
    "11127-1112b 1112d-11132 11134 11173 11180-11181 111b6-111be 111c0 111c9-111cc 111cf "
    "1122f-11231 11234-11237 1123e 11241 112df 112e3-112ea 11300-11301 1133b-1133c 1133e "
    "11340 1134d 11357 11366-1136c 11370-11374 113b8 113bb-113c0 113c2 113c5 113c7-113c9 "
    "113ce-113cf 113d2 113e1-113e2 11438-1143f 11442-11444 11446 1145e 114b0 114b3-114b8 "
    "114ba 114bd 114bf-114c0 114c2-114c3 115af 115b2-115b5 115bc-115bd 115bf-115c0 "
    "115dc-115dd 11633-1163a 1163d 1163f-11640 116ab 116ad 116b0-116b7 1171d 1171f "
    "11722-11725 11727-1172b 1182f-11837 11839-1183a 11930 1193b-1193d 11943 119d4-119d7 "
    "119da-119db 119e0 11a01-11a0a 11a33-11a38 11a3b-11a3e 11a51-11a56 11a59-11a5b "
    "11a8a-11a96 11a98 11b60 11b62-11b64 11b66 11c30-11c36 11c38-11c3d 11c3f 11c92-11ca7 "
    "11caa-11cb0 11cb2-11cb3 11cb5-11cb6 11d31-11d36 11d3a 11d3c-11d3d 11d3f-11d45 11d47 "
    "11d90-11d91 11d95 11d97 11ef3-11ef4 11f00-11f01 11f36-11f3a 11f40-11f41 11f5a 13440 "
    "13447-13455 1611e-16129 1612d-1612f 16af0-16af4 16b30-16b36 16f4f 16f8f-16f92 16fe4 "
    "16ff0-16ff1 1bc9d-1bc9e 1cf00-1cf2d 1cf30-1cf46 1d165-1d169 1d16d-1d172 1d17b-1d182 "
    "1d185-1d18b 1d1aa-1d1ad 1d242-1d244 1da00-1da36 1da3b-1da6c 1da75 1da84 1da9b-1da9f "
    "1daa1-1daaf 1e000-1e006 1e008-1e018 1e01b-1e021 1e023-1e024 1e026-1e02a 1e08f "
    "1e130-1e136 1e2ae 1e2ec-1e2ef 1e4ec-1e4ef 1e5ee-1e5ef 1e6e3 1e6e6 1e6ee-1e6ef 1e6f5 "
    "1e8d0-1e8d6 1e944-1e94a 1f3fb-1f3ff e0020-e007f e0100-e01ef"
)


def _sentencepiece_model_pb2():
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2


def charsmap_table(blob, max_key_bytes=_SHORT_CLUSTER - 1):
    """`{text: normalized}` of a SentencePiece precompiled charsmap (its keys up to `max_key_bytes`).

    The charsmap is a 4-byte little-endian size, a darts-clone double-array
    trie of that many bytes (the keys, UTF-8), then the normalized strings,
    each ended by a NUL byte, at the offsets the trie's leaves hold.
    `tokenizers` only ever looks up single characters and prefixes of
    clusters shorter than six bytes, so longer keys are not needed.

    Args:
        blob: the `precompiled_charsmap` bytes.
        max_key_bytes: the longest keys to read.

    Raises:
        UserInputError: the blob is not a charsmap.

    Example:

    >>> table = charsmap_table(proto.normalizer_spec.precompiled_charsmap)
    >>> table["Ａ"], table["\\t"]
    ('A', ' ')
    """
    blob = bytes(blob)
    if not blob:
        return {}
    try:
        (size,) = struct.unpack_from("<I", blob, 0)
        if size % 4 or 4 + size > len(blob) or size == 0:
            raise ValueError
        units = np.frombuffer(blob, dtype="<u4", count=size // 4, offset=4).astype(np.int64)
    except (struct.error, ValueError):
        raise UserInputError("the precompiled_charsmap is not a SentencePiece charsmap") from None
    strings = blob[4 + size:]
    labels = units & ((1 << 31) | 0xFF)
    has_leaf = (units >> 8) & 1
    offsets = (units >> 10) << ((units & (1 << 9)) >> 6)
    values = units & ((1 << 31) - 1)
    table = {}
    candidates = np.arange(1, 256)
    stack = [(b"", int(offsets[0]))]
    while stack:
        key, position = stack.pop()
        if len(key) >= max_key_bytes:
            continue
        children = position ^ candidates
        inside = children < len(units)
        children, bytes_ = children[inside], candidates[inside]
        match = labels[children] == bytes_
        for child, byte in zip(children[match].tolist(), bytes_[match].tolist(), strict=True):
            node = child ^ int(offsets[child])
            text = key + bytes([byte])
            if has_leaf[child] and node < len(units):
                start = int(values[node])
                end = strings.find(b"\0", start)
                # (a key or value that is not whole UTF-8 characters is never looked up)
                with contextlib.suppress(UnicodeDecodeError):
                    table[text.decode("utf-8")] = strings[start:end].decode("utf-8")
            stack.append((text, node))
    return table


# The charsmap of every tokenizer loaded from one checkpoint is the same: parsed once.
_parsed_charsmap = functools.lru_cache(maxsize=4)(charsmap_table)


def _inert_charsmap():
    """A charsmap whose one key is the byte 0xFF, which UTF-8 text never holds: no normalization.

    (SentencePiece logs a line each time it loads a model with an empty
    charsmap; this one is silent.) A darts-clone array of 256 units: the
    root's offset 1 puts the child of byte `c` at `1 ^ c`; the unit at 254 is
    the child of 0xFF, a leaf whose value unit (255) points at the empty
    string.
    """
    units = np.zeros([256], np.uint32)
    units[0] = 1 << 10
    units[254] = (1 << 10) | (1 << 8) | 0xFF
    units[255] = 1 << 31
    return struct.pack("<I", units.nbytes) + units.tobytes() + b"\0"


def _code_point_ranges(points):
    """`"41-5a 61"`-style ranges (hexadecimal) of a set of code points."""
    ranges = []
    for point in sorted(points):
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    return " ".join(f"{a:x}" if a == b else f"{a:x}-{b:x}" for a, b in ranges)


def _changing_clusters_pattern(normalization):
    """RE2 matching the grapheme clusters that normalization may change, and no others.

    A cluster of several characters (CR LF; an emoji ZWJ sequence or an Indic
    conjunct, and what extends it; prepends, a base and what extends it), or
    a single character that is in the table. The text between matches is
    single-character clusters the table lacks: left as it is, which is most
    text, and so most of the work saved. (Hangul syllable sequences and
    regional-indicator pairs are not joined: no character of theirs is in
    T5's table, and their clusters are six bytes or more, so joining them
    changes nothing.)
    """
    control, prepend, extend, only, pictographic, consonant, linker, conjunct = (
        re2_class(t) for t in (_CONTROL, _PREPEND, _GRAPHEME_EXTEND, _EXTEND_ONLY,
                                _PICTOGRAPHIC, _CONJUNCT_CONSONANT, _CONJUNCT_LINKER,
                                _CONJUNCT_EXTEND))
    base = f"[^{control}{prepend}{extend}]"
    sequence = (rf"(?:[{pictographic}](?:[{only}]*\x{{200d}}[{pictographic}])+"
                rf"|[{consonant}](?:[{conjunct}{linker}]*[{linker}][{conjunct}{linker}]*"
                rf"[{consonant}])+)")
    pattern = (rf"\r\n|[{prepend}]*{sequence}[{extend}]*|[{prepend}]*{base}[{extend}]+"
               rf"|[{prepend}]+{base}|[{prepend}]*[{extend}]+|[{prepend}]+")
    keys = _code_point_ranges(ord(k) for k in normalization if len(k) == 1)
    return pattern + (f"|[{re2_class(keys)}]" if keys else "")


@functools.cache
def _layer_class():
    """`ExactSentencePieceLayer`, defined on first use (keras-hub is imported only then)."""
    import keras_hub

    class ExactSentencePieceLayer(ExactLayerMixin, keras_hub.tokenizers.SentencePieceTokenizer):
        """keras-hub's `SentencePieceTokenizer` with the pipeline of `transformers`' T5 tokenizer.

        The SentencePiece model given here is only the unigram search: no
        normalization, no dummy prefix, every piece matchable (see
        `T5SentencePieceTokenizer.viterbi_proto`). This layer cuts out the
        added tokens, normalizes as `tokenizers`' `Precompiled` does, splits
        as `WhitespaceSplit` and `Metaspace` do, and hands each piece to
        `tensorflow_text`'s SentencePiece op.

        Args:
            proto: the serialized search model.
            normalization: `{text: normalized}` of the charsmap (`charsmap_table`).
            added: `{content: id}` of the added tokens.
            remap: `{search id: id}` for search-model ids that stand for others.
            id_to_token: `{id: token}`, what `detokenize` shows.
            eos_id: appended by `tokenize` when `add_eos`.
            unk_id: the unknown id (a run of them is fused into one).
            add_eos: append `eos_id` to every text.
            clean_up_spaces: `transformers`' `clean_up_tokenization` in `detokenize`.
        """

        def __init__(self, proto, normalization, added, remap, id_to_token, eos_id, unk_id,
                     add_eos=False, clean_up_spaces=False, **kwargs):
            super().__init__(proto=proto, dtype="int32", _allow_python_workflow=False, **kwargs)
            self._added = dict(added)
            self._eos_id = eos_id
            self._unk_id = int(unk_id)
            self._append_eos = bool(add_eos)
            self._clean_up_spaces = bool(clean_up_spaces)
            self._changing = _changing_clusters_pattern(normalization)
            self._space = f"[{re2_class(WHITE_SPACE)}]+"
            self.added_table = static_table(self._added, tf.string, tf.int32, -1)
            self.normalization_table = static_table(normalization, tf.string, tf.string,
                                                    _NOT_A_NORMALIZATION)
            size = self._vocabulary_size
            ids = np.arange(size, dtype=np.int32)
            for search_id, token_id in remap.items():
                ids[search_id] = token_id
            self.remap = tf.constant(ids)
            self.token_table = static_table(id_to_token, tf.int32, tf.string, "")

        @property
        def resources(self):
            """The TensorFlow resources the ops use (a SavedModel must track them all).

            The tables, and `tensorflow_text`'s SentencePiece tokenizer (its model).
            """
            return [self.added_table, self.normalization_table, self.token_table,
                    self._sentence_piece]

        def _normalize_clusters(self, clusters):
            """`Precompiled` on grapheme clusters `[m]`."""
            chars = tf.strings.unicode_split(clusters, "UTF-8")
            mapped = self.normalization_table.lookup(chars.flat_values)
            one_by_one = tf.strings.reduce_join(chars.with_flat_values(
                tf.where(mapped == _NOT_A_NORMALIZATION, chars.flat_values, mapped)), axis=1)
            most = _SHORT_CLUSTER - 1  # chars in a cluster shorter than six bytes
            prefixes = tf.stack([tf.strings.substr(clusters, 0, k, unit="UTF8_CHAR")
                                 for k in range(1, most + 1)], axis=1)
            found = self.normalization_table.lookup(prefixes)
            known = found != _NOT_A_NORMALIZATION
            shortest = tf.gather(found, tf.argmax(tf.cast(known, tf.int32), axis=1),
                                 batch_dims=1)
            whole = tf.logical_and(tf.strings.length(clusters) < _SHORT_CLUSTER,
                                   tf.reduce_any(known, axis=1))
            return tf.where(whole, shortest, one_by_one)

        def normalize(self, text):
            """`tokenizers`' `Precompiled` normalizer on strings `[n]`."""
            pieces = regex_pieces(text, self._changing)
            flat = pieces.flat_values
            where = tf.where(tf.strings.regex_full_match(flat, self._changing))
            flat = tf.tensor_scatter_nd_update(
                flat, where, self._normalize_clusters(tf.gather_nd(flat, where)))
            return tf.strings.reduce_join(pieces.with_flat_values(flat), axis=1)

        def pieces(self, text):
            """The pieces `[n, (pieces)]` of strings `[n]`: normalized, split, `▁` before words."""
            text = self.normalize(text)
            words = tf.strings.split(tf.strings.regex_replace(text, self._space, CUT), sep=CUT)
            words = tf.ragged.boolean_mask(words, words != "")
            flat = words.flat_values
            flat = tf.where(tf.strings.substr(flat, 0, len(META.encode())) == META, flat,
                            tf.strings.join([META, flat]))
            pieces = tf.strings.split(tf.strings.regex_replace(flat, META, CUT + META.encode()),
                                      sep=CUT)
            pieces = tf.ragged.boolean_mask(pieces, pieces != "")
            return words.with_flat_values(pieces).merge_dims(1, 2)

        def _encode_free(self, text):
            pieces = self.pieces(text)
            ids = self._sentence_piece.tokenize(pieces.flat_values)
            ids = tf.ragged.map_flat_values(lambda i: tf.gather(self.remap, i), ids)
            # `tokenizers` fuses a run of unknowns into one, the `<unk>` piece among them
            flat, rows = ids.flat_values, ids.value_rowids()
            after_unk = tf.logical_and(
                tf.concat([[False], tf.equal(flat[:-1], self._unk_id)], axis=0),
                tf.equal(rows, tf.concat([[-1], rows[:-1]], axis=0)))
            repeated = tf.logical_and(tf.equal(flat, self._unk_id), after_unk)
            ids = tf.ragged.boolean_mask(ids, ids.with_flat_values(tf.logical_not(repeated)))
            return pieces.with_flat_values(ids).merge_dims(1, 2)

        def _tokenize_valid(self, text):
            """int32 ids `[n, (ids)]` of valid UTF-8 strings `[n]`, `</s>` last with `add_eos`."""
            ids = super()._tokenize_valid(text)
            if self._append_eos:
                eos = tf.fill([ids.nrows(), 1], tf.constant(self._eos_id, tf.int32))
                ids = tf.concat([ids, tf.RaggedTensor.from_tensor(eos)], axis=1)
            return ids

        def _join_tokens(self, tokens):
            """The text of tokens `[batch, (tokens)]`: `▁` a space, but dropped in the first."""
            first = tf.ragged.range(tokens.row_lengths()) == 0
            flat = tokens.flat_values
            flat = tf.where(first.flat_values, tf.strings.regex_replace(flat, META, ""),
                            tf.strings.regex_replace(flat, META, " "))
            return tf.strings.reduce_join(tokens.with_flat_values(flat), axis=-1)

    return ExactSentencePieceLayer


# ---------------------------------------------------------------------------------------
# Reading the Hugging Face files
# ---------------------------------------------------------------------------------------


def _parse_proto(data, path):
    model = _sentencepiece_model_pb2().ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError, or a message it cannot read
        model = None
    if model is None or not model.pieces:
        raise UserInputError(f"{path} is not a SentencePiece model")
    return model


def _check_pre_tokenizer(spec):
    """Refuse a pre-tokenizer other than T5's `WhitespaceSplit` + `Metaspace` (always)."""
    parts = spec.get("pretokenizers") if isinstance(spec, dict) and \
        spec.get("type") == "Sequence" else [spec]
    kinds = [hf_files.kind_of(p) for p in parts or [None]]
    if kinds != ["WhitespaceSplit", "Metaspace"]:
        raise UserInputError(
            f"a Unigram model is not supported with the pre-tokenizer {' + '.join(map(str, kinds))} "
            "(only T5's WhitespaceSplit + Metaspace)"
        )
    metaspace = parts[1]
    scheme = metaspace.get("prepend_scheme")
    if scheme is None:
        scheme = "always" if metaspace.get("add_prefix_space", True) else "never"
    if metaspace.get("replacement", META) != META or scheme != "always" \
            or not metaspace.get("split", True):
        raise UserInputError("only a Metaspace pre-tokenizer with replacement '▁', "
                             "prepend_scheme 'always' and split is supported")


def _charsmap_of_normalizer(spec):
    """The precompiled charsmap (bytes) of a `Precompiled` normalizer spec."""
    parts = spec.get("normalizers") if isinstance(spec, dict) and \
        spec.get("type") == "Sequence" else [spec]
    parts = [p for p in parts or [] if p is not None]
    if not parts:
        return b""
    first, rest = parts[0], parts[1:]
    if hf_files.kind_of(first) != "Precompiled":
        raise UserInputError(f"the {hf_files.kind_of(first)} normalizer is not supported "
                             "(only Precompiled)")
    for part in rest:  # `Replace(" {2,}", " ")`: nothing to do before WhitespaceSplit
        pattern = part.get("pattern") if isinstance(part, dict) else None
        if not (isinstance(part, dict) and part.get("type") == "Replace" and part.get("content")
                == " " and pattern in ({"Regex": " {2,}"}, {"String": "  "})):
            raise UserInputError("only a Precompiled normalizer (and a Replace of space runs) "
                                 "is supported")
    try:
        return base64.b64decode(first.get("precompiled_charsmap") or "", validate=True)
    except (ValueError, TypeError):
        raise UserInputError("the Precompiled normalizer's charsmap is not base64") from None


# ---------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------


class T5SentencePieceTokenizer(HuggingFaceTokenizer):
    """T5's SentencePiece tokenizer with the ids of `transformers`' `T5Tokenizer`.

    Build one with `from_directory` (a folder with `spiece.model` or
    `tokenizer.json`), `from_file`, `from_model_file` or
    `load_tokenizer(folder)`. Encoding is TensorFlow ops (see the module
    docstring for the steps), the same in Python, in `tf.data`
    (`tf_tokenizer()`) and in a SavedModel. `encode(text)` adds nothing (as
    `tokenizer(text, add_special_tokens=False)`); `encode(text,
    add_eos=True)` appends `</s>`, as `tokenizer(text)` does and as T5's
    encoder inputs and decoder targets end.

    Args:
        pieces: the unigram model's `(piece, score)` pairs, by id.
        charsmap: the SentencePiece precompiled charsmap (bytes) of the
            normalizer (T5's `nmt_nfkc`).
        unk_id: the id of the unknown piece.
        extra_ids: how many sentinels `<extra_id_0>` ... follow the pieces
            (`<extra_id_{extra_ids - 1}>` first, `<extra_id_0>` last).
        added_tokens: other Hugging Face added tokens, dicts with `id`,
            `content` and `special` (their ids past the sentinels).
        eos_token, pad_token, unk_token: the special tokens of those roles.
        model_proto: the `spiece.model` bytes this came from (for `save`;
            made from the pieces when None).
        model_max_length: kept for `save`.
        clean_up_tokenization_spaces: `transformers`' cleanup of decoded text
            (`" ."` -> `"."`, ...), off unless the config turns it on.

    Attributes:
        kind: `"t5_sentencepiece"`.
        vocab_size: number of ids (pieces, sentinels and added tokens).
        ordinary_ids: `(first, last)`, the range of the pieces' ids that are
            no special token.
        eos_id, pad_id, unk_id: ids of the roles, and `eos_token`, ... their text.
        extra_ids: the number of sentinels; `sentinel_id(i)` is the id of `<extra_id_i>`.
        pieces, added_tokens: as given (the sentinels among the added tokens).

    Methods: `encode(text, add_eos=False)`, `encode_batch(texts,
    add_eos=False)`, `decode(ids)`, `special_id(name)`, `sentinel_id(i)`,
    `tf_tokenizer(add_eos=False)`, `make_layer()`, `viterbi_proto()`,
    `save(folder)`.

    Example:

    >>> tokenizer = T5SentencePieceTokenizer.from_directory("checkpoints/t5-small")
    >>> tokenizer.encode("Hello world", add_eos=True)
    array([8774,  296,    1], dtype=int32)
    >>> tokenizer.sentinel_id(0), tokenizer.vocab_size
    (32099, 32100)
    """

    kind = KIND
    roles = ROLES
    default_tokens = DEFAULT_TOKENS
    other_files = (MODEL_FILE,)

    def __init__(self, pieces, charsmap=b"", unk_id=2, extra_ids=EXTRA_IDS, added_tokens=(),
                 eos_token="</s>", pad_token="<pad>", unk_token="<unk>", model_proto=None,
                 model_max_length=None, clean_up_tokenization_spaces=False):
        super().__init__()
        self.pieces = [(str(p), float(s)) for p, s in pieces]
        if not self.pieces:
            raise UserInputError("the unigram model has no pieces")
        self._index = {}
        for i, (piece, _) in enumerate(self.pieces):
            if not piece or piece in self._index or "\x00" in piece:
                # (SentencePiece, which runs the unigram search, refuses a null character)
                raise UserInputError(f"the unigram model has an empty or repeated piece, or one "
                                     f"with a null character: {piece!r}")
            self._index[piece] = i
        if not 0 <= int(unk_id) < len(self.pieces):
            raise UserInputError(f"the unknown id {unk_id} is not a piece")
        self.charsmap = bytes(charsmap)
        self.normalization = dict(_parsed_charsmap(self.charsmap))
        self.extra_ids = int(extra_ids)
        self.model_proto = model_proto
        self.model_max_length = model_max_length
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        n = len(self.pieces)
        sentinels = [{"id": n + self.extra_ids - 1 - i, "content": f"<extra_id_{i}>",
                      "special": True, "normalized": False} for i in range(self.extra_ids)]
        self.unk_piece_id = int(unk_id)
        self.added_tokens = self._with_roles(
            sentinels + hf_files.check_added_tokens(added_tokens),
            {"eos": eos_token, "pad": pad_token, "unk": unk_token})

    def _model_ids(self):
        return range(len(self.pieces))

    def _hidden_ids(self):
        return {self.unk_piece_id}

    def _model_tokens(self):
        return {i: piece for i, (piece, _) in enumerate(self.pieces)}

    def _token_id(self, content):
        return self._index.get(content)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_model_file(cls, folder):
        """The tokenizer of T5's `spiece.model` in `folder`, set up by its `tokenizer_config.json`.

        Without a config the settings are `transformers`' defaults: 100
        sentinels, `</s>`, `<pad>`, `<unk>`.
        """
        folder = os.fspath(folder)
        path = os.path.join(folder, MODEL_FILE)
        if not os.path.isfile(path):
            raise UserInputError(f"tokenizer file not found: {path}")
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise UserInputError(f"cannot read {path}: {error}") from None
        model = _parse_proto(data, path)
        trainer, normalizer = model.trainer_spec, model.normalizer_spec
        if trainer.model_type != 1:  # UNIGRAM
            raise UserInputError(f"{path}: only a unigram SentencePiece model is supported "
                                 f"(model_type {trainer.model_type})")
        if trainer.byte_fallback:
            raise UserInputError(f"{path}: a SentencePiece model with byte_fallback is not "
                                 "supported (T5's has none)")
        if not normalizer.add_dummy_prefix:
            raise UserInputError(f"{path}: a SentencePiece model without add_dummy_prefix is "
                                 "not supported (T5's has it)")
        kinds = {p.type for p in model.pieces}
        if kinds - {NORMAL, UNKNOWN, CONTROL}:
            raise UserInputError(f"{path}: user-defined, unused or byte pieces are not supported")
        config, special_map = hf_files.read_configs(folder)
        extra = config.get("extra_ids", EXTRA_IDS)
        try:
            return cls(
                [(p.piece, p.score) for p in model.pieces], normalizer.precompiled_charsmap,
                unk_id=trainer.unk_id, extra_ids=extra,
                added_tokens=[t for t in hf_files.config_added_tokens(config)
                              if not t["content"].startswith("<extra_id_")],
                model_proto=data, model_max_length=config.get("model_max_length"),
                clean_up_tokenization_spaces=config.get("clean_up_tokenization_spaces", False),
                **cls._role_arguments(cls._roles_of(config, special_map)),
            )
        except UserInputError as error:
            raise UserInputError(f"{folder}: {error}") from None

    _from_other_files = from_model_file

    @classmethod
    def _from_spec(cls, spec, folder):
        _check_pre_tokenizer(spec.get("pre_tokenizer"))
        model = spec["model"]
        if model.get("type") != "Unigram":
            raise UserInputError(f"a {model.get('type')} model is not supported (only Unigram)")
        if model.get("byte_fallback"):
            raise UserInputError("a Unigram model with byte_fallback is not supported")
        decoder = spec.get("decoder")
        if decoder is not None and hf_files.kind_of(decoder) != "Metaspace":
            raise UserInputError(f"the {hf_files.kind_of(decoder)} decoder is not supported "
                                 "(only Metaspace)")
        charsmap = _charsmap_of_normalizer(spec.get("normalizer"))
        vocab = model.get("vocab")
        if not isinstance(vocab, list) or not all(
                isinstance(v, list | tuple) and len(v) == 2 for v in vocab):
            raise UserInputError("the Unigram model needs a vocab list of [piece, score] pairs")
        added = hf_files.check_added_tokens(spec.get("added_tokens"))
        config, special_map = hf_files.read_configs(folder)
        # The sentinels are the last pieces of the vocab (and added tokens): take them apart.
        extra = 0
        while extra < len(vocab) and vocab[len(vocab) - 1 - extra][0] == f"<extra_id_{extra}>":
            extra += 1
        pieces = [tuple(v) for v in vocab[:len(vocab) - extra]]
        others = [t for t in added if not t["content"].startswith("<extra_id_")]
        unk_id = model.get("unk_id")
        return cls(pieces, charsmap, unk_id=2 if unk_id is None else unk_id, extra_ids=extra,
                   added_tokens=others, model_max_length=config.get("model_max_length"),
                   clean_up_tokenization_spaces=config.get("clean_up_tokenization_spaces", False),
                   **cls._role_arguments(cls._roles_of(config, special_map)))

    # -- the tokenizer interface ---------------------------------------------------------

    def sentinel_id(self, index):
        """The id of `<extra_id_{index}>` (the sentinels count down from the last id)."""
        if not 0 <= index < self.extra_ids:
            raise UserInputError(f"no sentinel <extra_id_{index}>: there are {self.extra_ids}")
        return len(self.pieces) + self.extra_ids - 1 - index

    def viterbi_proto(self):
        """The serialized SentencePiece model the unigram search runs on.

        The pieces and scores of `tokenizers`' `Unigram` model (the model's,
        then the sentinels with score 0), all matchable; no normalization,
        no dummy prefix, no white-space handling (the pieces come split).
        SentencePiece needs its unknown piece to be unmatchable, so that id
        holds a renamed copy and the real `<unk>` text is one more piece at
        the end, mapped back to `unk_id` after the search.
        """
        pb = _sentencepiece_model_pb2()
        model = pb.ModelProto()
        model.trainer_spec.model_type = 1
        model.trainer_spec.unk_id = self.unk_piece_id
        model.trainer_spec.bos_id = model.trainer_spec.eos_id = model.trainer_spec.pad_id = -1
        model.trainer_spec.byte_fallback = False
        model.normalizer_spec.name = "identity"
        model.normalizer_spec.precompiled_charsmap = _inert_charsmap()
        model.normalizer_spec.add_dummy_prefix = False
        model.normalizer_spec.remove_extra_whitespaces = False
        model.normalizer_spec.escape_whitespaces = False
        entries = list(self.pieces) + [(f"<extra_id_{self.extra_ids - 1 - i}>", 0.0)
                                       for i in range(self.extra_ids)]
        taken = {piece for piece, _ in entries}
        unk_piece, unk_score = entries[self.unk_piece_id]
        stand_in = unk_piece + META
        while stand_in in taken:
            stand_in += META
        for i, (piece, score) in enumerate(entries):
            entry = model.pieces.add()
            entry.piece, entry.score = (stand_in, 0.0) if i == self.unk_piece_id else (piece, score)
            entry.type = UNKNOWN if i == self.unk_piece_id else NORMAL
        extra = model.pieces.add()
        extra.piece, extra.score, extra.type = unk_piece, unk_score, NORMAL
        return model.SerializeToString(), {len(entries): self.unk_piece_id}

    def make_layer(self, add_eos=False):
        """A new keras-hub `SentencePieceTokenizer` layer of this tokenizer (exact pipeline)."""
        proto, remap = self.viterbi_proto()
        added = {t["content"]: t["id"] for t in self.added_tokens}
        return _layer_class()(proto, self.normalization, added, remap, self._id_to_token(),
                              self.eos_id, self.unk_piece_id, add_eos=add_eos,
                              clean_up_spaces=self.clean_up_tokenization_spaces)

    def tf_tokenizer(self, add_eos=False):
        """The keras-hub layer that tokenizes inside `tf.data`: `tokenize(strings) -> int32 ids`.

        A string gives `[None]` ids, a batch `[batch]` a ragged `[batch, None]`;
        `detokenize(ids)` gives `decode`'s text. Keep this tokenizer alive
        while a dataset uses the layer (its tables are the layer's).

        Args:
            add_eos: append `eos_id` to every text (T5's inputs and targets).

        Example:

        >>> layer = tokenizer.tf_tokenizer(add_eos=True)
        >>> tf.data.Dataset.from_tensor_slices(["Hello", "World"]).map(layer.tokenize)
        """
        add_eos = bool(add_eos)
        if add_eos and self.eos_id is None:
            raise UserInputError("this tokenizer has no </s> token to append")
        return self._cached_layer(add_eos=add_eos)

    def encode_batch(self, texts, add_eos=False):
        """Ids of each of `texts` (a list of strings), as int32 numpy arrays.

        Args:
            texts: the strings.
            add_eos: append `</s>` to each (as `tokenizer(texts)` does); the
                ids are those of `tf_tokenizer(add_eos=True)`, appended here
                to the ids of the one compiled function.
        """
        if add_eos and self.eos_id is None:
            raise UserInputError("this tokenizer has no </s> token to append")
        rows = self._encode_batch(texts)
        if add_eos:
            rows = [np.append(row, np.int32(self.eos_id)) for row in rows]
        return rows

    def encode(self, text, add_eos=False):
        """Ids of `text` as an int32 numpy array; `add_eos` appends `</s>` (as `tokenizer(text)`)."""
        return self.encode_batch([text], add_eos)[0]

    def decode(self, ids, skip_special_tokens=False):
        """Text of `ids`, as `transformers`' `decode` (ids outside the vocabulary give nothing).

        `▁` is a space, except in the first token, where it is dropped.

        Args:
            ids: integer ids.
            skip_special_tokens: leave out the special tokens (`</s>`,
                `<pad>`, `<unk>`, the sentinels).
        """
        kept = self._kept_tokens(ids, skip_special_tokens)
        return self._clean_up("".join(t.replace(META, "" if i == 0 else " ")
                                      for i, t in enumerate(kept)))

    def _model_proto_bytes(self):
        """`spiece.model`: the one read, or one made from the pieces (T5's settings)."""
        if self.model_proto is not None:
            return self.model_proto
        pb = _sentencepiece_model_pb2()
        model = pb.ModelProto()
        special = {t["content"] for t in self.added_tokens if t["special"]}
        for i, (piece, score) in enumerate(self.pieces):
            entry = model.pieces.add()
            entry.piece, entry.score = piece, score
            entry.type = UNKNOWN if i == self.unk_piece_id else \
                CONTROL if piece in special else NORMAL
        trainer = model.trainer_spec
        trainer.model_type, trainer.unk_id, trainer.bos_id = 1, self.unk_piece_id, -1
        trainer.eos_id = self.eos_id if self.eos_id is not None and \
            self.eos_id < len(self.pieces) else -1
        trainer.pad_id = self.pad_id if self.pad_id is not None and \
            self.pad_id < len(self.pieces) else -1
        trainer.byte_fallback = False
        normalizer = model.normalizer_spec
        normalizer.name = "nmt_nfkc" if self.charsmap else "identity"
        normalizer.precompiled_charsmap = self.charsmap
        normalizer.add_dummy_prefix = normalizer.remove_extra_whitespaces = True
        normalizer.escape_whitespaces = True
        return model.SerializeToString()

    def save(self, folder):
        """Write `spiece.model` and `tokenizer_config.json` into `folder` (made if missing).

        `load_tokenizer(folder)`, `from_directory` and `transformers`'
        `AutoTokenizer.from_pretrained(folder)` read them back.
        """
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, MODEL_FILE), "wb") as handle:
            handle.write(self._model_proto_bytes())
        self._write_config(folder, {"tokenizer_class": "T5Tokenizer", "extra_ids": self.extra_ids,
                                    "clean_up_tokenization_spaces":
                                        self.clean_up_tokenization_spaces})


class T5SentencePieceGraphTokenizer(HuggingFaceGraphTokenizer):
    """A `T5SentencePieceTokenizer` as graph ops that a SavedModel can hold.

    The module owns a fresh keras-hub layer and tracks its lookup tables and
    `tensorflow_text`'s SentencePiece model, so `tf.saved_model.save` works.
    The reloaded model needs `tensorflow` and `tensorflow_text` (`import
    tensorflow_text` registers its ops).

    Args:
        tokenizer: a `T5SentencePieceTokenizer`.
        vocab_size: ids the model can produce (unused).
        add_eos: append `</s>` to every encoded text.

    Example:

    >>> module = T5SentencePieceGraphTokenizer(tokenizer, add_eos=True)
    >>> module.encode(tf.constant(["Hello world"]))
    <tf.RaggedTensor [[8774, 296, 1]]>
    """

    def __init__(self, tokenizer, vocab_size=None, add_eos=False, name=None):
        super().__init__(tokenizer, vocab_size, name, add_eos=add_eos)
