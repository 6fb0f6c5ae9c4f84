"""Checks shared by the tests of the Hugging Face tokenizers (byte-level BPE, WordPiece, T5).

Each test file trains small reference tokenizers with Hugging Face's own
libraries on Tiny Shakespeare and WikiText-2 (the shared copies, or a
generated play without them), and compares this package's ids with the
reference's on held-out lines (`line_texts`), on Hypothesis' Unicode strings
(`unicode_text`, drawn `SAME_IDS_SETTINGS`), inside `tf.data`
(`tf_data_rows`) and inside a SavedModel (`saved_model_rows`); broken
folders must fail with one line (`assert_one_line_error`).
"""

import functools
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, make_text
from hypothesis import settings
from hypothesis import strategies as st

from keras_transformer.errors import UserInputError

SHARED = os.path.join(REPO, "..", "shared", "data")
SHAKESPEARE = os.path.join(SHARED, "tinyshakespeare.txt")
WIKITEXT = os.path.join(SHARED, "wikitext-2", "valid.txt")

# Hypothesis for the id comparisons: the same examples on every run, none stored.
SAME_IDS_SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, database=None)


# Planes 4 to 13: not one code point of them is assigned (Unicode 16), and no table of these
# tokenizers holds one; the code point checks read every 251st of them, and all the others.
UNASSIGNED = range(0x40000, 0xE0000)


@functools.cache
def _code_points():
    return tuple(chr(c) for c in range(0x110000)
                 if not 0xD800 <= c < 0xE000 and (c not in UNASSIGNED or c % 251 == 0))


def code_points(first=0):
    """Every code point from `first` but the surrogates, planes 4-13 sampled (`UNASSIGNED`)."""
    return [c for c in _code_points() if ord(c) >= first] if first else list(_code_points())


def assert_outside_unassigned(*tables):
    """No range of the tables (`"41-5a 61"`, hexadecimal) reaches into `UNASSIGNED`."""
    for table in tables:
        for item in table.split():
            first, _, last = item.partition("-")
            first, last = int(first, 16), int(last or first, 16)
            assert last < UNASSIGNED.start or first >= UNASSIGNED.stop, item


def lines(path):
    """The lines of a shared text file (newlines kept), or None without the file."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines(keepends=True)


def held_out(path, start, count):
    """`count` lines of a shared text from line `start` (the test is skipped without the file)."""
    found = lines(path)
    if found is None:
        pytest.skip(f"no shared copy at {os.path.normpath(path)}")
    return found[start:start + count]


def training_lines(extra=()):
    """What the reference tokenizers are trained on: a generated play, `extra`, the shared texts."""
    return (make_text().splitlines(keepends=True) + list(extra)
            + (lines(SHAKESPEARE) or [])[:5000] + (lines(WIKITEXT) or [])[:1500])


def line_texts(path, start, count=300):
    """`count` held-out lines of a shared text, and passages of 12 of them (newlines kept)."""
    found = held_out(path, start, count)
    return found + ["".join(found[i:i + 12]) for i in range(0, count, 12)]


def as_lists(rows):
    """Rows of ids (numpy arrays, tensors or lists) as lists of ints."""
    return [[int(i) for i in row] for row in rows]


def assert_same_ids(got, want, texts):
    """`got` and `want` (rows of ids, one a text) are equal; the message shows a text that differs."""
    got, want = as_lists(got), as_lists(want)
    wrong = [(text, g, w) for text, g, w in zip(texts, got, want, strict=True) if g != w]
    assert not wrong, f"{len(wrong)} of {len(texts)} texts differ, e.g. {wrong[0]}"


def load_each(folders, styles):
    """`{style: load_tokenizer(folders[style])}`: this package's tokenizers of the folders."""
    from keras_transformer.data import load_tokenizer

    return {style: load_tokenizer(folders[style]) for style in styles}


def all_of_class(references, name):
    """`references` (`{style: transformers tokenizer}`), checked to be all of class `name`."""
    assert {type(t).__name__ for t in references.values()} == {name}
    return references


def assert_encodes_like(tokenizer, reference, texts, add_eos=False):
    """`tokenizer.encode_batch(texts)` gives `transformers`' ids of `reference(texts)`.

    Without special tokens, or (`add_eos`) with `</s>` appended as
    `reference(texts)` does with its special tokens.
    """
    rows = tokenizer.encode_batch(texts, add_eos=True) if add_eos else \
        tokenizer.encode_batch(texts)
    assert_same_ids(rows, reference(list(texts), add_special_tokens=add_eos)["input_ids"], texts)


_GRAPH_FUNCTIONS = {}


def graph_function(method):
    """`method` (strings `[n]` -> ...) as a `tf.function` over a batch of strings (made once)."""
    if method not in _GRAPH_FUNCTIONS:
        _GRAPH_FUNCTIONS[method] = tf.function(
            method, input_signature=[tf.TensorSpec([None], tf.string)])
    return _GRAPH_FUNCTIONS[method]


def pre_tokens(reference, text):
    """The pieces `transformers`' `reference` splits `text` into: normalized, pre-tokenized."""
    backend = reference.backend_tokenizer
    return [piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(
        backend.normalizer.normalize_str(text))]


def assert_same_pre_tokens(split, reference, text):
    """`split` (a layer's strings -> pieces method) cuts `text` into `reference`'s pieces.

    (The pieces before the ids: an unknown id can hide a difference.)
    """
    pieces = graph_function(split)(tf.constant([text.encode("utf-8")])).to_list()[0]
    assert [p.decode("utf-8") for p in pieces] == pre_tokens(reference, text)


