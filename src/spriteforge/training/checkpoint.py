"""Checkpoints as single safetensors files: tensors plus JSON metadata, written atomically.

One file per checkpoint so `os.replace` makes the write atomic. Nothing is ever unpickled: tensors
come from safetensors and everything else (configuration, step, optimiser hyper-parameters) is JSON
in the file's metadata header.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import atomic_write

FORMAT = "spriteforge-checkpoint/1"


def save_checkpoint(path: Path, model, step: int, extra: dict[str, Any] | None = None,
                    include_training_state: bool = True, networks: tuple[str, ...] | None = None) -> Path:
    """Write weights (all networks, or `networks`) and, for resume, optimiser states and the step."""
    tensors: dict[str, torch.Tensor] = {}
    for name, network in model.networks().items():
        if networks is not None and name not in networks:
            continue
        for key, value in network.state_dict().items():
            tensors[f"network/{name}/{key}"] = value.detach().cpu().contiguous()
    optimizer_meta = {}
    if include_training_state:
        for name, optimizer in model.optimizers.items():
            state = optimizer.state_dict()
            optimizer_meta[name] = {"param_groups": state["param_groups"], "state_keys": {}}
            for index, values in state["state"].items():
                optimizer_meta[name]["state_keys"][str(index)] = sorted(values)
                for key, value in values.items():
                    tensors[f"optimizer/{name}/{index}/{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    metadata = {
        "format": FORMAT,
        "model": model.name,
        "config": json.dumps(dict(model.config)),
        "shape": json.dumps({"domains": model.domain_count, "channels": model.channels, "image_size": model.image_size}),
        "step": str(step),
        "optimizers": json.dumps(optimizer_meta),
        "extra": json.dumps(extra or {}),
    }
    with atomic_write(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load tensors and decoded metadata; a foreign or damaged file gives one clear error."""
    path = Path(path)
    if not path.is_file():
        raise SpriteForgeError(f"{path}: checkpoint not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise SpriteForgeError(f"{path}: not a SpriteForge checkpoint (unreadable safetensors: {error})") from None
    if raw.get("format") != FORMAT:
        raise SpriteForgeError(f"{path}: not a SpriteForge checkpoint (format '{raw.get('format')}'); pass a run folder or a .safetensors written by spriteforge")
    meta = {
        "model": raw["model"],
        "config": json.loads(raw["config"]),
        "shape": json.loads(raw["shape"]),
        "step": int(raw["step"]),
        "optimizers": json.loads(raw["optimizers"]),
        "extra": json.loads(raw["extra"]),
    }
    return tensors, meta


def load_weights(model, tensors: dict[str, torch.Tensor], path: Path, networks: tuple[str, ...] | None = None) -> None:
    for name, network in model.networks().items():
        if networks is not None and name not in networks:
            continue
        prefix = f"network/{name}/"
        state = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise SpriteForgeError(f"{path}: weights do not fit the {name} of this model ({first})") from None


def load_optimizers(model, tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> None:
    for name, optimizer in model.optimizers.items():
        saved = meta["optimizers"].get(name)
        if saved is None:
            raise SpriteForgeError(f"{path}: holds no state for the {name} optimiser; it cannot resume training")
        state = {}
        for index, keys in saved["state_keys"].items():
            state[int(index)] = {key: tensors[f"optimizer/{name}/{index}/{key}"] for key in keys}
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
