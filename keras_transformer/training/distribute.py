"""Where training runs: TensorFlow's distribution strategies and mixed precision.

The same `train()` runs on one CPU, several GPUs, many machines or a TPU by
choosing a `tf.distribute` strategy; the model, optimizer and metrics are
created inside its scope and Keras' `fit` distributes the dataset. The batch
size the data pipeline produces is the *global* batch: per-replica batch times
the number of replicas.

- `default`: no distribution (one CPU or one GPU).
- `mirrored`: `tf.distribute.MirroredStrategy`, one replica per local GPU (or
  per logical CPU device), gradients all-reduced every step.
- `multiworker`: `tf.distribute.MultiWorkerMirroredStrategy`, several machines,
  each described by the `TF_CONFIG` environment variable.
- `tpu`: `tf.distribute.TPUStrategy` on a Cloud TPU (`--tpu NAME`, or the
  local TPU).
"""

import json
import os

import keras
import tensorflow as tf

from keras_transformer.errors import UserInputError

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def make_strategy(name="default", tpu=None):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserInputError(
                "--strategy multiworker needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}})'
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise UserInputError("TF_CONFIG is not valid JSON") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as error:
            raise UserInputError(f"no TPU found ({str(error).splitlines()[0]})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise UserInputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def is_chief(strategy=None):
    """Whether this process writes the run directory.

    Only one process of a multi-worker job may write checkpoints, the model
    and the metrics: the `chief` task, or worker 0 when there is no chief.
    Every single-process strategy is its own chief.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_suffix(strategy=None):
    """`""` for the chief, `"-worker-N"` for the others (their scratch directories)."""
    if is_chief(strategy):
        return ""
    resolver = strategy.cluster_resolver
    return f"-{resolver.task_type}-{resolver.task_id}"


def precision_policy(mixed):
    """The Keras dtype policy name: float32, or the mixed policy the device runs fastest.

    `mixed_float16` (with loss scaling, which Keras adds to the optimizer
    itself) on GPUs; `mixed_bfloat16` on CPUs and TPUs, which need no loss
    scaling. Variables stay float32 either way; the models compute softmax,
    normalisation and logits in float32.
    """
    if not mixed:
        return "float32"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def set_precision(mixed):
    """Set the global Keras dtype policy (see `precision_policy`) and return its name."""
    name = precision_policy(mixed)
    keras.mixed_precision.set_global_policy(name)
    return name


def distribute_options(dataset):
    """Shard a generated (not file-based) dataset by data across workers."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
