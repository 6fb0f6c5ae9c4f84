"""The language-model job (`--arch gpt` and `--arch charrnn`): next-token prediction."""

import dataclasses

import keras

from keras_transformer.data import (
    CharTokenizer,
    lm_eval_dataset,
    lm_train_dataset,
    load_text,
    split_text,
    steps_per_pass,
)
from keras_transformer.errors import UserInputError
from keras_transformer.generation import generate
from keras_transformer.models import build_charrnn, build_gpt
from keras_transformer.training.job import Job
from keras_transformer.training.reports import bits_per_token


def lm_job(settings, data_name):
    """A `Job` training `build_gpt` or `build_charrnn` on a text."""
    text = load_text(settings.data)
    tokenizer = CharTokenizer.from_text(text)
    context = settings.model.max_len if settings.arch == "gpt" else settings.seq_len
    # Fail now, not after training, on a prompt sample.txt could not use.
    if not settings.prompt:
        raise UserInputError("--prompt is empty; sample.txt needs at least one character")
    if len(tokenizer.encode(settings.prompt)) > context:
        raise UserInputError(f"--prompt is longer than the model's context of {context} tokens")
    # The tokenizer defines the vocabulary: the embedding gets one row per id.
    settings.model = dataclasses.replace(settings.model, vocab_size=tokenizer.vocab_size)
    train_text, val_text = split_text(text)
    train_ids, val_ids = tokenizer.encode(train_text), tokenizer.encode(val_text)
    passes = steps_per_pass(len(train_ids), settings.seq_len, settings.batch_size)
    steps_per_epoch = settings.steps_per_epoch or passes
    train_data = lm_train_dataset(train_ids, settings.seq_len, settings.batch_size, settings.seed)
    val_data = lm_eval_dataset(val_ids, settings.seq_len, settings.batch_size)

    def build_model():
        if settings.arch == "gpt":
            return build_gpt(settings.model)
        return build_charrnn(
            tokenizer.vocab_size,
            embedding_dim=settings.model.d_model,
            units=settings.rnn_units,
            num_layers=settings.rnn_layers,
            dropout=settings.model.dropout,
        )

    def finish(model, val_loss):
        sample = generate(
            model,
            tokenizer,
            settings.prompt,
            max_new_tokens=settings.sample_tokens,
            temperature=settings.sample_temperature,
            seed=settings.seed,
            context=context,
        )
        return {"val_bpc": round(bits_per_token(val_loss), 4)}, sample

    return Job(
        tokenizer=tokenizer,
        build_model=build_model,
        train_data=train_data,
        val_data=val_data,
        steps_per_epoch=steps_per_epoch,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        tokens_per_step=settings.batch_size * settings.seq_len,
        context=context,
        describe=f"{len(train_ids):,} training tokens, {steps_per_epoch} steps of "
        f"{settings.batch_size}x{settings.seq_len} per epoch",
        finish=finish,
        data_name=data_name,
    )
