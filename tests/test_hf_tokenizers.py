"""Hugging Face byte-level BPE tokenizers: the ids of `tokenizers`, in Python, tf.data and SavedModels.

Reference tokenizers are trained offline with the `tokenizers` library on
Tiny Shakespeare and WikiText-2 (the shared copies, or a generated play
without them) and written as Hugging Face folders of four styles:

- `gpt2`: GPT-2's `vocab.json` + `merges.txt` and a `tokenizer_config.json`
  with `<|endoftext|>` (the last id); the reference is `transformers`'
  `AutoTokenizer` of the folder (a `GPT2Tokenizer`).
- `gpt2_json`: the same tokenizer as `transformers` saves it (`tokenizer.json`).
- `llama3`: a `tokenizer.json` in Llama 3's style: `Split` with Llama 3's
  regex, `ByteLevel` without its regex, `ignore_merges`, 256 special tokens
  after the vocabulary and a template adding `<|begin_of_text|>`.
- `smollm`: SmolLM's style: `Digits` (one digit a piece) and `ByteLevel`,
  the special tokens first (`<|endoftext|>` is id 0).
"""

import json
import os
import subprocess
import sys

import hf_tokenizer_checks as checks
import numpy as np
import pytest
import tensorflow as tf
from hf_tokenizer_checks import SHAKESPEARE, WIKITEXT
from hypothesis import given, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from keras_transformer.data import ByteLevelBPETokenizer, CharTokenizer, load_tokenizer  # noqa: E402
from keras_transformer.data.graph_tokenizers import graph_tokenizer  # noqa: E402
from keras_transformer.data.hf_tokenizers import LLAMA3_PATTERN  # noqa: E402
from keras_transformer.errors import UserInputError  # noqa: E402

VOCAB_SIZE = 800
# 256 special tokens after the vocabulary, as Llama 3 has.
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
                  *(f"<|reserved_special_token_{i}|>" for i in range(253))]
SMOL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
STYLES = ["gpt2", "gpt2_json", "llama3", "smollm"]


def _training_lines():
    return checks.training_lines()


def _train(pre_tokenizer, lines, specials=(), ignore_merges=False):
    """A byte-level BPE of `VOCAB_SIZE` ids trained on `lines` (specials first)."""
    hf = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    hf.pre_tokenizer = pre_tokenizer
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=list(specials), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(lines, trainer)
    return hf


def _write_json(path, content):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, ensure_ascii=False)


def _gpt2_folder(folder, lines):
    """GPT-2's files: vocab.json + merges.txt, `<|endoftext|>` the last id, its config."""
    hf = _train(pre_tokenizers.ByteLevel(add_prefix_space=False), lines)
    hf.model.save(folder)
    vocab_path = os.path.join(folder, "vocab.json")
    with open(vocab_path, encoding="utf-8") as handle:
        vocab = json.load(handle)
    end_id = len(vocab)
    _write_json(vocab_path, {**vocab, "<|endoftext|>": end_id})
    _write_json(os.path.join(folder, "tokenizer_config.json"), {
        "tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "add_bos_token": False,
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "model_max_length": 1024, "added_tokens_decoder": {str(end_id): {
            "content": "<|endoftext|>", "lstrip": False, "rstrip": False, "normalized": True,
            "single_word": False, "special": True}},
    })


def _llama3_folder(folder, lines):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    hf = _train(pre, lines, ignore_merges=True)
    hf.add_special_tokens(LLAMA_SPECIALS)
    bos = hf.token_to_id(LLAMA_SPECIALS[0])
    hf.post_processor = tokenizers.processors.TemplateProcessing(
        single=f"{LLAMA_SPECIALS[0]} $A", special_tokens=[(LLAMA_SPECIALS[0], bos)]
    )
    hf.save(os.path.join(folder, "tokenizer.json"))
    _write_json(os.path.join(folder, "tokenizer_config.json"), {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": LLAMA_SPECIALS[0],
        "eos_token": LLAMA_SPECIALS[1],
    })


def _smollm_folder(folder, lines):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    _train(pre, lines, specials=SMOL_SPECIALS).save(os.path.join(folder, "tokenizer.json"))
    _write_json(os.path.join(folder, "special_tokens_map.json"), {
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
    })


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """`{style: folder}` of the four reference tokenizers."""
    import transformers

    lines = _training_lines()
    root = tmp_path_factory.mktemp("hf_tokenizers")
    paths = {style: str(root / style) for style in STYLES}
    for path in paths.values():
        os.makedirs(path)
    _gpt2_folder(paths["gpt2"], lines)
    transformers.AutoTokenizer.from_pretrained(paths["gpt2"]).save_pretrained(paths["gpt2_json"])
    _llama3_folder(paths["llama3"], lines)
    _smollm_folder(paths["smollm"], lines)
    return paths


