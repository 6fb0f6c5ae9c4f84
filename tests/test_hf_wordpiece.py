"""BERT's WordPiece tokenizers: the ids of `transformers`, in Python, tf.data and SavedModels.

Reference vocabularies are trained offline with `tokenizers`' WordPiece
trainer on Tiny Shakespeare and WikiText-2 (the shared copies, or a
generated play without them), plus a few tokens that only normalization
reaches (accented letters, CJK ideographs, Greek sigmas), and written as
Hugging Face folders of five styles:

- `uncased`: `vocab.txt` and a `tokenizer_config.json` with
  `do_lower_case` (so accents are stripped too), as bert-base-uncased;
- `cased`: `do_lower_case` false (no accent stripping), as bert-base-cased,
  and `clean_up_tokenization_spaces` (`decode` cleans `" ."` up);
- `cased_strip`: no lower-casing, but `strip_accents` true;
- `uncased_accents`: lower-casing with `strip_accents` false;
- `uncased_json`: the uncased tokenizer as `transformers` saves it
  (`tokenizer.json`).

The reference is `transformers`' `AutoTokenizer` of each folder (a
`BertTokenizer`). Two vocabularies are trained (lower-cased and not), each
shared by two styles.
"""

import functools
import json
import os
import shutil

import hf_tokenizer_checks as checks
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_text
from hf_tokenizer_checks import SHAKESPEARE, WIKITEXT
from hypothesis import given
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")
tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

from keras_transformer.data import WordPieceTokenizer, graph_tokenizer, load_tokenizer  # noqa: E402
from keras_transformer.data.hf_wordpiece import WordPieceGraphTokenizer, longest_first  # noqa: E402
from keras_transformer.errors import UserInputError  # noqa: E402

VOCAB_SIZE = 1500
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Tokens that only normalization reaches, so that its mistakes change ids (not just [UNK]s).
EXTRA = ["日", "本", "語", "中", "文", "é", "ß", "σ", "ς", "α", "naïve", "café", "i", "##\u0307",
         "##é", "##ß", "##σ", "##ς", "##e", "##i", "ǆ", "\u1c8a", "\U000105c9", "ⱟ", "①", "ﬁ"]
STYLES = {
    "uncased": {"do_lower_case": True},
    "cased": {"do_lower_case": False, "clean_up_tokenization_spaces": True},
    "cased_strip": {"do_lower_case": False, "strip_accents": True},
    "uncased_accents": {"do_lower_case": True, "strip_accents": False},
}


