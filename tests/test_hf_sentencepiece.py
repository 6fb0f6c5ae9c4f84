"""T5's SentencePiece tokenizer: `transformers`' T5Tokenizer ids, in Python, tf.data, SavedModels.

The reference model is a SentencePiece unigram model trained offline on Tiny
Shakespeare and WikiText-2 (the shared copies, or a generated play without
them) with T5's settings: `<pad>` 0, `</s>` 1, `<unk>` 2, no `<s>`, no byte
fallback, the `nmt_nfkc` normalization. It is written as Hugging Face
folders of three styles:

- `spiece`: `spiece.model` alone (`transformers`' defaults: 100 sentinels);
- `extra10`: `spiece.model` and a `tokenizer_config.json` with `extra_ids` 10
  and `clean_up_tokenization_spaces` (`decode` cleans `" ."` up);
- `json`: a folder holding only the `tokenizer.json` that `transformers`
  saves for the tokenizer (`json_saved`: what transformers 5 writes, a
  `tokenizer.json` and a `tokenizer_config.json`, no `spiece.model`), whose
  `Unigram` model this package reads.

The reference is `transformers`' `AutoTokenizer` of each folder (a
`T5Tokenizer`; for `json`, of `json_saved`).
"""

import functools
import io
import json
import os
import shutil

import hf_tokenizer_checks as checks
import numpy as np
import pytest
import tensorflow as tf
from hf_tokenizer_checks import SHAKESPEARE, WIKITEXT
from hypothesis import given

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sentencepiece = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")

from keras_transformer.data import (  # noqa: E402
    T5SentencePieceTokenizer,
    graph_tokenizer,
    load_tokenizer,
)
from keras_transformer.data.hf_sentencepiece import (  # noqa: E402
    T5SentencePieceGraphTokenizer,
    charsmap_table,
)
from keras_transformer.errors import UserInputError  # noqa: E402

VOCAB_SIZE = 1000
STYLES = ["spiece", "extra10", "json"]
# A few lines with letters the plays lack, so that they have pieces.
EXTRA_LINES = ["café naïve façade Ärger über 日本語 中文 ﬁne ＡＢＣ ① Ⅻ"] * 20


def _train_t5_model(lines, **overrides):
    """A unigram SentencePiece model with T5's ids and settings (bytes)."""
    model = io.BytesIO()
    options = dict(model_type="unigram", vocab_size=VOCAB_SIZE, pad_id=0, eos_id=1, unk_id=2,
                   bos_id=-1, byte_fallback=False, minloglevel=2)
    options.update(overrides)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in lines if line.strip()]), model_writer=model,
        **options)
    return model.getvalue()


@pytest.fixture(scope="module")
def t5_lines():
    return checks.training_lines(EXTRA_LINES)


@pytest.fixture(scope="module")
def spiece_folders(tmp_path_factory, t5_lines):
    """`{style: folder}` of the `spiece.model` styles."""
    root = tmp_path_factory.mktemp("hf_sentencepiece")
    proto = _train_t5_model(t5_lines)
    paths = {style: str(root / style) for style in ("spiece", "extra10")}
    for path in paths.values():
        os.makedirs(path)
        with open(os.path.join(path, "spiece.model"), "wb") as handle:
            handle.write(proto)
    with open(os.path.join(paths["extra10"], "tokenizer_config.json"), "w") as handle:
        json.dump({"tokenizer_class": "T5Tokenizer", "extra_ids": 10,
                   "clean_up_tokenization_spaces": True}, handle)
    return paths


@pytest.fixture(scope="module")
def spiece_reference(spiece_folders):
    """`transformers`' `T5Tokenizer` of the bare `spiece.model`.

    (`AutoTokenizer` needs a config to know a bare `spiece.model` is T5's.)
    """
    return transformers.T5Tokenizer.from_pretrained(spiece_folders["spiece"])


