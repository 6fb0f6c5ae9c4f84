"""Run the notebooks top to bottom, in fast mode (tests) or full mode (committed outputs).

    python notebooks/execute.py                     # full mode, outputs saved into each notebook
    python notebooks/execute.py --fast --no-save    # what the tests do: small data, few steps
    python notebooks/execute.py 03_mini_gpt         # one notebook

Fast mode sets `KERAS_TRANSFORMER_FAST=1`; each notebook reads it in its
first cell and shrinks its data and training budget. A failing cell stops
the run with the cell's error and a non-zero exit.
"""

import argparse
import glob
import os
import re
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = os.path.dirname(os.path.abspath(__file__))
FAST_ENV = "KERAS_TRANSFORMER_FAST"
# TensorFlow's C++ start-up lines (absl/oneDNN/CUDA probes) go to stderr whatever
# TF_CPP_MIN_LOG_LEVEL says; they are dropped from the saved outputs.
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d\d)")


def drop_tf_noise(notebook):
    """Remove TensorFlow's start-up log lines from the notebook's stderr outputs."""
    for cell in notebook.cells:
        outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = [ln for ln in output["text"].splitlines(True) if not TF_NOISE.match(ln)]
                if not "".join(lines).strip():
                    continue
                output["text"] = "".join(lines)
            outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs


def notebook_paths(names=()):
    """The notebooks in this folder, or those whose file name starts with one of `names`."""
    paths = sorted(glob.glob(os.path.join(HERE, "[0-9][0-9]_*.ipynb")))
    if names:
        paths = [p for p in paths if any(os.path.basename(p).startswith(n) for n in names)]
    return paths


def execute(path, fast, save, timeout=1800):
    """Execute one notebook (cwd = its folder); return its wall time in seconds."""
    notebook = nbformat.read(path, as_version=4)
    os.environ[FAST_ENV] = "1" if fast else "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The kernel imports this checkout's keras_transformer even if it is not pip-installed.
    root = os.path.dirname(HERE)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, paths)])
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": HERE}},
    )
    start = time.time()
    client.execute()
    seconds = time.time() - start
    if save:
        drop_tf_noise(notebook)
        notebook.metadata.setdefault("keras_transformer", {})["executed"] = {
            "mode": "fast" if fast else "full",
            "seconds": round(seconds),
        }
        nbformat.write(notebook, path)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument("--fast", action="store_true", help="small data and few steps")
    parser.add_argument("--no-save", dest="save", action="store_false",
                        help="do not write the outputs back into the notebooks")
    args = parser.parse_args(argv)
    paths = notebook_paths(args.names)
    if not paths:
        print(f"error: no notebook matches {args.names}", file=sys.stderr)
        return 2
    for path in paths:
        try:
            seconds = execute(path, args.fast, args.save)
        except CellExecutionError as error:
            print(f"{os.path.basename(path)} failed:\n{error}", file=sys.stderr)
            return 1
        print(f"{os.path.basename(path)}: {seconds:.0f} s ({'fast' if args.fast else 'full'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
