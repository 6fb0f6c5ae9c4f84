"""`python -m keras_transformer.generate`: continue a prompt with a trained model.

    python -m keras_transformer.generate --model runs/gpt-... --prompt "ROMEO:" \\
        --max-new-tokens 100 --temperature 0.7 --top-k 40 --seed 1

`--model` is a run directory of `train.py`, a Hugging Face GPT-2, Llama or
T5 checkpoint folder (weights, config and tokenizer; generation stops at its
end-of-sequence token), or a SavedModel written by
`python -m keras_transformer.export` (or `train.py --export`). A GPT decodes
with its KV cache (`--no-cache` re-runs the model over the window at every
step, for comparison). Text longer than the model's context slides its
window, as `keras_transformer.generate` does: cached, by half a window at a
time; with `--no-cache`, by one token. `--no-slide` makes it an error
instead (run directories only: a SavedModel always decodes with its cache
and slides).

An encoder-decoder (a T5 folder, a `--arch seq2seq` run) reads `--prompt` as
its source and prints its output: greedy, or beam search with
`--num-beams N`, KV-cached (`--no-cache`: the whole model re-runs over the
decoder's inputs at every step; the same tokens).
"""

import argparse
import contextlib
import json
import os
import sys

from keras_transformer.cli.common import ArgumentParser, run
from keras_transformer.config import INT32_MAX
from keras_transformer.errors import UserInputError


def load_run(run_dir):
    """The model, tokenizer and context length stored in a run directory."""
    from keras_transformer.config import TransformerConfig
    from keras_transformer.data import load_tokenizer
    from keras_transformer.models.upgrade import load_model

    if not os.path.isdir(run_dir):
        raise UserInputError(f"--model {run_dir} is not a directory")
    if is_hf_checkpoint(run_dir):
        from keras_transformer.pretrained import from_pretrained

        model = from_pretrained(run_dir)
        if not hasattr(model, "config") or type(model).__name__ == "BERT":
            raise UserInputError(
                f"{run_dir} is an encoder-only (bert) checkpoint: it classifies and embeds "
                "text but does not generate it"
            )
        return model, load_tokenizer(run_dir), model.config.max_len
    needed = ("model.keras", "tokenizer.json", "config.json")
    missing = [name for name in needed if not os.path.exists(os.path.join(run_dir, name))]
    if missing:
        raise UserInputError(
            f"{run_dir} is not a finished run directory (missing {', '.join(missing)})"
        )
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as handle:
            run_config = json.load(handle)
        context = int(run_config["context"])
    except (ValueError, KeyError, TypeError):
        raise UserInputError(f"{run_dir}/config.json is not a run config") from None
    arch = run_config.get("arch", "gpt")
    if arch not in ("gpt", "charrnn", "seq2seq"):
        raise UserInputError(
            f"{run_dir} holds a {arch} run; generate continues prompts with gpt, charrnn and "
            f"seq2seq runs (a {arch} run's metrics.json and sample.txt hold its evaluation)"
        )
    tokenizer = load_tokenizer(os.path.join(run_dir, "tokenizer.json"))
    try:  # files of earlier versions were plain functional GPTs: config.json holds the config
        config = TransformerConfig.from_dict(run_config["settings"]["model"])
    except (KeyError, TypeError, UserInputError):
        config = None
    model = load_model(os.path.join(run_dir, "model.keras"), config if arch == "gpt" else None)
    return model, tokenizer, context


def is_hf_checkpoint(path):
    """Whether `path` is a Hugging Face checkpoint folder (its config.json has a model_type)."""
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
            return "model_type" in json.load(handle)
    except (OSError, ValueError, TypeError):
        return False


