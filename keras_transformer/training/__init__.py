"""Training: the optimizer recipe, the run directory, and `train()` itself.

`TrainSettings` holds what every run shares; its `job` holds the arch's own
options, a settings class beside the arch's job: `GPTSettings` and
`CharRNNSettings` (both `LMSettings`) in `lm.py`, `BertSettings` in `bert.py`, `Seq2SeqSettings`
in `seq2seq.py`.
"""

from keras_transformer.training.bert import BertSettings
from keras_transformer.training.lm import CharRNNSettings, GPTSettings, LMSettings
from keras_transformer.training.schedules import make_optimizer, warmup_cosine
from keras_transformer.training.seq2seq import Seq2SeqSettings
from keras_transformer.training.trainer import (
    ARCH_DEFAULTS,
    ARCHS,
    JOB_SETTINGS,
    TrainSettings,
    train,
)

__all__ = [
    "ARCHS",
    "ARCH_DEFAULTS",
    "JOB_SETTINGS",
    "BertSettings",
    "CharRNNSettings",
    "GPTSettings",
    "LMSettings",
    "Seq2SeqSettings",
    "TrainSettings",
    "make_optimizer",
    "train",
    "warmup_cosine",
]
