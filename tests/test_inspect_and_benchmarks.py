"""`python -m keras_transformer.inspect` and tiny smoke runs of the benchmark scripts."""

import json
import os
import re
import subprocess
import sys

import keras
import pytest
from conftest import REPO

from keras_transformer import TransformerConfig, build_gpt
from keras_transformer.cli.inspect import PRESET_FAMILIES, load_config, main, parameter_count
from keras_transformer.config import PRESETS
from keras_transformer.models import backbone_params, build_bert, build_seq2seq

TINY = dict(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4)
# What each preset is, written out here independently of cli/inspect.py's PRESET_FAMILIES.
EXPECTED_FAMILIES = {"gpt-mini": "gpt", "gpt2-small": "gpt", "bert-mini": "bert",
                     "bert-base": "bert", "seq2seq-mini": "seq2seq", "t5-small": "seq2seq"}
BUILDERS = {"gpt": build_gpt, "bert": build_bert, "seq2seq": build_seq2seq}


def _parameters_line(out):
    lines = [line for line in out.splitlines() if line.startswith("parameters ")]
    assert len(lines) == 1, out
    return lines[0]


def _printed_count(out):
    return int(re.match(r"parameters +([\d,]+)", _parameters_line(out)).group(1).replace(",", ""))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"position": "rope", "num_kv_heads": 1, "norm": "rms", "activation": "swiglu"},
        {"position": "sinusoidal", "tie_embeddings": False, "use_bias": False, "num_kv_heads": 2,
         "norm_first": False, "d_ff": 50, "activation": "swiglu"},
    ],
)
def test_parameter_count_matches_the_built_model(overrides):
    config = TransformerConfig(**TINY, **overrides)
    assert parameter_count(config, "gpt") == build_gpt(config).count_params()
    assert parameter_count(config, "seq2seq") == build_seq2seq(config).count_params()
    bert = TransformerConfig(**TINY, **overrides, num_segments=2)
    assert parameter_count(bert, "bert") == build_bert(bert).count_params()


def test_every_preset_has_its_family():
    assert PRESET_FAMILIES == EXPECTED_FAMILIES
    assert set(EXPECTED_FAMILIES) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_inspect_prints_the_built_models_parameter_count(name, capsys):
    family = EXPECTED_FAMILIES[name]
    model = BUILDERS[family](TransformerConfig.preset(name))
    expected = model.count_params()
    main([name])
    out = capsys.readouterr().out
    assert _printed_count(out) == expected
    assert f"family       {family} " in out
    if family == "bert":
        assert f"backbone {backbone_params(model):,} " in _parameters_line(out)
    del model
    keras.backend.clear_session()


def test_inspect_splits_t5_small_into_encoder_and_decoder(capsys):
    main(["t5-small"])
    out = capsys.readouterr().out
    line = _parameters_line(out)
    total = _printed_count(out)
    assert total == 60_506_624  # T5-small's published count
    parts = dict((name, int(count.replace(",", ""))) for name, count in
                 re.findall(r"(encoder|decoder|shared embedding|other) ([\d,]+)", line))
    assert set(parts) >= {"encoder", "decoder"}, line
    assert parts["encoder"] > 0 and parts["decoder"] > 0
    assert sum(parts.values()) == total, line
    assert parts["shared embedding"] == 32128 * 512  # one table: source, target and output
    assert "layers       6 encoder + 6 decoder" in out
    keras.backend.clear_session()


def test_inspect_prints_the_published_gpt2_small_sizes(capsys):
    main(["gpt2-small"])
    out = capsys.readouterr().out
    for expected in ("family       gpt", "layers       12", "heads        12", "kv heads     12",
                     "d_model      768", "d_ff         3072", "124,439,808", "73,728 bytes/token"):
        assert expected in out


def test_inspect_counts_a_bert_config_and_its_backbone(capsys):
    config = TransformerConfig.preset("bert-mini", vocab_size=40, max_len=16)
    model = build_bert(config)
    assert parameter_count(config, "bert") == model.count_params()
    main(["bert-base"])
    out = capsys.readouterr().out
    for expected in ("family       bert", "layers       12", "d_model      768",
                     "d_ff         3072", "backbone 109,482,240"):
        assert expected in out


def test_inspect_reads_a_run_config_and_rejects_bad_input(tmp_path, capsys):
    config = TransformerConfig(**TINY, num_kv_heads=2)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"arch": "gpt", "context": 16,
                                "settings": {"arch": "gpt", "model": config.to_dict()}}))
    assert load_config(str(tmp_path)) == (config, "gpt")
    main([str(path)])
    out = capsys.readouterr().out
    assert "2 (grouped-query attention)" in out
    assert _printed_count(out) == build_gpt(config).count_params()
    with pytest.raises(SystemExit):
        main(["no-such-config"])
    assert capsys.readouterr().err.startswith("inspect: error: ")


