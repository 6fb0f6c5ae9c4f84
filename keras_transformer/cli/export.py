"""`python -m keras_transformer.export RUN_DIR OUT_DIR`: a run's GPT as a SavedModel.

    python -m keras_transformer.export runs/gpt-default runs/gpt-default/saved_model
    python -m keras_transformer.export runs/gpt2-shakespeare checkpoints/mine --format hf

The SavedModel's `generate` signature turns prompts into text with the
tokenizer and the KV-cached decoding loop inside the graph; `logits` runs
the model on token ids (see `keras_transformer/generation/export.py`).
`python train.py --export` does the same at the end of training.
`--format hf` writes the Hugging Face layout instead (`save_pretrained`):
a run fine-tuned from a checkpoint (`train.py --init-from`) goes back to
`transformers` with its tokenizer.
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
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished gpt run of train.py, or a "
                        "Hugging Face checkpoint folder (hf://REPO_ID downloads one)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the SavedModel directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT_DIR")
    parser.add_argument("--format", choices=("saved_model", "hf"), default="saved_model",
                        help="saved_model (default): a TensorFlow SavedModel; hf: a Hugging "
                        "Face folder (config.json, model.safetensors, tokenizer.json) for "
                        "transformers, for runs with a Hugging Face tokenizer")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="decode with XLA like the library (default), so sampled text "
                        "matches it; --no-jit for a TensorFlow without XLA")
    return parser


def export_run(run_dir, out_dir, overwrite=False, jit_compile=True, format="saved_model"):
    """Export the GPT of `run_dir` to `out_dir` as a SavedModel or (`"hf"`) a Hugging Face folder."""
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
    if format == "hf":
        return export_hf(run_dir, model, tokenizer, out_dir, overwrite)
    return export_generator(model, tokenizer, out_dir, context=context, overwrite=overwrite,
                            jit_compile=jit_compile)


def export_hf(run_dir, model, tokenizer, out_dir, overwrite):
    """Write a run's model and tokenizer as a Hugging Face folder; returns `out_dir`."""
    from keras_transformer.data.hf_tokenizers import ByteLevelBPETokenizer
    from keras_transformer.files import replaced_directory
    from keras_transformer.pretrained import save_pretrained

    if not isinstance(tokenizer, ByteLevelBPETokenizer):
        raise UserInputError(
            f"{run_dir} has a {tokenizer.kind} tokenizer, which has no Hugging Face form; "
            "--format hf exports runs with a Hugging Face tokenizer (train.py --init-from)"
        )
    try:
        with replaced_directory(out_dir) as staging:  # OUT_DIR is never half-written
            save_pretrained(model, tokenizer, staging)
    except OSError as error:
        raise UserInputError(f"cannot write {out_dir}: {error.strerror or error}") from None
    return out_dir


def main(argv=None):
    def body():
        args = build_parser().parse_args(argv)
        from keras_transformer.pretrained.hub import resolve_checkpoint

        args.run_dir = resolve_checkpoint(args.run_dir)
        out = export_run(args.run_dir, args.out_dir, args.overwrite, args.jit, args.format)
        what = ("a Hugging Face folder: config.json, model.safetensors, tokenizer.json"
                if args.format == "hf" else "signatures: generate, logits")
        sys.stdout.write(f"Exported {args.run_dir} to {out} ({what})\n")
        return 0

    return run(body, "export")


if __name__ == "__main__":
    main()
