"""`python train.py`: train a model and fill a run directory.

    python train.py --arch gpt                      # the default mini-GPT
    python train.py --arch charrnn                  # the char-RNN baseline
    python train.py --arch bert                     # masked-LM + sentence pairs
    python train.py --arch bert --task classify --data FILE.tsv   # text<TAB>label a line
    python train.py --arch bert --task classify --data FILE.tsv --init-from HF_BERT_DIR
    python train.py --arch seq2seq                  # dates -> ISO dates
    python train.py --arch seq2seq --task span-corruption
    python train.py --arch seq2seq --task pairs --pairs FILE.tsv
    python train.py --arch seq2seq --task pairs --pairs FILE.tsv --init-from HF_T5_DIR
    python train.py --arch gpt --num-layers 6 --d-model 192 --epochs 5 --out runs/big
    python train.py --arch gpt --tokenizer bpe --vocab-size 4096
    python train.py --arch gpt --tokenizer bpe --dataset wikitext2 --data DIR
    python train.py --arch gpt --export             # and a SavedModel in RUN_DIR/saved_model
    python train.py --arch gpt --init-from HF_DIR --data FILE   # fine-tune a GPT-2 / Llama checkpoint
"""

import argparse
import dataclasses

from keras_transformer.cli.common import ArgumentParser, run
from keras_transformer.config import CHOICES, PRESETS, TransformerConfig
from keras_transformer.training.distribute import STRATEGIES

ARCH_CHOICES = ("gpt", "charrnn", "bert", "seq2seq")


