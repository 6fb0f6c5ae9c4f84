"""Hugging Face GPT-2 and Llama checkpoints in this package's own layers, against `transformers`.

The reference checkpoints are made here, offline: small randomly initialised
`transformers` models with every 1-D parameter (norm scales and offsets,
biases) moved away from its initial 1 or 0, so that a tensor loaded into the
wrong place, transposed or left out changes the logits.
"""

import copy
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from checkpoint_checks import (  # noqa: E402
    edit_config,
    edit_tensors,
    one_line,
    perturbed,
    save_checkpoints,
)

from keras_transformer import TransformerConfig, from_pretrained, save_pretrained  # noqa: E402
from keras_transformer.errors import UserInputError  # noqa: E402
from keras_transformer.generation.decoding import Decoder  # noqa: E402

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VOCAB = 97
LLAMA = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=44, num_hidden_layers=2,
             num_attention_heads=4, max_position_embeddings=64)
CHECKPOINTS = {
    "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=48, n_embd=32, n_layer=2, n_head=4, bos_token_id=1,
        eos_token_id=2)),
    "gpt2_untied": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=48, n_embd=32, n_layer=2, n_head=2, n_inner=40,
        tie_word_embeddings=False, layer_norm_epsilon=1e-4, bos_token_id=1, eos_token_id=2)),
    "llama_gqa_theta": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        **LLAMA, num_key_value_heads=2, rope_theta=5000.0, tie_word_embeddings=False,
        rms_norm_eps=1e-5)),
    "llama_mqa_tied": lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
        **LLAMA, num_key_value_heads=1, tie_word_embeddings=True)),
}
IDS = np.random.default_rng(0).integers(0, VOCAB, size=(2, 17))


def _read(path, mode="r"):
    with open(path, mode) as handle:
        return handle.read()


