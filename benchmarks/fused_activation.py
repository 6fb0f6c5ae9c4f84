"""The feed-forward activation as TensorFlow's separate kernels or as one fused XLA kernel.

    python benchmarks/fused_activation.py [--repeats 4] [--default] [--json FILE]

Two copies of one training step in one process, their `fit`s alternating
`--repeats` times (`step_variants.py`): one traced with Keras' activations
(`keras.activations.gelu` and `silu`: TensorFlow's elementwise kernels,
autodiff's gradient), one with `layers/activations.py`'s (each one
XLA-compiled kernel forward and one backward, computed in float32). The step
is issue 17 line 3's (d_model 512, 6 layers, batch 16 x 256,
`mixed_bfloat16`, XLA off as `--jit auto` picks on a CPU with AMX units), or
with `--default` `train.py --arch gpt`'s (float32, XLA), where XLA fuses
either way. Prints the median tokens/s and the ratio, round by round.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from step_variants import report, time_variants  # noqa: E402  (benchmarks/step_variants.py)

import keras_transformer.layers.feedforward as feedforward  # noqa: E402


def keras_activations():
    """`feedforward.ACTIVATIONS` with Keras' own functions in place of the fused ones."""
    tanh = lambda x: keras.activations.gelu(x, approximate=True)  # noqa: E731
    return {**feedforward.ACTIVATIONS, "gelu_tanh": tanh, "gelu": tanh, "gated-gelu": tanh,
            "gelu_erf": lambda x: keras.activations.gelu(x, approximate=False),
            "swiglu": keras.activations.silu}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--default", action="store_true",
                        help="time train.py --arch gpt's step (float32, XLA) instead")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    variants = {"keras activations": [(feedforward, "ACTIVATIONS", keras_activations())],
                "fused activations": []}
    speeds, rounds = time_variants(variants, args.repeats, large=not args.default)
    ratio = report(speeds, rounds, large=not args.default)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"step": "default" if args.default else "large",
                       "tokens_per_second": speeds, "rounds": rounds, "ratio": ratio}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