@pytest.fixture(scope="module")
def folders(spiece_folders, spiece_reference):
    """`{style: folder}` of the reference tokenizers, and `json_saved`."""
    root = os.path.dirname(spiece_folders["spiece"])
    paths = {**spiece_folders, "json": os.path.join(root, "json"),
             "json_saved": os.path.join(root, "json_saved")}
    spiece_reference.save_pretrained(paths["json_saved"])
    os.makedirs(paths["json"])
    shutil.copy(os.path.join(paths["json_saved"], "tokenizer.json"), paths["json"])
    return paths


@pytest.fixture(scope="module")
def references(folders, spiece_reference):
    """`{style: transformers' T5Tokenizer}` (`AutoTokenizer` of the folders with a config)."""
    return checks.all_of_class(
        {"spiece": spiece_reference,
         **{style: transformers.AutoTokenizer.from_pretrained(folders[folder])
            for style, folder in (("extra10", "extra10"), ("json", "json_saved"))}},
        "T5Tokenizer")


@pytest.fixture(scope="module")
def ours(folders):
    """`{style: T5SentencePieceTokenizer}`, loaded with `load_tokenizer(folder)`."""
    return checks.load_each(folders, STYLES)


# -------------------------------------------------------------------------------------
# The ids of transformers' T5Tokenizer
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_tiny_shakespeare_lines_equal_hugging_face(ours, references, style):
    """300 held-out lines and 25 passages of 12 lines (with `</s>` too)."""
    texts = checks.line_texts(SHAKESPEARE, 20000)
    checks.assert_encodes_like(ours[style], references[style], texts)
    checks.assert_encodes_like(ours[style], references[style], texts[:50], add_eos=True)


@pytest.mark.parametrize("style", STYLES)
def test_wikitext_lines_equal_hugging_face(ours, references, style):
    """WikiText writes `<unk>` in its text: the id of `<unk>`, as in `transformers`."""
    texts = checks.line_texts(WIKITEXT, 2000)
    assert any("<unk>" in text for text in texts)
    checks.assert_encodes_like(ours[style], references[style], texts)
    checks.assert_encodes_like(ours[style], references[style], texts[:50], add_eos=True)


def test_whole_tiny_shakespeare_in_one_string_equals_hugging_face(ours, references):
    text = "".join(checks.held_out(SHAKESPEARE, 0, 10**6))  # 1.1 MB
    assert ours["spiece"].encode(text).tolist() == \
        references["spiece"](text, add_special_tokens=False)["input_ids"]


# Characters where T5's pipeline in `tokenizers` decides something: white space of every
# kind (U+0085 is white space the table keeps), `▁` itself, CR LF, controls; letters the
# table normalizes (full-width, ligatures, circled digits, ª) followed by combining marks,
# which a cluster shorter than six bytes drops; decomposed Vietnamese and Hangul (composed by
# SentencePiece, not here); prepended concatenation marks (U+0600), spacing marks (Thai ำ),
# ZWJ, variation selectors, emoji modifiers; emoji ZWJ sequences and Indic conjuncts (longer
# clusters, so a mark after ‼, Ⓜ or क़ is kept); full-width <, /, > (which normalize into the
# text of special tokens).
TRICKY = list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u2028\u202f\u3000\u200b\ufeff\xad\x00"
              "\u2581aeosxAE1ＡＢ！？ﬁ①ªÅ\u212b\u0301\u0300\u0308\u0327\u0323\u0302\u0340\u0344"
              "\u20dd\u1100\u1161\u11a8가\u0e01\u0e33\u0eb3\u0600\u093f\u094d\u0915\u200d\ufe0f"
              "\U0001f642\U0001f3fb\U000e0100©‼Ⓜ\u0958日本.,'\"<>/_＜＞／")
UNICODE_TEXT = checks.unicode_text(
    TRICKY, ["</s>", "<pad>", "<unk>", "<extra_id_0>", "<extra_id_9>", "<extra_id_99>",
             "<extra_id_", "＜/s＞", "＜unk＞", "＜extra_id_3＞", "e\u0323\u0302",
             "\u1100\u1161\u11a8", "\r\n", "▁▁", "  ", "\U0001f642\u200d\u24c2\u0301",
             "\u0915\u094d\u0959\u0301"],
)


