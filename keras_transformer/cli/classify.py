"""`python -m keras_transformer.classify`: label texts with a fine-tuned classifier run.

    python -m keras_transformer.classify --model runs/bert-... --text "a fine day"
    python -m keras_transformer.classify --model RUN_DIR --text "A man sleeps." \\
        --text-b "Nobody is asleep."
    python -m keras_transformer.classify --model RUN_DIR --text "first" --text "second"

`--model` is a run directory of `train.py --arch bert --task classify`. Each
`--text` (with its `--text-b`, for a classifier trained on text pairs) gives
one line on standard output, in order:

    LABEL<TAB>PROBABILITY

the most probable label and its softmax probability, with 4 decimals. Texts
are packed and truncated as in training (`--seq-len` of the run) and cleaned
if the run's were.
"""

import json
import os
import sys

import numpy as np

from keras_transformer.cli.common import ArgumentParser, run
from keras_transformer.errors import UserInputError


class RunClassifier:
    """The classifier of a finished `--task classify` run: its model, tokenizer and packing.

    Args:
        run_dir: the run directory (`model.keras`, `config.json`,
            `tokenizer.json`, `metrics.json`).

    Attributes:
        model: the `BertClassifier` (loaded with `keras.saving.load_model`,
            safe mode).
        tokenizer: the run's tokenizer.
        labels: the label names, by class id.
        seq_len: the packing length of training.
        pairs: whether it was trained on text pairs (`None`: not recorded).
        clean: whether texts are cleaned first, as in training.
    """

    def __init__(self, run_dir):
        import keras

        from keras_transformer.data import load_tokenizer
        from keras_transformer.models import BertClassifier

        if not os.path.isdir(run_dir):
            raise UserInputError(f"--model {run_dir} is not a directory")
        needed = ("model.keras", "tokenizer.json", "config.json", "metrics.json")
        missing = [name for name in needed if not os.path.exists(os.path.join(run_dir, name))]
        if missing:
            raise UserInputError(
                f"{run_dir} is not a finished run directory (missing {', '.join(missing)})"
            )
        run_config = _read_json(os.path.join(run_dir, "config.json"))
        metrics = _read_json(os.path.join(run_dir, "metrics.json"))
        task = (run_config.get("settings", {}).get("job") or {}).get("task")
        if run_config.get("arch") != "bert" or task != "classify":
            kind = run_config.get("arch", "unknown") + (f" --task {task}" if task else "")
            raise UserInputError(f"{run_dir} holds a {kind} run; classify needs a run of "
                                 "train.py --arch bert --task classify")
        try:
            self.seq_len = int(run_config["context"])
        except (KeyError, TypeError, ValueError):
            raise UserInputError(f"{run_dir}/config.json is not a run config") from None
        path = os.path.join(run_dir, "model.keras")
        try:
            self.model = keras.saving.load_model(path, safe_mode=True)
        except Exception as error:  # a truncated zip, a foreign file ...
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise UserInputError(f"could not load {path} ({first})") from None
        if not isinstance(self.model, BertClassifier):
            raise UserInputError(f"{path} holds a {type(self.model).__name__}, not a "
                                 "BertClassifier")
        self.tokenizer = load_tokenizer(os.path.join(run_dir, "tokenizer.json"))
        self.labels = list(self.model.labels)
        self.pairs = metrics.get("pairs")
        self.clean = bool(metrics.get("cleaned", False))

    def probabilities(self, texts_a, texts_b=None):
        """Softmax probabilities `[len(texts_a), num_labels]` of texts (or pairs).

        Raises:
            UserInputError: a blank text, a missing or unexpected second text
                (the run was trained on pairs, or on single texts), or a
                text the tokenizer cannot encode.
        """
        import keras

        from keras_transformer.data.classify import encode_texts
        from keras_transformer.data.cleaning import clean_text

        texts_a = list(texts_a)
        if texts_b is not None:
            texts_b = list(texts_b)
            if len(texts_b) != len(texts_a):
                raise UserInputError(f"{len(texts_a)} --text but {len(texts_b)} --text-b; give "
                                     "one --text-b after each --text")
        if not texts_a:
            raise UserInputError("no --text to classify")
        if self.pairs is True and texts_b is None:
            raise UserInputError("this classifier was trained on text pairs; give --text-b too")
        if self.pairs is False and texts_b is not None:
            raise UserInputError("this classifier was trained on single texts; --text-b does "
                                 "not apply")
        for flag, texts in (("--text", texts_a), ("--text-b", texts_b or [])):
            if any(not text.strip() for text in texts):
                raise UserInputError(f"{flag} is empty")
        if self.clean:
            texts_a = [clean_text(text) for text in texts_a]
            texts_b = None if texts_b is None else [clean_text(text) for text in texts_b]
        token_ids, segment_ids, _ = encode_texts(self.tokenizer, texts_a, texts_b, self.seq_len)
        logits = self.model({"token_ids": token_ids, "segment_ids": segment_ids}, training=False)
        return keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))

    def classify(self, texts_a, texts_b=None):
        """`[(label, probability)]`: the most probable label of each text (or pair)."""
        probabilities = self.probabilities(texts_a, texts_b)
        best = np.argmax(probabilities, axis=-1)
        return [(self.labels[i], float(p[i])) for i, p in zip(best, probabilities, strict=True)]


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (OSError, ValueError):
        raise UserInputError(f"{path} is not a JSON file of a run") from None
    if not isinstance(values, dict):
        raise UserInputError(f"{path} is not a JSON file of a run")
    return values


def build_parser():
    parser = ArgumentParser(
        prog="python -m keras_transformer.classify",
        description="Label texts with a classifier of train.py --arch bert --task classify. "
        "Prints one 'LABEL<TAB>PROBABILITY' line per --text: the most probable label and its "
        "probability.",
    )
    parser.add_argument("--model", required=True, metavar="RUN_DIR",
                        help="a run directory of train.py --arch bert --task classify")
    parser.add_argument("--text", action="append", required=True, metavar="TEXT",
                        help="a text to classify (repeat for several)")
    parser.add_argument("--text-b", action="append", default=None, metavar="TEXT",
                        help="the second text of each pair, for a classifier trained on "
                        "'text_a<TAB>text_b<TAB>label' lines (one per --text)")
    return parser


def main(argv=None):
    def body():
        args = build_parser().parse_args(argv)
        classifier = RunClassifier(args.model)
        for label, probability in classifier.classify(args.text, args.text_b):
            sys.stdout.write(f"{label}\t{probability:.4f}\n")
        return 0

    return run(body, "classify")


if __name__ == "__main__":
    main()
