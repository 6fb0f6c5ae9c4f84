"""Train a model: `python train.py --arch gpt` (see `python train.py --help`)."""

import os

# Hide TensorFlow's C++ info/warning chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_transformer.cli.train import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
