"""The optimizer recipe: AdamW, linear warmup then cosine decay, gradient clipping."""

import keras


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


def make_optimizer(
    learning_rate,
    total_steps,
    warmup_steps=100,
    weight_decay=0.1,
    clipnorm=1.0,
    beta_2=0.99,
):
    """AdamW with the warmup + cosine schedule and global-norm gradient clipping.

    Weight decay applies to the matrices only: biases, normalisation scales and
    offsets are excluded, as in GPT-2 and nanoGPT.
    """
    optimizer = keras.optimizers.AdamW(
        learning_rate=warmup_cosine(learning_rate, total_steps, warmup_steps),
        weight_decay=weight_decay,
        beta_2=beta_2,
        global_clipnorm=clipnorm,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer
