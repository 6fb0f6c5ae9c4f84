"""keras_transformer: the Transformer built from its parts as readable Keras 3 code.

    from keras_transformer import TransformerConfig, build_gpt, generate

    model = build_gpt(TransformerConfig(vocab_size=66))

The package is laid out the way data flows: `data` (text, tokenizers,
`tf.data`), `layers` (attention, embeddings, blocks), `models` (functional
models from layers), `training` (`train()` and its run directory),
`generation` (sampling and decoding), `pretrained` (Hugging Face GPT-2 and
Llama checkpoints in and out), `cli` (the command-line tools).

Importing the package registers every layer (and the training optimizer,
whose config a compiled `model.keras` holds) with Keras, so after
`import keras_transformer` a saved model loads with plain
`keras.saving.load_model(path)` (safe mode, no `custom_objects`).
"""

from keras_transformer import layers  # noqa: F401  (registers the layers with Keras)
from keras_transformer.config import TransformerConfig
from keras_transformer.data.tokenizers import load_tokenizer
from keras_transformer.errors import UserInputError
from keras_transformer.generation import generate
from keras_transformer.models import (
    BERT,
    GPT,
    Seq2Seq,
    build_bert,
    build_charrnn,
    build_gpt,
    build_seq2seq,
)
from keras_transformer.pretrained import from_pretrained, save_pretrained
from keras_transformer.sentence_embedding import embed
from keras_transformer.training import schedules  # noqa: F401  (registers the optimizer)

__version__ = "0.1.0"

__all__ = [
    "BERT",
    "GPT",
    "Seq2Seq",
    "TransformerConfig",
    "UserInputError",
    "build_bert",
    "build_charrnn",
    "build_gpt",
    "build_seq2seq",
    "embed",
    "from_pretrained",
    "generate",
    "load_tokenizer",
    "save_pretrained",
]
