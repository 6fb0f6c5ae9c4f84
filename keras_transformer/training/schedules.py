"""The optimizer recipe: AdamW, linear warmup then cosine decay, gradient clipping."""

import keras
import tensorflow as tf


def warmup_cosine(peak_learning_rate, total_steps, warmup_steps, final_fraction=0.1):
    """Linear warmup from 0 to `peak_learning_rate`, then cosine decay to
    `final_fraction * peak_learning_rate` at `total_steps`.

    This is Keras' own `CosineDecay` with its warmup arguments; the step
    counter is the optimizer's `iterations`, so a resumed run continues the
    schedule where it stopped.
    """
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=final_fraction,
        warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps,
    )


@keras.saving.register_keras_serializable(package="keras_transformer")
class AdamW(keras.optimizers.AdamW):
    """Keras' `AdamW` whose global-norm clipping sees the whole batch's gradient.

    Keras clips the gradients before it all-reduces them across replicas, so
    under a `tf.distribute` strategy with `n` replicas each replica would clip
    its own share, and the norm that is compared with `global_clipnorm` would
    be the wrong one (roughly `1/n` of the real one). Here a replica first
    sums the gradients of all replicas to measure the real global norm, and
    scales its own share by `min(1, global_clipnorm / norm)`: the all-reduce
    that follows then adds up exactly the clipped gradient of the global
    batch. On one replica this is Keras' own clipping.

    Weight decay is decided by shape, not by name: matrices (rank >= 2: the
    projection kernels and the embedding tables) are decayed; vectors and
    scalars (every bias, LayerNorm's gamma and beta, RMSNorm's scale, the
    logit bias) never are, and neither are the per-head biases of the
    attention projections (rank 2, `[heads, head_dim]`, the `bias` of their
    `EinsumDense`). `exclude_from_weight_decay` still excludes more.
    """

    def build(self, var_list):
        # Keras variables: `name` is the short name, "bias" for Dense and EinsumDense biases
        # (the backend's variables, which `_use_weight_decay` sees, carry the whole path).
        self.exclude_from_weight_decay(
            var_list=[v for v in var_list if len(v.shape) < 2 or v.name == "bias"]
        )
        super().build(var_list)

    def _clip_gradients(self, grads):
        context = tf.distribute.get_replica_context()
        if not self.global_clipnorm or context is None or context.num_replicas_in_sync == 1:
            return super()._clip_gradients(grads)
        present = [g for g in grads if g is not None]
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, present)
        norm = tf.linalg.global_norm(total)
        scale = tf.minimum(1.0, self.global_clipnorm / tf.maximum(norm, 1e-12))
        return [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]


def make_optimizer(
    learning_rate,
    total_steps,
    warmup_steps=100,
    weight_decay=0.1,
    clipnorm=1.0,
    beta_2=0.99,
):
    """AdamW with the warmup + cosine schedule and global-norm gradient clipping.

    Weight decay applies to the matrices only (see `AdamW`): biases and every
    normalisation parameter are excluded, as in GPT-2 and nanoGPT.
    """
    return AdamW(
        learning_rate=warmup_cosine(learning_rate, total_steps, warmup_steps),
        weight_decay=weight_decay,
        beta_2=beta_2,
        global_clipnorm=clipnorm,
    )
