"""The classification job (`--arch bert --task classify`): fine-tune a BERT on a labelled file.

    python train.py --arch bert --task classify --data reviews.tsv
    python train.py --arch bert --task classify --data reviews.tsv --init-from checkpoints/bert

The file is `text<TAB>label` or `text_a<TAB>text_b<TAB>label` a line
(`data/classify.py` reads it). 10 % of each label's examples are held out
(stratified, drawn with `--seed`); they are the validation set the best
epoch is chosen on and the set `metrics.json` scores: accuracy and macro-F1,
beside the majority-class baseline (always answering the most frequent label
of the training split).

Without `--init-from` the model is a `BertClassifier` of the run's config
(`bert-mini` by default) with a tokenizer trained on the file's texts
(`--tokenizer char|bpe`); with it, the checkpoint's config, backbone weights
and WordPiece tokenizer. `sample.txt` lists the first held-out examples with
the predicted label, its probability and the true label;
`python -m keras_transformer.classify --model RUN_DIR --text ...` classifies
new texts.
"""

import dataclasses
import math
import os

import keras
import numpy as np

from keras_transformer.data.classify import (
    SPECIALS,
    classify_dataset,
    encode_examples,
    read_classification_tsv,
    special_ids,
    split_examples,
)
from keras_transformer.data.cleaning import clean_text
from keras_transformer.errors import UserInputError
from keras_transformer.models.bert import BERT
from keras_transformer.models.bert_classifier import BertClassifier
from keras_transformer.pretrained import from_pretrained, read_hf_config
from keras_transformer.training.corpus import Corpus, make_tokenizer, should_clean
from keras_transformer.training.job import Job
from keras_transformer.training.lm import checkpoint_tokenizer

SAMPLE_ROWS = 20


