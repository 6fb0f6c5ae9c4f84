"""Autoregressive decoding: feed the model its own output one token at a time.

Two compiled decoding loops (each one `tf.function` around a
`tf.while_loop`, XLA-compiled by default) produce the same tokens within the
model's context:

- cached (GPTs from `build_gpt`, the default): the prompts are encoded once,
  filling a key/value cache; each new token then runs through the model
  alone and attends to the cached keys and values. Prompts of different
  lengths are left-padded, so every row writes its next token into the same
  cache slot; each row's positions start after its own padding, and padding
  slots are masked out. New tokens go in chunks of `recent_slots` (32): within
  a chunk the long cache is only read, each token's keys and values go to a
  short recent cache, and the chunk's end commits that to the long cache in
  one write. Under XLA a cache written at every step is re-read by slow
  reductions or copied at every step; this is 1.45x faster over 1,000 tokens
  of the default model (`benchmarks/RESULTS.md`, issue 17).
- uncached (`use_cache=False`, and models without a cache such as the
  char-RNN): every step re-runs the full model over a fixed window of the
  last tokens of each (right-padded) row.

A row may grow past the model's context (`max_len`) when `slide=True` (the
default of `generate()` and of the command-line tool; otherwise that is a
`UserInputError`). The two loops then see different windows:

- cached (`decode_sliding`): when the cache is full, the last half window
  is encoded again once, and decoding goes on cached behind it, so each new
  token sees between `max_len // 2` and `max_len` earlier tokens: one
  re-encoding per `max_len // 2` new tokens, at about the cached speed;
- uncached: every new token sees exactly the last `max_len` tokens (exact
  one-token sliding, one full forward pass per token).
"""

import numpy as np
import tensorflow as tf

from keras_transformer.errors import UserInputError
from keras_transformer.generation.sampling import sample_next
from keras_transformer.layers.attention import commit_recent, two_part_cache
from keras_transformer.layers.masking import attention_mask
from keras_transformer.models.gpt import supports_cache


def context_length(model):
    """The longest input `model` accepts: the `max_len` of its position embedding."""
    for layer in model.layers:
        if hasattr(layer, "max_len"):
            return int(layer.max_len)
    raise UserInputError(
        f"model {model.name!r} has no position embedding; pass context=N to generate()"
    )


def special_ids(tokenizer):
    """`(pad_id, stop_id)` of decoding with `tokenizer`.

    This package's tokenizers keep id 0 for padding, never generated, and have
    no end id; a pretrained checkpoint's tokenizer (Hugging Face's) uses every
    id and ends text with its eos id.
    """
    if getattr(tokenizer, "kind", None) == "byte_level_bpe":
        return None, tokenizer.eos_id
    return 0, None


