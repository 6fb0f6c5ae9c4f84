"""What the checkpoint tests share: reference checkpoints with their 1-D parameters moved,
and the edits that damage a checkpoint folder (a config field, a tensor, a truncated file)."""

import json
import os


def perturbed(make, seed, scale=0.3):
    """`make()` seeded with `seed`, every 1-D parameter (norms, biases) moved by noise of
    `scale`, so that a tensor loaded into the wrong place changes the outputs."""
    import torch

    torch.manual_seed(seed)
    model = make()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * scale)
    return model.eval()


def save_checkpoints(root, makers):
    """`{name: (folder, the transformers model it holds)}` of `makers` (`{name: make}`), each
    `perturbed` with its own seed and saved with `save_pretrained` under `root`."""
    made = {}
    for seed, (name, make) in enumerate(sorted(makers.items())):
        model = perturbed(make, seed)
        model.save_pretrained(root / name)
        made[name] = (str(root / name), model)
    return made


DROP = "<drop>"


def edit_config(folder, **changes):
    """Change fields of `folder/config.json` (a field changed to `DROP` is removed)."""
    path = os.path.join(folder, "config.json")
    with open(path, encoding="utf-8") as handle:
        hf = {**json.load(handle), **changes}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({key: value for key, value in hf.items() if value != DROP}, handle)


def edit_tensors(folder, change):
    """Rewrite `folder/model.safetensors` after `change(tensors)` (a dict of numpy arrays)."""
    from safetensors.numpy import load_file, save_file

    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


def one_line(error):
    """The message of a `pytest.raises` result, checked to be one non-empty line."""
    message = str(error.value)
    assert message and "\n" not in message
    return message