def f1_scores(y_true, y_pred):
    """`{label: F1}` for each label that occurs in `y_true` or `y_pred`.

    A label's F1 is `2 tp / (2 tp + fp + fn)` (0 when it has no true
    positive), the harmonic mean of its precision and recall.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = {}
    for label in np.union1d(y_true, y_pred).tolist():
        tp = np.sum((y_pred == label) & (y_true == label))
        wrong = np.sum((y_pred == label) != (y_true == label))  # false positives and negatives
        scores[label] = float(2 * tp / (2 * tp + wrong)) if tp else 0.0
    return scores


def macro_f1(y_true, y_pred):
    """The mean F1 over the labels that occur in `y_true` or `y_pred` (sklearn's "macro")."""
    scores = f1_scores(y_true, y_pred)
    return float(np.mean(list(scores.values()))) if scores else 0.0


def classification_metrics(y_true, probabilities, majority_id, labels):
    """Accuracy and macro-F1 of the argmax of `probabilities`, and of the majority baseline.

    Args:
        y_true: int label ids `[n]`.
        probabilities: float `[n, num_labels]`.
        majority_id: the baseline's answer (the training split's most frequent label).
        labels: the label names, by id.

    Returns:
        A dict: `accuracy`, `macro_f1`, the same two of the majority
        baseline, their difference in accuracy, the majority label, and
        `f1_per_label` (`{label name: F1}`).
    """
    y_true = np.asarray(y_true)
    y_pred = np.argmax(probabilities, axis=-1)
    baseline = np.full_like(y_true, majority_id)
    accuracy = float(np.mean(y_pred == y_true))
    majority = float(np.mean(baseline == y_true))
    return {
        "accuracy": round(accuracy, 4),
        "macro_f1": round(macro_f1(y_true, y_pred), 4),
        "majority_baseline_accuracy": round(majority, 4),
        "majority_baseline_macro_f1": round(macro_f1(y_true, baseline), 4),
        "accuracy_over_majority": round(accuracy - majority, 4),
        "majority_label": labels[majority_id],
        "f1_per_label": {labels[i]: round(f1, 4) for i, f1 in f1_scores(y_true, y_pred).items()},
    }


def _checkpoint_is_bert(folder):
    model_type = read_hf_config(folder).get("model_type")
    if model_type != "bert":
        raise UserInputError(f"--init-from {folder} holds a {model_type} checkpoint; "
                             "--arch bert --task classify needs a BERT one")


def _cleaned(examples, clean):
    if not clean:
        return examples
    return [dataclasses.replace(e, text_a=clean_text(e.text_a),
                                text_b=None if e.text_b is None else clean_text(e.text_b))
            for e in examples]


def _sample(examples, probabilities, labels, y_true):
    """`sample.txt`: the first held-out examples, predicted label and probability, true label."""
    lines = []
    for example, p, gold in zip(examples[:SAMPLE_ROWS], probabilities, y_true, strict=False):
        guess = int(np.argmax(p))
        texts = repr(example.text_a) + ("" if example.text_b is None
                                        else f" | {example.text_b!r}")
        lines.append(f"line {example.line}: predicted {labels[guess]!r} ({p[guess]:.6f}), "
                     f"true {labels[gold]!r}: {texts}")
    return "\n".join(lines)


def classify_job(settings):
    """A `Job` fine-tuning a `BertClassifier` on the labelled file `settings.data`.

    `settings.job` is a `BertSettings` with `task="classify"` (and perhaps
    `init_from`). Every input error (the file, the flags, the checkpoint) is
    raised here, before the run directory is made.
    """
    if settings.dataset != "shakespeare":
        raise UserInputError(f"--dataset {settings.dataset} is a text; --task classify reads a "
                             "labelled file: --data FILE.tsv")
    if not settings.data:
        raise UserInputError("--task classify needs --data FILE.tsv (one 'text<TAB>label' or "
                             "'text_a<TAB>text_b<TAB>label' a line)")
    init_from = settings.job.init_from
    data = read_classification_tsv(settings.data)
    clean = should_clean(settings)
    data.examples = _cleaned(data.examples, clean)
    train, held_out = split_examples(data.examples, settings.seed)
    if init_from is not None:
        _checkpoint_is_bert(init_from)
        tokenizer = checkpoint_tokenizer(settings)  # settings.model becomes the checkpoint's
    else:
        texts = [t for e in train for t in (e.text_a, e.text_b) if t is not None]
        held_texts = [t for e in held_out for t in (e.text_a, e.text_b) if t is not None]
        corpus = Corpus("\n".join(texts), "\n".join(held_texts), os.path.basename(data.path),
                        clean)
        tokenizer = make_tokenizer(settings, corpus, SPECIALS)
        settings.model = dataclasses.replace(
            settings.model, vocab_size=tokenizer.vocab_size,
            num_segments=max(2, settings.model.num_segments),
        )
    special_ids(tokenizer)  # [CLS], [SEP] and padding 0, or a one-line error now
    train_arrays, train_cut = encode_examples(data, train, tokenizer, settings.seq_len)
    held_arrays, held_cut = encode_examples(data, held_out, tokenizer, settings.seq_len)
    if len(train) < settings.global_batch_size:
        raise UserInputError(
            f"{len(train)} training examples: fewer than one batch of "
            f"{settings.global_batch_size}; lower --batch-size"
        )
    steps_per_epoch = settings.steps_per_epoch or math.ceil(len(train) / settings.global_batch_size)
    train_data = classify_dataset(train_arrays, settings.global_batch_size, settings.seed,
                                  repeat=True)
    val_data = classify_dataset(held_arrays, settings.global_batch_size)
    counts = np.bincount(train_arrays[2], minlength=len(data.labels))
    majority_id = int(np.argmax(counts))

    def build_model():
        if init_from is None:
            return BertClassifier(settings.model, labels=data.labels)
        bert = from_pretrained(init_from)
        if not isinstance(bert, BERT):
            raise UserInputError(f"--init-from {init_from} did not load as a BERT")
        return BertClassifier.from_bert(bert, labels=data.labels)

    def finish(model, val_loss):
        logits = model.predict(val_data, verbose=0)
        probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
        y_true = held_arrays[2]
        metrics = {"task": "classify"}
        metrics.update(classification_metrics(y_true, probabilities, majority_id, data.labels))
        metrics.update(
            labels=data.labels, num_labels=len(data.labels), pairs=data.pairs,
            train_examples=len(train), eval_examples=len(held_out),
            eval_set="held-out 10% of each label (stratified by --seed), also the validation "
            "set that picked the best epoch",
            truncated_examples=train_cut + held_cut, tokenizer=tokenizer.kind,
            vocab_size=tokenizer.vocab_size, cleaned=clean, init_from=init_from,
        )
        return metrics, _sample(held_out, probabilities, data.labels, y_true)

    truncated = (f", {train_cut + held_cut} truncated to --seq-len {settings.seq_len}"
                 if train_cut + held_cut else "")
    start = f"from {init_from}, " if init_from else ""
    return Job(
        tokenizer=tokenizer,
        build_model=build_model,
        train_data=train_data,
        val_data=val_data,
        steps_per_epoch=steps_per_epoch,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        tokens_per_step=settings.global_batch_size * train_arrays[0].shape[1],
        context=settings.seq_len,
        describe=f"{start}{len(data.labels)} labels, {len(train):,} training and "
        f"{len(held_out):,} held-out {'pairs' if data.pairs else 'texts'} ({tokenizer.kind} "
        f"tokenizer{truncated}), {steps_per_epoch} steps of {settings.global_batch_size} per "
        f"epoch",
        finish=finish,
        data_name=f"classify:{os.path.basename(data.path)}",
    )