def assert_decodes_like(tokenizer, reference, seed=0, count=300):
    """Random ids (some past the vocabulary) decode as `reference` decodes them, in the graph too."""
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, tokenizer.vocab_size + 3, size=8).tolist() for _ in range(count)]
    layer = tokenizer.tf_tokenizer()
    in_graph = [t.decode("utf-8") for t in layer.detokenize(tf.constant(rows)).numpy()]
    for ids, text in zip(rows, in_graph, strict=True):
        assert tokenizer.decode(ids) == reference.decode(ids) == text
        assert tokenizer.decode(ids, skip_special_tokens=True) == \
            reference.decode(ids, skip_special_tokens=True)


def saved_and_loaded(tokenizer, folder, files, attributes):
    """`tokenizer.save(folder)` writes `files` and loads back as a tokenizer equal in `attributes`."""
    from keras_transformer.data import load_tokenizer

    tokenizer.save(folder)
    assert sorted(os.listdir(folder)) == sorted(files)
    again = load_tokenizer(folder)
    assert type(again) is type(tokenizer)
    for name in attributes:
        assert getattr(again, name) == getattr(tokenizer, name), name
    return again


def unicode_text(tricky, words, *more):
    """Hypothesis texts: any code points, runs of `tricky` characters, `words`, and `more`.

    Args:
        tricky: the characters where the tokenizer decides something.
        words: whole strings to draw (special tokens, near misses of them, ...).
        *more: further strategies of strings.
    """
    return st.lists(
        st.one_of(
            st.text(max_size=12),  # any code point but surrogates, unassigned ones included
            st.text(st.sampled_from(list(tricky)), min_size=1, max_size=8),
            st.sampled_from(list(words)),
            *more,
        ),
        max_size=6,
    ).map("".join)


def tf_data_rows(layer, texts, batch=None):
    """The ids `layer.tokenize` gives `texts` inside `tf.data`: one text an element, or batches."""
    dataset = tf.data.Dataset.from_tensor_slices(texts)
    if batch is None:
        mapped = dataset.map(layer.tokenize, num_parallel_calls=2, deterministic=True)
        return [row.numpy().tolist() for row in mapped]
    return [row for ids in dataset.batch(batch).map(layer.tokenize) for row in ids.to_list()]


def save_encoder(module, path):
    """Save a graph tokenizer module as a SavedModel whose `encode_fn` gives flat ids and lengths."""
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(text):
        ids = module.encode(text)
        return {"ids": ids.flat_values, "lengths": ids.row_lengths()}

    module.encode_fn = encode
    module.decode_fn = tf.function(module.decode,
                                   input_signature=[tf.TensorSpec([None, None], tf.int32)])
    tf.saved_model.save(module, path, signatures={
        "encode": module.encode_fn.get_concrete_function(),
        "decode": module.decode_fn.get_concrete_function(),
    })


def rows_of(flat, lengths):
    """Rows of ids from flat ids and row lengths."""
    rows, at = [], 0
    for n in lengths:
        rows.append(flat[at:at + n])
        at += n
    return rows


def saved_model_rows(module, path, texts):
    """The ids that `module`, saved as a SavedModel at `path` and loaded back, gives `texts`."""
    save_encoder(module, path)
    loaded = tf.saved_model.load(path)
    out = loaded.encode_fn(tf.constant(texts))
    return rows_of(out["ids"].numpy().tolist(), out["lengths"].numpy().tolist()), loaded


def write_files(folder, files):
    """Write `{name: content}` into `folder`: bytes as they are, strings as text, else JSON."""
    for name, content in files.items():
        path = os.path.join(folder, name)
        if isinstance(content, bytes):
            with open(path, "wb") as handle:
                handle.write(content)
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(content if isinstance(content, str)
                             else json.dumps(content, ensure_ascii=False))


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def changed_json(path, change):
    """`{"tokenizer.json": spec}`: the tokenizer.json at `path`, changed by `change(spec)`."""
    spec = read_json(path)
    change(spec)
    return {"tokenizer.json": spec}


def assert_one_line_error(call, match):
    """`call()` raises a one-line `UserInputError` matching `match`."""
    with pytest.raises(UserInputError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


# Folders every Hugging Face tokenizer refuses: `{case: (make_files, message)}` (`bad_folders_test`).
BROKEN_FOLDERS = {
    "empty folder": (lambda folders: {}, "no tokenizer in"),
    "corrupt tokenizer.json": (lambda folders: {"tokenizer.json": '{"model": {'},
                               "tokenizer.json \\(invalid JSON"),
    "tokenizer.json without a model": (lambda folders: {"tokenizer.json": {"version": "1.0"}},
                                       "not a keras_transformer tokenizer file"),
}


def bad_folders_test(broken):
    """The test that each case of `broken` fails to load with a one-line error.

    Args:
        broken: `{case: (make_files, message)}`, `make_files(folders)` giving
            the `{name: content}` of a folder (see `write_files`) that
            `load_tokenizer` must refuse with a message matching `message`.

    Returns:
        a test function (assign it to a `test_...` name of the test module)
        taking the module's `folders` fixture.
    """
    @pytest.mark.parametrize("case", sorted(broken))
    def test_bad_folders_fail_with_one_line(folders, tmp_path, case):
        from keras_transformer.data import load_tokenizer

        make_files, message = broken[case]
        write_files(str(tmp_path), make_files(folders))
        assert_one_line_error(lambda: load_tokenizer(str(tmp_path)), message)

    return test_bad_folders_fail_with_one_line