def is_saved_model(path):
    """Whether `path` is a SavedModel directory (it holds `saved_model.pb`)."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def generate_with_saved_model(path, prompt, max_new_tokens, temperature, top_k, top_p, seed):
    """Call the `generate` signature of the SavedModel at `path` on one prompt."""
    import tensorflow as tf

    # SentencePiece ops come from tensorflow_text; only a BPE SavedModel needs them.
    with contextlib.suppress(ImportError):
        import tensorflow_text  # noqa: F401
    from keras_transformer.generation.export import assertion_message

    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # a truncated file, ops of a missing library ...
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserInputError(f"could not load the SavedModel {path} ({first_line[:200]})") from None
    signature = loaded.signatures.get("generate")
    if signature is None:
        raise UserInputError(
            f"the SavedModel {path} has no 'generate' signature; export a run with "
            "python -m keras_transformer.export RUN_DIR OUT_DIR"
        )
    try:
        text = signature(
            prompt=tf.constant([prompt]),
            max_new_tokens=tf.constant(max_new_tokens, tf.int32),
            temperature=tf.constant(temperature, tf.float32),
            top_k=tf.constant(top_k, tf.int32),
            top_p=tf.constant(top_p, tf.float32),
            seed=tf.constant(seed, tf.int32),
        )["text"]
    except tf.errors.InvalidArgumentError as error:
        message = assertion_message(error)
        if message is None:
            raise
        raise UserInputError(message) from None
    return text.numpy()[0].decode("utf-8")


def build_parser():
    parser = ArgumentParser(
        prog="python -m keras_transformer.generate",
        description="Generate text from a trained run directory or an exported SavedModel.",
    )
    parser.add_argument("--model", required=True, metavar="PATH",
                        help="a run directory of train.py, a Hugging Face checkpoint folder "
                        "(gpt2, llama, t5; hf://REPO_ID downloads one), or a SavedModel of "
                        "python -m keras_transformer.export")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=None,
                        help="0 for greedy decoding (default 0.7 for decoders; an "
                        "encoder-decoder decodes greedily or with --num-beams)")
    parser.add_argument("--num-beams", type=int, default=1,
                        help="encoder-decoders (T5, seq2seq runs): beam search with this many "
                        "beams (1: greedy)")
    parser.add_argument("--top-k", type=int, default=0, help="0 disables top-k filtering")
    parser.add_argument("--top-p", type=float, default=1.0, help="1.0 disables nucleus filtering")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                        help="KV-cached decoding (default); --no-cache re-runs the model "
                        "over the whole window at every step")
    parser.add_argument("--slide", action=argparse.BooleanOptionalAction, default=None,
                        help="let the text grow past the model's context by sliding the window "
                        "(default); --no-slide stops with an error instead")
    return parser


# The decoding loops count tokens and seeds in int32 tensors.
INT32_MIN = -(2**31)


def _memory_bytes():
    """The machine's physical memory in bytes (`None` where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_args(args):
    """Refuse flag values no model can honour, before any model is loaded (one line each).

    `--temperature` must be a finite number >= 0 (NaN would silently decode
    greedily, infinity sample uniformly), `--top-k` >= 0, `--top-p` in
    (0, 1], `--seed` and the counts int32 (what the decoding loop holds), and
    the generated ids must fit in memory (4 bytes a token, kept twice).
    """
    import math

    if args.max_new_tokens < 0:
        raise UserInputError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if args.max_new_tokens > INT32_MAX:
        raise UserInputError(f"--max-new-tokens must be at most {INT32_MAX}, got "
                             f"{args.max_new_tokens}")
    if not 1 <= args.num_beams <= INT32_MAX:
        raise UserInputError(f"--num-beams must be >= 1, got {args.num_beams}")
    memory = _memory_bytes()
    needed = 2 * 4 * args.max_new_tokens * args.num_beams
    if memory and needed > memory:
        raise UserInputError(
            f"--max-new-tokens {args.max_new_tokens} needs {needed / 2**30:,.1f} GiB for the ids "
            f"alone; this machine has {memory / 2**30:,.1f} GiB"
        )
    if args.temperature is not None and not (math.isfinite(args.temperature)
                                             and args.temperature >= 0):
        raise UserInputError(f"--temperature must be a finite number >= 0 (0: greedy), got "
                             f"{args.temperature}")
    if not 0 <= args.top_k <= INT32_MAX:
        raise UserInputError(f"--top-k must be >= 0 (0: no top-k filtering), got {args.top_k}")
    if not 0.0 < args.top_p <= 1.0:
        raise UserInputError(f"--top-p must be in (0, 1] (1: no nucleus filtering), got "
                             f"{args.top_p}")
    if not INT32_MIN <= args.seed <= INT32_MAX:
        raise UserInputError(f"--seed must be an int32, from {INT32_MIN} to {INT32_MAX}, got "
                             f"{args.seed}")


def parse_args(argv=None):
    """The parsed flags of `generate`, checked (`check_args`); loads nothing."""
    args = build_parser().parse_args(argv)
    check_args(args)
    return args


def main(argv=None):
    def body():
        args = parse_args(argv)
        from keras_transformer.pretrained.hub import resolve_checkpoint

        args.model = resolve_checkpoint(args.model)
        if is_saved_model(args.model):
            if args.slide is not None or not args.cache:
                raise UserInputError(
                    "--slide, --no-slide and --no-cache work with run directories; a SavedModel "
                    "always decodes with its KV cache and slides past the model's context"
                )
            if args.num_beams != 1:
                raise UserInputError("--num-beams is for encoder-decoders; a SavedModel of a "
                                     "GPT samples or decodes greedily")
            text = generate_with_saved_model(
                args.model, args.prompt, args.max_new_tokens, _temperature(args), args.top_k,
                args.top_p, args.seed,
            )
            sys.stdout.write(text + "\n")
            return 0
        from keras_transformer.generation import generate

        model, tokenizer, context = load_run(args.model)
        if type(model).__name__ == "Seq2Seq":
            sys.stdout.write(_translate(args, model, tokenizer) + "\n")
            return 0
        if args.num_beams != 1:
            raise UserInputError("--num-beams is for encoder-decoders (T5, seq2seq runs); a "
                                 "decoder samples (--temperature) or decodes greedily (0)")
        text = generate(
            model,
            tokenizer,
            args.prompt,
            max_new_tokens=args.max_new_tokens,
            temperature=_temperature(args),
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
            context=context,
            use_cache=args.cache,
            slide=args.slide is not False,
        )
        sys.stdout.write(text + "\n")
        return 0

    return run(body, "generate")


def _temperature(args):
    return 0.7 if args.temperature is None else args.temperature


def _translate(args, model, tokenizer):
    """The output of an encoder-decoder for `--prompt`: greedy or beam search, cached."""
    from keras_transformer.generation.translate import translate

    sampling = [flag for flag, given in (("--temperature", args.temperature not in (None, 0)),
                                          ("--top-k", args.top_k != 0),
                                          ("--top-p", args.top_p != 1.0),
                                          ("--slide/--no-slide", args.slide is not None))
                if given]
    if sampling:
        raise UserInputError(
            f"{sampling[0]} does not apply to an encoder-decoder: it decodes greedily, or with "
            "--num-beams N"
        )
    if args.max_new_tokens < 1:
        raise UserInputError("--max-new-tokens must be >= 1 for an encoder-decoder")
    start = None
    if is_hf_checkpoint(args.model):
        with open(os.path.join(args.model, "config.json"), encoding="utf-8") as handle:
            start = json.load(handle).get("decoder_start_token_id")
    return translate(model, tokenizer, args.prompt, args.max_new_tokens,
                     num_beams=args.num_beams, use_cache=args.cache, decoder_start_id=start)


if __name__ == "__main__":
    main()