@pytest.fixture(scope="module")
def references(folders):
    """`{style: texts -> [ids]}`: Hugging Face's ids (no special tokens added)."""
    import transformers

    gpt2 = transformers.AutoTokenizer.from_pretrained(folders["gpt2"])
    assert type(gpt2).__name__ == "GPT2Tokenizer"

    def from_transformers(texts):
        return gpt2(list(texts), add_special_tokens=False)["input_ids"]

    def from_file(style):
        hf = Tokenizer.from_file(os.path.join(folders[style], "tokenizer.json"))
        return lambda texts: [e.ids for e in hf.encode_batch(list(texts), add_special_tokens=False)]

    return {"gpt2": from_transformers, **{s: from_file(s) for s in STYLES[1:]}}


@pytest.fixture(scope="module")
def ours(folders):
    """`{style: ByteLevelBPETokenizer}`, loaded with `load_tokenizer(folder)`."""
    return {style: load_tokenizer(folder) for style, folder in folders.items()}


def _assert_same_ids(tokenizer, reference, texts):
    checks.assert_same_ids(tokenizer.encode_batch(texts), reference(texts), texts)


# -------------------------------------------------------------------------------------
# The ids of Hugging Face's tokenizers
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_tiny_shakespeare_lines_equal_hugging_face(ours, references, style):
    """300 held-out lines and 25 passages of 12 lines."""
    _assert_same_ids(ours[style], references[style], checks.line_texts(SHAKESPEARE, 20000))


@pytest.mark.parametrize("style", ["gpt2", "llama3"])
def test_whole_tiny_shakespeare_in_one_string_equals_hugging_face(ours, references, style):
    text = "".join(checks.held_out(SHAKESPEARE, 0, 10**6))  # 1.1 MB, 0.6 M tokens
    assert ours[style].encode(text).tolist() == references[style]([text])[0]


@pytest.mark.parametrize("style", STYLES)
def test_wikitext_lines_equal_hugging_face(ours, references, style):
    _assert_same_ids(ours[style], references[style], checks.line_texts(WIKITEXT, 2000))


# Characters where the regexes of GPT-2 and Llama 3 decide something: Unicode white space
# (RE2's `\s` is ASCII only), newlines, contractions in both cases (and `ſ`, which folds
# to `s`), digits of several scripts, letters Unicode 16 added, punctuation.
TRICKY = (" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u2028\u202f\u205f\u3000\u200b\ufeff"
              "'sStTdDmMlLrReEvVſ0123456789٣²½Ⅻ.,!?-<|>\u1c89\U00010d40\x00६Ĵ")
UNICODE_TEXT = checks.unicode_text(
    TRICKY, ["<|endoftext|>", "<|im_start|>", *LLAMA_SPECIALS[:3], "'s", "'LL",
             "<|reserved_special_token_25|>", "\r\n", "   ", "\n\n", "<|end", "1234567"],
)


@settings(max_examples=1000, derandomize=True, deadline=None, database=None)
@given(UNICODE_TEXT)
def test_generated_unicode_strings_equal_hugging_face(ours, references, text):
    for style in ("gpt2", "llama3", "smollm"):
        got = np.asarray(ours[style].encode(text)).tolist()
        assert got == references[style]([text])[0], style
        assert ours[style].decode(got) == text, style


def test_decode_equals_hugging_face_on_any_ids(ours, folders):
    """Any ids, partial UTF-8 characters and special tokens included."""
    rng = np.random.default_rng(0)
    for style in ("gpt2_json", "llama3"):
        hf = Tokenizer.from_file(os.path.join(folders[style], "tokenizer.json"))
        tokenizer = ours[style]
        for _ in range(300):
            ids = rng.integers(0, tokenizer.vocab_size, size=rng.integers(0, 8)).tolist()
            assert tokenizer.decode(ids) == hf.decode(ids, skip_special_tokens=False)
            assert tokenizer.decode(ids, skip_special_tokens=True) == hf.decode(ids)


