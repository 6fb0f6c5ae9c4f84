"""`python -m keras_transformer.inspect` and tiny smoke runs of the benchmark scripts."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from keras_transformer import TransformerConfig, build_gpt
from keras_transformer.cli.inspect import load_config, main, parameter_count

TINY = dict(vocab_size=40, max_len=16, num_layers=2, d_model=32, num_heads=4)


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
    assert parameter_count(config) == build_gpt(config).count_params()


def test_inspect_prints_the_published_gpt2_small_sizes(capsys):
    main(["gpt2-small"])
    out = capsys.readouterr().out
    for expected in ("layers       12", "heads        12", "kv heads     12", "d_model      768",
                     "d_ff         3072", "124,439,808", "73,728 bytes/token"):
        assert expected in out


def test_inspect_counts_a_bert_config_as_its_backbone(capsys):
    from keras_transformer.models import backbone_params, build_bert

    config = TransformerConfig.preset("bert-mini", vocab_size=40, max_len=16)
    assert parameter_count(config) == backbone_params(build_bert(config))
    main(["bert-base"])
    out = capsys.readouterr().out
    for expected in ("layers       12", "d_model      768", "d_ff         3072", "109,482,240"):
        assert expected in out


def test_inspect_reads_a_run_config_and_rejects_bad_input(tmp_path, capsys):
    config = TransformerConfig(**TINY, num_kv_heads=2)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"arch": "gpt", "context": 16,
                                "settings": {"arch": "gpt", "model": config.to_dict()}}))
    assert load_config(str(tmp_path)) == config
    main([str(path)])
    assert "2 (grouped-query attention)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no-such-config"])
    assert capsys.readouterr().err.startswith("inspect: error: ")


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
def test_attention_memory_benchmark_smoke_run(tmp_path):
    out, png = tmp_path / "memory.json", tmp_path / "memory.png"
    result = _run("attention_memory.py", "--lengths", "64", "--json", str(out), "--plot", str(png),
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert {r["impl"] for r in rows} == {"standard", "chunked"}
    assert png.read_bytes()[:4] == b"\x89PNG"
