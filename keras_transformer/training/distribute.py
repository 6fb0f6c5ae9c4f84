"""Where training runs: a `tf.distribute` strategy and a mixed-precision policy.

`train()` asks this module for three things, all TensorFlow's own engines:

- `make_strategy(name)`: `"default"` (one device), `"mirrored"`
  (`tf.distribute.MirroredStrategy`: every GPU of this machine, or its
  logical CPUs), `"multiworker"` (`tf.distribute.MultiWorkerMirroredStrategy`,
  the cluster and this worker's role read from the `TF_CONFIG` environment
  variable) or `"tpu"` (`tf.distribute.TPUStrategy`). The model, the
  optimizer and the metrics are created in `strategy.scope()`; Keras'
  `fit` then splits every global batch over the replicas and all-reduces
  the gradients.
- `is_chief(strategy)`: only the chief worker writes the run directory
  (config, checkpoints, backups, logs, model, metrics); the other workers
  train and evaluate with it and write nothing.
- `precision_policy(enabled)`: `mixed_float16` on a GPU (Keras' `compile`
  then wraps the optimizer in a `LossScaleOptimizer`), `mixed_bfloat16` on a
  CPU or TPU; variables stay float32, and so do the softmax, the norms and
  the logits (see the layers).

`choose_jit(jit, mixed_precision)` settles `--jit auto`: XLA compiles the
step, except for a mixed-precision run on a CPU with bfloat16 matrix units
(Intel AMX), whose matmuls run on those units only through TensorFlow's
oneDNN kernels (XLA's CPU dots do not use them: `benchmarks/matmul.py`).

`split_cpu(n)` turns the CPU into `n` logical devices, so that the mirrored
path can be tried (and is tested) on a machine without GPUs.
"""

import contextlib
import glob
import json
import os

import keras
import tensorflow as tf

from keras_transformer.errors import UserInputError

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def split_cpu(num_devices):
    """Split the (first) CPU into `num_devices` logical devices.

    Must run before TensorFlow initialises its devices, i.e. before any
    tensor is created in the process.
    """
    if num_devices is None or num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as error:  # devices already initialised with another layout
        if len(tf.config.list_logical_devices("CPU")) != num_devices:
            raise UserInputError(
                f"cannot split the CPU into {num_devices} devices after TensorFlow started; "
                "do it first thing in the process"
            ) from error


def _tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UserInputError(
            "--strategy multiworker needs the TF_CONFIG environment variable (the cluster's "
            'workers and this one\'s index), e.g. TF_CONFIG=\'{"cluster": {"worker": '
            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
        )
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise UserInputError(
            f"TF_CONFIG is not a cluster spec with 'cluster.worker' and 'task.type/index': {raw}"
        ) from error
    return workers, task


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`tf.distribute.MultiWorkerMirroredStrategy` with the `reduce` Keras' `fit` expects.

    Keras 3 calls `strategy.reduce` in two ways the multi-worker strategy
    does not take: on a whole `(inputs, targets)` batch (to learn its shapes
    before training; `MirroredStrategy` accepts a nest, this strategy one
    value at a time) and with `axis=0` on the scalar losses of each step.
    This `reduce` takes the values of a nest one by one (in the same order
    on every worker, as collective ops need) and reduces a scalar across the
    replicas only.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()
        if isinstance(value, (tuple, list, dict)):
            return tf.nest.map_structure(lambda v: parent.reduce(reduce_op, v, axis), value)
        if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
            axis = None
        return parent.reduce(reduce_op, value, axis)


def make_strategy(name="default", cpu_devices=None):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    Args:
        name: `"default"`, `"mirrored"`, `"multiworker"` or `"tpu"`.
        cpu_devices: split the CPU into this many logical devices first
            (`split_cpu`); with `"mirrored"` and no GPU, the replicas are
            then those CPUs.
    """
    if name not in STRATEGIES:
        raise UserInputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    split_cpu(cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if name == "multiworker":
        _tf_config()
        return MultiWorkerMirroredStrategy()
    # A TPU VM shows its chips as /dev/accel*; a TPU node is named by TPU_NAME.
    # Without either there is nothing to connect to (and no metadata server to ask).
    tpu = os.environ.get("TPU_NAME") or ("local" if glob.glob("/dev/accel*") else None)
    if tpu is None:
        raise UserInputError(
            "--strategy tpu: no TPU could be reached (no /dev/accel* device and no TPU_NAME)"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserInputError(f"--strategy tpu: no TPU could be reached ({message})") from error
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this process is the one that writes files (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def mixed_policy_name():
    """`mixed_float16` where a GPU is present (with loss scaling), else `mixed_bfloat16`."""
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


def cpu_flags(path="/proc/cpuinfo"):
    """The feature flags of this machine's CPU (`avx512f`, `amx_bf16`, ...); empty if unknown."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_jit(jit, mixed_precision, flags=None):
    """`(xla, note)`: whether to compile the train step with XLA, and a line saying why.

    `jit` is `True`, `False` or `"auto"`. `"auto"` is XLA, except for
    `mixed_bfloat16` on a CPU with bfloat16 matrix units (`amx_bf16`): XLA's
    CPU dots run in float32-speed code there, TensorFlow's own oneDNN
    matmuls run on the units (several times the float32 matmul rate), so the
    step goes without XLA. `note` is `None` when there is nothing to say; a
    mixed-precision run on a CPU without the units is told it gains no
    speed there. `flags` (default: this CPU's, `cpu_flags()`) is for tests.
    """
    if not (isinstance(jit, bool) or jit == "auto"):
        raise UserInputError(f"jit must be True, False or 'auto', got {jit!r}")
    gpu = bool(tf.config.list_logical_devices("GPU"))
    units = "amx_bf16" in (cpu_flags() if flags is None else flags)
    if not mixed_precision or gpu:
        return (True if jit == "auto" else jit), None
    if not units:
        return (True if jit == "auto" else jit), (
            "--mixed-precision: this CPU has no bfloat16 matrix units (AMX), so mixed_bfloat16 "
            "brings no speed here; it only halves the activations' memory")
    if jit == "auto":
        return False, ("XLA off (--jit auto): mixed_bfloat16 matmuls run on this CPU's AMX "
                       "bfloat16 units through oneDNN, which XLA's CPU code does not use")
    if jit:
        return True, ("--jit: XLA's CPU matmuls do not use this CPU's AMX bfloat16 units; "
                      "--jit auto (the default) leaves XLA off for mixed precision here")
    return False, None


@contextlib.contextmanager
def precision_policy(enabled):
    """Use the mixed-precision policy inside the block (if `enabled`), then restore."""
    previous = keras.config.dtype_policy()
    if enabled:
        keras.config.set_dtype_policy(mixed_policy_name())
    try:
        yield keras.config.dtype_policy().name
    finally:
        keras.config.set_dtype_policy(previous)


class ChiefBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` for many workers: all restore, only the chief writes.

    Every worker reads the backup at the start of training (so all resume
    from the same epoch and weights; the backup directory must be on a
    filesystem all workers see), but only the chief saves or deletes it.
    """

    def __init__(self, backup_dir, chief=True, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.chief = chief

    def _save_model(self):
        if self.chief:
            super()._save_model()

    def on_train_end(self, logs=None):
        if self.chief:
            super().on_train_end(logs)