def _write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> (folder, the transformers model it holds)."""
    return save_checkpoints(tmp_path_factory.mktemp("checkpoints"), CHECKPOINTS)


def _reference_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.float().numpy()


def _assert_same_logits(ours, reference):
    scale = np.abs(reference).max()
    assert np.abs(np.asarray(ours) - reference).max() <= 1e-4 * scale


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_logits_equal_transformers(checkpoints, name):
    folder, reference = checkpoints[name]
    model = from_pretrained(folder)
    assert type(model).__name__ == "GPT"
    _assert_same_logits(model(IDS), _reference_logits(reference, IDS))
    # The config says what the checkpoint does; every weight came from the file.
    hf = json.loads(_read(os.path.join(folder, "config.json")))
    assert model.config == TransformerConfig.from_hf(hf)
    assert model.count_params() == sum(p.numel() for p in reference.parameters())


def test_the_options_reach_the_layers(checkpoints):
    model = from_pretrained(checkpoints["llama_gqa_theta"][0])
    attention = model.blocks[0].self_attention
    assert (attention.num_kv_heads, attention.rotary, attention.rotary_max_wavelength) == (
        2, True, 5000.0)
    assert model.lm_head is not None and type(model.final_norm).__name__ == "RMSNormalization"
    # A RoPE base other than the checkpoint's gives other logits: rope_theta is honoured.
    folder, reference = checkpoints["llama_gqa_theta"]
    hf = json.loads(_read(os.path.join(folder, "config.json")))
    wrong = TransformerConfig.from_hf({**hf, "rope_parameters": {"rope_type": "default",
                                                                 "rope_theta": 10000.0}})
    assert wrong.rotary_max_wavelength == 10000.0 and model.config.rotary_max_wavelength == 5000.0


def test_a_bfloat16_checkpoint_loads_and_can_stay_bfloat16(checkpoints, tmp_path):
    _, reference = checkpoints["llama_gqa_theta"]
    copy.deepcopy(reference).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    assert b"BF16" in _read(tmp_path / "bf16" / "model.safetensors", "rb")[:2000]
    as_float = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "bf16",
                                                                 dtype=torch.float32)
    model = from_pretrained(str(tmp_path / "bf16"))
    assert all(v.dtype == "float32" for v in model.weights)
    _assert_same_logits(model(IDS), _reference_logits(as_float, IDS))
    kept = from_pretrained(str(tmp_path / "bf16"), dtype="bfloat16")
    assert all(v.dtype == "bfloat16" for v in kept.weights)
    logits = np.asarray(kept(IDS))
    assert logits.dtype == np.float32
    # bfloat16 arithmetic: close to the float32 logits, not equal.
    assert np.abs(logits - np.asarray(model(IDS))).max() < 0.1 * np.abs(logits).max()


def test_a_sharded_checkpoint_loads(checkpoints, tmp_path):
    _, reference = checkpoints["gpt2"]
    reference.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    files = os.listdir(tmp_path / "sharded")
    assert "model.safetensors.index.json" in files
    assert len([f for f in files if f.endswith(".safetensors")]) > 2
    _assert_same_logits(from_pretrained(str(tmp_path / "sharded"))(IDS),
                        _reference_logits(reference, IDS))


@pytest.mark.parametrize("name", ["gpt2", "llama_gqa_theta"])
def test_greedy_generation_equals_transformers_generate(checkpoints, name):
    folder, reference = checkpoints[name]
    prompts = [list(IDS[0, :9]), list(IDS[1, :4])]  # different lengths: left padding
    batch = np.zeros((2, 9), np.int64)
    mask = np.zeros((2, 9), np.int64)
    for row, prompt in enumerate(prompts):
        batch[row, 9 - len(prompt):] = prompt
        mask[row, 9 - len(prompt):] = 1
    with torch.no_grad():
        expected = reference.generate(
            input_ids=torch.tensor(batch), attention_mask=torch.tensor(mask), max_new_tokens=20,
            do_sample=False, pad_token_id=0, eos_token_id=None,
        )[:, 9:].numpy()
    decoder = Decoder(from_pretrained(folder), pad_id=None)
    got = decoder(prompts, 20, temperature=0.0)
    np.testing.assert_array_equal(np.stack(got), expected)
    # With an end-of-sequence id, each row stops right after it.
    stop = int(expected[0, 5])
    stopped = decoder(prompts, 20, temperature=0.0, stop_id=stop)
    for row, ids in zip(expected, stopped, strict=True):
        end = np.flatnonzero(row == stop)
        np.testing.assert_array_equal(ids, row[: end[0] + 1] if len(end) else row)
    assert len(stopped[0]) <= 6  # row 0 draws `stop` by its 6th new token at the latest


@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_save_pretrained_loads_in_transformers_with_the_same_logits(checkpoints, name, tmp_path):
    folder, reference = checkpoints[name]
    model = from_pretrained(folder)
    save_pretrained(model, None, str(tmp_path / "back"))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    assert type(reloaded).__name__ == type(reference).__name__
    _assert_same_logits(_reference_logits(reloaded, IDS), _reference_logits(reference, IDS))
    _assert_same_logits(from_pretrained(str(tmp_path / "back"))(IDS),
                        _reference_logits(reference, IDS))


def test_a_model_trained_here_saves_for_transformers(tmp_path):
    config = TransformerConfig(vocab_size=VOCAB, max_len=32, num_layers=2, d_model=32,
                               num_heads=4, num_kv_heads=2, position="rope", norm="rms",
                               activation="swiglu", use_bias=False, tie_embeddings=False,
                               rotary_max_wavelength=777.0)
    keras.utils.set_random_seed(3)
    from keras_transformer import build_gpt

    model = build_gpt(config)
    for variable in model.weights:  # norms away from 1
        if len(variable.shape) == 1:
            variable.assign(np.random.default_rng(1).normal(1, 0.3, variable.shape))
    save_pretrained(model, None, str(tmp_path / "ours"))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours")
    _assert_same_logits(model(IDS), _reference_logits(reloaded, IDS))
    with pytest.raises(UserInputError, match="no Hugging Face layout: position='sinusoidal'"):
        save_pretrained(build_gpt(TransformerConfig(vocab_size=VOCAB, max_len=16, num_layers=1,
                                                    d_model=16, num_heads=2,
                                                    position="sinusoidal", norm="rms",
                                                    activation="swiglu", use_bias=False)),
                        None, str(tmp_path / "no"))
    assert not (tmp_path / "no").exists()


# --- bad checkpoints: one line each, nothing half-loaded -------------------------------


def _copy(folder, target):
    import shutil

    shutil.copytree(folder, target)
    return target


@pytest.mark.parametrize("change, expected", [
    (lambda d: edit_config(d, model_type="mistral"), "model_type 'mistral' is not supported"),
    (lambda d: edit_config(d, rope_parameters={"rope_type": "llama3", "rope_theta": 5e5}),
     "rope_type='llama3' is not supported"),
    (lambda d: edit_config(d, attention_bias=True), "attention_bias=True is not supported"),
    (lambda d: edit_config(d, hidden_act="gelu"), "hidden_act='gelu' is not supported"),
    (lambda d: edit_config(d, num_hidden_layers=3), "'model.layers.2.input_layernorm.weight' is missing"),
    (lambda d: edit_tensors(d, lambda t: t.pop("model.norm.weight")), "'model.norm.weight' is missing"),
    (lambda d: edit_tensors(d, lambda t: t.update(extra=np.zeros(3, np.float32))),
     "unexpected tensor 'extra'"),
    (lambda d: edit_tensors(d, lambda t: t.update({
        "model.layers.1.self_attn.k_proj.weight": np.zeros((16, 31), np.float32)})),
     "'model.layers.1.self_attn.k_proj.weight' has shape [16, 31]"),
    (lambda d: _write(os.path.join(d, "config.json"), "{not json"), "not valid JSON"),
    (lambda d: os.remove(os.path.join(d, "config.json")), "has no config.json"),
])
def test_a_bad_checkpoint_isone_line(checkpoints, tmp_path, change, expected):
    folder = _copy(checkpoints["llama_gqa_theta"][0], str(tmp_path / "bad"))
    change(folder)
    with pytest.raises(UserInputError) as error:
        from_pretrained(folder)
    assert expected in one_line(error)


def test_pickles_truncated_files_and_missing_shards_areone_line(checkpoints, tmp_path):
    folder = _copy(checkpoints["gpt2"][0], str(tmp_path / "pickled"))
    os.remove(os.path.join(folder, "model.safetensors"))
    _write(os.path.join(folder, "pytorch_model.bin"), b"\x80\x04 not unpickled")
    with pytest.raises(UserInputError) as error:
        from_pretrained(folder)
    assert "pytorch_model.bin" in one_line(error) and "never unpickles" in str(error.value)

    folder = _copy(checkpoints["gpt2"][0], str(tmp_path / "truncated"))
    path = os.path.join(folder, "model.safetensors")
    data = _read(path, "rb")
    _write(path, data[: len(data) // 2])
    with pytest.raises(UserInputError) as error:
        from_pretrained(folder)
    assert "could not read" in one_line(error)

    _, reference = checkpoints["gpt2"]
    reference.save_pretrained(tmp_path / "shards", max_shard_size="20KB")
    shard = sorted(f for f in os.listdir(tmp_path / "shards") if f.endswith(".safetensors"))[0]
    os.remove(tmp_path / "shards" / shard)
    with pytest.raises(UserInputError) as error:
        from_pretrained(str(tmp_path / "shards"))
    assert f"lacks the shard {shard}" in one_line(error)


def test_inspect_shows_a_checkpoints_config(checkpoints, tmp_path, cli):
    folder, reference = checkpoints["llama_gqa_theta"]
    result = cli(["-m", "keras_transformer.inspect", folder], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line[:12].strip(): line[13:] for line in result.stdout.splitlines()}
    assert "2 (grouped-query attention)" in rows["kv heads"]
    assert rows["position"] == "rope (base 5000)"
    assert rows["d_ff"] == "66 (SwiGLU hidden width 44)"
    assert rows["parameters"] == f"{sum(p.numel() for p in reference.parameters()):,}"


# --- a checkpoint with its tokenizer: generate, export ---------------------------------

FRESH_TENSORFLOW = """
import sys
import tensorflow as tf

