"""Text sources, cleaning, tokenizers and `tf.data` pipelines."""

from keras_transformer.data.bpe import SentencePieceTokenizer
from keras_transformer.data.cleaning import clean_text
from keras_transformer.data.graph_tokenizers import graph_tokenizer
from keras_transformer.data.hf_sentencepiece import T5SentencePieceTokenizer
from keras_transformer.data.hf_tokenizers import ByteLevelBPETokenizer
from keras_transformer.data.hf_wordpiece import WordPieceTokenizer
from keras_transformer.data.pipelines import (
    lm_eval_dataset,
    lm_train_dataset,
    padded_batches,
    sampled_ids,
    steps_per_pass,
)
from keras_transformer.data.sources import load_text, shakespeare_path, split_text
from keras_transformer.data.tokenizers import CharTokenizer, load_tokenizer, save_tokenizer
from keras_transformer.data.wikitext import load_wikitext2, split_articles

__all__ = [
    "ByteLevelBPETokenizer",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "T5SentencePieceTokenizer",
    "WordPieceTokenizer",
    "clean_text",
    "graph_tokenizer",
    "lm_eval_dataset",
    "lm_train_dataset",
    "load_text",
    "load_tokenizer",
    "save_tokenizer",
    "load_wikitext2",
    "padded_batches",
    "sampled_ids",
    "shakespeare_path",
    "split_articles",
    "split_text",
    "steps_per_pass",
]
