"""The encoder-decoder job (`--arch seq2seq`): dates, span corruption or a pairs file."""

import dataclasses
import os
from dataclasses import dataclass

import keras
import numpy as np

from keras_transformer.config import TransformerConfig
from keras_transformer.data import CharTokenizer, load_tokenizer
from keras_transformer.data.bpe import DEFAULT_VOCAB_SIZE, SentencePieceTokenizer
from keras_transformer.data.seq2seq import (
    BOS,
    EOS,
    MONTHS,
    SENTINELS,
    WEEKDAYS,
    date_pairs,
    decode_target,
    encode_pairs,
    is_t5_tokenizer,
    pair_special_ids,
    pairs_dataset,
    read_pairs,
    span_corruption_pairs,
    split_dates,
)
from keras_transformer.errors import UserInputError
from keras_transformer.generation.beam import beam_search
from keras_transformer.generation.seq2seq import decoding_steps, greedy_decode
from keras_transformer.models import build_seq2seq
from keras_transformer.pretrained import from_pretrained, read_hf_config
from keras_transformer.training.corpus import load_corpus, make_tokenizer
from keras_transformer.training.job import Job, check_positive_ints

TASKS = ("dates", "span-corruption", "pairs")
DATE_CHARS = "".join(MONTHS) + "".join(WEEKDAYS) + "0123456789 ,./-"


@dataclass
class Seq2SeqSettings:
    """The encoder-decoder's own settings (`arch="seq2seq"`): its task and evaluation.

    Args:
        task: `"dates"` (written dates to ISO dates), `"span-corruption"`
            (T5's objective on the run's text) or `"pairs"` (a file).
        pairs: the `source<TAB>target` file of `task="pairs"`.
        train_examples: generated training pairs (`dates`, `span-corruption`).
        eval_examples: held-out pairs scored by exact match (`pairs`: at most
            this many, and at most 10 % of the file).
        beam_width: beam width of the beam-search exact match (1 is greedy).
        init_from: `task="pairs"`: a Hugging Face T5 checkpoint folder to
            fine-tune (its config, weights and SentencePiece tokenizer; the
            sources and targets end in `</s>`, the decoder starts with the
            pad id, as T5 was trained). `None`: a model of the run's config
            and a tokenizer of the pairs.
    """

    task: str = "dates"
    pairs: str | None = None
    train_examples: int = 32_000
    eval_examples: int = 1000
    beam_width: int = 4
    init_from: str | None = None

    def check(self):
        """Raise `UserInputError` for values that cannot work."""
        check_positive_ints(self, "train_examples", "eval_examples", "beam_width")
        if self.task not in TASKS:
            raise UserInputError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.task == "pairs" and not self.pairs:
            raise UserInputError("--task pairs needs --pairs FILE.tsv")
        if self.pairs and self.task != "pairs":
            raise UserInputError(f"--pairs is only used with --task pairs, not {self.task}")
        if self.init_from is not None and self.task != "pairs":
            raise UserInputError(f"--init-from works with --arch seq2seq --task pairs, not "
                                 f"--task {self.task}")
        if self.init_from is not None and not os.path.isdir(self.init_from):
            raise UserInputError(f"--init-from {self.init_from} is not a directory")


def _pairs_tokenizer(settings, pairs, chars=None):
    """The tokenizer of a pairs task: characters (of `chars`, else of the pairs), or a BPE
    model trained on the training pairs' sources and targets, one a line."""
    if settings.tokenizer == "bpe":
        lines = "\n".join(f"{s}\n{t}" for s, t in pairs)
        return SentencePieceTokenizer.from_text(lines, settings.vocab_size or DEFAULT_VOCAB_SIZE,
                                                 [BOS, EOS])
    return CharTokenizer.from_text(chars or "".join(s + t for s, t in pairs), [BOS, EOS])