def _config_flags(parser):
    """One flag per `TransformerConfig` field (`--d-model`, `--norm-first/--no-norm-first`, ...)."""
    group = parser.add_argument_group("model architecture (TransformerConfig fields)")
    choices = CHOICES
    for f in dataclasses.fields(TransformerConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.type in (float, "float"):
            group.add_argument(flag, type=float, default=None, metavar="X")
        elif f.name in choices:
            group.add_argument(flag, choices=choices[f.name], default=None)
        elif f.name == "vocab_size":
            group.add_argument(flag, type=int, default=None, metavar="N",
                               help="--tokenizer bpe: SentencePiece vocabulary size (default "
                               "4096); the model's vocabulary is always the tokenizer's")
        else:
            group.add_argument(flag, type=int, default=None, metavar="N")


def build_parser():
    from keras_transformer.training.trainer import JOB_SETTINGS, TrainSettings

    defaults = TrainSettings()
    # The arch-only flags default to None (so a flag of another arch can be
    # refused, see `_check_arch_flags`); their defaults are the job settings'.
    lm, rnn = JOB_SETTINGS["gpt"](), JOB_SETTINGS["charrnn"]()
    bert, seq2seq = JOB_SETTINGS["bert"](), JOB_SETTINGS["seq2seq"]()
    parser = ArgumentParser(
        prog="train.py",
        description="Train a GPT, char-RNN, BERT or encoder-decoder on Tiny Shakespeare (or "
        "--data FILE), dates or a pairs file, and write model.keras, tokenizer.json, "
        "metrics.json, history.png and sample.txt to a run directory. Flags without a "
        "default shown take the arch's default (ARCH_DEFAULTS in training/trainer.py). "
        "A flag marked for some archs only is an error with the others.",
    )
    parser.add_argument("--arch", choices=ARCH_CHOICES, default="gpt")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="starting architecture (default: gpt-mini, bert-mini or "
                        "seq2seq-mini by --arch); the flags below change single fields")
    parser.add_argument("--task", default=None,
                        help=f"seq2seq: dates, span-corruption or pairs (default "
                        f"{seq2seq.task}); bert: pretrain (masked-LM and sentence pairs on a "
                        f"text) or classify (fine-tune on --data FILE.tsv, 'text<TAB>label' or "
                        f"'text_a<TAB>text_b<TAB>label' a line; 10%% of each label held out) "
                        f"(default {bert.task})")
    parser.add_argument("--pairs", metavar="FILE.tsv",
                        help="seq2seq --task pairs only: one 'source<TAB>target' a line")
    parser.add_argument("--data", metavar="PATH", help="a UTF-8 text file (default: Tiny "
                        "Shakespeare); with --dataset wikitext2 a folder of split files "
                        "(default: the Hugging Face hub, needs the datasets package); with "
                        "--arch bert --task classify the labelled TSV file")
    parser.add_argument("--dataset", choices=("shakespeare", "wikitext2"), default="shakespeare",
                        help="shakespeare: one text file, first 90%% train, last 10%% "
                        "validation; wikitext2: whole split files (default shakespeare)")
    parser.add_argument("--train-split", choices=("train", "valid", "test"), default=None,
                        help="wikitext2: the split to train on (default train)")
    parser.add_argument("--eval-split", choices=("train", "valid", "test"), default=None,
                        help="wikitext2: the split to validate and report on (default valid)")
    parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char",
                        help="char: one id per character; bpe: a SentencePiece BPE model "
                        "trained on the training text, --vocab-size pieces (default 4096), "
                        "subword sampling while training (default char)")
    parser.add_argument("--clean", action=argparse.BooleanOptionalAction, default=None,
                        help="repair mojibake, straighten quotes and dashes, collapse "
                        "whitespace before tokenizing (default: on for bpe, off for char)")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<arch>-<time>); "
                        "the same DIR resumes an interrupted run")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="default: one pass over the training text")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument("--weight-decay", type=float, default=None)
    parser.add_argument("--clipnorm", type=float, default=defaults.clipnorm)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--jit", nargs="?", const="on", choices=("on", "off", "auto"),
                        default=defaults.jit,
                        help="compile the train step with XLA: on (--jit alone), off (or "
                        "--no-jit), auto (the default: on, except --mixed-precision on a CPU "
                        "with AMX bfloat16 units, where oneDNN's matmuls use them)")
    parser.add_argument("--no-jit", dest="jit", action="store_const", const="off",
                        help=argparse.SUPPRESS)
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction,
                        default=defaults.mixed_precision,
                        help="train under mixed_bfloat16 (CPU, TPU) or mixed_float16 with loss "
                        "scaling (GPU); variables, softmax, norms and the loss stay float32 "
                        "(default off)")
    parser.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy,
                        help="tf.distribute strategy: default (one device), mirrored (every GPU "
                        "here, or the --cpu-devices), multiworker (MultiWorkerMirroredStrategy, "
                        "cluster from TF_CONFIG; needs --out), tpu (TPUStrategy). --batch-size is "
                        "per replica (default default)")
    parser.add_argument("--cpu-devices", type=int, default=None, metavar="N",
                        help="split the CPU into N logical devices (try --strategy mirrored "
                        "without GPUs)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--backup-every", default=defaults.backup_every, metavar="N|TIME",
                        help="back the run up every N steps or every TIME (10m, 90s, 1h) "
                        "besides every epoch's end; 0: epoch ends only. The same command "
                        f"continues a killed run from it (default {defaults.backup_every})")
    parser.add_argument("--force-new", action="store_true",
                        help="start over in an --out that holds another run (its files are "
                        "removed) instead of resuming it or stopping")
    parser.add_argument("--rnn-units", type=int, default=None, metavar="N",
                        help=f"charrnn only: LSTM width (default {rnn.rnn_units})")
    parser.add_argument("--rnn-layers", type=int, default=None, metavar="N",
                        help=f"charrnn only: LSTM layers (default {rnn.rnn_layers})")
    parser.add_argument("--init-from", default=None, metavar="HF_DIR",
                        help="gpt: fine-tune a Hugging Face GPT-2 or Llama checkpoint folder; "
                        "bert --task classify: start from a Hugging Face BERT checkpoint folder; "
                        "seq2seq --task pairs: fine-tune a Hugging Face T5 checkpoint folder "
                        "(model, config and tokenizer from there; the model flags do not apply); "
                        "hf://REPO_ID downloads one")
    parser.add_argument("--prompt", default=None,
                        help=f"gpt and charrnn only: prompt of sample.txt (default {lm.prompt})")
    parser.add_argument("--sample-tokens", type=int, default=None, metavar="N",
                        help=f"gpt and charrnn only: tokens sample.txt adds to the prompt "
                        f"(default {lm.sample_tokens})")
    parser.add_argument("--sample-temperature", type=float, default=None, metavar="X",
                        help=f"gpt and charrnn only: temperature of sample.txt (default "
                        f"{lm.sample_temperature})")
    parser.add_argument("--train-examples", type=int, default=None, metavar="N",
                        help=f"seq2seq dates/span-corruption only: generated training pairs "
                        f"(default {seq2seq.train_examples})")
    parser.add_argument("--eval-examples", type=int, default=None, metavar="N",
                        help=f"seq2seq only: held-out pairs scored by exact match (default "
                        f"{seq2seq.eval_examples})")
    parser.add_argument("--beam-width", type=int, default=None, metavar="N",
                        help=f"seq2seq only: beam width of the exact match (default "
                        f"{seq2seq.beam_width})")
    parser.add_argument("--val-batches", type=int, default=None, metavar="N",
                        help=f"bert --task pretrain only: validation batches (default "
                        f"{bert.val_batches})")
    parser.add_argument("--export", action="store_true",
                        help="gpt only: after training, export a SavedModel with 'generate' and "
                        "'logits' signatures (python -m keras_transformer.export does it later)")
    parser.add_argument("--export-dir", metavar="DIR",
                        help="where --export writes the SavedModel (default RUN_DIR/saved_model; "
                        "implies --export)")
    _config_flags(parser)
    return parser