loaded = tf.saved_model.load(sys.argv[1])
text = loaded.signatures["generate"](
    prompt=tf.constant([sys.argv[2]]), max_new_tokens=tf.constant(12), temperature=tf.constant(0.0),
    top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(0))["text"]
assert "keras_transformer" not in sys.modules and "keras_hub" not in sys.modules
sys.stdout.write(text.numpy()[0].decode("utf-8"))
"""


@pytest.fixture(scope="module")
def gpt2_with_tokenizer(tmp_path_factory):
    """A GPT-2 checkpoint folder with its own vocab.json + merges.txt (`<|endoftext|>` last)."""
    from test_hf_tokenizers import _gpt2_folder, _training_lines

    folder = tmp_path_factory.mktemp("gpt2_tokenizer")
    _gpt2_folder(str(folder), _training_lines())
    vocab = json.loads(_read(folder / "vocab.json"))
    end = vocab["<|endoftext|>"]
    model = perturbed(lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=len(vocab), n_positions=64, n_embd=32, n_layer=2, n_head=4,
        bos_token_id=end, eos_token_id=end)), seed=7)
    model.save_pretrained(folder)
    return folder, model, vocab


def test_a_checkpoint_folder_generates_exports_and_stops_at_its_end_token(
        gpt2_with_tokenizer, tmp_path, cli, cli_batch):
    folder, reference, vocab = gpt2_with_tokenizer
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    prompt = "ROMEO:\nWhat"
    prompt_ids = hf_tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = reference.generate(prompt_ids, max_new_tokens=12, do_sample=False,
                                    eos_token_id=None, pad_token_id=0)[0, prompt_ids.shape[1]:]
    args = ["-m", "keras_transformer.generate", "--prompt", prompt, "--max-new-tokens", "12",
            "--temperature", "0"]
    # The same checkpoint whose end-of-sequence token is the 5th greedy token: text ends there.
    stop = int(greedy[4])
    stopped = tmp_path / "stopped"
    _copy(str(folder), str(stopped))
    token = next(text for text, i in vocab.items() if i == stop)
    config = json.loads(_read(stopped / "tokenizer_config.json"))
    _write(stopped / "tokenizer_config.json", json.dumps({**config, "eos_token": token}))
    first = next(i for i, t in enumerate(greedy.tolist()) if t == stop)
    expected = prompt + hf_tokenizer.decode(greedy[:first])
    # The three commands in one process (one TensorFlow import); the SavedModel is then
    # loaded in a fresh one.
    result, stopped_result, exported = cli_batch([
        [*args, "--model", str(folder)],
        [*args, "--model", str(stopped)],
        ["-m", "keras_transformer.export", str(stopped), str(tmp_path / "saved")],
    ], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == prompt + hf_tokenizer.decode(greedy) + "\n"
    assert stopped_result.returncode == 0, stopped_result.stderr[-2000:]
    assert stopped_result.stdout == expected + "\n"

    # Exported, in a process that imports only TensorFlow: the same text.
    assert exported.returncode == 0, exported.stderr[-2000:]
    fresh = cli(["-c", FRESH_TENSORFLOW, str(tmp_path / "saved"), prompt], cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert fresh.stdout == expected


def test_a_bad_checkpoint_folder_is_one_line_for_generate(checkpoints, tmp_path, cli):
    folder = _copy(checkpoints["llama_gqa_theta"][0], str(tmp_path / "bad"))
    edit_config(folder, rope_parameters={"rope_type": "yarn", "rope_theta": 5e5})
    result = cli(["-m", "keras_transformer.generate", "--model", folder, "--prompt", "A"],
                 cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("generate: error: ") and "rope_type='yarn'" in last


def test_train_init_from_fine_tunes_a_checkpoint(gpt2_with_tokenizer, tmp_path, cli, cli_batch):
    from conftest import make_text

    folder, reference, _ = gpt2_with_tokenizer
    (tmp_path / "play.txt").write_text(make_text(), encoding="utf-8")
    flags = ["--data", "play.txt", "--epochs", "3", "--steps-per-epoch", "6", "--batch-size", "8",
             "--seq-len", "32", "--learning-rate", "3e-3", "--warmup-steps", "2",
             "--sample-tokens", "8", "--no-jit", "--verbose", "0"]
    result = cli(["train.py", "--arch", "gpt", "--init-from", str(folder), "--out", "run",
                  *flags], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["tokenizer"] == "byte_level_bpe"
    assert metrics["params"] == sum(p.numel() for p in reference.parameters())
    losses = [float(line.split(",")[1]) for line in
              (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]]
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert header[1] == "loss" and len(losses) == 3 and losses[-1] < losses[0] - 0.1, losses
    # The commands after training, in one process (one TensorFlow import): generate, export,
    # and train.py with the flags that the checkpoint decides.
    refusals = ((["--d-model", "64"], "--d-model"), (["--tokenizer", "bpe"], "--tokenizer"),
                (["--preset", "gpt2-small"], "--preset"))
    generated, exported, *refused_runs = cli_batch([
        ["-m", "keras_transformer.generate", "--model", "run", "--prompt", "ROMEO:",
         "--max-new-tokens", "5", "--temperature", "0"],
        ["-m", "keras_transformer.export", "run", "back", "--format", "hf"],
        *(["train.py", "--arch", "gpt", "--init-from", str(folder), "--out", "bad", *flags, *extra]
          for extra, _ in refusals),
    ], cwd=tmp_path)
    # The run directory generates with the checkpoint's tokenizer.
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert generated.stdout.startswith("ROMEO:")
    # Exported back to the Hugging Face layout: transformers computes what the run's model does.
    assert exported.returncode == 0, exported.stderr[-2000:]
    from keras_transformer.cli.generate import load_run

    ours, tokenizer, _ = load_run(str(tmp_path / "run"))
    text = "ROMEO:\nWhat say'st thou"
    back_tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "back")
    ids = np.array([back_tokenizer(text).input_ids])
    assert ids[0].tolist() == tokenizer.encode(text).tolist()
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    _assert_same_logits(ours(ids), _reference_logits(back, ids))
    assert np.abs(_reference_logits(back, ids) - _reference_logits(reference, ids)).max() > 0.1
    # The checkpoint sets the architecture and the tokenizer: their flags are one line.
    for (_, named), refused in zip(refusals, refused_runs, strict=True):
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("train.py: error: ") and named in last and "--init-from" in last
        assert not (tmp_path / "bad").exists()


def test_save_pretrained_writes_the_tokenizer_for_transformers(gpt2_with_tokenizer, tmp_path):
    from keras_transformer import load_tokenizer
    from keras_transformer.data.tokenizers import CharTokenizer

    folder, reference, vocab = gpt2_with_tokenizer
    model, tokenizer = from_pretrained(str(folder)), load_tokenizer(str(folder))
    save_pretrained(model, tokenizer, str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path / "copy")) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    hf = json.loads(_read(tmp_path / "copy" / "config.json"))
    assert hf["eos_token_id"] == hf["bos_token_id"] == vocab["<|endoftext|>"]
    text = "ROMEO:\nWhat say'st thou, Æsop?  <|endoftext|> 12345 done"
    original = transformers.AutoTokenizer.from_pretrained(folder)
    copied = transformers.AutoTokenizer.from_pretrained(tmp_path / "copy")
    assert copied(text).input_ids == original(text).input_ids
    assert copied.eos_token == original.eos_token == "<|endoftext|>"
    assert load_tokenizer(str(tmp_path / "copy")).encode(text).tolist() == original(text).input_ids
    ids = np.array([original("ROMEO:\nWhat say'st thou").input_ids])
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "copy")
    _assert_same_logits(_reference_logits(reloaded, ids), _reference_logits(reference, ids))
    # A tokenizer with no Hugging Face form, or one larger than the model: one line, nothing written.
    char = CharTokenizer.from_text("abc")
    with pytest.raises(UserInputError, match="a char tokenizer has no Hugging Face form"):
        save_pretrained(model, char, str(tmp_path / "char"))
    assert not (tmp_path / "char").exists()


def test_export_format_hf_refuses_a_char_run_inone_line(tmp_path, cli):
    from conftest import REPO

    run = os.path.join(REPO, "tests", "fixtures", "run_gpt_class")
    result = cli(["-m", "keras_transformer.export", run, str(tmp_path / "out"), "--format", "hf"],
                 cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("export: error: ") and "char tokenizer, which has no Hugging" in last
    assert not (tmp_path / "out").exists()


def test_hf_names_resolve_through_the_hub_cache_and_fail_in_one_line_offline(
        gpt2_with_tokenizer, tmp_path, cli_batch):
    """`hf://ORG/NAME` is the Hub snapshot; here a cache laid out as `huggingface_hub` keeps it."""
    folder, _, _ = gpt2_with_tokenizer
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--course--tiny-gpt2"
    _copy(str(folder), str(repo / "snapshots" / commit))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    args = ["--prompt", "ROMEO:", "--max-new-tokens", "6", "--temperature", "0"]
    # Not in the cache and no network allowed: one line naming the repository, for each command.
    failing = (["-m", "keras_transformer.generate", "--model", "hf://course/absent", *args],
               ["-m", "keras_transformer.export", "hf://course/absent", "out"],
               ["-m", "keras_transformer.inspect", "hf://course/absent"],
               ["train.py", "--arch", "gpt", "--init-from", "hf://course/absent", "--out", "run"],
               ["-m", "keras_transformer.inspect", "hf://too/many/parts"])
    # Every command in one process (one TensorFlow import; the Hub's settings are read as
    # huggingface_hub is imported, so they are the process's environment).
    by_name, by_path, inspected, *failed = cli_batch([
        ["-m", "keras_transformer.generate", "--model", "hf://course/tiny-gpt2", *args],
        ["-m", "keras_transformer.generate", "--model", str(folder), *args],
        ["-m", "keras_transformer.inspect", "hf://course/tiny-gpt2"],
        *failing,
    ], cwd=tmp_path, env=env)
    assert by_name.returncode == 0, by_name.stderr[-2000:]
    assert by_name.stdout == by_path.stdout and by_name.stdout.startswith("ROMEO:")
    assert inspected.returncode == 0 and "position     learned" in inspected.stdout
    for command, result in zip(failing, failed, strict=True):
        assert result.returncode == 2 and "Traceback" not in result.stderr, (command, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert "hf://" in last and ("cannot download" in last or "expected hf://" in last), last
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()
