"""The char-RNN baseline of Géron's chapter 16: embeddings, LSTMs, logits."""

import keras


def build_charrnn(vocab_size, embedding_dim=128, units=384, num_layers=1, dropout=0.0,
                  name="charrnn") -> keras.Model:
    """A character LSTM language model: ids `[batch, time]` -> logits `[batch, time, vocab]`.

    The baseline the mini-GPT is compared with: the same data, split, loss and
    training loop, but recurrence instead of attention. Like the GPT it is
    causal (the output at `t` only sees inputs up to `t`) and is trained on
    every position at once.

    Args:
        vocab_size: number of token ids.
        embedding_dim: width of the character embedding.
        units: LSTM state size.
        num_layers: stacked LSTM layers.
        dropout: dropout on each LSTM's inputs.

    Example:

    >>> model = build_charrnn(65, embedding_dim=8, units=16)
    >>> model(np.zeros((2, 10), "int32")).shape
    (2, 10, 65)
    """
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(token_ids)
    for index in range(num_layers):
        x = keras.layers.LSTM(units, return_sequences=True, dropout=dropout, name=f"lstm_{index}")(x)
    logits = keras.layers.Dense(vocab_size, dtype="float32", name="logits")(x)
    return keras.Model(token_ids, logits, name=name)