# The TransformerConfig fields --arch charrnn (an Embedding + LSTM) accepts: d_model
# is its embedding width, dropout its dropout; vocab_size is the tokenizer's (see
# below). max_len is accepted but unused: the char-RNN's context is --seq-len.
CHARRNN_CONFIG_FIELDS = ("d_model", "dropout", "max_len", "vocab_size")
# TransformerConfig fields of one Transformer family only.
FAMILY_FIELDS = {"num_segments": "bert", "num_decoder_layers": "seq2seq",
                 "share_embeddings": "seq2seq"}


def _flag(name, value=None):
    """The flag a user typed for `name` (`--no-tie-embeddings` for a False boolean)."""
    flag = name.replace("_", "-")
    return f"--no-{flag}" if value is False else f"--{flag}"


def _job_fields(arch):
    """The fields of `arch`'s own settings (`JOB_SETTINGS[arch]`, e.g. `Seq2SeqSettings`)."""
    from keras_transformer.training.trainer import JOB_SETTINGS

    return [f.name for f in dataclasses.fields(JOB_SETTINGS[arch])]


def _job_flags(args):
    """The arch-only flags given (`--prompt`, `--beam-width`, ...): `{field: value}`."""
    names = dict.fromkeys(name for arch in ARCH_CHOICES for name in _job_fields(arch))
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _refuse(flags, arch, why):
    """Raise the one-line `UserInputError` for `flags` that do not apply to `--arch arch`."""
    from keras_transformer.errors import UserInputError

    verb = "does" if len(flags) == 1 else "do"
    raise UserInputError(f"{', '.join(flags)} {verb} not apply to --arch {arch} ({why})")


def _check_arch_flags(args, overrides, job_flags):
    """Refuse flags that `args.arch` would silently ignore, naming them.

    `overrides` are the `TransformerConfig` flags given, `job_flags` the
    arch-only ones (`_job_flags`).
    """
    if args.arch == "charrnn":
        ignored = [_flag(name, value) for name, value in overrides.items()
                   if name not in CHARRNN_CONFIG_FIELDS]
        if ignored:
            _refuse(ignored, args.arch, "an LSTM: it uses --d-model, --dropout, --rnn-units, "
                    "--rnn-layers, and --seq-len as its context")
    else:
        foreign = [name for name in overrides if FAMILY_FIELDS.get(name, args.arch) != args.arch]
        if foreign:
            owners = sorted({FAMILY_FIELDS[name] for name in foreign})
            _refuse([_flag(name, overrides[name]) for name in foreign], args.arch,
                    "only to " + " and ".join("--arch " + owner for owner in owners))
    own = _job_fields(args.arch)
    foreign = [name for name in job_flags if name not in own]
    if foreign:
        owners = [arch for arch in ARCH_CHOICES
                  if any(name in _job_fields(arch) for name in foreign)]
        _refuse([_flag(name) for name in foreign], args.arch,
                "only to " + " and ".join("--arch " + owner for owner in owners))


def _check_task_flags(args):
    """Refuse `--task classify` without `--arch bert`, and flags its task does not use."""
    if args.task != "classify":
        return
    if args.arch != "bert":
        _refuse(["--task classify"], args.arch, "only to --arch bert")
    if args.val_batches is not None:
        from keras_transformer.errors import UserInputError

        raise UserInputError("--val-batches applies to --task pretrain; --task classify "
                             "validates on its held-out 10% of the file")


