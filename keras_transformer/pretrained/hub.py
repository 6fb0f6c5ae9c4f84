"""`hf://REPO_ID`: a Hugging Face Hub checkpoint downloaded once into the local cache.

The commands take a checkpoint folder as a model; `hf://gpt2` (or
`hf://HuggingFaceTB/SmolLM2-135M`) names one on the Hub instead. It is
fetched with `huggingface_hub.snapshot_download`, only the files this
package reads (configs, safetensors weights, tokenizer files; never
pickles), and the local folder is used from then on.
"""

import os

from keras_transformer.errors import UserInputError

SCHEME = "hf://"
# What from_pretrained and load_tokenizer read; pickled weights are never fetched.
ALLOW_PATTERNS = ("*.json", "*.safetensors", "merges.txt", "vocab.txt", "*.model")


def resolve_checkpoint(spec):
    """The local folder of `spec`: `spec` itself, or for `hf://REPO_ID` the downloaded snapshot.

    Args:
        spec: a path, or `hf://` followed by a Hub repository id and an
            optional `@revision` (`hf://gpt2`, `hf://org/name@main`).

    Raises:
        UserInputError: one line when `huggingface_hub` is not installed, the
            network or the repository is not there (or `HF_HUB_OFFLINE=1` and
            it is not cached), or the id is malformed.

    Example:

    >>> resolve_checkpoint("checkpoints/gpt2")
    'checkpoints/gpt2'
    >>> resolve_checkpoint("hf://gpt2")  # doctest: +SKIP
    '/root/.cache/huggingface/hub/models--gpt2/snapshots/607a30d...'
    """
    spec = os.fspath(spec)
    if not spec.startswith(SCHEME):
        return spec
    repo_id, _, revision = spec[len(SCHEME):].partition("@")
    parts = repo_id.split("/")
    if not repo_id or len(parts) > 2 or not all(parts):
        raise UserInputError(f"{spec}: expected hf://NAME or hf://ORG/NAME (a Hub model id)")
    try:
        import huggingface_hub
    except ImportError:
        raise UserInputError(
            f"{spec} needs huggingface_hub (pip install huggingface_hub); or download the "
            f"folder where there is network (huggingface-cli download {repo_id} --local-dir DIR) "
            "and pass DIR"
        ) from None
    try:
        return huggingface_hub.snapshot_download(repo_id, revision=revision or None,
                                                 allow_patterns=list(ALLOW_PATTERNS))
    except Exception as error:  # offline, unknown repo, gated, network: one line whatever it is
        reason = " ".join(str(error).split()) or type(error).__name__
        if len(reason) > 200:
            reason = reason[:200] + "..."
        raise UserInputError(
            f"cannot download {spec} ({type(error).__name__}: {reason}); without network, "
            f"download it elsewhere (huggingface-cli download {repo_id} --local-dir DIR), "
            "copy DIR here and pass it"
        ) from None