class Decoder:
    """Compiled decoding loops for one model, reused across calls.

    Args:
        model: a language model (int ids -> logits).
        context: the longest sequence the model sees (default: its `max_len`).
        pad_id: the padding id, never generated (`None` allows every id).
        jit_compile: compile the loops with XLA.
        use_cache: KV-cached decoding (`None`: whenever the model supports
            it, i.e. it is a GPT from `build_gpt`).
        slide: let rows grow past `context` by sliding the window (see the
            module docstring for what each loop then sees); otherwise that is
            a `UserInputError`.
        recent_slots: the cached loop decodes in chunks of this many tokens
            (default 32; refused without a cache): within a chunk the long
            cache is only read and each token's keys and values go to a short
            recent cache, committed to the long one once per chunk
            (`layers.attention.commit_recent`). The tokens do not depend on it.

    The sampling settings (temperature, top-k, top-p, seed) are tensors, so
    a loop is traced once per batch size, prompt length and number of new
    tokens.

    `cached_loop` and `sliding_loop` are `decode_left_padded` and
    `decode_sliding` compiled as the decoder compiles (XLA by default); the
    exported SavedModel calls them from its own graph, so its sampled tokens
    are the ones this class draws.
    """

    def __init__(self, model, context=None, pad_id=0, jit_compile=True, use_cache=None,
                 slide=False, recent_slots=None):
        self.model = model
        self.context = int(context or context_length(model))
        self.pad_id = pad_id
        cacheable = supports_cache(model)
        if use_cache and not cacheable:
            raise UserInputError(f"model {model.name!r} has no KV cache; use use_cache=False")
        self.use_cache = cacheable if use_cache is None else bool(use_cache)
        if self.use_cache:
            self.context = min(self.context, context_length(model))
        elif recent_slots is not None:
            raise UserInputError("recent_slots is a setting of the cached loop; this decoder "
                                 "has no cache (use_cache=False)")
        self.recent_slots = 32 if recent_slots is None else int(recent_slots)
        if self.recent_slots < 1:
            raise UserInputError(f"recent_slots must be >= 1, got {recent_slots}")
        self.slide = slide
        # Compiled, the one-token products run with their biases folded in (XLA runs a
        # product followed by its bias add as a slow one-core loop); without XLA the
        # folded kernels would be rebuilt at every step.
        self.jit_compile = bool(jit_compile)
        self.cached_loop = tf.function(self.decode_left_padded, jit_compile=jit_compile)
        self.sliding_loop = tf.function(self.decode_sliding, jit_compile=jit_compile)
        self._uncached_loop = tf.function(self._uncached, jit_compile=jit_compile)

    def _sample(self, logits, settings, step):
        temperature, top_k, top_p, seed = settings
        if self.pad_id is not None:
            banned = tf.one_hot(self.pad_id, tf.shape(logits)[-1], on_value=-float("inf"),
                                off_value=0.0)
            logits = logits + banned[None, :]
        return sample_next(logits, temperature, top_k, top_p, tf.stack([seed, step]))

    def decode_left_padded(self, ids, padding, num_new, temperature, top_k, top_p, seed):
        """The KV-cached loop: `num_new` (>= 1) ids after left-padded prompts.

        Graph code, called inside a `tf.function`: `ids` is int32 `[batch,
        prompt_len]` with `padding[b]` padding ids at the start of row b,
        and the batch size, prompt length and `num_new` may all be unknown
        until run time (the exported SavedModel traces it that way). The
        cache holds `prompt_len + num_new - 1` tokens, so that sum must not
        exceed the model's context (it has `recent_slots` more slots, so
        that a chunk's commit always fits). Returns int32 `[batch, num_new]`.
        """
        return self._decode(ids, padding, num_new, (temperature, top_k, top_p, seed), False)

    def decode_sliding(self, ids, padding, num_new, temperature, top_k, top_p, seed):
        """`decode_left_padded` for text that outgrows the context.

        The cache has `context` slots. When it is full, the last
        `context // 2` tokens of each row (the newest token included) are
        encoded again in one call, at positions from 0, into the first slots,
        and decoding goes on cached behind them. Each new token so sees
        between half a window and a whole window of the tokens before it:
        the window slides by half a window at a time, not by one token (exact
        one-token sliding is the uncached loop's). Until the cache is first
        full the tokens are those of `decode_left_padded`.
        """
        return self._decode(ids, padding, num_new, (temperature, top_k, top_p, seed), True)

    def _decode(self, ids, padding, num_new, settings, slide):
        batch, prompt_len = tf.shape(ids)[0], tf.shape(ids)[1]
        head = self.model.output_head()  # the logits' matrix, made once outside the loop
        slots = self.context if slide else prompt_len + num_new - 1
        recent = self.recent_slots
        # The long cache has `recent` spare slots: a commit of the recent part always fits.
        slot = tf.range(slots + recent)
        keep = max(1, self.context // 2)

        def encode(tokens, pad, cache):
            """Logits of the last of `tokens` (left-padded by `pad`), written from slot 0."""
            length = tf.shape(tokens)[1]
            own_slot = tf.range(length)
            positions = tf.maximum(own_slot[None, :] - pad[:, None], 0)
            # Each token sees the real slots up to its own.
            mask = attention_mask(own_slot[None, :], slot, slot[None, :] >= pad[:, None],
                                  causal=True)
            logits, cache = self.model.call_with_cache(tokens, positions, cache, 0, mask, head,
                                                       fold_biases=self.jit_compile)
            return logits[:, -1], cache

        last, cache = encode(ids, padding, self.model.init_cache(batch, slots + recent))
        # The last `keep` ids of every row, left-padded, and how many of them are padding.
        window = tf.concat([tf.zeros([batch, keep], tf.int32), ids], axis=1)[:, -keep:]
        window_pad = tf.maximum(padding + keep - prompt_len, 0)

        def sample(t, last, out, window, window_pad):
            token = self._sample(last, settings, t)
            if slide:  # keep the last `keep` ids for the next re-encoding
                window = tf.concat([window[:, 1:], token[:, None]], axis=1)
                window_pad = tf.maximum(window_pad - 1, 0)
            return token, out.write(t, token), window, window_pad

        def more(t, *_):
            return t < num_new - 1

        def chunk(t, last, cache, out, index, pad, window, window_pad):
            """Up to `recent` new tokens, one at a time, from slot `index` on.

            The long cache is only read here: each step writes its keys and
            values into a recent cache of `recent` slots, committed to the
            long one at slot `index` when the chunk ends.
            """
            # The long cache's real slots before this chunk, then the recent slots up to j.
            long_mask = attention_mask(tf.fill([1, 1], index - 1), slot,
                                       slot[None, :] >= pad[:, None], causal=True)
            recent_slot = tf.range(recent)

            def step(j, t, last, parts, out, window, window_pad):
                token, out, window, window_pad = sample(t, last, out, window, window_pad)
                own = attention_mask(tf.fill([1, 1], j), recent_slot, causal=True)
                mask = tf.concat([long_mask, tf.broadcast_to(own, [batch, 1, recent])], axis=-1)
                logits, parts = self.model.call_with_cache(
                    token[:, None], (index + j - pad)[:, None], parts, j, mask, head,
                    fold_biases=self.jit_compile)
                return j + 1, t + 1, logits[:, -1], parts, out, window, window_pad

            parts = [two_part_cache(long, short) for long, short in
                     zip(cache, self.model.init_cache(batch, recent), strict=True)]
            j, t, last, parts, out, window, window_pad = tf.while_loop(
                lambda j, t, *_: (j < recent) & more(t) & (index + j < slots), step,
                (tf.constant(0), t, last, parts, out, window, window_pad),
            )
            cache = [commit_recent(long, layer[2:], index)
                     for long, layer in zip(cache, parts, strict=True)]
            return t, last, cache, out, index + j, pad, window, window_pad

        def slide_window(t, last, cache, out, index, pad, window, window_pad):
            """Sample token `t` into a full cache: encode the last `keep` ids again."""
            token, out, window, window_pad = sample(t, last, out, window, window_pad)
            last, cache = encode(window, window_pad, cache)
            return t + 1, last, cache, out, tf.constant(keep), window_pad, window, window_pad

        def segment(*state):
            """Chunks until the cache is full, then (if tokens remain) one re-encoding."""
            state = tf.while_loop(
                lambda t, last, cache, out, index, *_: more(t) & (index < slots), chunk, state
            )
            return tf.cond(more(*state), lambda: slide_window(*state), lambda: state)

        out = tf.TensorArray(tf.int32, size=num_new)
        state = (tf.constant(0), last, cache, out, prompt_len, padding, window, window_pad)
        # Without sliding the cache never fills: one loop of chunks.
        _, last, _, out, *_ = tf.while_loop(more, segment if slide else chunk, state)
        last_step = tf.convert_to_tensor(num_new - 1, tf.int32)
        out = out.write(num_new - 1, self._sample(last, settings, last_step))
        return tf.transpose(out.stack())

    def _uncached(self, buffer, lengths, num_new, window, temperature, top_k, top_p, seed):
        """`num_new` tokens after right-padded rows, re-running the model over a window."""
        settings = (temperature, top_k, top_p, seed)
        batch, total = buffer.shape
        rows = tf.range(batch)

        def step(t, buffer, lengths, out):
            start = tf.maximum(lengths - window, 0)
            index = start[:, None] + tf.range(window)[None, :]
            ids = tf.gather(buffer, tf.minimum(index, total - 1), batch_dims=1)
            ids = tf.where(index < lengths[:, None], ids, 0)
            logits = self.model(ids, training=False)
            last = tf.gather(logits, lengths - 1 - start, axis=1, batch_dims=1)
            token = self._sample(last, settings, t)
            buffer = tf.tensor_scatter_nd_update(buffer, tf.stack([rows, lengths], 1), token)
            return t + 1, buffer, lengths + 1, out.write(t, token)

        out = tf.TensorArray(tf.int32, size=num_new)
        _, _, _, out = tf.while_loop(
            lambda t, *_: t < num_new, step, (tf.constant(0), buffer, lengths, out)
        )
        return tf.transpose(out.stack())

    def _run_uncached(self, rows, num_new, settings):
        longest = max(len(r) for r in rows)
        buffer = np.zeros((len(rows), longest + num_new), dtype=np.int32)
        for i, row in enumerate(rows):
            buffer[i, : len(row)] = row
        lengths = np.array([len(r) for r in rows], dtype=np.int32)
        window = min(self.context, longest + num_new - 1)
        return self._uncached_loop(
            buffer, lengths, num_new, window, *settings
        ).numpy()

    def __call__(self, prompts, max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                 stop_id=None):
        """Continue each int id sequence in `prompts` by `max_new_tokens` ids.

        A row that draws `stop_id` (the end-of-sequence id of a pretrained
        tokenizer) ends there: its ids stop after it.

        Returns a list of int32 arrays, the new ids only.
        """
        new_ids = self._generate(prompts, max_new_tokens, temperature, top_k, top_p, seed)
        if stop_id is None:
            return new_ids
        ends = [np.flatnonzero(row == stop_id) for row in new_ids]
        return [row[: end[0] + 1] if len(end) else row
                for row, end in zip(new_ids, ends, strict=True)]

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        rows = [np.asarray(p, dtype=np.int32).reshape(-1) for p in prompts]
        for p in rows:
            if not len(p):
                raise UserInputError("the prompt is empty; give at least one character")
            if len(p) > self.context:
                raise UserInputError(
                    f"the prompt is {len(p)} tokens long, longer than the model's context "
                    f"of {self.context}"
                )
        if max_new_tokens < 0:
            raise UserInputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        longest = max(len(p) for p in rows)
        if longest + max_new_tokens - 1 > self.context and not self.slide:
            raise UserInputError(
                f"{longest} prompt tokens + {max_new_tokens} new tokens go past the model's "
                f"context of {self.context} positions; generate fewer tokens or let the "
                "window slide (slide=True, --slide)"
            )
        if max_new_tokens == 0:
            return [np.zeros(0, np.int32) for _ in rows]
        settings = (
            tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32),
            tf.constant(top_p, tf.float32),
            tf.constant(seed, tf.int32),
        )
        if not self.use_cache:
            return list(self._run_uncached(rows, max_new_tokens, settings))
        ids = np.zeros((len(rows), longest), dtype=np.int32)
        padding = np.array([longest - len(r) for r in rows], dtype=np.int32)
        for i, row in enumerate(rows):
            ids[i, padding[i]:] = row
        fits = longest + max_new_tokens - 1 <= self.context
        loop = self.cached_loop if fits else self.sliding_loop
        return list(loop(ids, padding, max_new_tokens, *settings).numpy())


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
    use_cache=True,
    slide=True,
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
        use_cache: KV-cached decoding for GPTs (ignored for models without a
            cache); `False` re-runs the model over the window at every step.
        slide: let the text grow past the context by sliding the window
            (`False`: that is a `UserInputError`); the command-line tool has
            the same default (`--slide/--no-slide`). Cached, the window slides
            by half a window at a time; uncached, by one token (see
            `keras_transformer.generation.decoding`).

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
    pad_id, stop_id = special_ids(tokenizer)
    decoder = Decoder(model, context, pad_id=pad_id,
                      use_cache=use_cache and supports_cache(model), slide=slide)
    new_ids = decoder(
        [tokenizer.encode(p) for p in prompts],
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop_id=stop_id,
    )
    new_ids = [ids[:-1] if len(ids) and stop_id is not None and ids[-1] == stop_id else ids
               for ids in new_ids]
    texts = [p + tokenizer.decode(ids) for p, ids in zip(prompts, new_ids, strict=True)]
    return texts[0] if single else texts