def settings_from_args(args):
    """Turn parsed flags into `TrainSettings` (unset flags take the arch's defaults).

    A flag the arch cannot honour (`--num-heads` with `--arch charrnn`,
    `--rnn-units` with a Transformer, `--beam-width` without `--arch
    seq2seq`) is a `UserInputError`, not ignored.
    """
    from keras_transformer.training.trainer import ARCH_DEFAULTS, TrainSettings

    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TransformerConfig)
        if getattr(args, f.name) is not None
    }
    job_flags = _job_flags(args)
    _check_arch_flags(args, overrides, job_flags)
    _check_task_flags(args)
    # --vocab-size asks the tokenizer for a vocabulary (bpe); the model's
    # vocab_size always follows the tokenizer's.
    vocab_size = overrides.pop("vocab_size", None)
    if vocab_size is not None and args.tokenizer == "char":
        print("note: --vocab-size is ignored with --tokenizer char (the vocabulary is the "
              "text's characters)")
    if args.init_from is not None:  # (the archs without --init-from refused it above)
        from keras_transformer.errors import UserInputError
        from keras_transformer.pretrained import read_hf_config
        from keras_transformer.pretrained.hub import resolve_checkpoint

        given = [_flag(name, value) for name, value in overrides.items()]
        given += ["--preset"] if args.preset else []
        if given:
            verb = "does" if len(given) == 1 else "do"
            raise UserInputError(f"{', '.join(given)} {verb} not apply with --init-from (the "
                                 "checkpoint's config.json sets the architecture)")
        args.init_from = resolve_checkpoint(args.init_from)
        config = TransformerConfig.from_hf(read_hf_config(args.init_from))
    else:
        config = TransformerConfig.preset(args.preset or ARCH_DEFAULTS[args.arch]["preset"],
                                          **overrides)
    values = dict(
        model=config,
        clipnorm=args.clipnorm,
        seed=args.seed,
        data=args.data,
        dataset=args.dataset,
        train_split=args.train_split,
        eval_split=args.eval_split,
        tokenizer=args.tokenizer,
        vocab_size=vocab_size,
        clean=args.clean,
        out=args.out,
        jit={"on": True, "off": False}.get(args.jit, args.jit),
        mixed_precision=args.mixed_precision,
        strategy=args.strategy,
        cpu_devices=args.cpu_devices,
        verbose=args.verbose,
        backup_every=args.backup_every,
        **job_flags,
    )
    for name in ("epochs", "steps_per_epoch", "batch_size", "seq_len", "learning_rate",
                 "warmup_steps", "weight_decay"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return TrainSettings.for_arch(args.arch, **values)


def _summary(metrics):
    """The last line `train.py` prints."""
    line = f"Finished: val_loss {metrics['val_loss']:.4f}"
    if metrics.get("tokenizer") == "bpe" and "val_loss_per_char" in metrics:  # a language model
        line += (f" nats/token ({metrics['val_loss_per_char']:.4f} nats/char, "
                 f"{metrics['val_bpc']:.3f} bits/char)")
    elif "val_bpc" in metrics:
        line += f" ({metrics['val_bpc']:.3f} bits/char)"
    if "val_perplexity" in metrics:
        line += (f", perplexity {metrics['val_perplexity']:,.2f} per token, "
                 f"{metrics['val_word_perplexity']:,.2f} per word")
    if "masked_token_accuracy" in metrics:
        line += (f", masked-token accuracy {metrics['masked_token_accuracy']:.3f} (unigram "
                 f"{metrics['unigram_baseline_accuracy']:.3f}), sentence-pair accuracy "
                 f"{metrics['sentence_pair_accuracy']:.3f}")
    if "macro_f1" in metrics:
        line += (f", accuracy {metrics['accuracy']:.4f} (majority class "
                 f"{metrics['majority_baseline_accuracy']:.4f}), macro-F1 "
                 f"{metrics['macro_f1']:.4f} on {metrics['eval_examples']} held-out examples")
    if "exact_match_greedy" in metrics:
        line += (f", exact match greedy {metrics['exact_match_greedy']:.4f}, beam "
                 f"{metrics['beam_width']} {metrics['exact_match_beam']:.4f}")
    return line + f", {metrics['tokens_per_sec']:,.0f} tokens/s, {metrics['seconds']:.0f} s -> {metrics['out']}"


def _export_dir(args, settings):
    """The SavedModel directory of `--export`/`--export-dir` (`None`: no export).

    Checked before training, so a wrong arch or a taken directory stops the
    command before anything is written.
    """
    if not (args.export or args.export_dir):
        return None
    import os

    from keras_transformer.errors import UserInputError
    from keras_transformer.generation.export import check_export_dir
    from keras_transformer.training.trainer import default_run_dir

    if settings.arch != "gpt":
        raise UserInputError(f"--export works with --arch gpt, not {settings.arch}")
    if settings.out is None:  # fix the run directory now: the export goes inside it
        settings.out = default_run_dir(settings.arch)
    export_dir = args.export_dir or os.path.join(settings.out, "saved_model")
    check_export_dir(export_dir)
    return export_dir


def prepare(argv=None):
    """Everything `main` does before training: `(args, settings, export_dir)`.

    Parses `argv`, turns the flags into checked `TrainSettings` and checks
    the export directory; writes nothing, builds no data or model. Every bad
    flag is a `UserInputError` (or argparse's exit 2) here.
    """
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    export_dir = _export_dir(args, settings)
    settings.check()
    return args, settings, export_dir


def main(argv=None):
    def body():
        args, settings, export_dir = prepare(argv)
        from keras_transformer.training.trainer import train

        metrics = train(settings, force_new=args.force_new)
        if not metrics["chief"]:
            print(f"Finished: worker done, val_loss {metrics['val_loss']:.4f}; the chief "
                  f"wrote {metrics['out']}")
            return 0
        if export_dir:
            from keras_transformer.cli.export import export_run

            export_run(metrics["out"], export_dir)
            print(f"Exported a SavedModel (signatures: generate, logits) to {export_dir}")
        print(_summary(metrics))
        return 0

    return run(body, "train.py")


if __name__ == "__main__":
    main()
