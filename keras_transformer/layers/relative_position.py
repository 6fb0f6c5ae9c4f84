"""T5's relative position bias: a learned scalar per head and distance bucket, added to the
attention scores (Shaw et al. 2018; Raffel et al. 2020, section 2.1).

Instead of adding position vectors to the token embeddings, every attention
score `q_t . k_s` gets a bias `b[h, bucket(s - t)]` that depends only on how
far key `s` is from query `t`. Near distances have a bucket each; farther
ones share logarithmically wider buckets, and every distance from
`max_distance` on falls into the last one. An encoder (bidirectional) gives
keys before and after the query separate halves of the buckets; a decoder
(causal) only ever sees keys at or before the query, so all its buckets
count backwards.
"""

import math

import keras
from keras import ops


def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32,
                             max_distance=128):
    """The bucket of each relative position `key_position - query_position`.

    Args:
        relative_position: int tensor of any shape.
        bidirectional: keys after the query get buckets of their own (an
            encoder); otherwise (a causal decoder) every key after the query
            is bucket 0, like the query itself.
        num_buckets: number of buckets.
        max_distance: distances from here on share the last bucket.

    Returns:
        An int32 tensor of the shape of `relative_position`, values in
        `[0, num_buckets)`. With `bidirectional=True` the upper half of the
        buckets is for keys after the query; of each half (of all buckets
        when causal), the lower half holds the distances `0, 1, ...` exactly
        and the upper half spans the distances up to `max_distance` on a
        logarithmic scale.

    Example:

    >>> relative_position_bucket(np.array([-3, -1, 0, 1, 3]), num_buckets=8, max_distance=20)
    array([2, 1, 0, 5, 6], dtype=int32)
    """
    relative_position = ops.cast(relative_position, "int32")
    bucket = ops.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = ops.cast(relative_position > 0, "int32") * num_buckets
        distance = ops.abs(relative_position)
    else:
        distance = -ops.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    # float32 arithmetic in T5's order, so that distances on a bucket boundary land
    # where they do in the reference implementation.
    ratio = ops.cast(ops.maximum(distance, max_exact), "float32") / float(max_exact)
    logarithmic = max_exact + ops.cast(
        ops.log(ratio) / math.log(max_distance / max_exact) * float(num_buckets - max_exact),
        "int32",
    )
    logarithmic = ops.minimum(logarithmic, num_buckets - 1)
    return bucket + ops.where(distance < max_exact, distance, logarithmic)


@keras.saving.register_keras_serializable(package="keras_transformer")
class RelativePositionBias(keras.layers.Layer):
    """The attention bias of T5's relative positions: `[1, heads, queries, keys]`.

    A table of `num_buckets x num_heads` learned scalars; the bias of query
    position `t` and key position `s` in head `h` is
    `table[relative_position_bucket(s - t), h]`. T5 makes one per stack (in
    the first block of the encoder and of the decoder) and adds it to the
    self-attention scores of every block of that stack; here the model owns
    the layer, calls it once per stack and passes the bias to every block
    (`TransformerBlock(..., attention_bias=bias)`). Cross-attention gets no
    bias.

    Args:
        num_heads: attention heads (one bias per head).
        num_buckets: relative-position buckets (T5: 32).
        max_distance: distances from here on share the last bucket (T5: 128).
        bidirectional: `True` for an encoder, `False` for a causal decoder.
        embeddings_initializer: initializer of the table.

    Call arguments:
        inputs: a tensor `[batch, time, ...]` (token ids or hidden states)
            of the sequence attending to itself: the queries and keys are
            its positions `0 .. time-1`.
        query_positions: optional int `[queries]` (or `[batch, queries]`)
            positions of the queries, e.g. the position of the one new token
            of a KV-cached decoding step; `inputs` is then only a placeholder.
        key_positions: optional int `[keys]` positions of the keys (e.g. the
            slots of a KV cache); default `0 .. time-1`.

    Returns:
        float32 bias `[1 (or batch), num_heads, queries, keys]`.

    Example:

    >>> layer = RelativePositionBias(num_heads=4, num_buckets=8, max_distance=20)
    >>> layer(np.zeros((2, 5), "int32")).shape
    (1, 4, 5, 5)
    """

    def __init__(self, num_heads, num_buckets=32, max_distance=128, bidirectional=True,
                 embeddings_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer or keras.initializers.RandomNormal(stddev=0.02)
        )

    def build(self, inputs_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_buckets, self.num_heads),
            initializer=self.embeddings_initializer,
        )
        self.built = True

    def call(self, inputs, query_positions=None, key_positions=None):
        length = ops.shape(inputs)[1]
        if query_positions is None:
            query_positions = ops.arange(length, dtype="int32")
        if key_positions is None:
            key_positions = ops.arange(length, dtype="int32")
        query_positions = ops.cast(query_positions, "int32")
        if len(query_positions.shape) == 1:
            query_positions = query_positions[None]
        relative = ops.cast(key_positions, "int32")[None, None, :] - query_positions[:, :, None]
        bucket = relative_position_bucket(relative, self.bidirectional, self.num_buckets,
                                          self.max_distance)
        bias = ops.take(ops.cast(self.embeddings, "float32"), bucket, axis=0)  # [b, q, k, heads]
        return ops.transpose(bias, (0, 3, 1, 2))

    def compute_output_spec(self, inputs, query_positions=None, key_positions=None):
        queries = inputs.shape[1] if query_positions is None else query_positions.shape[-1]
        keys = inputs.shape[1] if key_positions is None else key_positions.shape[-1]
        rows = 1 if query_positions is None or len(query_positions.shape) == 1 else \
            query_positions.shape[0]
        return keras.KerasTensor((rows, self.num_heads, queries, keys), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
            bidirectional=self.bidirectional,
            embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer),
        )
        return config
