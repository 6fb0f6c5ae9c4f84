"""WikiText-2: split files, articles, the Hugging Face path, padded article batches."""

import os
import sys
import types

import numpy as np
import pytest
from conftest import REPO, make_text

from keras_transformer.data.bpe import SentencePieceTokenizer
from keras_transformer.data.pipelines import padded_batches
from keras_transformer.data.wikitext import (
    heading_title,
    load_wikitext2,
    read_splits,
    split_articles,
    split_files,
)
from keras_transformer.errors import UserInputError

SHARED_WIKITEXT = os.path.join(REPO, "..", "shared", "data", "wikitext-2")

ARTICLES = [
    ("Homarus gammarus", " = Homarus gammarus = \n \n Homarus gammarus is a lobster . \n \n"
     " = = Description = = \n \n It is blue . \n \n = = = Colour = = = \n \n Red when cooked . \n"),
    ("Ising model", " = Ising model = \n \n The Ising model , named after Ernst Ising . \n"),
    ("Tropical Storm = Ana", " = Tropical Storm = Ana = \n \n A storm . \n \n"),
]


def _write_splits(folder, names):
    folder.mkdir(exist_ok=True)
    body = "".join(text for _, text in ARTICLES)
    for name in names:
        (folder / name).write_text(" \n" + body, encoding="utf-8")
    return str(folder)


def test_heading_titles():
    assert heading_title(" = Homarus gammarus = \n") == "Homarus gammarus"
    assert heading_title("= Valkyria Chronicles III =") == "Valkyria Chronicles III"
    assert heading_title(" = = Description = = \n") is None
    assert heading_title(" = = = Colour = = = \n") is None
    assert heading_title(" It is = not a heading . \n") is None


def test_articles_split_on_top_level_headings_only():
    text = " \n" + "".join(body for _, body in ARTICLES)
    articles = split_articles(text)
    assert [title for title, _ in articles] == [title for title, _ in ARTICLES]
    assert [body for _, body in articles] == [body for _, body in ARTICLES]
    assert "".join(body for _, body in articles) == text[2:]  # only the leading blank line goes
    assert split_articles("no heading here\n") == [("", "no heading here\n")]


@pytest.mark.skipif(not os.path.isdir(SHARED_WIKITEXT), reason="no shared WikiText-2 copy")
def test_real_validation_split_articles():
    with open(os.path.join(SHARED_WIKITEXT, "valid.txt"), encoding="utf-8") as handle:
        text = handle.read()
    articles = split_articles(text)
    headings = [line for line in text.splitlines() if line.startswith(" = ") and
                not line.startswith(" = = ")]
    assert len(articles) == len(headings) > 10
    assert all(body.startswith(" = " + title + " = ") for title, body in articles)
    assert "".join(body for _, body in articles) == text[text.index(" = "):]


@pytest.mark.parametrize("names", [
    ["wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"],
    ["train.txt", "valid.txt", "test.txt"],
])
def test_split_files_are_found(tmp_path, names):
    folder = _write_splits(tmp_path / "wt2", names)
    assert sorted(split_files(folder)) == ["test", "train", "valid"]
    train, val, name = load_wikitext2(folder)
    assert name == "wikitext2:train->valid" and train == val and "Ising" in train


def test_a_missing_split_names_the_ones_there(tmp_path):
    folder = _write_splits(tmp_path / "wt2", ["valid.txt", "test.txt"])
    with pytest.raises(UserInputError, match=r"has no train split .* it has: valid, test\. "
                       r"Choose others with --train-split / --eval-split"):
        load_wikitext2(folder)
    train, val, name = load_wikitext2(folder, "valid", "test")
    assert name == "wikitext2:valid->test" and train == val
    with pytest.raises(UserInputError, match="both 'valid'"):
        load_wikitext2(folder, "valid", "valid")
    with pytest.raises(UserInputError, match="not a folder"):
        load_wikitext2(str(tmp_path / "nowhere"))


def test_a_non_utf8_split_file_is_a_clear_error(tmp_path):
    folder = _write_splits(tmp_path / "wt2", ["train.txt", "valid.txt"])
    (tmp_path / "wt2" / "valid.txt").write_bytes(b" = T = \n caf\xe9 \n")
    with pytest.raises(UserInputError, match=r"not UTF-8 text: .*valid\.txt \(bad byte at offset"):
        read_splits(folder, ["train", "valid"])


def test_hugging_face_path_joins_the_rows(monkeypatch):
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        return {"text": ["", f" = {split} = \n", " Some text . \n"]}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    train, val, name = load_wikitext2(None, "train", "valid")
    assert calls == [("Salesforce/wikitext", "wikitext-2-raw-v1", "train"),
                     ("Salesforce/wikitext", "wikitext-2-raw-v1", "validation")]
    assert train == " = train = \n Some text . \n" and "validation" in val


def test_hugging_face_path_without_the_package_or_network(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(UserInputError, match=r"needs the Hugging Face 'datasets' package") as error:
        load_wikitext2(None)
    assert "--data DIR" in str(error.value) and "\n" not in str(error.value)

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the hub\nmore detail")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(UserInputError, match=r"could not load .* Couldn't reach the hub; pass --data"):
        load_wikitext2(None)


def test_padded_batches_masks_match_lengths():
    tokenizer = SentencePieceTokenizer.from_text(make_text(), vocab_size=400)
    lines = [line for line in make_text(90, seed=3).splitlines() if line] + ["x" * 500]
    dataset = padded_batches(lines, tokenizer.tf_tokenizer(), batch_size=8, max_len=48)
    seen = 0
    for batch in dataset:
        ids, mask = batch["token_ids"].numpy(), batch["padding_mask"].numpy()
        length = batch["length"].numpy()
        assert ids.shape == mask.shape and ids.shape[1] == length.max()  # padded to the longest
        for row, (row_ids, row_mask) in enumerate(zip(ids, mask, strict=True)):
            expected = tokenizer.encode(lines[seen + row])[:48]
            assert length[row] == len(expected)
            assert row_mask.sum() == len(expected) and row_mask[: len(expected)].all()
            np.testing.assert_array_equal(row_ids[: len(expected)], expected)
            assert not row_ids[len(expected):].any()  # padding is id 0
        seen += len(ids)
    assert seen == len(lines)
    assert length[-1] == 48  # the long line was cut to max_len