def _task_pairs(settings):
    """`(tokenizer, train_pairs, val_pairs, test_pairs, data_name)` of the chosen task.

    With `--tokenizer bpe` the BPE model is trained on the training pairs (or,
    for span corruption, on the training text); the pairs are then encoded
    deterministically (no subword sampling for the encoder-decoder).
    """
    job = settings.job
    if job.task == "dates":
        train_days, heldout = split_dates(num_heldout=2 * job.eval_examples, seed=settings.seed)
        train = date_pairs(train_days, job.train_examples, seed=settings.seed)
        tokenizer = _pairs_tokenizer(settings, train, DATE_CHARS)
        # Alternate held-out dates between validation and test: both span every year.
        val = date_pairs(heldout[0::2], job.eval_examples, settings.seed + 1)
        test = date_pairs(heldout[1::2], job.eval_examples, settings.seed + 2)
        return tokenizer, train, val, test, "dates"
    if job.task == "span-corruption":
        corpus = load_corpus(settings)
        tokenizer = make_tokenizer(settings, corpus, [BOS, EOS, *SENTINELS])
        length = min(96, settings.model.max_len - 1)
        train = span_corruption_pairs(corpus.train_text, job.train_examples, length,
                                      seed=settings.seed)
        val = span_corruption_pairs(corpus.val_text, job.eval_examples, length,
                                    seed=settings.seed + 1)
        return tokenizer, train, val, val, f"span-corruption:{corpus.name}"
    # A checkpoint's lengths are checked in tokens (encode_pairs), a run's in characters too.
    pairs = read_pairs(job.pairs, None if job.init_from else settings.model.max_len)
    order = np.random.default_rng(settings.seed).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    num_val = min(job.eval_examples, max(1, len(pairs) // 10))
    val, train = pairs[:num_val], pairs[num_val:]
    if job.init_from is not None:
        tokenizer = checkpoint_tokenizer(settings, job.init_from)
    elif settings.tokenizer == "bpe":
        tokenizer = _pairs_tokenizer(settings, train)
    else:  # the characters of every pair, as before subwords existed
        tokenizer = CharTokenizer.from_text("".join(s + t for s, t in pairs), [BOS, EOS])
    return tokenizer, train, val, val, f"pairs:{job.pairs}"


def checkpoint_tokenizer(settings, folder):
    """The SentencePiece tokenizer of the T5 folder `--init-from`; its config becomes
    `settings.model`."""
    if settings.tokenizer != "char" or settings.vocab_size is not None:
        raise UserInputError("--tokenizer and --vocab-size do not apply with --init-from (the "
                             "checkpoint's own tokenizer is used)")
    hf = read_hf_config(folder)
    if hf.get("model_type") != "t5":
        raise UserInputError(f"--arch seq2seq --init-from {folder}: not a T5 checkpoint "
                             f"(model_type {hf.get('model_type')!r})")
    config = TransformerConfig.from_hf(hf)
    tokenizer = load_tokenizer(folder)
    if not is_t5_tokenizer(tokenizer):
        raise UserInputError(f"{folder}: its tokenizer is a {tokenizer.kind}, not T5's "
                             "SentencePiece")
    if tokenizer.vocab_size > config.vocab_size:
        raise UserInputError(f"{folder}: the tokenizer has {tokenizer.vocab_size} ids, the model "
                             f"only {config.vocab_size}")
    settings.model = config
    return tokenizer


def exact_match(model, tokenizer, pairs, arrays, max_target, beam_width, batch_size=250):
    """Exact-match accuracy of greedy and beam-search decoding on `pairs`.

    Returns `(greedy_accuracy, beam_accuracy, [(source, target, greedy, beam)])`.
    """
    bos, eos, pad = pair_special_ids(tokenizer)
    source = arrays[0]
    step = decoding_steps(model, pad)  # KV-cached for a Seq2Seq
    greedy, beam = [], []
    for start in range(0, len(source), batch_size):
        chunk = source[start:start + batch_size]
        greedy += greedy_decode(model, chunk, bos, eos, max_target, pad_id=pad, step=step)
        beam += beam_search(model, chunk, bos, eos, max_target, width=beam_width, pad_id=pad,
                            step=step)
    rows = [
        (s, t, decode_target(tokenizer, g), decode_target(tokenizer, b))
        for (s, t), g, b in zip(pairs, greedy, beam, strict=True)
    ]
    greedy_ok = np.mean([t == g for _, t, g, _ in rows])
    beam_ok = np.mean([t == b for _, t, _, b in rows])
    return float(greedy_ok), float(beam_ok), rows


def seq2seq_job(settings):
    """A `Job` training `build_seq2seq` on `settings.job.task` (a `Seq2SeqSettings`)."""
    task = settings.job.task
    if settings.dataset == "wikitext2" and task != "span-corruption":
        raise UserInputError(
            f"--dataset wikitext2 is a text; seq2seq reads one only with --task "
            f"span-corruption, not {task}"
        )
    tokenizer, train, val, test, name = _task_pairs(settings)
    max_len = settings.model.max_len
    train_arrays = encode_pairs(train, tokenizer, max_len, "training pair")
    val_arrays = encode_pairs(val, tokenizer, max_len, "validation pair")
    test_arrays = val_arrays if test is val else encode_pairs(test, tokenizer, max_len, "test pair")
    if len(train) < settings.global_batch_size:
        raise UserInputError(
            f"{len(train)} training pairs: fewer than one batch of {settings.global_batch_size}; "
            f"lower --batch-size"
        )
    init_from = settings.job.init_from
    if init_from is None:  # a checkpoint keeps its own (often padded) vocabulary
        settings.model = dataclasses.replace(settings.model, vocab_size=tokenizer.vocab_size)
    steps_per_epoch = settings.steps_per_epoch or len(train) // settings.global_batch_size
    train_data = pairs_dataset(train_arrays, settings.global_batch_size, settings.seed, repeat=True)
    val_data = pairs_dataset(val_arrays, settings.global_batch_size)
    max_target = min(max_len, max(train_arrays[1].shape[1], test_arrays[1].shape[1]))

    def finish(model, val_loss):
        greedy, beam, rows = exact_match(
            model, tokenizer, test, test_arrays, max_target, settings.job.beam_width
        )
        metrics = {
            "task": task,
            "exact_match_greedy": round(greedy, 4),
            "exact_match_beam": round(beam, 4),
            "beam_width": settings.job.beam_width,
            "eval_examples": len(rows),
            "eval_set": "held-out dates (never in training)" if task == "dates"
            else "validation pairs",
        }
        lines = [f"{s!r} -> greedy {g!r} | beam {b!r} | target {t!r}" for s, t, g, b in rows[:20]]
        return metrics, "\n".join(lines)

    return Job(
        tokenizer=tokenizer,
        build_model=lambda: (from_pretrained(init_from) if init_from is not None
                             else build_seq2seq(settings.model)),
        train_data=train_data,
        val_data=val_data,
        steps_per_epoch=steps_per_epoch,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        tokens_per_step=settings.global_batch_size * train_arrays[1].shape[1],
        context=max_len,
        describe=f"task {task}: {len(train):,} training pairs, {len(test):,} "
        f"evaluation pairs, {steps_per_epoch} steps of {settings.global_batch_size} per epoch",
        finish=finish,
        data_name=name,
    )
