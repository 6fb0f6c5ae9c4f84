"""Export a GPT and its tokenizer as a TensorFlow SavedModel that generates text.

`export_generator(model, tokenizer, out_dir)` writes a SavedModel with two
signatures, callable from any TensorFlow program without this package:

- `generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)`:
  `prompt` is tf.string `[batch]`, `max_new_tokens`, `top_k` and `seed` are
  int32 scalars, `temperature` and `top_p` float32 scalars; it returns
  `{"text": tf.string [batch]}`, each prompt followed by its continuation.
  The tokenizer and the KV-cached decoding loop (`Decoder.decode_left_padded`,
  sampling with `sample_next`) run inside the graph, so the text equals
  `keras_transformer.generate(model, tokenizer, prompts, ...)` with the same
  settings and seed. `temperature=0` is greedy decoding, `top_k=0` and
  `top_p=1` turn those filters off.
- `logits(token_ids)`: int32 `[batch, time]` -> `{"logits": float32 [batch,
  time, vocab]}`, the model itself.

Text that outgrows the context slides its window as the library's cached
loop does (`Decoder.sliding_loop`: the last half window is encoded again
once the cache is full). A prompt longer than the context fails with
`tf.errors.InvalidArgumentError` whose message starts `assertion failed:`
and says what is wrong, as do an empty prompt, characters outside a
character vocabulary and sampling settings out of range
(`assertion_message` extracts the sentence).

A SavedModel with a SentencePiece tokenizer needs `import tensorflow_text`
before `tf.saved_model.load`, to register the SentencePiece ops.
"""

import codecs
import os
import re

import tensorflow as tf

from keras_transformer.data.graph_tokenizers import graph_tokenizer
from keras_transformer.errors import UserInputError
from keras_transformer.files import replaced_directory
from keras_transformer.generation.decoding import Decoder, context_length, special_ids
from keras_transformer.models.gpt import supports_cache

GENERATE_SIGNATURE = (
    tf.TensorSpec([None], tf.string, name="prompt"),
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
    tf.TensorSpec([], tf.int32, name="seed"),
)
LOGITS_SIGNATURE = (tf.TensorSpec([None, None], tf.int32, name="token_ids"),)


def _check(condition, template, values=()):
    """An assertion whose error message is `template` formatted with `values`."""
    return tf.debugging.Assert(condition, [tf.strings.format(template, values)])


def assertion_message(error):
    """The sentence of a failed `generate`/`logits` assertion, or `None`.

    `error` is the `tf.errors.InvalidArgumentError` a call raised; its
    message holds `assertion failed: [SENTENCE]` among TensorFlow's details,
    with the sentence C-escaped (`model\\'s`), which this undoes.
    """
    match = re.search(r"assertion failed: \[(.*)\]", str(error))
    if not match:
        return None
    return codecs.escape_decode(match.group(1).encode("utf-8"))[0].decode("utf-8", "replace")