def test_special_tokens_and_attributes(ours, folders):
    import transformers

    gpt2 = ours["gpt2"]
    reference = transformers.AutoTokenizer.from_pretrained(folders["gpt2"])
    assert gpt2.kind == "byte_level_bpe"
    assert gpt2.vocab_size == len(reference) == VOCAB_SIZE + 1
    assert gpt2.eos_id == gpt2.bos_id == gpt2.unk_id == reference.eos_token_id == VOCAB_SIZE
    assert gpt2.pad_id is None and gpt2.eos_token == "<|endoftext|>"
    assert gpt2.special_id("<|endoftext|>") == VOCAB_SIZE and gpt2.specials == ["<|endoftext|>"]
    assert gpt2.ordinary_ids == (0, VOCAB_SIZE - 1)
    assert gpt2.encode("a<|endoftext|>b")[1] == gpt2.eos_id  # as in `tokenizers`
    assert gpt2.decode([gpt2.eos_id, 10**6]) == "<|endoftext|>"  # unknown ids: nothing
    with pytest.raises(UserInputError, match="no special token"):
        gpt2.special_id("<mask>")

    llama = ours["llama3"]
    assert (llama.bos_token, llama.eos_token) == tuple(LLAMA_SPECIALS[:2])
    assert (llama.bos_id, llama.eos_id) == (VOCAB_SIZE, VOCAB_SIZE + 1)
    assert llama.add_bos_token and llama.vocab_size == VOCAB_SIZE + 256
    assert llama.specials == LLAMA_SPECIALS and llama.ignore_merges

    smol = ours["smollm"]
    assert smol.eos_id == smol.bos_id == 0 and smol.ordinary_ids == (3, VOCAB_SIZE - 1)
    assert not smol.add_bos_token


def test_save_and_load_round_trip(ours, references, tmp_path):
    """`save` writes a Hugging Face folder: this package and `tokenizers` read it back."""
    tokenizer, path = ours["llama3"], str(tmp_path / "tokenizer.json")
    tokenizer.save(path)
    texts = ["Hello  world!\n\n", "It's 12345 \u3000日本", "<|begin_of_text|> x", ""]
    again = load_tokenizer(path)
    assert isinstance(again, ByteLevelBPETokenizer)
    for name in ("vocabulary", "merges", "added_tokens", "pre_tokenizer", "ignore_merges",
                 "bos_id", "eos_id", "pad_id", "add_bos_token", "vocab_size"):
        assert getattr(again, name) == getattr(tokenizer, name), name
    assert load_tokenizer(str(tmp_path)).to_json() == tokenizer.to_json()
    _assert_same_ids(again, references["llama3"], texts)
    saved = Tokenizer.from_file(path)
    assert [e.ids for e in saved.encode_batch(texts, add_special_tokens=False)] == \
        references["llama3"](texts)
    assert saved.encode("x").ids[0] == tokenizer.bos_id  # the template is kept


# -------------------------------------------------------------------------------------
# Inside tf.data and a SavedModel
# -------------------------------------------------------------------------------------

# (keras-hub's own GPT-2 splitting drops the `६` of "a६b" and, given special tokens,
# turns "ĴA" into the text of the first one.)
SAMPLES = ["ROMEO:\nIs the day so young?\n", " = Valkyria Chronicles III = \n", "", "   ",
           "It's 2024 -- 1,234.5 km\t\tdone.\r\n\r\n", "<|endoftext|>after", "日本語 \U0001f642 é",
           "a६b ĴA\x00<|reserved_special_token_7|>"]


def test_same_ids_inside_tf_data(ours, references):
    """One text an element (GPT-2's vocab.json) and batches of texts (Llama 3's tokenizer.json)."""
    assert checks.tf_data_rows(ours["gpt2"].tf_tokenizer(), SAMPLES) == \
        references["gpt2"](SAMPLES)
    assert checks.tf_data_rows(ours["llama3"].tf_tokenizer(), SAMPLES, batch=3) == \
        references["llama3"](SAMPLES)
    with pytest.raises(UserInputError, match="sampling"):
        ours["gpt2"].tf_tokenizer(sampling=True)


# Run in a fresh Python that imports only TensorFlow (not this package, keras-hub,
# tokenizers or even tensorflow_text): argv = the input JSON, then the SavedModels.
FRESH_PROCESS = """
import json, sys
import tensorflow as tf
texts, wanted = json.load(open(sys.argv[1], encoding="utf-8"))
results = []
for path, ids in zip(sys.argv[2:], wanted):
    loaded = tf.saved_model.load(path)
    out = loaded.encode_fn(tf.constant(texts))
    flat, lengths = out["ids"].numpy().tolist(), out["lengths"].numpy().tolist()
    rows, at = [], 0
    for n in lengths:
        rows.append(flat[at:at + n])
        at += n
    decoded = [loaded.decode_fn(tf.constant([row], tf.int32, shape=[1, len(row)]))[0]
               .numpy().decode("utf-8") for row in ids]  # (id 0 is a token: no padding)
    results.append({"ids": rows, "decoded": decoded})
imported = [m for m in ("keras_hub", "keras_transformer", "tokenizers", "tensorflow_text")
            if m in sys.modules]
print(json.dumps({"results": results, "imported": imported}))
"""


