"""The language-model job (`--arch gpt` and `--arch charrnn`): next-token prediction.

With `--tokenizer bpe` the training text is tokenized anew inside `tf.data`
on every pass, with subword sampling; validation uses the deterministic
encoding. Losses are per token; `lm_metrics` converts them to per character
and per word, so BPE and character models compare.
"""

import dataclasses
import math
import os
from dataclasses import dataclass

import keras

from keras_transformer.config import TransformerConfig
from keras_transformer.data import lm_eval_dataset, lm_train_dataset, load_tokenizer, steps_per_pass
from keras_transformer.data.pipelines import num_windows, sampled_ids
from keras_transformer.errors import UserInputError
from keras_transformer.generation import generate
from keras_transformer.models import build_charrnn, build_gpt
from keras_transformer.pretrained import from_pretrained, read_hf_config
from keras_transformer.training.corpus import load_corpus, make_tokenizer
from keras_transformer.training.job import Job, check_count, check_number, check_positive_ints
from keras_transformer.training.reports import bits_per_token


@dataclass
class LMSettings:
    """What a language model's `sample.txt` holds (the settings gpt and charrnn share).

    Args:
        prompt: the text `sample.txt` continues; at least one character, and
            no more tokens than the model's context.
        sample_tokens: tokens generated after the prompt (0: the prompt only).
        sample_temperature: the temperature they are sampled at.
    """

    prompt: str = "ROMEO:"
    sample_tokens: int = 1000
    sample_temperature: float = 0.7

    def check(self):
        """Raise `UserInputError` for values that cannot work."""
        if not self.prompt:
            raise UserInputError("--prompt is empty; sample.txt needs at least one character")
        check_count(self, "sample_tokens")
        # Checked now, not when sample.txt is written at the end of training.
        check_number(self, "sample_temperature")


@dataclass
class CharRNNSettings(LMSettings):
    """The char-RNN's own settings (`arch="charrnn"`): the sample's, and the LSTM's size.

    Args:
        prompt, sample_tokens, sample_temperature: as in `LMSettings`.
        rnn_units: the LSTM's width.
        rnn_layers: stacked LSTM layers.
    """

    rnn_units: int = 384
    rnn_layers: int = 1

    def check(self):
        """Raise `UserInputError` for values that cannot work."""
        check_positive_ints(self, "rnn_units", "rnn_layers")
        super().check()


@dataclass
class GPTSettings(LMSettings):
    """The GPT's own settings (`arch="gpt"`): the sample's, and where the weights start.

    Args:
        prompt, sample_tokens, sample_temperature: as in `LMSettings`.
        init_from: fine-tune a Hugging Face GPT-2 or Llama checkpoint folder
            (`keras_transformer.from_pretrained`): the model, its config and
            its tokenizer come from there, the rest of the run from the
            settings (`None`: train from scratch).
    """

    init_from: str | None = None

    def check(self):
        """Raise `UserInputError` for values that cannot work."""
        if self.init_from is not None and not os.path.isdir(self.init_from):
            raise UserInputError(f"--init-from {self.init_from} is not a directory")
        super().check()


def evaluated_text(tokenizer, val_ids, seq_len):
    """The text whose tokens `lm_eval_dataset` scores: its targets, decoded.

    The validation windows start at `0, seq_len, 2 * seq_len, ...`; their
    targets are the ids `1 .. windows * seq_len`, every one once.
    """
    tokens = num_windows(len(val_ids), seq_len) * seq_len
    return tokens, tokenizer.decode(val_ids[1:tokens + 1])


def lm_metrics(val_loss, num_tokens, text):
    """Per-token, per-character and per-word figures of a validation loss.

    Args:
        val_loss: mean cross-entropy per token (nats) over `num_tokens`.
        num_tokens: the tokens scored.
        text: the text those tokens spell.

    Returns:
        A dict: `val_loss_per_char` (nats), `val_bpc` (bits per character),
        `val_perplexity` (per token, `exp(val_loss)`), `val_word_perplexity`
        (`exp` of the total nats over the whitespace-separated words of
        `text`), `chars_per_token`, and the counts.
    """
    total = val_loss * num_tokens
    chars, words = len(text), len(text.split())
    return {
        "val_loss_per_char": round(total / max(1, chars), 4),
        "val_bpc": round(bits_per_token(total / max(1, chars)), 4),
        "val_perplexity": round(math.exp(min(val_loss, 700.0)), 3),
        "val_word_perplexity": round(math.exp(min(total / max(1, words), 700.0)), 3),
        "chars_per_token": round(chars / max(1, num_tokens), 4),
        "val_tokens": num_tokens,
        "val_chars": chars,
        "val_words": words,
    }


