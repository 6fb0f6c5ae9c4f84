"""What a run leaves behind besides the model: metrics, loss curves, history."""

import csv
import json
import math
import os


def write_json_atomic(path, values):
    """Write JSON to `path` through a temporary file, so a reader never sees half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(values, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    os.replace(tmp, path)


def read_history(path):
    """Rows of a Keras `CSVLogger` file as dicts of floats (empty if absent).

    When a run was resumed, an epoch interrupted before its end has no row and
    a repeated epoch keeps its last row.
    """
    if not os.path.exists(path):
        return []
    by_epoch = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                by_epoch[int(row["epoch"])] = {k: float(v) for k, v in row.items() if v != ""}
            except (KeyError, ValueError):
                continue
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_history(history, path, title):
    """Train and validation loss per epoch, saved as a PNG.

    Draws on a standalone `Figure` (not `pyplot`), so it works without a
    display and leaves a notebook's plotting backend alone.
    """
    from matplotlib.figure import Figure

    epochs = [int(row["epoch"]) + 1 for row in history]
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    axis.plot(epochs, [row["loss"] for row in history], marker="o", label="train")
    if all("val_loss" in row for row in history):
        axis.plot(epochs, [row["val_loss"] for row in history], marker="o", label="validation")
    axis.set_xlabel("epoch (one pass over the training text)")
    axis.set_ylabel("cross-entropy (nats / token)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def bits_per_token(loss_nats):
    """Convert a loss in nats to bits."""
    return loss_nats / math.log(2)