@checks.SAME_IDS_SETTINGS
@given(UNICODE_TEXT)
def test_generated_unicode_strings_equal_hugging_face(ours, references, text):
    """spiece.model and tokenizer.json alone (extra10 is spiece.model with fewer sentinels)."""
    assert ours["spiece"].encode(text).tolist() == \
        references["spiece"](text, add_special_tokens=False)["input_ids"]
    assert ours["json"].encode(text, add_eos=True).tolist() == references["json"](text)["input_ids"]
    checks.assert_same_pre_tokens(ours["json"].tf_tokenizer().pieces, references["json"], text)


def _ranges(table):
    points = set()
    for item in table.split():
        first, _, last = item.partition("-")
        points.update(range(int(first, 16), int(last or first, 16) + 1))
    return points


def _normalize_each(normalizer, texts):
    """`normalizer.normalize_str` of each text (none holding NUL), in one call."""
    return normalizer.normalize_str("\0".join(texts)).split("\0")


def test_cluster_tables_equal_hugging_face_on_every_code_point(ours, references):
    """The normalization table and the grapheme cluster tables, against every code point.

    "Ａ\u0301" is a cluster of five bytes, normalized as a whole to "A" (its
    mark dropped); whatever joins it (a character extending it after, a
    prepended one before) makes it six bytes or more, normalized one
    character at a time, its mark kept. A character of the table stands
    alone (a control) if a mark after it is kept. (Planes 4-13, where no
    character is assigned, are sampled: no table reaches them.)
    """
    from keras_transformer.data import hf_sentencepiece as module

    normalizer = references["json"].backend_tokenizer.normalizer
    table = ours["json"].normalization
    assert table == ours["spiece"].normalization == charsmap_table(ours["spiece"].charsmap)
    assert table["Ａ"] == "A" and table["\t"] == " " and table["e\u0301"] == "é"
    checks.assert_outside_unassigned(*(getattr(module, name) for name in (
        "_GRAPHEME_EXTEND", "_PREPEND", "_CONTROL", "_PICTOGRAPHIC", "_EXTEND_ONLY",
        "_CONJUNCT_CONSONANT", "_CONJUNCT_LINKER", "_CONJUNCT_EXTEND")))
    assert not [key for key in table if ord(key[0]) in checks.UNASSIGNED]
    points = checks.code_points(first=1)
    alone = _normalize_each(normalizer, points)
    assert alone == [table.get(c, c) for c in points]
    after = _normalize_each(normalizer, ["\uff21\u0301" + c for c in points])
    extend = {ord(c) for c, a, n in zip(points, alone, after, strict=True) if n == "A\u0301" + a}
    assert extend == _ranges(module._GRAPHEME_EXTEND)
    before = _normalize_each(normalizer, [c + "\uff21\u0301" for c in points])
    prepend = {ord(c) for c, a, n in zip(points, alone, before, strict=True)
               if n == a + "A\u0301" and ord(c) not in extend}
    assert prepend == _ranges(module._PREPEND)
    keys = [c for c in points if c in table and len(c.encode()) < 4 and ord(c) not in prepend]
    marked = _normalize_each(normalizer, [c + "\u0301" for c in keys])
    control = {ord(c) for c, n in zip(keys, marked, strict=True) if n == table[c] + "\u0301"}
    assert control == {ord(c) for c in keys} & _ranges(module._CONTROL)
    # Emoji ZWJ sequences and Indic conjuncts join "Ⓜ\u0301" / "क़\u0301" (in the table) after
    # them into a longer cluster, which keeps the mark.
    zwj = _normalize_each(normalizer, [c + "\u200d\u24c2\u0301" for c in points])
    assert {ord(c) for c, n in zip(points, zwj, strict=True) if n.endswith("M\u0301")} == \
        _ranges(module._PICTOGRAPHIC)
    conjunct = _normalize_each(normalizer, [c + "\u094d\u0958\u0301" for c in points])
    assert {ord(c) for c, n in zip(points, conjunct, strict=True) if n.endswith("\u0301")} == \
        _ranges(module._CONJUNCT_CONSONANT)
    marks = [chr(c) for c in sorted(extend)]
    for probe, wanted, table_name in (
            ("\U0001f642{}\u200d\u24c2\u0301", "M\u0301", "_EXTEND_ONLY"),
            ("\u0915{}\u0958\u0301", "\u0301", "_CONJUNCT_LINKER"),
            ("\u0915{}\u094d\u0958\u0301", "\u0301", "_CONJUNCT_EXTEND")):
        found = _normalize_each(normalizer, [probe.format(c) for c in marks])
        joined = {ord(c) for c, n in zip(marks, found, strict=True) if n.endswith(wanted)}
        if table_name == "_CONJUNCT_EXTEND":
            joined -= _ranges(module._CONJUNCT_LINKER)
        assert joined == _ranges(getattr(module, table_name)), table_name


