"""The text a job trains on and the tokenizer that reads it.

`load_corpus(settings)` picks the dataset (`--dataset shakespeare|wikitext2`),
splits it into training and evaluation text and cleans it (`--clean`);
`make_tokenizer(settings, corpus, specials)` builds the tokenizer
(`--tokenizer char|bpe`) from the training text. The LM, BERT and
span-corruption jobs share both.
"""

import os
from dataclasses import dataclass

from keras_transformer.data import CharTokenizer, load_text, split_text
from keras_transformer.data.bpe import DEFAULT_VOCAB_SIZE, SentencePieceTokenizer
from keras_transformer.data.cleaning import clean_text
from keras_transformer.data.wikitext import load_wikitext2, split_articles
from keras_transformer.errors import UserInputError

DATASETS = ("shakespeare", "wikitext2")
TOKENIZERS = ("char", "bpe")


@dataclass
class Corpus:
    """Training and evaluation text of a run.

    Args:
        train_text: the text the model (and a BPE tokenizer) trains on.
        val_text: the held-out text of validation and the final metrics.
        name: the data named in `metrics.json` and the plot title.
        cleaned: whether `clean_text` was applied.
        train_articles, val_articles: number of WikiText articles (`None`
            for other datasets).
    """

    train_text: str
    val_text: str
    name: str
    cleaned: bool
    train_articles: int | None = None
    val_articles: int | None = None


def should_clean(settings):
    """`--clean/--no-clean`, defaulting to on for `bpe` and off for `char`."""
    return settings.tokenizer == "bpe" if settings.clean is None else bool(settings.clean)


def load_corpus(settings):
    """The `Corpus` of `settings.dataset`.

    `shakespeare` (or any `--data FILE`): the first 90 % of the text for
    training, the last 10 % for validation. `wikitext2`: whole split files,
    `settings.train_split` (default `train`) and `settings.eval_split`
    (default `valid`), from `--data DIR` or the Hugging Face hub; each
    split is cut into its articles on their ` = Title = ` headings (and
    cleaned article by article) before being joined again.
    """
    clean = should_clean(settings)
    if settings.dataset == "wikitext2":
        train_text, val_text, name = load_wikitext2(
            settings.data, settings.train_split or "train", settings.eval_split or "valid"
        )
        train_articles = [text for _, text in split_articles(train_text)]
        val_articles = [text for _, text in split_articles(val_text)]
        if clean:
            train_articles = [clean_text(text) for text in train_articles]
            val_articles = [clean_text(text) for text in val_articles]
        return Corpus("".join(train_articles), "".join(val_articles), name, clean,
                      len(train_articles), len(val_articles))
    text = load_text(settings.data)
    if clean:
        text = clean_text(text)
        if not text.strip():
            raise UserInputError("the data file is empty after cleaning")
    train_text, val_text = split_text(text)
    name = os.path.basename(settings.data) if settings.data else "tinyshakespeare"
    return Corpus(train_text, val_text, name, clean)


def make_tokenizer(settings, corpus, specials=()):
    """The tokenizer of `settings.tokenizer`, built from the corpus.

    `char`: every character of the training and evaluation text (as before
    subwords existed; a character model cannot encode a character it lacks).
    `bpe`: a SentencePiece BPE model of `settings.vocab_size` pieces (default
    4096) trained on the training text only; byte fallback covers whatever
    the evaluation text adds.
    """
    if settings.tokenizer == "bpe":
        vocab_size = settings.vocab_size or DEFAULT_VOCAB_SIZE
        return SentencePieceTokenizer.from_text(corpus.train_text, vocab_size, specials)
    return CharTokenizer.from_text(corpus.train_text + corpus.val_text, specials)
