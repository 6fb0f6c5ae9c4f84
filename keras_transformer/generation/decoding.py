"""Autoregressive decoding: feed the model its own output one token at a time."""

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError
from keras_transformer.generation.sampling import sample_next


def context_length(model):
    """The longest input `model` accepts: the `max_len` of its position embedding."""
    for layer in model.layers:
        if hasattr(layer, "max_len"):
            return int(layer.max_len)
    raise UserInputError(
        f"model {model.name!r} has no position embedding; pass context=N to generate()"
    )


class Decoder:
    """A compiled next-token step over a fixed window, reused across calls.

    Each step runs the model over the last `context` tokens of every row
    (right-padded) and samples the token after each row's last real
    position. The step is one XLA-compiled function whose settings
    (temperature, top-k, top-p, seed) are tensors, so it is traced once.
    The padding id `pad_id` is never generated (`None` allows every id).
    """

    def __init__(self, model, context=None, pad_id=0, jit_compile=True):
        self.model = model
        self.context = int(context or context_length(model))
        self.pad_id = pad_id
        self._step = tf.function(self._next_token, jit_compile=jit_compile)

    def _next_token(self, window, lengths, temperature, top_k, top_p, seed):
        logits = self.model(window, training=False)
        last = tf.gather(logits, lengths - 1, axis=1, batch_dims=1)
        if self.pad_id is not None:
            banned = tf.one_hot(self.pad_id, tf.shape(last)[-1], on_value=-float("inf"), off_value=0.0)
            last = last + banned[None, :]
        return sample_next(last, temperature, top_k, top_p, seed)

    def __call__(self, prompts, max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        """Continue each int id sequence in `prompts` by `max_new_tokens` ids.

        Returns a list of int32 arrays, the new ids only. When a row grows
        past the window, its oldest tokens slide out of view.
        """
        rows = [list(np.asarray(p, dtype=np.int32)) for p in prompts]
        for p in rows:
            if not p:
                raise UserInputError("the prompt is empty; give at least one character")
            if len(p) > self.context:
                raise UserInputError(
                    f"the prompt is {len(p)} tokens long, longer than the model's context "
                    f"of {self.context}"
                )
        settings = (
            tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32),
            tf.constant(top_p, tf.float32),
        )
        new = [[] for _ in rows]
        window = np.zeros((len(rows), self.context), dtype=np.int32)
        for step in range(max_new_tokens):
            lengths = np.empty(len(rows), dtype=np.int32)
            for i, row in enumerate(rows):
                visible = row[-self.context:]
                window[i, : len(visible)] = visible
                window[i, len(visible):] = 0
                lengths[i] = len(visible)
            tokens = self._step(
                window, lengths, *settings, tf.constant([seed, step], tf.int32)
            ).numpy()
            for i, token in enumerate(tokens):
                rows[i].append(int(token))
                new[i].append(int(token))
        return [np.asarray(n, dtype=np.int32) for n in new]


def generate(
    model,
    tokenizer,
    prompt,
    max_new_tokens=100,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    seed=0,
    context=None,
):
    """Generate text from a language model and its tokenizer.

    Args:
        model: a model from `build_gpt` or `build_charrnn` (ids -> logits).
        tokenizer: the tokenizer the model was trained with.
        prompt: a string, or a list of strings for a batch.
        max_new_tokens: tokens to add to each prompt.
        temperature: 0 for greedy decoding; higher is more random.
        top_k: sample only among the `top_k` most likely tokens (0: all).
        top_p: sample only from the nucleus of probability `top_p` (1.0: all).
        seed: the same seed and settings give the same text.
        context: window length for models without a position embedding
            (the char-RNN); defaults to the model's `max_len`.

    Returns:
        The prompt followed by its continuation: a string, or a list of
        strings when `prompt` is a list.

    Example:

    >>> generate(model, tokenizer, "ROMEO:", max_new_tokens=20, temperature=0.7, seed=1)
    'ROMEO:...'
    """
    if not 0.0 < top_p <= 1.0:
        raise UserInputError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise UserInputError(f"top_k must be >= 0, got {top_k}")
    if temperature < 0:
        raise UserInputError(f"temperature must be >= 0, got {temperature}")
    single = isinstance(prompt, str)
    prompts = [prompt] if single else list(prompt)
    decoder = Decoder(model, context)
    new_ids = decoder(
        [tokenizer.encode(p) for p in prompts],
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
    )
    texts = [p + tokenizer.decode(ids) for p, ids in zip(prompts, new_ids, strict=True)]
    return texts[0] if single else texts
