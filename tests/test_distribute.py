"""Training at scale: gradient checkpointing, mixed precision, tf.distribute strategies."""

import csv
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, TINY_TRAIN_FLAGS, make_text, run_cli

from keras_transformer import TransformerConfig, build_gpt, build_seq2seq
from keras_transformer.layers import TransformerBlock
from keras_transformer.training.distribute import (
    is_chief,
    make_strategy,
    mixed_policy_name,
    precision_policy,
)

TINY = dict(vocab_size=30, max_len=16, num_layers=2, d_model=32, num_heads=4)


def _gradients(model, inputs, targets, jit):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    loss, grads = step(inputs, targets)
    return float(loss), [g.numpy() for g in grads]


def _same_model_with(config, **changes):
    keras.utils.set_random_seed(0)
    plain = build_gpt(config)
    other = build_gpt(TransformerConfig(**{**config.to_dict(), **changes}))
    other.set_weights(plain.get_weights())
    return plain, other


@pytest.mark.parametrize("jit", [False, True])
def test_recompute_gives_the_same_gradients_for_a_two_block_gpt(jit):
    config = TransformerConfig(**TINY)
    plain, recomputed = _same_model_with(config, recompute=True)
    assert all(block.recompute for block in recomputed.layers if isinstance(block, TransformerBlock))
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 30, size=(3, 13)).astype("int32")
    loss, grads = _gradients(plain, ids[:, :-1], ids[:, 1:], jit)
    loss_r, grads_r = _gradients(recomputed, ids[:, :-1], ids[:, 1:], jit)
    assert loss == pytest.approx(loss_r, rel=1e-6)
    assert len(grads) == len(grads_r) == len(plain.trainable_variables)
    overall = max(np.max(np.abs(g)) for g in grads)
    for variable, g, g_r in zip(plain.trainable_variables, grads, grads_r, strict=True):
        scale = np.max(np.abs(g))
        if scale < 1e-6 * overall:
            # Zero up to float noise by the maths (the key bias: softmax ignores it).
            assert "key" in variable.path and np.max(np.abs(g_r)) < 1e-6 * overall
            continue
        assert np.max(np.abs(g - g_r)) / scale < 1e-5, variable.path


def test_recompute_really_runs_each_block_again_in_the_backward_pass(monkeypatch):
    """Eagerly, a checkpointed block's forward pass runs twice per training step:
    once forward, once more when the gradient is taken; without it, once."""
    calls = []
    original = TransformerBlock._forward

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TransformerBlock, "_forward", counting)
    config = TransformerConfig(**TINY)
    plain, recomputed = _same_model_with(config, recompute=True)
    ids = np.arange(1, 13, dtype="int32").reshape(2, 6)
    for model, expected in ((plain, 1), (recomputed, 2)):
        calls.clear()
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(ids, training=True))
        tape.gradient(loss, model.trainable_variables)
        assert sorted(calls) == sorted(["block_0", "block_1"] * expected)
    calls.clear()
    recomputed(ids, training=False)  # inference never recomputes
    assert len(calls) == 2


def test_recompute_in_an_encoder_decoder_keeps_its_gradients():
    config = TransformerConfig(vocab_size=20, max_len=12, num_layers=1, d_model=16,
                               num_heads=2)
    keras.utils.set_random_seed(1)
    plain = build_seq2seq(config)
    recomputed = build_seq2seq(TransformerConfig(**{**config.to_dict(), "recompute": True}))
    recomputed.set_weights(plain.get_weights())
    source = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]], "int32")
    target = np.array([[1, 4, 6, 0], [1, 5, 5, 7]], "int32")
    grads = []
    for model in (plain, recomputed):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model({"source_ids": source, "target_ids": target}, training=True) ** 2)
        grads.append([g.numpy() for g in tape.gradient(loss, model.trainable_variables)])
    for g, g_r in zip(*grads, strict=True):
        np.testing.assert_allclose(g, g_r, rtol=1e-5, atol=1e-5 * np.max(np.abs(g)))


def test_precision_policy_is_mixed_inside_and_restored_after():
    assert keras.config.dtype_policy().name == "float32"
    expected = mixed_policy_name()  # mixed_float16 with a GPU, else mixed_bfloat16
    compute_dtype = keras.DTypePolicy(expected).compute_dtype
    assert compute_dtype in ("float16", "bfloat16")
    with precision_policy(True) as name:
        assert name == expected
        model = build_gpt(TransformerConfig(**TINY))
        logits = model(np.ones((1, 4), "int32"))
    assert keras.config.dtype_policy().name == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    assert model.get_layer("block_0").compute_dtype == compute_dtype
    assert logits.dtype == "float32"  # the loss is computed in float32
    with precision_policy(False) as name:
        assert name == "float32"


def test_default_strategy_is_one_chief_replica():
    strategy = make_strategy("default")
    assert strategy.num_replicas_in_sync == 1 and is_chief(strategy)


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


@pytest.fixture
def play(tmp_path):
    (tmp_path / "play.txt").write_text(make_text(), encoding="utf-8")
    return tmp_path


