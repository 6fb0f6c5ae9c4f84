"""Text sources, tokenizers and `tf.data` pipelines."""

from keras_transformer.data.graph_tokenizers import graph_tokenizer
from keras_transformer.data.pipelines import lm_eval_dataset, lm_train_dataset, steps_per_pass
from keras_transformer.data.sources import load_text, shakespeare_path, split_text
from keras_transformer.data.tokenizers import CharTokenizer, load_tokenizer

__all__ = [
    "CharTokenizer",
    "graph_tokenizer",
    "lm_eval_dataset",
    "lm_train_dataset",
    "load_text",
    "load_tokenizer",
    "shakespeare_path",
    "split_text",
    "steps_per_pass",
]