def test_inspect_takes_the_family_of_a_run_and_of_a_bare_config(tmp_path, capsys):
    config = TransformerConfig(**TINY)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"arch": "seq2seq", "context": 16, "settings": {"arch": "seq2seq", "model": config.to_dict()}}))
    main([str(run)])
    out = capsys.readouterr().out
    assert "family       seq2seq" in out
    assert _printed_count(out) == build_seq2seq(config).count_params()

    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(config.to_dict()))
    with pytest.raises(SystemExit):
        main([str(bare)])  # a bare config does not say what it is
    assert "--arch" in capsys.readouterr().err
    main([str(bare), "--arch", "gpt"])
    assert _printed_count(capsys.readouterr().out) == build_gpt(config).count_params()
    with pytest.raises(SystemExit):
        main([str(run), "--arch", "gpt"])  # contradicts the run's arch
    err = capsys.readouterr().err
    assert err.startswith("inspect: error: ") and len(err.strip().splitlines()) == 1


def test_inspect_rejects_a_charrnn_run_in_one_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(
        {"arch": "charrnn", "context": 16,
         "settings": {"arch": "charrnn", "model": TransformerConfig(**TINY).to_dict()}}))
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("inspect: error: ") and "charrnn" in err
    assert len(err.strip().splitlines()) == 1


def _run(script, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    return subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


@pytest.mark.slow
def test_generation_benchmark_smoke_run(tmp_path):
    out = tmp_path / "generate.json"
    result = _run("generate.py", "--new-tokens", "4", "--repeats", "1", "--batches", "1", "2",
                  "--prompt-len", "3", "--max-len", "16", "--num-layers", "1", "--d-model", "16",
                  "--num-heads", "2", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert {(r["impl"], r["batch"]) for r in rows} == {
        (impl, b) for impl in ("ours_cached", "ours_uncached", "keras_hub") for b in (1, 2)}
    assert all(r["new_tokens"] == 4 and r["tokens_per_sec"] > 0 for r in rows)
    assert "tokens/s" in result.stdout


@pytest.mark.slow
def test_sliding_generation_benchmark_smoke_run(tmp_path):
    # 40 new tokens past a 16-position context: both loops slide.
    out = tmp_path / "sliding.json"
    result = _run("generate.py", "--impls", "ours_cached_sliding", "ours_uncached_sliding",
                  "--new-tokens", "40", "--sliding-max-len", "16", "--repeats", "1",
                  "--batches", "1", "--prompt-len", "3", "--num-layers", "1", "--d-model", "16",
                  "--num-heads", "2", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert {r["impl"] for r in rows} == {"ours_cached_sliding", "ours_uncached_sliding"}
    assert all(r["new_tokens"] == 40 and r["tokens_per_sec"] > 0 for r in rows)


@pytest.mark.slow
def test_attention_memory_benchmark_smoke_run(tmp_path):
    out, png = tmp_path / "memory.json", tmp_path / "memory.png"
    result = _run("attention_memory.py", "--lengths", "64", "--json", str(out), "--plot", str(png),
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert {r["impl"] for r in rows} == {"standard", "chunked"}
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_checkpoint_load_benchmark_smoke_run(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "load.json"
    result = _run("load_checkpoint.py", "--n-layer", "1", "--n-embd", "32", "--n-head", "2",
                  "--repeats", "1", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [r["loader"] for r in data["results"]] == ["ours", "transformers"]
    assert all(r["seconds"] > 0 and r["peak_mib"] > 0 for r in data["results"])
    assert data["settings"]["parameters"] > 0 and "peak MiB" in result.stdout


@pytest.mark.slow
def test_decoding_profile_and_attention_benchmarks_smoke_run(tmp_path):
    """The profile finds the compiled loop's thunks (a dot among them: the flag that makes XLA
    record them reached it); the attention benchmark times every form at every size, the
    bias benchmark every form of the one-token products, and the transposed-product benchmark
    its six products (each pair agreeing in value)."""
    profile, attention = tmp_path / "profile.json", tmp_path / "attention.json"
    result = _run("profile_generate.py", "--new-tokens", "3", "--json", str(profile), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    per_step = json.loads(profile.read_text())["ms_per_step"]
    assert any("dot" in name for name in per_step) and all(ms >= 0 for ms in per_step.values())
    assert "thunk group" in result.stdout
    result = _run("decode_attention.py", "--slots", "8", "16", "--steps", "16", "--json",
                  str(attention), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(attention.read_text())["rows"]
    assert {(r["form"], r["slots"]) for r in rows} == {
        (form, slots) for form in ("sums", "matmul", "keys transposed", "per-head matmul",
                                   "two-part cache")
        for slots in (8, 16)}
    assert all(r["us_per_step"] > 0 for r in rows)
    folds = tmp_path / "bias_fold.json"
    result = _run("bias_fold.py", "--layers", "1", "--width", "32", "--vocab", "64", "--steps",
                  "2", "--repeats", "1", "--json", str(folds), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(folds.read_text())["rows"]
    assert [r["form"] for r in rows] == ["no bias", "plus bias", "bias tiled in loop",
                                         "bias tiled before", "folded"]
    assert all(r["ms_per_step"] > 0 for r in rows)
    transposed = tmp_path / "transposed.json"  # the products only: their values agree
    result = _run("transposed_matmul.py", "--repeats", "1", "--step-repeats", "0", "--json",
                  str(transposed), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    products = json.loads(transposed.read_text())["products_ms"]
    assert len(products) == 6 and all(ms > 0 for ms in products.values())