def _write_vocab(folder, lowercase, lines):
    trainer = tokenizers.BertWordPieceTokenizer(lowercase=lowercase, strip_accents=None)
    trainer.train_from_iterator(lines, vocab_size=VOCAB_SIZE, min_frequency=2,
                                show_progress=False, special_tokens=SPECIALS)
    trainer.save_model(folder)
    path = os.path.join(folder, "vocab.txt")
    with open(path, encoding="utf-8") as handle:
        vocab = handle.read().split("\n")[:-1]
    vocab += [token for token in EXTRA if token not in vocab]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{token}\n" for token in vocab))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """`{style: folder}` of the reference tokenizers."""
    texts = checks.training_lines()
    root = tmp_path_factory.mktemp("hf_wordpiece")
    paths, vocabularies = {}, {}
    for style, config in STYLES.items():
        folder = str(root / style)
        os.makedirs(folder)
        lowercase = config["do_lower_case"]
        if lowercase not in vocabularies:
            _write_vocab(folder, lowercase, texts)
            vocabularies[lowercase] = os.path.join(folder, "vocab.txt")
        else:
            shutil.copy(vocabularies[lowercase], folder)
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as handle:
            json.dump({"tokenizer_class": "BertTokenizer", **config}, handle)
        paths[style] = folder
    paths["uncased_json"] = str(root / "uncased_json")
    transformers.AutoTokenizer.from_pretrained(paths["uncased"]).save_pretrained(
        paths["uncased_json"])
    assert os.path.isfile(os.path.join(paths["uncased_json"], "tokenizer.json"))
    return paths


@pytest.fixture(scope="module")
def references(folders):
    """`{style: transformers' BertTokenizer}`."""
    return checks.all_of_class({style: transformers.AutoTokenizer.from_pretrained(folder)
                                for style, folder in folders.items()}, "BertTokenizer")


@pytest.fixture(scope="module")
def ours(folders):
    """`{style: WordPieceTokenizer}`, loaded with `load_tokenizer(folder)`."""
    return checks.load_each(folders, folders)


# -------------------------------------------------------------------------------------
# The ids of transformers' BertTokenizer
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", [*STYLES, "uncased_json"])
def test_tiny_shakespeare_lines_equal_hugging_face(ours, references, style):
    """300 held-out lines and 25 passages of 12 lines."""
    checks.assert_encodes_like(ours[style], references[style], checks.line_texts(SHAKESPEARE, 20000))


@pytest.mark.parametrize("style", [*STYLES, "uncased_json"])
def test_wikitext_lines_equal_hugging_face(ours, references, style):
    checks.assert_encodes_like(ours[style], references[style], checks.line_texts(WIKITEXT, 2000))


# Characters where BertNormalizer and BertPreTokenizer decide something: white space of
# every kind (and the controls that are white space, which clean_text removes), format
# characters, NUL and U+FFFD, CJK ideographs, ASCII and Unicode punctuation (U+166D is
# punctuation to `tokenizers`, U+2E43 is not: its tables are old), combining marks,
# letters whose case or decomposition needs Unicode 16 (U+1C89, U+2C2F, U+105C9), the
# capital I with a dot, capital sigma (no final sigma), and letters NFD decomposes.
TRICKY = list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u2028\u202f\u3000\u200b\u200d\ufeff"
              "\xad\x00\ufffd\x7f日本語中\u3400\U00020000\uf900.,!?-'\"#$[]^`~¡§«\u166d\u2e43"
              "\u0301\u0300\u0308\u0327\u0323\u093f\u0e31aeiAEsσΣςİIßẞǄǅéÉÅﬁ①Ⅻ\u1c89\u2c2f"
              "\U000105c9\U00011383\U0001f642")
UNICODE_TEXT = checks.unicode_text(
    TRICKY, [*SPECIALS, "[cls]", "[SEP", "naïve", "NAÏVE", "CAFÉ", "ΣΑΣ", "İi", "日本語", " \t ",
             "don't", "##ing"],
    # words around the limit of 100 characters (not bytes: é is two bytes)
    st.builds(lambda n, c: c * n, st.integers(98, 102), st.sampled_from("aé日ﬁ")),
)


@checks.SAME_IDS_SETTINGS
@given(UNICODE_TEXT)
def test_generated_unicode_strings_equal_hugging_face(ours, references, text):
    """Uncased and cased (the other two styles: on the lines, and on every code point)."""
    for style in ("uncased", "cased"):
        got = ours[style].encode(text).tolist()
        assert got == references[style](text, add_special_tokens=False)["input_ids"], style
    checks.assert_same_pre_tokens(ours["uncased"].tf_tokenizer().words, references["uncased"],
                                  text)


def _code_point_probes(template, chunk=2048):
    """Each code point c of `code_points()`, in strings of `chunk` copies of `template`."""
    points = checks.code_points()
    return ["".join(template.format(c) for c in points[i:i + chunk])
            for i in range(0, len(points), chunk)]


def test_every_code_point_normalizes_and_splits_as_hugging_face(ours, references):
    """The Unicode tables (`tokenizers`' own, of several ages) against every code point.

    (Planes 4-13, where no character is assigned, are sampled: no table reaches them.)
    """
    from keras_transformer.data import hf_wordpiece as module

    checks.assert_outside_unassigned(*(getattr(module, name) for name in (
        "_CLEAN_REMOVED", "_CLEAN_SPACES", "_CHINESE", "_PUNCTUATION", "_NONSPACING_MARKS",
        "_NFD_KEPT")))
    assert all(c not in checks.UNASSIGNED for c in module._lowercase_pairs()[0])
    probes = _code_point_probes("a{0}b{0} ")
    inputs = tf.constant([p.encode("utf-8") for p in probes])
    for style in STYLES:
        layer, backend = ours[style].tf_tokenizer(), references[style].backend_tokenizer
        got = [t.decode("utf-8") for t in tf.function(layer.normalize)(inputs).numpy()]
        wrong = [i for i, (g, p) in enumerate(zip(got, probes, strict=True))
                 if g != backend.normalizer.normalize_str(p)]
        assert not wrong, f"{style}: code points from U+{ord(probes[wrong[0]][1]):04X} differ"
    # Splitting: "a{c}" runs stay one word unless c is white space or punctuation.
    probes = _code_point_probes("a{0}", chunk=512)
    split = checks.graph_function(ours["cased"].tf_tokenizer().words)
    words = split(tf.constant([p.encode("utf-8") for p in probes])).to_list()
    for probe, row in zip(probes, words, strict=True):
        assert [w.decode("utf-8") for w in row] == checks.pre_tokens(references["cased"], probe), \
            f"from U+{ord(probe[1]):04X}"


def test_decode_equals_hugging_face_on_any_ids(ours, references):
    """Uncased, and cased with `clean_up_tokenization_spaces`; in Python and in the graph."""
    for style in ("uncased", "cased"):
        checks.assert_decodes_like(ours[style], references[style])


def test_special_tokens_and_attributes(ours, references):
    for style in ("uncased", "cased", "uncased_json"):
        tokenizer, reference = ours[style], references[style]
        assert tokenizer.kind == "wordpiece"
        assert tokenizer.vocab_size == len(reference) == len(tokenizer.vocabulary)
        for role in ("cls", "sep", "pad", "mask", "unk"):
            assert getattr(tokenizer, f"{role}_id") == getattr(reference, f"{role}_token_id")
        assert tokenizer.specials == SPECIALS and tokenizer.special_id("[MASK]") == 4
        assert tokenizer.ordinary_ids == (5, tokenizer.vocab_size - 1)
        assert tokenizer.encode("a [MASK] b")[1] == tokenizer.mask_id
    assert ours["uncased"].lowercase and ours["uncased"].strip_accents
    assert not ours["cased"].lowercase and not ours["cased"].strip_accents
    assert ours["cased_strip"].strip_accents and not ours["uncased_accents"].strip_accents
    uncased, cased = ours["uncased"], ours["cased"]
    assert uncased.encode("日本").tolist() == [uncased.vocabulary.index(c) for c in "日本"]
    assert cased.encode("naïve").tolist() == [cased.vocabulary.index("naïve")]
    # uncased strips the accent: both are "naive", not the "naïve" of the vocabulary
    assert uncased.encode("NAÏVE").tolist() == uncased.encode("naive").tolist() != \
        [uncased.vocabulary.index("naïve")]
    with pytest.raises(UserInputError, match="no special token"):
        ours["cased"].special_id("<s>")


# -------------------------------------------------------------------------------------
# [CLS] a [SEP] b [SEP]: packing, truncation, padding
# -------------------------------------------------------------------------------------


def test_longest_first_equals_hugging_face_truncation(references):
    reference = references["uncased"]
    for len_a in range(7):
        for len_b in range(7):
            for max_len in range(3, 13):
                out = reference([" ".join(["a"] * len_a)], [" ".join(["b"] * len_b)],
                                truncation=True, max_length=max_len)["token_type_ids"][0]
                kept = (out.count(0) - 2, out.count(1) - 1)
                assert longest_first(len_a, len_b, max_len - 3) == kept, (len_a, len_b, max_len)


def _pairs():
    found = (checks.lines(SHAKESPEARE) or make_text().splitlines(keepends=True))[:400]
    pairs = [(found[i], found[i + 1]) for i in range(0, 120, 2)]
    pairs += [(found[i] + found[i + 1], found[i + 2]) for i in range(120, 200, 3)]
    pairs += [("[CLS] Naïve [SEP] text", "second [MASK] one"), ("", ""), ("one", ""),
              ("", "two words"), ("日本語 " * 30, "short")]
    return pairs


@pytest.mark.parametrize("max_len", [8, 17, 64])
def test_pairs_equal_hugging_face(ours, references, max_len):
    """`encode_pair` and `tf_encode_pair`: `tokenizer(a, b, truncation, padding)`'s arrays.

    (The graph ops on the cased tokenizer: their tokenization is the
    layer's, checked for every style on its own.)
    """
    pairs = _pairs()
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    for style in ("uncased", "cased"):
        tokenizer, reference = ours[style], references[style]
        for texts_b in (seconds, None):
            want = reference(firsts, texts_b, truncation=True, max_length=max_len,
                             padding="max_length")
            want = [want["input_ids"], want["token_type_ids"],
                    [[bool(m) for m in row] for row in want["attention_mask"]]]
            for i, text_a in enumerate(firsts):
                arrays = tokenizer.encode_pair(text_a, None if texts_b is None else texts_b[i],
                                               max_len=max_len)
                assert [a.tolist() for a in arrays] == [w[i] for w in want], (style, text_a)
            if style == "cased":
                graph = tokenizer.tf_encode_pair(tf.constant(firsts), None if texts_b is None
                                                 else tf.constant(texts_b), max_len=max_len)
                assert [t.numpy().tolist() for t in graph] == want


def test_pairs_without_max_len_keep_every_token(ours, references):
    tokenizer, reference = ours["uncased"], references["uncased"]
    text_a, text_b = "word " * 300, "other words"
    ids, segments, mask = tokenizer.encode_pair(text_a, text_b)
    want = reference([text_a], [text_b])
    assert ids.tolist() == want["input_ids"][0] and len(ids) > 300
    assert segments.tolist() == want["token_type_ids"][0] and mask.all()
    with pytest.raises(UserInputError, match="max_len 2 leaves no room"):
        tokenizer.encode_pair("a", "b", max_len=2)


# -------------------------------------------------------------------------------------
# Inside tf.data and a SavedModel
# -------------------------------------------------------------------------------------

SAMPLES = ["ROMEO:\nIs the day so young?\n", " = Valkyria Chronicles III = \n", "", "   ",
           "Naïve CAFÉ ΣΑΣ İstanbul\u00a0日本語", "[CLS] x [SEP]\x00\ufeffy", "a" * 101, "é" * 99]


def test_same_ids_inside_tf_data(ours, references):
    """One text an element (uncased), and batches of packed pairs (cased)."""
    assert checks.tf_data_rows(ours["uncased"].tf_tokenizer(), SAMPLES) == \
        references["uncased"](SAMPLES, add_special_tokens=False)["input_ids"]
    tokenizer, reference = ours["cased"], references["cased"]
    pairs = tf.data.Dataset.from_tensor_slices((SAMPLES, SAMPLES[::-1])).batch(4).map(
        lambda a, b: tokenizer.tf_encode_pair(a, b, max_len=24))
    want = reference(SAMPLES, SAMPLES[::-1], truncation=True, max_length=24, padding="max_length")
    ids, segments = [], []
    for batch_ids, batch_segments, _ in pairs:
        ids += batch_ids.numpy().tolist()
        segments += batch_segments.numpy().tolist()
    assert ids == want["input_ids"] and segments == want["token_type_ids"]


def test_same_ids_inside_a_saved_model(ours, references, tmp_path):
    """`graph_tokenizer` (what the SavedModel export uses) of a cased tokenizer with clean-up."""
    tokenizer, reference = ours["cased"], references["cased"]
    module = graph_tokenizer(tokenizer)
    assert isinstance(module, WordPieceGraphTokenizer)
    rows, loaded = checks.saved_model_rows(module, str(tmp_path / "wordpiece"), SAMPLES)
    assert rows == reference(SAMPLES, add_special_tokens=False)["input_ids"]
    ids = reference(SAMPLES[:2], add_special_tokens=False)["input_ids"]
    ids = [row + [10**6] * (max(map(len, ids)) - len(row)) for row in ids]  # no token: nothing
    decoded = [t.decode("utf-8") for t in loaded.decode_fn(tf.constant(ids, tf.int32)).numpy()]
    assert decoded == [reference.decode([i for i in row if i < 10**6]) for row in ids]


# -------------------------------------------------------------------------------------
# Saving, loading, and one-line errors
# -------------------------------------------------------------------------------------


SAVED_ATTRIBUTES = ("vocabulary", "lowercase", "strip_accents", "tokenize_chinese_chars",
                    "added_tokens", "cls_id", "sep_id", "pad_id", "mask_id", "unk_id",
                    "clean_up_tokenization_spaces")


def test_save_writes_files_transformers_reads(ours, references, tmp_path):
    """`save`: `transformers` reads the files with the same ids; so does `load_tokenizer`."""
    texts = [*SAMPLES, *_pairs()[0]]
    for style in ("cased_strip", "cased", "uncased_json"):
        folder = str(tmp_path / style)
        again = checks.saved_and_loaded(ours[style], folder,
                                        ["tokenizer_config.json", "vocab.txt"], SAVED_ATTRIBUTES)
        saved = transformers.AutoTokenizer.from_pretrained(folder)
        assert saved(texts)["input_ids"] == references[style](texts)["input_ids"]
    checks.assert_encodes_like(again, references["uncased_json"], texts)  # (equal attributes)


def test_repeated_tokens_and_empty_lines_read_as_transformers_reads_them(folders, tmp_path):
    """A token listed twice has its last id; an empty line is a token no word matches."""
    with open(os.path.join(folders["uncased"], "vocab.txt"), encoding="utf-8") as handle:
        vocab = handle.read().split("\n")[:-1]
    vocab[40:40] = ["the", "", "##s", "and"]  # each of them is also further on
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n\n", encoding="utf-8")
    reference = transformers.BertTokenizer.from_pretrained(str(tmp_path))
    tokenizer = load_tokenizer(str(tmp_path))
    texts = [*checks.held_out(SHAKESPEARE, 20000, 40), "the things and THE sands"]
    checks.assert_encodes_like(tokenizer, reference, texts)
    assert 40 not in tokenizer.encode("the")
    rng = np.random.default_rng(1)
    for ids in [[40, 41, 42, 43, 44], *rng.integers(0, len(vocab) + 2, size=(100, 6)).tolist()]:
        assert tokenizer.decode(ids) == reference.decode(ids)


def test_load_tokenizer_finds_each_file(folders, tmp_path):
    """A BERT folder (vocab.txt, or tokenizer.json), either file, and tokenizer.json alone."""
    folder = folders["uncased_json"]
    for path in (folder, os.path.join(folder, "tokenizer.json"), folders["cased"],
                 os.path.join(folders["cased"], "vocab.txt")):
        assert isinstance(load_tokenizer(path), WordPieceTokenizer)
    assert load_tokenizer(os.path.join(folders["cased"], "vocab.txt")).lowercase is False
    shutil.copy(os.path.join(folder, "tokenizer.json"), tmp_path)
    alone = load_tokenizer(str(tmp_path))
    assert alone.lowercase and alone.vocabulary == load_tokenizer(folder).vocabulary
    assert (alone.cls_id, alone.sep_id, alone.mask_id) == (2, 3, 4)


def test_load_tokenizer_of_a_bert_checkpoint_folder(ours, references, tmp_path):
    """A checkpoint folder as `transformers` writes it: the model's config.json, the tokenizer."""
    reference = references["cased"]
    checkpoint = str(tmp_path / "bert")
    transformers.BertConfig(vocab_size=len(reference), hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64).save_pretrained(checkpoint)
    reference.save_pretrained(checkpoint)
    tokenizer = load_tokenizer(checkpoint)
    assert isinstance(tokenizer, WordPieceTokenizer) and not tokenizer.lowercase
    assert tokenizer.vocab_size == len(reference) and tokenizer.clean_up_tokenization_spaces
    for name in (*SAVED_ATTRIBUTES, "prefix", "max_input_chars_per_word", "cleanup"):
        assert getattr(tokenizer, name) == getattr(ours["cased"], name), name  # so the same ids


def _json_spec(folders, change):
    return checks.changed_json(os.path.join(folders["uncased_json"], "tokenizer.json"), change)


BROKEN = {
    **checks.BROKEN_FOLDERS,
    "empty vocab.txt": (lambda f: {"vocab.txt": ""}, "vocab.txt is empty"),
    "no [UNK] in vocab.txt": (lambda f: {"vocab.txt": "[CLS]\n[SEP]\na\n"},
                              "unknown token '\\[UNK\\]' is not in the vocabulary"),
    "no decoder": (lambda f: _json_spec(f, lambda s: s.update(decoder=None)),
                   "the None decoder is not supported"),
    "corrupt tokenizer_config.json": (lambda f: {"vocab.txt": "[UNK]\n",
                                                 "tokenizer_config.json": "{oops"},
                                      "tokenizer_config.json is not valid JSON"),
    "Whitespace pre-tokenizer": (
        lambda f: _json_spec(f, lambda s: s.update(pre_tokenizer={"type": "Whitespace"})),
        "WordPiece model is not supported with the Whitespace pre-tokenizer"),
    "NFC normalizer": (lambda f: _json_spec(f, lambda s: s.update(normalizer={"type": "NFC"})),
                       "NFC normalizer is not supported"),
    "no clean_text": (lambda f: _json_spec(f, lambda s: s["normalizer"].update(clean_text=False)),
                      "without clean_text is not supported"),
    "lstrip added token": (
        lambda f: _json_spec(f, lambda s: s["added_tokens"][4].update(lstrip=True)), "lstrip"),
    "ByteLevel decoder": (
        lambda f: _json_spec(f, lambda s: s.update(decoder={"type": "ByteLevel"})),
        "ByteLevel decoder is not supported"),
    "holes in the vocab ids": (
        lambda f: _json_spec(f, lambda s: s["model"]["vocab"].update({"zzz": 10**6})),
        "ids must be 0 .. n-1"),
}


test_bad_folders_fail_with_one_line = checks.bad_folders_test(BROKEN)


def test_missing_files_fail_with_one_line(tmp_path):
    for load in (WordPieceTokenizer.from_directory, WordPieceTokenizer.from_vocab_txt,
                 WordPieceTokenizer.from_file):
        checks.assert_one_line_error(functools.partial(load, str(tmp_path / "nothing")),
                                     "not found")