def test_table_characters_normalize_as_hugging_face(ours, references):
    """The in-graph normalization on every character of the tables, and on 20,000 others."""
    from keras_transformer.data import hf_sentencepiece as module

    normalizer = references["json"].backend_tokenizer.normalizer
    tables = ("_GRAPHEME_EXTEND", "_PREPEND", "_CONTROL", "_PICTOGRAPHIC", "_CONJUNCT_CONSONANT")
    special = set().union(*(_ranges(getattr(module, t)) for t in tables))
    special |= {ord(c) for c in ours["json"].normalization if len(c) == 1}
    rng = np.random.default_rng(0)
    others = [c for c in rng.integers(1, 0x110000, 25000).tolist()
              if not 0xD800 <= c < 0xE000 and c not in checks.UNASSIGNED]
    points = [chr(c) for c in sorted(special | set(others[:8000]))]
    probes = [f"{c}\n\uff21\u0301{c}\n{c}\uff21\u0301\n{c}\u0301\n\xaa{c}\u0301\n"
              f"\U0001f642\u200d{c}\u0301\n{c}\u200d\u24c2\u0301\n\U0001f642{c}\u200d\u24c2\u0301\n"
              f"\u0915\u094d{c}\u0301\n{c}\u094d\u0958\u0301\n\u0915{c}\u094d\u0958\u0301\n"
              for c in points]
    chunks = ["".join(probes[i:i + 256]) for i in range(0, len(probes), 256)]
    normalize = tf.function(ours["json"].tf_tokenizer().normalize)
    got = [t.decode("utf-8") for t in
           normalize(tf.constant([c.encode("utf-8") for c in chunks])).numpy()]
    wrong = [i for i, (g, c) in enumerate(zip(got, chunks, strict=True))
             if g != normalizer.normalize_str(c)]
    assert not wrong, f"code points from U+{ord(chunks[wrong[0]][0]):04X} differ"


def test_decode_equals_hugging_face_on_any_ids(ours, references):
    """spiece.model with `clean_up_tokenization_spaces`, and tokenizer.json; Python and graph."""
    for style in ("extra10", "json"):
        checks.assert_decodes_like(ours[style], references[style])


def test_special_tokens_and_sentinels(ours, references):
    for style in STYLES:
        tokenizer, reference = ours[style], references[style]
        extra = 10 if style == "extra10" else 100
        assert tokenizer.kind == "t5_sentencepiece" and tokenizer.extra_ids == extra
        assert tokenizer.vocab_size == len(reference) == VOCAB_SIZE + extra
        assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2) == (
            reference.pad_token_id, reference.eos_token_id, reference.unk_token_id)
        for i in (0, 1, extra - 1):
            assert tokenizer.sentinel_id(i) == reference.convert_tokens_to_ids(f"<extra_id_{i}>")
            assert tokenizer.special_id(f"<extra_id_{i}>") == tokenizer.sentinel_id(i)
        assert tokenizer.sentinel_id(0) == tokenizer.vocab_size - 1
        assert tokenizer.ordinary_ids == (3, VOCAB_SIZE - 1)
        assert tokenizer.encode("a <extra_id_0> b")[1] == tokenizer.sentinel_id(0)
        assert tokenizer.encode("x", add_eos=True)[-1] == tokenizer.eos_id
        with pytest.raises(UserInputError, match="no sentinel"):
            tokenizer.sentinel_id(extra)


# -------------------------------------------------------------------------------------
# Inside tf.data and a SavedModel
# -------------------------------------------------------------------------------------

