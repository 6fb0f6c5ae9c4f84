"""The BERT job (`--arch bert`): masked-LM and sentence-pair pretraining on a text.

`--task classify` (fine-tuning on a labelled file) is the job of `classify.py`.
"""

import dataclasses
import os
from dataclasses import dataclass

import keras
import numpy as np

from keras_transformer.data.mlm import SPECIALS, mlm_eval_dataset, mlm_train_dataset
from keras_transformer.data.pipelines import sampled_ids
from keras_transformer.errors import UserInputError
from keras_transformer.models import build_bert
from keras_transformer.training.corpus import load_corpus, make_tokenizer
from keras_transformer.training.job import Job, check_positive_ints

TASKS = ("pretrain", "classify")


@dataclass
class BertSettings:
    """BERT's own settings (`arch="bert"`).

    Args:
        val_batches: `task="pretrain"`: validation batches of sentence pairs
            (masked once, with the run's seed), scored after every epoch and
            for the final accuracies.
        task: `"pretrain"` (masked-LM and sentence-pair pretraining on a
            text) or `"classify"` (fine-tuning a classifier on the labelled
            `text<TAB>label` file of `TrainSettings.data`, see
            `training/classify.py`).
        init_from: `task="classify"`: a Hugging Face BERT checkpoint folder
            to start from (its config, weights and WordPiece tokenizer;
            `None`: a model of the run's config and a tokenizer trained on
            the file).
    """

    val_batches: int = 20
    task: str = "pretrain"
    init_from: str | None = None

    def check(self):
        """Raise `UserInputError` for values that cannot work."""
        check_positive_ints(self, "val_batches")
        if self.task not in TASKS:
            raise UserInputError(
                f"unknown task {self.task!r} for --arch bert; choose one of {', '.join(TASKS)}"
            )
        if self.init_from is not None and self.task != "classify":
            raise UserInputError("--init-from works with --arch bert --task classify (the "
                                 "pretraining task starts from random weights)")
        if self.init_from is not None and not os.path.isdir(self.init_from):
            raise UserInputError(f"--init-from {self.init_from} is not a directory")


def masked_lm_report(model, dataset, most_frequent_id):
    """Accuracies of a `build_bert` model over `dataset` (batches of `mlm_eval_dataset`).

    Returns a dict: `masked_token_accuracy` (argmax at the masked positions),
    `unigram_baseline_accuracy` (always answering `most_frequent_id`),
    `sentence_pair_accuracy`, and the number of masked tokens and pairs.
    """
    masked = correct = baseline = pairs = pairs_correct = 0
    for x, y, weights in dataset:
        out = model(x, training=False)
        chosen = keras.ops.convert_to_numpy(weights["mlm"]) > 0
        labels = keras.ops.convert_to_numpy(y["mlm"])[chosen]
        guesses = np.argmax(keras.ops.convert_to_numpy(out["mlm"]), axis=-1)[chosen]
        masked += labels.size
        correct += int(np.sum(guesses == labels))
        baseline += int(np.sum(labels == most_frequent_id))
        nsp = np.argmax(keras.ops.convert_to_numpy(out["nsp"]), axis=-1)
        pairs += nsp.size
        pairs_correct += int(np.sum(nsp == keras.ops.convert_to_numpy(y["nsp"])))
    return {
        "masked_token_accuracy": round(correct / max(1, masked), 4),
        "unigram_baseline_accuracy": round(baseline / max(1, masked), 4),
        "sentence_pair_accuracy": round(pairs_correct / max(1, pairs), 4),
        "masked_tokens_evaluated": masked,
        "pairs_evaluated": pairs,
    }


def _sample(model, dataset, tokenizer, rows=3):
    """A few validation pairs: the masked input, the model's fill-in, the original."""
    x, y, weights = next(iter(dataset))
    out = model(x, training=False)
    guesses = np.argmax(keras.ops.convert_to_numpy(out["mlm"]), axis=-1)
    nsp = np.argmax(keras.ops.convert_to_numpy(out["nsp"]), axis=-1)
    inputs = keras.ops.convert_to_numpy(x["token_ids"])
    chosen = keras.ops.convert_to_numpy(weights["mlm"]) > 0
    lines = []
    for i in range(min(rows, len(inputs))):
        filled = np.where(chosen[i], guesses[i], inputs[i])
        lines += [
            f"input:     {tokenizer.decode(inputs[i])!r}",
            f"predicted: {tokenizer.decode(filled)!r}",
            f"original:  {tokenizer.decode(keras.ops.convert_to_numpy(y['mlm'])[i])!r}",
            f"B follows A: {bool(keras.ops.convert_to_numpy(y['nsp'])[i])}, "
            f"predicted {bool(nsp[i])}",
            "",
        ]
    return "\n".join(lines)


def bert_job(settings):
    """A `Job` pretraining `build_bert` on a text (Tiny Shakespeare by default).

    With `--tokenizer bpe` the training text is re-tokenized with subword
    sampling once per epoch (`steps_per_epoch` batches). `task="classify"`
    is `classify_job`'s.
    """
    if settings.job.task == "classify":
        from keras_transformer.training.classify import classify_job

        return classify_job(settings)
    corpus = load_corpus(settings)
    tokenizer = make_tokenizer(settings, corpus, SPECIALS)
    settings.model = dataclasses.replace(
        settings.model,
        vocab_size=tokenizer.vocab_size,
        num_segments=max(2, settings.model.num_segments),
    )
    train_ids = tokenizer.encode(corpus.train_text)
    val_ids = tokenizer.encode(corpus.val_text)
    steps_per_epoch = settings.steps_per_epoch or 200
    resample = None
    if tokenizer.kind == "bpe":
        resample = sampled_ids(lambda: tokenizer.tf_tokenizer(sampling=True), corpus.train_text)
    train_data = mlm_train_dataset(
        train_ids, tokenizer, settings.seq_len, settings.global_batch_size, settings.seed,
        resample=resample, steps_per_sample=steps_per_epoch,
    )
    val_data = mlm_eval_dataset(
        val_ids, tokenizer, settings.seq_len, settings.global_batch_size, settings.job.val_batches,
        settings.seed,
    )
    most_frequent = int(np.bincount(train_ids).argmax())
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def finish(model, val_loss):
        report = masked_lm_report(model, val_data, most_frequent)
        report["unigram_baseline_token"] = tokenizer.decode([most_frequent])
        return report, _sample(model, val_data, tokenizer)

    return Job(
        tokenizer=tokenizer,
        build_model=lambda: build_bert(settings.model),
        train_data=train_data,
        val_data=val_data,
        steps_per_epoch=steps_per_epoch,
        loss={"mlm": loss, "nsp": loss},
        tokens_per_step=settings.global_batch_size * settings.seq_len,
        context=settings.seq_len,
        describe=f"{len(train_ids):,} training tokens ({tokenizer.kind}), {steps_per_epoch} steps of "
        f"{settings.global_batch_size} pairs x {settings.seq_len} tokens per epoch",
        finish=finish,
        data_name=corpus.name,
    )
