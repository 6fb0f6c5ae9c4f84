"""The model families, functional `keras.Model` classes built from `keras_transformer.layers`:
`GPT`, `BERT`, `Seq2Seq` (and the char-RNN baseline)."""

from keras_transformer.models.attention_maps import gpt_attention_maps, seq2seq_cross_attention_maps
from keras_transformer.models.bert import BERT, backbone_params, build_bert
from keras_transformer.models.bert_classifier import BertClassifier
from keras_transformer.models.charrnn import build_charrnn
from keras_transformer.models.gpt import GPT, build_gpt, call_with_cache, init_cache, supports_cache
from keras_transformer.models.seq2seq import Seq2Seq, build_seq2seq
from keras_transformer.models.upgrade import load_model

__all__ = [
    "BERT",
    "BertClassifier",
    "GPT",
    "Seq2Seq",
    "backbone_params",
    "build_bert",
    "build_charrnn",
    "build_gpt",
    "build_seq2seq",
    "call_with_cache",
    "gpt_attention_maps",
    "init_cache",
    "load_model",
    "seq2seq_cross_attention_maps",
    "supports_cache",
]
