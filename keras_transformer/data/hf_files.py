"""Reading and writing the files of a Hugging Face tokenizer folder, with one-line errors.

A Hugging Face tokenizer folder holds a `tokenizer.json` (the `tokenizers`
format: a `model`, its normalizer, pre-tokenizer, decoder and
`added_tokens`) and/or the files of an older format (GPT-2's `vocab.json` +
`merges.txt`, BERT's `vocab.txt`, T5's `spiece.model`), and beside them
`tokenizer_config.json` and `special_tokens_map.json`, which name the
special tokens of each role (`eos_token`, `cls_token`, ...), list more added
tokens (`added_tokens_decoder`) and hold settings (`do_lower_case`,
`extra_ids`, ...). The byte-level BPE, WordPiece and T5 SentencePiece
tokenizers of this package read them all with the functions here, so a
missing, corrupt or odd file is the same one-line `UserInputError` for each.

Example:

>>> config, special_map = read_configs("checkpoints/bert-base-uncased")
>>> role_tokens(config, special_map, ("cls", "sep"), {"cls": "[CLS]", "sep": "[SEP]"})
{'cls': '[CLS]', 'sep': '[SEP]'}
"""

import json
import os

from keras_transformer.errors import UserInputError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE, SPECIAL_TOKENS_FILE = "tokenizer_config.json", "special_tokens_map.json"


def read_json(path):
    """The parsed JSON of `path`; a `UserInputError` naming the file if it is unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"{path} is not valid JSON ({error.msg}, line {error.lineno})"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read {path}: {error}") from None


def write_json(path, content, indent=None):
    """Write `content` as UTF-8 JSON (non-ASCII characters kept as they are)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, ensure_ascii=False, indent=indent)


def read_tokenizer_json(path):
    """The parsed `tokenizer.json` at `path`, checked to hold a `model` object.

    Raises:
        UserInputError: the file is missing, not JSON, or has no `model`.
    """
    if not os.path.isfile(path):
        raise UserInputError(f"tokenizer file not found: {path}")
    spec = read_json(path)
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
        raise UserInputError(f"{path} is not a Hugging Face tokenizer.json (no model)")
    return spec


def model_type(spec):
    """The `model.type` of a parsed `tokenizer.json` (`"BPE"`, `"WordPiece"`, ...), or None."""
    if isinstance(spec, dict) and isinstance(spec.get("model"), dict):
        return spec["model"].get("type")
    return None


def kind_of(part):
    """The `type` of a normalizer / pre-tokenizer / decoder spec (the spec itself if not a dict)."""
    return part.get("type") if isinstance(part, dict) else part


def token_content(value):
    """The text of a special token given as a string or an `AddedToken` dict (or None)."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def check_added_tokens(added):
    """Added tokens as dicts `{id, content, special, normalized}`, refusing what is unsupported.

    Args:
        added: the `added_tokens` of a `tokenizer.json` (or of a config's
            `added_tokens_decoder`, with the id put in), or None.

    Raises:
        UserInputError: a token that is not a dict with a `content` and an
            integer `id`, or one using `lstrip`, `rstrip` or `single_word`.
    """
    tokens = []
    for token in added or ():
        if not isinstance(token, dict) or not isinstance(token.get("content"), str):
            raise UserInputError(f"bad added token {token!r}")
        for flag in ("lstrip", "rstrip", "single_word"):
            if token.get(flag):
                raise UserInputError(
                    f"the added token {token['content']!r} uses {flag}, which is not supported"
                )
        try:
            token_id = int(token["id"])
        except (KeyError, TypeError, ValueError):
            raise UserInputError(f"the added token {token['content']!r} has no id") from None
        tokens.append({"id": token_id, "content": token["content"],
                       "special": bool(token.get("special", False)),
                       "normalized": bool(token.get("normalized", False))})
    return tokens


def read_configs(folder):
    """`(tokenizer_config, special_tokens_map)` of `folder`: dicts, empty for a missing file."""
    found = []
    for name in (CONFIG_FILE, SPECIAL_TOKENS_FILE):
        path = os.path.join(folder, name)
        content = read_json(path) if os.path.isfile(path) else {}
        if not isinstance(content, dict):
            raise UserInputError(f"{path} must hold a JSON object")
        found.append(content)
    return tuple(found)


def role_tokens(config, special_map, roles, defaults=None):
    """`{role: token}`: the config's `{role}_token`, else the map's, else `defaults[role]`."""
    defaults = defaults or {}
    found = {}
    for role in roles:
        key = f"{role}_token"
        found[role] = (token_content(config.get(key)) or token_content(special_map.get(key))
                       or defaults.get(role))
    return found


def config_added_tokens(config):
    """The checked added tokens of a `tokenizer_config.json`'s `added_tokens_decoder`."""
    added = []
    for token_id, token in (config.get("added_tokens_decoder") or {}).items():
        if isinstance(token, dict):
            added.append({**token, "id": token_id})
    return check_added_tokens(added)


def merged_added_tokens(spec_tokens, config_tokens):
    """The checked `added_tokens` of a `tokenizer.json`, plus the config's that add new ids."""
    added = check_added_tokens(spec_tokens)
    known = {token["id"] for token in added}
    return added + [token for token in config_tokens if token["id"] not in known]


def added_tokens_decoder(added_tokens):
    """The `added_tokens_decoder` of a `tokenizer_config.json` for checked added tokens.

    Every token is written as matched before normalization (`normalized`
    false), which is how the WordPiece and T5 tokenizers match them all.
    """
    return {
        str(t["id"]): {"content": t["content"], "lstrip": False, "rstrip": False,
                       "normalized": False, "single_word": False, "special": t["special"]}
        for t in added_tokens
    }