class GeneratorModule(tf.Module):
    """The `tf.Module` that is saved: the model's variables, the tokenizer, two functions.

    Args:
        model: a GPT from `build_gpt`.
        tokenizer: its tokenizer (`kind` "char" or "bpe").
        context: the longest sequence to run (default: the model's `max_len`).
        jit_compile: compile the decoding loop with XLA (see `export_generator`).
    """

    def __init__(self, model, tokenizer, context=None, jit_compile=True, name="generator"):
        super().__init__(name=name)
        if not supports_cache(model):
            raise UserInputError(
                f"model {model.name!r} is not a GPT from build_gpt; only GPTs can be exported "
                "for generation (the SavedModel decodes with the KV cache)"
            )
        vocab_size = int(model.output.shape[-1])
        if vocab_size != tokenizer.vocab_size:
            raise UserInputError(
                f"the model has {vocab_size} outputs but the tokenizer {tokenizer.vocab_size} ids"
            )
        self.vocab_size = vocab_size
        self.context = min(int(context or context_length(model)), context_length(model))
        self.model_variables = list(model.variables)
        self.tokenizer = graph_tokenizer(tokenizer, vocab_size)
        # The ids `keras_transformer.generate` bans and stops at, for this tokenizer.
        pad_id, self.stop_id = special_ids(tokenizer)
        # A plain object (not tracked): the variables above are all that is saved of the model.
        self._decoder = Decoder(
            model, self.context, pad_id=pad_id, jit_compile=jit_compile, use_cache=True,
            slide=True,
        )

    def _check_settings(self, max_new_tokens, temperature, top_k, top_p):
        return [
            _check(max_new_tokens >= 0, "max_new_tokens must be >= 0, got {}", (max_new_tokens,)),
            _check(temperature >= 0.0, "temperature must be >= 0, got {}", (temperature,)),
            _check(top_k >= 0, "top_k must be >= 0, got {}", (top_k,)),
            _check((top_p > 0.0) & (top_p <= 1.0), "top_p must be in (0, 1], got {}", (top_p,)),
        ]

    @tf.function(input_signature=GENERATE_SIGNATURE, autograph=False)
    def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Each prompt followed by `max_new_tokens` generated tokens, as text."""
        checks = self._check_settings(max_new_tokens, temperature, top_k, top_p)
        ids = self.tokenizer.encode(prompt)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        longest = tf.reduce_max(tf.concat([lengths, [0]], 0))
        context = tf.constant(self.context, tf.int32)
        checks += [
            _check(tf.size(prompt) > 0, "no prompts given"),
            _check(tf.reduce_all(lengths > 0), "the prompt is empty; give at least one character"),
            _check(longest <= context,
                   "the prompt is {} tokens long, longer than the model's context of {}",
                   (longest, context)),
        ]
        with tf.control_dependencies(checks):
            right_padded = ids.to_tensor(0)
            padding = tf.identity(longest - lengths)
        # Left-pad: slot j of row b holds token j - padding[b] of the prompt.
        source = tf.range(longest)[None, :] - padding[:, None]
        left_padded = tf.where(
            source >= 0, tf.gather(right_padded, tf.maximum(source, 0), batch_dims=1), 0
        )
        settings = (temperature, top_k, top_p, seed)

        def decode():
            fits = longest + max_new_tokens - 1 <= context
            return tf.cond(
                fits,
                lambda: self._decoder.cached_loop(left_padded, padding, max_new_tokens, *settings),
                lambda: self._decoder.sliding_loop(left_padded, padding, max_new_tokens, *settings),
            )

        new_ids = tf.cond(
            max_new_tokens > 0, decode, lambda: tf.zeros([tf.size(prompt), 0], tf.int32)
        )
        if self.stop_id is not None:  # each row ends before its first eos id
            before_stop = tf.cumsum(tf.cast(new_ids == self.stop_id, tf.int32), axis=1) == 0
            new_ids = tf.RaggedTensor.from_tensor(
                new_ids, lengths=tf.reduce_sum(tf.cast(before_stop, tf.int32), axis=1))
        return {"text": tf.strings.join([prompt, self.tokenizer.decode(new_ids)])}

    @tf.function(input_signature=LOGITS_SIGNATURE, autograph=False)
    def logits(self, token_ids):
        """The model's logits for int32 `token_ids` `[batch, time]`."""
        length = tf.shape(token_ids)[1]
        checks = [
            _check(length <= self.context,
                   "token_ids are {} long, longer than the model's context of {}",
                   (length, self.context)),
            _check(tf.reduce_all((token_ids >= 0) & (token_ids < self.vocab_size)),
                   "token ids must be in [0, {})", (self.vocab_size,)),
        ]
        with tf.control_dependencies(checks):
            token_ids = tf.identity(token_ids)
        logits = self._decoder.model(token_ids, training=False)
        return {"logits": tf.cast(logits, tf.float32)}


def check_export_dir(out_dir, overwrite=False):
    """Raise `UserInputError` unless a SavedModel may be written to `out_dir`.

    An existing empty directory is fine; anything else there needs `overwrite`.
    """
    out_dir = os.fspath(out_dir)
    empty_dir = os.path.isdir(out_dir) and not os.listdir(out_dir)
    if os.path.exists(out_dir) and not overwrite and not empty_dir:
        raise UserInputError(f"{out_dir} already exists; choose another export directory")


def export_generator(model, tokenizer, out_dir, context=None, overwrite=False, jit_compile=True):
    """Write a SavedModel with `generate` and `logits` signatures to `out_dir`.

    Args:
        model: a GPT from `build_gpt`.
        tokenizer: its tokenizer: a `CharTokenizer`, or a SentencePiece
            tokenizer (`kind == "bpe"`, the serialized model in `proto`).
        out_dir: the SavedModel directory. It is written to a temporary
            directory beside it and renamed, so it is never left half-written.
        context: the context of the run (`config.json`), default the model's
            `max_len`.
        overwrite: replace an existing `out_dir`; otherwise that is an error.
        jit_compile: run the decoding loop with XLA, as `generate` does, so
            that sampled (not only greedy) text equals the library's; XLA
            compiles it again for each new batch size, prompt length and
            `max_new_tokens`. `False` suits a TensorFlow without XLA.

    Returns:
        `out_dir`.

    Example:

    >>> export_generator(model, tokenizer, "runs/gpt/saved_model")
    >>> loaded = tf.saved_model.load("runs/gpt/saved_model")
    >>> loaded.signatures["generate"](prompt=tf.constant(["ROMEO:"]), max_new_tokens=tf.constant(20),
    ...     temperature=tf.constant(0.7), top_k=tf.constant(0), top_p=tf.constant(1.0),
    ...     seed=tf.constant(1))["text"]
    """
    check_export_dir(out_dir, overwrite)
    out_dir = os.path.abspath(os.fspath(out_dir))
    module = GeneratorModule(model, tokenizer, context, jit_compile=jit_compile)
    signatures = {
        "generate": module.generate.get_concrete_function(),
        "logits": module.logits.get_concrete_function(),
    }
    with replaced_directory(out_dir) as staging:
        tf.saved_model.save(module, staging, signatures=signatures)
    return out_dir
