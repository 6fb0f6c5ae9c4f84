"""`python train.py`: train a model and fill a run directory.

    python train.py --arch gpt                      # the default mini-GPT
    python train.py --arch charrnn                  # the char-RNN baseline
    python train.py --arch gpt --num-layers 6 --d-model 192 --epochs 5 --out runs/big
"""

import argparse
import dataclasses

from keras_transformer.cli.common import ArgumentParser, run
from keras_transformer.config import CHOICES, PRESETS, TransformerConfig

ARCH_CHOICES = ("gpt", "charrnn")


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
        else:
            group.add_argument(flag, type=int, default=None, metavar="N")


def build_parser():
    from keras_transformer.training.trainer import TrainSettings

    defaults = TrainSettings()
    parser = ArgumentParser(
        prog="train.py",
        description="Train a language model on Tiny Shakespeare (or --data FILE) and write "
        "model.keras, tokenizer.json, metrics.json, history.png and sample.txt to a run directory.",
    )
    parser.add_argument("--arch", choices=ARCH_CHOICES, default="gpt")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="gpt-mini",
                        help="starting architecture; the flags below change single fields")
    parser.add_argument("--data", metavar="PATH", help="a UTF-8 text file (default: Tiny Shakespeare)")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<arch>-<time>); "
                        "the same DIR resumes an interrupted run")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="default: one pass over the training text")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--clipnorm", type=float, default=defaults.clipnorm)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=defaults.jit,
                        help="compile the train step with XLA (default on; --no-jit to disable)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--rnn-units", type=int, default=defaults.rnn_units, help="char-RNN only")
    parser.add_argument("--rnn-layers", type=int, default=defaults.rnn_layers, help="char-RNN only")
    parser.add_argument("--prompt", default=defaults.prompt, help="prompt of sample.txt")
    parser.add_argument("--sample-tokens", type=int, default=defaults.sample_tokens)
    parser.add_argument("--sample-temperature", type=float, default=defaults.sample_temperature)
    _config_flags(parser)
    return parser


def settings_from_args(args):
    """Turn parsed flags into `TrainSettings`."""
    from keras_transformer.training.trainer import TrainSettings

    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TransformerConfig)
        if getattr(args, f.name) is not None
    }
    config = TransformerConfig.preset(args.preset, **overrides)
    return TrainSettings(
        arch=args.arch,
        model=config,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        clipnorm=args.clipnorm,
        seed=args.seed,
        data=args.data,
        out=args.out,
        jit=args.jit,
        verbose=args.verbose,
        rnn_units=args.rnn_units,
        rnn_layers=args.rnn_layers,
        prompt=args.prompt,
        sample_tokens=args.sample_tokens,
        sample_temperature=args.sample_temperature,
    )


def main(argv=None):
    def body():
        args = build_parser().parse_args(argv)
        settings = settings_from_args(args)
        from keras_transformer.training.trainer import train

        metrics = train(settings)
        print(f"Finished: val_loss {metrics['val_loss']:.4f} ({metrics['val_bpc']:.3f} bits/char), "
              f"{metrics['tokens_per_sec']:,.0f} tokens/s, {metrics['seconds']:.0f} s -> {metrics['out']}")
        return 0

    return run(body, "train.py")


if __name__ == "__main__":
    main()
