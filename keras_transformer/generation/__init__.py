"""Text generation: sampling rules, the decoding loop and its SavedModel export."""

from keras_transformer.generation.decoding import Decoder, context_length, generate
from keras_transformer.generation.export import export_generator
from keras_transformer.generation.sampling import filter_logits, sample_next

__all__ = [
    "Decoder",
    "context_length",
    "export_generator",
    "filter_logits",
    "generate",
    "sample_next",
]
