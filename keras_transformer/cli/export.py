"""`python -m keras_transformer.export RUN_DIR OUT_DIR`: a run's GPT as a SavedModel.

    python -m keras_transformer.export runs/gpt-default runs/gpt-default/saved_model

The SavedModel's `generate` signature turns prompts into text with the
tokenizer and the KV-cached decoding loop inside the graph; `logits` runs
the model on token ids (see `keras_transformer/generation/export.py`).
`python train.py --export` does the same at the end of training.
"""

import argparse
import contextlib
import json
import os
import sys

from keras_transformer.cli.common import ArgumentParser, run
from keras_transformer.errors import UserInputError


def build_parser():
    parser = ArgumentParser(
        prog="python -m keras_transformer.export",
        description="Export a trained GPT run directory as a TensorFlow SavedModel with "
        "'generate' (prompts -> text) and 'logits' (token ids -> logits) signatures.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished gpt run of train.py")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the SavedModel directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT_DIR")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="decode with XLA like the library (default), so sampled text "
                        "matches it; --no-jit for a TensorFlow without XLA")
    return parser


def export_run(run_dir, out_dir, overwrite=False, jit_compile=True):
    """Export the GPT of `run_dir` to `out_dir`; returns `out_dir`."""
    from keras_transformer.cli.generate import load_run
    from keras_transformer.generation.export import check_export_dir, export_generator

    check_export_dir(out_dir, overwrite)
    arch = "gpt"  # a missing or broken config.json is load_run's to report
    config = os.path.join(run_dir, "config.json")
    with (contextlib.suppress(OSError, ValueError, AttributeError),
          open(config, encoding="utf-8") as handle):
        arch = json.load(handle).get("arch", "gpt")
    if arch != "gpt":
        raise UserInputError(f"{run_dir} holds a {arch} run; only gpt runs can be exported")
    model, tokenizer, context = load_run(run_dir)
    return export_generator(model, tokenizer, out_dir, context=context, overwrite=overwrite,
                            jit_compile=jit_compile)


def main(argv=None):
    def body():
        args = build_parser().parse_args(argv)
        out = export_run(args.run_dir, args.out_dir, args.overwrite, args.jit)
        sys.stdout.write(f"Exported {args.run_dir} to {out} (signatures: generate, logits)\n")
        return 0

    return run(body, "export")


if __name__ == "__main__":
    main()
