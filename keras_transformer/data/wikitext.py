"""WikiText-2 (Merity et al., 2016): the split files, and the text cut into articles.

Two sources:

- a folder (`train.py --dataset wikitext2 --data DIR`) holding the standard
  files of one split each: `wiki.train.tokens`, `wiki.valid.tokens`,
  `wiki.test.tokens` (the tokenized release), `wiki.{split}.raw` (the raw
  one), or `train.txt`, `valid.txt`, `test.txt`;
- without a folder, the Hugging Face dataset `Salesforce/wikitext`,
  configuration `wikitext-2-raw-v1`, when the `datasets` package is
  installed and the network is reachable (it is not a dependency of this
  project: `pip install datasets`).

An article starts at its top-level heading line ` = Title = `; section
headings (` = = Section = = `, ` = = = Sub = = = `) stay inside it.
"""

import os
import re

from keras_transformer.data.sources import read_text
from keras_transformer.errors import UserInputError

SPLITS = ("train", "valid", "test")
FILE_PATTERNS = ("wiki.{split}.tokens", "wiki.{split}.raw", "{split}.txt")
HF_NAME, HF_CONFIG = "Salesforce/wikitext", "wikitext-2-raw-v1"
HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
_TITLE = re.compile(r"^ ?= (?!=)(.*?[^=]) = ?$")


def split_files(data_dir):
    """`{split: path}` of the WikiText split files found in `data_dir`."""
    if not os.path.isdir(data_dir):
        raise UserInputError(
            f"--dataset wikitext2 needs --data DIR, a folder of split files; not a folder: {data_dir}"
        )
    found = {}
    for split in SPLITS:
        for pattern in FILE_PATTERNS:
            path = os.path.join(data_dir, pattern.format(split=split))
            if os.path.isfile(path):
                found[split] = path
                break
    return found


def read_splits(data_dir, splits):
    """The texts of `splits` (names in `SPLITS`) from the files in `data_dir`.

    A missing split is a `UserInputError` that lists the splits the folder
    has, e.g. `../shared/data/wikitext-2` holds only `valid` and `test`:
    train on one, evaluate on the other (`--train-split valid --eval-split
    test`).
    """
    found = split_files(data_dir)
    for split in splits:
        if split not in SPLITS:
            raise UserInputError(f"unknown WikiText split {split!r}; choose one of {', '.join(SPLITS)}")
        if split not in found:
            have = ", ".join(found) or "none"
            names = " or ".join(p.format(split=split) for p in FILE_PATTERNS)
            raise UserInputError(
                f"{data_dir} has no {split} split ({names}); it has: {have}. "
                f"Choose others with --train-split / --eval-split"
            )
    return {split: read_text(found[split]) for split in splits}


def load_hf_splits(splits):
    """The texts of `splits` from the Hugging Face dataset `Salesforce/wikitext`.

    Raises:
        UserInputError: the `datasets` package is not installed, or the
            download fails (no network).
    """
    try:
        import datasets
    except ImportError:
        raise UserInputError(
            "--dataset wikitext2 without --data needs the Hugging Face 'datasets' package "
            "(pip install datasets) and network access; or pass --data DIR holding "
            "wiki.{train,valid,test}.tokens or {train,valid,test}.txt"
        ) from None
    texts = {}
    for split in splits:
        if split not in HF_SPLITS:
            raise UserInputError(f"unknown WikiText split {split!r}; choose one of {', '.join(SPLITS)}")
        try:
            rows = datasets.load_dataset(HF_NAME, HF_CONFIG, split=HF_SPLITS[split])
            texts[split] = "".join(rows["text"])
        except Exception as error:  # no network, a hub error ...
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserInputError(
                f"could not load {HF_NAME} ({HF_CONFIG}) {split}: {first[:200]}; "
                f"pass --data DIR with the split files instead"
            ) from None
    return texts


def load_wikitext2(data_dir=None, train_split="train", eval_split="valid"):
    """`(train_text, eval_text, name)` of WikiText-2.

    Args:
        data_dir: a folder of split files; `None` uses the Hugging Face
            dataset (see `load_hf_splits`).
        train_split, eval_split: which splits to train and evaluate on
            (`"train"`, `"valid"` or `"test"`); they must differ.

    Returns:
        The two texts and a name for reports, e.g. `"wikitext2:valid->test"`.
    """
    if train_split == eval_split:
        raise UserInputError(
            f"--train-split and --eval-split are both {train_split!r}; evaluate on another split"
        )
    splits = (train_split, eval_split)
    texts = load_hf_splits(splits) if data_dir is None else read_splits(data_dir, splits)
    for split in splits:
        if not texts[split].strip():
            raise UserInputError(f"the WikiText-2 {split} split is empty")
    return texts[train_split], texts[eval_split], f"wikitext2:{train_split}->{eval_split}"


def heading_title(line):
    """The title of a top-level heading line ` = Title = `, else `None`."""
    match = _TITLE.match(line.rstrip("\n"))
    return match.group(1) if match else None


def split_articles(text):
    """Cut a WikiText split into `(title, article_text)` pairs.

    An article runs from its ` = Title = ` line up to the next one; lines
    before the first heading (blank in the real files) are dropped unless
    they hold text, in which case they form an article titled `""`.
    Concatenating the articles gives back the text from the first heading
    (or non-blank line) on.
    """
    articles, title, lines = [], None, []
    for line in text.splitlines(keepends=True):
        new_title = heading_title(line)
        if new_title is not None:
            if lines and (title is not None or "".join(lines).strip()):
                articles.append((title or "", "".join(lines)))
            title, lines = new_title, []
        lines.append(line)
    if lines and (title is not None or "".join(lines).strip()):
        articles.append((title or "", "".join(lines)))
    return articles
