"""Text generation: sampling rules and the decoding loop."""

from keras_transformer.generation.decoding import Decoder, context_length, generate
from keras_transformer.generation.sampling import filter_logits, sample_next

__all__ = ["Decoder", "context_length", "filter_logits", "generate", "sample_next"]
