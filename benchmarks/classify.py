"""Fine-tuning BERT for classification: `train.py --arch bert --task classify` on a real-text task.

    python benchmarks/classify.py --wikitext ../shared/data/wikitext-2 --json benchmarks/classify.json
    python benchmarks/classify.py --wikitext ../shared/data/wikitext-2 --epochs 1 --steps 5  # smoke

The task, written to `--tsv` (default `data/romeo_juliet_wiki.tsv`), has three
labels: lines spoken by ROMEO and by JULIET in Tiny Shakespeare (4 words or
more), and 600 WikiText-2 `valid.txt` sentences of 4 to 16 words (the
`@-@`-style tokenization undone). Every line is `text<TAB>label`, shuffled
with a fixed seed. Each row of the table is one `train.py` run on it (a
small BERT trained from scratch: no pretrained weights are reachable here),
which holds out 10 % of each label; the figures are its `metrics.json`:
accuracy and macro-F1 against the majority-class baseline, and the F1 of
each label. The table is printed and written as JSON with the command lines.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RUNS = {
    "char": [],
    "bpe": ["--tokenizer", "bpe", "--vocab-size", "1000"],
}
SPEAKER = re.compile(r"[A-Z][A-Z ]+:")


def shakespeare_lines(text, speakers=("ROMEO", "JULIET")):
    """`(line, speaker)` of every line of 4+ words spoken by one of `speakers`."""
    rows, speaker = [], None
    for line in text.split("\n"):
        if SPEAKER.fullmatch(line):
            speaker = line[:-1]
        elif not line.strip():
            speaker = None
        elif speaker in speakers and len(line.split()) >= 4:
            rows.append((line.strip(), speaker.lower()))
    return rows


def wikitext_sentences(text):
    """Sentences of 4 to 16 words of WikiText-2, its `@-@` tokenization undone."""
    sentences = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("="):
            continue
        line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
        line = re.sub(r" ([,.;:!?)'])", r"\1", line).replace("( ", "(")
        sentences += [s for s in re.split(r"(?<=[a-z]{3}\.) (?=[A-Z])", line)
                      if 4 <= len(s.split()) <= 16 and "<unk>" not in s]
    return sentences


def write_task(path, wikitext_dir, seed=0, wiki_lines=600):
    """Write the three-label TSV; returns its number of lines per label."""
    sys.path.insert(0, REPO)
    from keras_transformer.data import shakespeare_path

    with open(shakespeare_path(), encoding="utf-8") as handle:
        rows = shakespeare_lines(handle.read())
    with open(os.path.join(wikitext_dir, "valid.txt"), encoding="utf-8") as handle:
        wiki = wikitext_sentences(handle.read())
    rng = random.Random(seed)
    rng.shuffle(wiki)
    rows += [(sentence, "wikitext") for sentence in wiki[:wiki_lines]]
    rng.shuffle(rows)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{text.replace(chr(9), ' ')}\t{label}\n" for text, label in rows)
    counts = {}
    for _, label in rows:
        counts[label] = counts.get(label, 0) + 1
    return counts


def run(name, tsv, out, epochs, steps):
    """One `train.py` classification run; its command, wall time and metrics."""
    command = ["python", "train.py", "--arch", "bert", "--task", "classify", "--data", tsv,
               *RUNS[name], "--num-layers", "2", "--dropout", "0.1", "--epochs", str(epochs),
               "--steps-per-epoch", str(steps), "--verbose", "0", "--out", out]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *command[1:]], cwd=REPO, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    with open(os.path.join(REPO, out, "metrics.json"), encoding="utf-8") as handle:
        metrics = json.load(handle)
    return {"tokenizer": name, "command": " ".join(command), "seconds": round(seconds, 1),
            **{key: metrics[key] for key in ("accuracy", "macro_f1", "majority_baseline_accuracy",
                                             "majority_baseline_macro_f1", "f1_per_label",
                                             "eval_examples", "train_examples")}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wikitext", required=True, metavar="DIR",
                        help="a WikiText-2 folder holding valid.txt")
    parser.add_argument("--tsv", default="data/romeo_juliet_wiki.tsv")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50, help="steps per epoch")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    counts = write_task(os.path.join(REPO, args.tsv), args.wikitext)
    print(f"{args.tsv}: {sum(counts.values())} lines, " +
          ", ".join(f"{label} {n}" for label, n in sorted(counts.items())))
    print(f"{'tokenizer':<10} {'accuracy':>9} {'majority':>9} {'macro-F1':>9} {'majority':>9} "
          f"{'seconds':>8}  F1 per label")
    results = []
    for name in RUNS:
        row = run(name, args.tsv, f"runs/classify-{name}", args.epochs, args.steps)
        results.append(row)
        per_label = ", ".join(f"{k} {v:.3f}" for k, v in sorted(row["f1_per_label"].items()))
        print(f"{name:<10} {row['accuracy']:>9.4f} {row['majority_baseline_accuracy']:>9.4f} "
              f"{row['macro_f1']:>9.4f} {row['majority_baseline_macro_f1']:>9.4f} "
              f"{row['seconds']:>8.1f}  {per_label}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "labels": counts,
                       "settings": {"tsv": args.tsv, "epochs": args.epochs,
                                    "steps_per_epoch": args.steps}}, handle, indent=2)


if __name__ == "__main__":
    main()