SAMPLES = ["ROMEO:\nIs the day so young?\n", " = Valkyria Chronicles III = <unk> \n", "", "   ",
           "Ａ\u0308 ① \u0323 café\u3000日本 \U0001f642", "x <extra_id_0> </s>y＜/s＞",
           "\u1100\u1161 e\u0323\u0302\x85\r\n\x00"]


def test_same_ids_inside_tf_data(ours, references):
    """One text an element, `</s>` appended by the layer (tokenizer.json).

    (A batch of texts is what `encode_batch` gives the same layer in every test.)
    """
    assert checks.tf_data_rows(ours["json"].tf_tokenizer(add_eos=True), SAMPLES) == \
        references["json"](SAMPLES)["input_ids"]


def test_same_ids_inside_a_saved_model(ours, references, tmp_path):
    """`graph_tokenizer` (what the SavedModel export uses); the decoded text is cleaned up."""
    reference = references["extra10"]
    module = graph_tokenizer(ours["extra10"])
    assert isinstance(module, T5SentencePieceGraphTokenizer)
    rows, loaded = checks.saved_model_rows(module, str(tmp_path / "t5"), SAMPLES)
    assert rows == reference(SAMPLES, add_special_tokens=False)["input_ids"]
    ids = [reference("Is it so, sir ? <extra_id_3> it's .")["input_ids"]]
    decoded = loaded.decode_fn(tf.constant(ids, tf.int32)).numpy()[0].decode("utf-8")
    assert decoded == reference.decode(ids[0]) == ours["extra10"].decode(ids[0])


# -------------------------------------------------------------------------------------
# Saving, loading, and one-line errors
# -------------------------------------------------------------------------------------


SAVED_ATTRIBUTES = ("pieces", "charsmap", "extra_ids", "added_tokens", "eos_id", "pad_id",
                    "unk_id", "vocab_size", "clean_up_tokenization_spaces")


def test_save_writes_files_transformers_reads(ours, references, tmp_path):
    """`save` writes `spiece.model` (made from tokenizer.json's pieces for `json`)."""
    texts = SAMPLES + checks.held_out(WIKITEXT, 3000, 30)
    for style in ("extra10", "json"):
        folder = str(tmp_path / style)
        again = checks.saved_and_loaded(ours[style], folder,
                                        ["spiece.model", "tokenizer_config.json"],
                                        SAVED_ATTRIBUTES)
        saved = transformers.AutoTokenizer.from_pretrained(folder)
        assert saved(texts)["input_ids"] == references[style](texts)["input_ids"]
    checks.assert_encodes_like(again, references["json"], texts, add_eos=True)  # (equal attributes)


