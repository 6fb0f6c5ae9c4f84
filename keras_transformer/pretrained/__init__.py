"""Real checkpoints: Hugging Face GPT-2 and Llama-family folders as this package's `GPT`.

`from_pretrained(path)` builds a `GPT` from the folder's `config.json`
(`TransformerConfig.from_hf`) and puts the safetensors weights in place;
`save_pretrained(model, tokenizer, path)` writes one back, for `transformers` to load.
"""

from keras_transformer.pretrained.checkpoint import from_pretrained, read_hf_config, save_pretrained
from keras_transformer.pretrained.hf_config import config_from_hf, config_to_hf, hf_model_type

__all__ = [
    "config_from_hf",
    "config_to_hf",
    "from_pretrained",
    "hf_model_type",
    "read_hf_config",
    "save_pretrained",
]