def checkpoint_tokenizer(settings):
    """The tokenizer of `settings.job.init_from`, whose config becomes `settings.model`."""
    folder = settings.job.init_from
    if settings.tokenizer != "char" or settings.vocab_size is not None:
        raise UserInputError("--tokenizer and --vocab-size do not apply with --init-from (the "
                             "checkpoint's own tokenizer is used)")
    config = TransformerConfig.from_hf(read_hf_config(folder))
    tokenizer = load_tokenizer(folder)
    if tokenizer.vocab_size > config.vocab_size:
        raise UserInputError(f"{folder}: the tokenizer has {tokenizer.vocab_size} ids, the model "
                             f"only {config.vocab_size}")
    if settings.seq_len > config.max_len:
        raise UserInputError(f"--seq-len {settings.seq_len} is above the checkpoint's context "
                             f"of {config.max_len}")
    settings.model = config
    return tokenizer


def lm_job(settings):
    """A `Job` training `build_gpt` or `build_charrnn` on a text.

    `settings.job` is the `LMSettings` (gpt) or `CharRNNSettings` (charrnn).
    """
    corpus = load_corpus(settings)
    init_from = getattr(settings.job, "init_from", None)
    if init_from is not None:
        tokenizer = checkpoint_tokenizer(settings)
    else:
        tokenizer = make_tokenizer(settings, corpus)
        # The tokenizer defines the vocabulary: the embedding gets one row per id.
        settings.model = dataclasses.replace(settings.model, vocab_size=tokenizer.vocab_size)
    context = settings.model.max_len if settings.arch == "gpt" else settings.seq_len
    # Fail now, not after training, on a prompt sample.txt could not use
    # (`LMSettings.check` refused an empty one).
    if len(tokenizer.encode(settings.job.prompt)) > context:
        raise UserInputError(f"--prompt is longer than the model's context of {context} tokens")
    train_ids = tokenizer.encode(corpus.train_text)
    val_ids = tokenizer.encode(corpus.val_text)
    passes = steps_per_pass(len(train_ids), settings.seq_len, settings.global_batch_size)
    steps_per_epoch = settings.steps_per_epoch or passes
    resample = None
    if tokenizer.kind == "bpe":
        resample = sampled_ids(lambda: tokenizer.tf_tokenizer(sampling=True), corpus.train_text)
    train_data = lm_train_dataset(
        train_ids, settings.seq_len, settings.global_batch_size, settings.seed, resample=resample
    )
    val_data = lm_eval_dataset(val_ids, settings.seq_len, settings.global_batch_size)
    val_tokens, val_text = evaluated_text(tokenizer, val_ids, settings.seq_len)

    def build_model():
        if init_from is not None:
            return from_pretrained(init_from)
        if settings.arch == "gpt":
            return build_gpt(settings.model)
        return build_charrnn(
            tokenizer.vocab_size,
            embedding_dim=settings.model.d_model,
            units=settings.job.rnn_units,
            num_layers=settings.job.rnn_layers,
            dropout=settings.model.dropout,
        )

    def finish(model, val_loss):
        sample = generate(
            model,
            tokenizer,
            settings.job.prompt,
            max_new_tokens=settings.job.sample_tokens,
            temperature=settings.job.sample_temperature,
            seed=settings.seed,
            context=context,
        )
        metrics = {"tokenizer": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
                   "cleaned": corpus.cleaned}
        metrics.update(lm_metrics(val_loss, val_tokens, val_text))
        if corpus.train_articles is not None:
            metrics.update(train_articles=corpus.train_articles, val_articles=corpus.val_articles)
        return metrics, sample

    sampling = ", subword sampling on every pass" if resample is not None else ""
    return Job(
        tokenizer=tokenizer,
        build_model=build_model,
        train_data=train_data,
        val_data=val_data,
        steps_per_epoch=steps_per_epoch,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        tokens_per_step=settings.global_batch_size * settings.seq_len,
        context=context,
        describe=f"{len(train_ids):,} training tokens ({tokenizer.kind}, vocabulary "
        f"{tokenizer.vocab_size:,}{sampling}), {steps_per_epoch} steps of "
        f"{settings.global_batch_size}x{settings.seq_len} per epoch",
        finish=finish,
        data_name=corpus.name,
    )