@pytest.mark.slow
def test_same_ids_inside_a_saved_model_in_a_fresh_process(ours, references, tmp_path):
    texts = SAMPLES + checks.held_out(SHAKESPEARE, 30000, 20) + ["a" * 300 + "  \n  b"]
    styles = ("gpt2", "llama3")
    paths = [str(tmp_path / style) for style in styles]
    for style, path in zip(styles, paths, strict=True):
        checks.save_encoder(graph_tokenizer(ours[style]), path)
    wanted = [references[style](texts) for style in styles]
    inputs = str(tmp_path / "inputs.json")
    _write_json(inputs, [texts, wanted])
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, inputs, *paths],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    output = json.loads(done.stdout.strip().splitlines()[-1])
    assert output["imported"] == []
    for style, result, want in zip(styles, output["results"], wanted, strict=True):
        assert result["ids"] == want, style
        assert result["decoded"] == texts, style  # byte-level BPE is lossless


@pytest.mark.slow
def test_exported_generator_equals_generate(ours, tmp_path):
    """`export_generator` with a byte-level BPE: the SavedModel's text is `generate`'s."""
    import keras

    from keras_transformer import TransformerConfig, build_gpt, generate
    from keras_transformer.generation.export import export_generator

    tokenizer = ours["llama3"]
    keras.utils.set_random_seed(0)
    model = build_gpt(TransformerConfig(vocab_size=tokenizer.vocab_size, max_len=32,
                                        num_layers=1, d_model=32, num_heads=2))
    prompts = ["ROMEO:  Is the day", "日本 \U0001f642 it's"]
    want = generate(model, tokenizer, prompts, max_new_tokens=6, temperature=0.0)
    out = export_generator(model, tokenizer, str(tmp_path / "saved_model"), jit_compile=False)
    loaded = tf.saved_model.load(out)
    text = loaded.signatures["generate"](
        prompt=tf.constant(prompts), max_new_tokens=tf.constant(6),
        temperature=tf.constant(0.0), top_k=tf.constant(0), top_p=tf.constant(1.0),
        seed=tf.constant(0),
    )["text"]
    assert [t.decode("utf-8") for t in text.numpy()] == want


# -------------------------------------------------------------------------------------
# Loading: what load_tokenizer accepts, and one-line errors for what it cannot
# -------------------------------------------------------------------------------------


def test_load_tokenizer_keeps_this_packages_files(tmp_path):
    char = CharTokenizer.from_text("hello")
    char.save(str(tmp_path / "tokenizer.json"))
    assert isinstance(load_tokenizer(str(tmp_path / "tokenizer.json")), CharTokenizer)
    assert isinstance(load_tokenizer(str(tmp_path)), CharTokenizer)  # a run directory


def _tokenizer_json(folders):
    with open(os.path.join(folders["llama3"], "tokenizer.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _broken(folders, change):
    spec = _tokenizer_json(folders)
    change(spec)
    return {"tokenizer.json": spec}


BROKEN = {
    **checks.BROKEN_FOLDERS,
    "merges.txt missing": (lambda f: {"vocab.json": {"a": 0}}, "merges.txt"),
    "corrupt vocab.json": (lambda f: {"vocab.json": "{not json", "merges.txt": ""},
                           "vocab.json is not valid JSON"),
    "WordPiece model": (lambda f: _broken(f, lambda s: s["model"].update(type="WordPiece")),
                        "WordPiece model is not supported"),
    "Metaspace pre-tokenizer": (
        lambda f: _broken(f, lambda s: s.update(pre_tokenizer={"type": "Metaspace"})),
        "Metaspace pre-tokenizer is not supported"),
    "another Split regex": (
        lambda f: _broken(f, lambda s: s["pre_tokenizer"]["pretokenizers"][0].update(
            pattern={"Regex": r"\w+"})),
        "Split pre-tokenizer pattern"),
    "NFC normalizer": (lambda f: _broken(f, lambda s: s.update(normalizer={"type": "NFC"})),
                       "NFC normalizer is not supported"),
    "BPE dropout": (lambda f: _broken(f, lambda s: s["model"].update(dropout=0.1)), "dropout"),
    "lstrip added token": (lambda f: _broken(f, lambda s: s["added_tokens"][0].update(lstrip=True)),
                           "lstrip"),
    "WordPiece decoder": (lambda f: _broken(f, lambda s: s.update(decoder={"type": "WordPiece"})),
                          "WordPiece decoder"),
    "byte characters missing": (
        lambda f: _broken(f, lambda s: s["model"].update(vocab={"a": 0, "b": 1}, merges=[])),
        "lacks 254 of the 256 byte characters"),
    "merge of unknown tokens": (
        lambda f: _broken(f, lambda s: s["model"]["merges"].append(["zz", "q"])),
        "not in the vocabulary"),
}


test_bad_folders_fail_with_one_line = checks.bad_folders_test(BROKEN)


def test_missing_folder_fails_with_one_line(tmp_path):
    checks.assert_one_line_error(
        lambda: ByteLevelBPETokenizer.from_directory(str(tmp_path / "nothing")), "not found")
    checks.assert_one_line_error(
        lambda: load_tokenizer(str(tmp_path / "nothing" / "tokenizer.json")), "not found")