def test_older_tokenizer_json_layout(folders, references, tmp_path):
    """T5 checkpoints converted by older `transformers`: `add_prefix_space`, a `Replace` of spaces."""
    spec = checks.read_json(os.path.join(folders["json"], "tokenizer.json"))
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    spec["pre_tokenizer"] = {"type": "Sequence",
                             "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]}
    spec["decoder"] = metaspace
    spec["normalizer"] = {"type": "Sequence", "normalizers": [
        spec["normalizer"], {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    older = pytest.importorskip("tokenizers").Tokenizer.from_file(str(path))
    texts = SAMPLES + checks.held_out(WIKITEXT, 3000, 30)
    got = [ids.tolist() for ids in load_tokenizer(str(path)).encode_batch(texts)]
    assert got == [e.ids for e in older.encode_batch(texts, add_special_tokens=False)]


def test_load_tokenizer_finds_each_file(folders, ours):
    """Either file, or its folder; tokenizer.json with or without the config beside it."""
    for path in (folders["json"], os.path.join(folders["json"], "tokenizer.json"),
                 folders["json_saved"], folders["spiece"],
                 os.path.join(folders["extra10"], "spiece.model")):
        assert isinstance(load_tokenizer(path), T5SentencePieceTokenizer)
    assert load_tokenizer(os.path.join(folders["extra10"], "spiece.model")).extra_ids == 10
    assert os.listdir(folders["json"]) == ["tokenizer.json"]
    with_config, alone = load_tokenizer(folders["json_saved"]), ours["json"]
    for name in ("pieces", "charsmap", "extra_ids", "added_tokens", "eos_id", "pad_id",
                 "unk_id", "vocab_size"):
        assert getattr(alone, name) == getattr(with_config, name) == \
            getattr(ours["spiece"], name), name


def test_load_tokenizer_of_a_t5_checkpoint_folder(ours, references, tmp_path):
    """A checkpoint folder as `transformers` writes it: the model's config.json, the tokenizer."""
    reference = references["extra10"]
    checkpoint = str(tmp_path / "t5")
    transformers.T5Config(vocab_size=len(reference), d_model=32, d_kv=16, d_ff=64, num_layers=2,
                          num_heads=2).save_pretrained(checkpoint)
    reference.save_pretrained(checkpoint)
    tokenizer = load_tokenizer(checkpoint)
    assert isinstance(tokenizer, T5SentencePieceTokenizer) and tokenizer.extra_ids == 10
    assert tokenizer.vocab_size == len(reference) and tokenizer.clean_up_tokenization_spaces
    for name in (*SAVED_ATTRIBUTES, "unk_piece_id", "normalization"):  # so the same ids
        assert getattr(tokenizer, name) == getattr(ours["extra10"], name), name


def _json_spec(folders, change):
    return checks.changed_json(os.path.join(folders["json"], "tokenizer.json"), change)


def _model_bytes(folders, **trainer_spec):
    """The reference `spiece.model` as if trained with other options (`trainer_spec` fields)."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    with open(os.path.join(folders["spiece"], "spiece.model"), "rb") as handle:
        model.ParseFromString(handle.read())
    for name, value in trainer_spec.items():
        setattr(model.trainer_spec, name, value)
    return model.SerializeToString()


BROKEN = {
    **checks.BROKEN_FOLDERS,
    "corrupt spiece.model": (lambda f: {"spiece.model": b"\x0a\xffnot a model"},
                             "spiece.model is not a SentencePiece model"),
    "empty spiece.model": (lambda f: {"spiece.model": b""},
                           "spiece.model is not a SentencePiece model"),
    "BPE model": (lambda f: {"spiece.model": _model_bytes(f, model_type=2)},  # BPE
                  "only a unigram SentencePiece model is supported"),
    "byte fallback": (lambda f: {"spiece.model": _model_bytes(f, byte_fallback=True)},
                      "byte_fallback is not supported"),
    "NFKC normalizer": (
        lambda f: _json_spec(f, lambda s: s.update(normalizer={"type": "NFKC"})),
        "NFKC normalizer is not supported"),
    "Metaspace alone": (
        lambda f: _json_spec(f, lambda s: s.update(pre_tokenizer=s["pre_tokenizer"][
            "pretokenizers"][1])),
        "Unigram model is not supported with the pre-tokenizer Metaspace"),
    "prepend_scheme first": (
        lambda f: _json_spec(f, lambda s: s["pre_tokenizer"]["pretokenizers"][1].update(
            prepend_scheme="first")),
        "prepend_scheme 'always'"),
    "byte fallback in tokenizer.json": (
        lambda f: _json_spec(f, lambda s: s["model"].update(byte_fallback=True)),
        "byte_fallback is not supported"),
    "corrupt charsmap": (
        lambda f: _json_spec(f, lambda s: s["normalizer"].update(precompiled_charsmap="AAAA")),
        "not a SentencePiece charsmap"),
}


test_bad_folders_fail_with_one_line = checks.bad_folders_test(BROKEN)


def test_missing_files_fail_with_one_line(tmp_path):
    """Each way in, given a folder or file that is not there (or an empty folder)."""
    for load in (T5SentencePieceTokenizer.from_directory, T5SentencePieceTokenizer.from_file,
                 T5SentencePieceTokenizer.from_model_file, load_tokenizer):
        checks.assert_one_line_error(functools.partial(load, str(tmp_path / "nothing")),
                                     "not found")
    checks.assert_one_line_error(functools.partial(load_tokenizer, str(tmp_path)),
                                 "no tokenizer in .*spiece.model \\(T5\\)")
