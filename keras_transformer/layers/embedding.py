"""Token embeddings plus position information, and the tied output projection."""

import math

import keras
import numpy as np
from keras import ops

from keras_transformer.errors import UserInputError


def sinusoidal_positions(length, d_model):
    """The fixed position table of Vaswani et al. (2017), section 3.5.

    `PE[pos, 2i] = sin(pos / 10000^(2i/d_model))` and
    `PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))`: each pair of columns is a
    sine/cosine at one frequency, the frequencies falling geometrically from
    1 to 1/10000.

    Returns:
        A float32 numpy array of shape `(length, d_model)`.
    """
    positions = np.arange(length, dtype=np.float64)[:, None]
    pair_index = np.arange(0, d_model, 2, dtype=np.float64)[None, :]  # the "2i"
    angles = positions / np.power(10000.0, pair_index / d_model)
    table = np.zeros((length, d_model), dtype=np.float64)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return table.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_transformer")
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding plus a learned or sinusoidal position embedding.

    Called on int token ids `[batch, time]` it returns vectors
    `[batch, time, d_model]`. Called with `reverse=True` on vectors
    `[batch, time, d_model]` it multiplies them by the transposed token
    embedding matrix and returns float32 logits `[batch, time, vocab_size]`:
    this is the tied output projection of GPT-2 and BERT, which shares its
    weights with the input embedding (the token table is a
    `keras.layers.ReversibleEmbedding`, which does exactly that).

    With `position="sinusoidal"` the token vectors are scaled by
    `sqrt(d_model)` before the fixed table is added, as in the original paper;
    with `position="learned"` a `(max_len, d_model)` table is trained, initialised
    from a normal distribution with standard deviation 0.02 (GPT-2's choice);
    with `position="rope"` or `"relative"` nothing is added here (the
    attention layers rotate queries and keys, or add T5's relative position
    bias to their scores) and the layer has no position parameters.

    Args:
        vocab_size: number of token ids.
        d_model: embedding width.
        max_len: longest sequence accepted.
        position: `"learned"`, `"sinusoidal"`, `"rope"` or `"relative"`.
        mask_zero: treat id 0 as padding and propagate a Keras mask
            (`True` = real token) to the layers that follow.
        embeddings_initializer: initializer of the token table.

    Call arguments:
        inputs: int ids `[batch, time]`, or `[batch, time, d_model]` vectors
            when `reverse=True`.
        reverse: project vectors back to vocabulary logits.
        positions: optional int positions `[batch, time]` of the ids
            (default `0 .. time-1`); a KV-cached decoder feeds one token at
            position `t`, or left-padded rows whose positions start later.

    Example:

    >>> layer = PositionalEmbedding(vocab_size=100, d_model=16, max_len=32)
    >>> layer(np.array([[5, 7, 0]])).shape
    (1, 3, 16)
    """

    def __init__(
        self,
        vocab_size,
        d_model,
        max_len,
        position="learned",
        mask_zero=False,
        embeddings_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position not in ("learned", "sinusoidal", "rope", "relative"):
            raise UserInputError(
                f"position must be 'learned', 'sinusoidal', 'rope' or 'relative', got {position!r}"
            )
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.max_len = max_len
        self.position = position
        self.mask_zero = mask_zero
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer or keras.initializers.RandomNormal(stddev=0.02)
        )
        self.supports_masking = mask_zero

    def build(self, input_shape):
        self.token_embedding = keras.layers.ReversibleEmbedding(
            self.vocab_size,
            self.d_model,
            tie_weights=True,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.token_embedding.build(input_shape)
        if self.position == "learned":
            self.position_embeddings = self.add_weight(
                name="position_embeddings",
                shape=(self.max_len, self.d_model),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
            )
        else:
            self.position_embeddings = None
        self.built = True

    def call(self, inputs, reverse=False, positions=None):
        if reverse:
            return ops.cast(self.token_embedding(inputs, reverse=True), "float32")
        length = inputs.shape[1]
        if length is not None and length > self.max_len:
            raise UserInputError(
                f"sequence of length {length} is longer than max_len={self.max_len}"
            )
        x = self.token_embedding(inputs)
        if self.position in ("rope", "relative"):
            return x
        if self.position == "learned":
            table = self.position_embeddings
        else:
            x = x * ops.cast(math.sqrt(self.d_model), x.dtype)
            table = ops.convert_to_tensor(sinusoidal_positions(self.max_len, self.d_model))
        if positions is None:
            added = table[: ops.shape(inputs)[1]][None]
        else:
            added = ops.take(table, ops.cast(positions, "int32"), axis=0)
        return x + ops.cast(added, x.dtype)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero or len(inputs.shape) == 3:  # no mask on reverse=True logits
            return None
        return ops.not_equal(inputs, 0)

    def compute_output_spec(self, inputs, reverse=False, positions=None):
        if reverse:
            shape = tuple(inputs.shape[:-1]) + (self.vocab_size,)
            return keras.KerasTensor(shape, dtype="float32")
        return keras.KerasTensor(tuple(inputs.shape) + (self.d_model,), dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            d_model=self.d_model,
            max_len=self.max_len,
            position=self.position,
            mask_zero=self.mask_zero,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config