# 2 epochs of 4 steps; the global batch is 8 in both runs below.
DISTRIBUTED_FLAGS = [
    "--data", "play.txt", "--num-layers", "2", "--d-model", "32", "--num-heads", "2",
    "--max-len", "32", "--seq-len", "32", "--epochs", "2", "--steps-per-epoch", "4",
    "--sample-tokens", "10", "--verbose", "2", "--no-jit",
]


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device_on_the_same_global_batch(play):
    # Both runs see the CPU split in two; the default strategy uses the first part only.
    # The global-norm clip of 1e-5 is far below any gradient norm of these steps, so
    # every step is clipped. It also makes the update scale-sensitive: AdamW divides
    # by sqrt(v) + epsilon (1e-7), and gradients clipped to a norm of 1e-5 spread over
    # ~27k weights are mostly below epsilon, so AdamW moves like SGD, in proportion to
    # the clipped gradient. A replica that clipped its own half (or measured the norm
    # of a mean instead of the global sum) would apply up to twice the update.
    flags = [*DISTRIBUTED_FLAGS, "--cpu-devices", "2", "--clipnorm", "1e-5",
             "--weight-decay", "0.1"]
    one = run_cli(["train.py", "--out", "one", "--strategy", "default", "--batch-size", "8",
                   *flags], cwd=play)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(["train.py", "--out", "two", "--strategy", "mirrored", "--batch-size", "4",
                   *flags], cwd=play)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 replicas" in two.stdout
    m_one = json.loads((play / "one" / "metrics.json").read_text())
    m_two = json.loads((play / "two" / "metrics.json").read_text())
    assert (m_one["replicas"], m_two["replicas"]) == (1, 2)
    assert m_one["global_batch_size"] == m_two["global_batch_size"] == 8
    for row_one, row_two in zip(_history(play / "one"), _history(play / "two"), strict=True):
        assert abs(row_one["loss"] - row_two["loss"]) < 1e-4
        assert abs(row_one["val_loss"] - row_two["val_loss"]) < 1e-4
    assert abs(m_one["val_loss"] - m_two["val_loss"]) < 1e-4
    # Training moved the loss, so the comparison compared something.
    assert _history(play / "two")[-1]["loss"] < _history(play / "two")[0]["loss"]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_with_two_local_workers_trains_and_both_finish(play):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO,
               KERAS_HOME=str(play / "keras_home"))
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, os.path.join(REPO, "train.py"), "--strategy", "multiworker",
             "--out", "run", "--batch-size", "4", *DISTRIBUTED_FLAGS],
            cwd=play, env=dict(env, TF_CONFIG=json.dumps(tf_config)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=420))
    finally:
        for process in processes:
            process.kill()
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, out[-2000:] + err[-3000:]
    chief_out, worker_out = outputs[0][0], outputs[1][0]
    assert "on 2 replicas" in chief_out and "Finished: val_loss" in chief_out
    assert "worker done" in worker_out
    metrics = json.loads((play / "run" / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["global_batch_size"] == 8
    assert len(_history(play / "run")) == 2
    assert not os.path.exists(play / "run" / "backup")  # the chief removed it at the end


@pytest.mark.slow
def test_mixed_precision_trains_with_float32_variables_and_a_finite_loss(play):
    result = run_cli(["train.py", "--out", "mixed", "--mixed-precision", "--data", "play.txt",
                      *[f for f in TINY_TRAIN_FLAGS]], cwd=play)
    assert result.returncode == 0, result.stderr[-3000:]
    policy = mixed_policy_name()  # what train.py picks on this machine
    assert policy in result.stdout
    metrics = json.loads((play / "mixed" / "metrics.json").read_text())
    assert metrics["dtype_policy"] == policy
    history = _history(play / "mixed")
    assert all(np.isfinite(row["loss"]) and np.isfinite(row["val_loss"]) for row in history)
    assert history[-1]["loss"] < history[0]["loss"]
    import keras_transformer  # noqa: F401  (registers the layers)

    model = keras.saving.load_model(str(play / "mixed" / "model.keras"))
    assert all(v.dtype == "float32" for v in model.weights)
    assert model.get_layer("block_0").dtype_policy.name == policy


BAD_STRATEGY_SETTINGS = [
    (["--strategy", "tpu"], {}, "--strategy tpu: no TPU could be reached"),
    (["--strategy", "multiworker", "--out", "mw"], {"TF_CONFIG": ""}, "needs the TF_CONFIG"),
    (["--strategy", "multiworker", "--out", "mw"], {"TF_CONFIG": "{nope"}, "TF_CONFIG is not"),
    (["--strategy", "multiworker"], {}, "needs --out"),
    (["--strategy", "gpus"], {}, "invalid choice"),
    (["--cpu-devices", "0"], {}, "cpu_devices must be positive"),
]


@pytest.fixture(scope="module")
def bad_strategy_runs(tmp_path_factory):
    """index -> (its directory, the train.py result): every case in one process (the TPU
    probe last), each in a directory and an environment of its own."""
    from conftest import run_cli_batch

    root = tmp_path_factory.mktemp("bad_strategy")
    order = sorted(range(len(BAD_STRATEGY_SETTINGS)),
                   key=lambda i: "tpu" in BAD_STRATEGY_SETTINGS[i][0])
    commands = []
    for index in order:
        flags, env, _ = BAD_STRATEGY_SETTINGS[index]
        folder = root / str(index)
        folder.mkdir()
        (folder / "play.txt").write_text(make_text(), encoding="utf-8")
        commands.append((["train.py", "--data", "play.txt", *flags], {"cwd": folder, "env": env}))
    results = run_cli_batch(commands, cwd=root)
    return {index: (root / str(index), result)
            for index, result in zip(order, results, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BAD_STRATEGY_SETTINGS)),
                         ids=[" ".join(f) + "".join(f"-{k}={v}" for k, v in e.items())
                              for f, e, _ in BAD_STRATEGY_SETTINGS])
def test_bad_strategy_settings_are_one_line_errors(bad_strategy_runs, index):
    message = BAD_STRATEGY_SETTINGS[index][2]
    play, result = bad_strategy_runs[index]
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: ") and message in last, last
    assert not any(name in os.listdir(play) for name in ("mw", "runs"))
