"""Checkpoints as single safetensors files: tensors plus JSON metadata, written atomically.

One file per checkpoint so `os.replace` makes the write atomic. Nothing is ever unpickled: tensors
come from safetensors and everything else (configuration, step, optimiser hyper-parameters) is JSON
in the file's metadata header, checked before anything is built from it. The metadata also holds a
SHA-256 of the tensors (verified on load: a flipped byte is an error, not a silent resume) and the
versions that wrote it. Non-finite weights are never written (`NonFiniteState`), so a diverged run
keeps its last good checkpoint; `keep` > 1 also keeps the previous ones (`latest-<step>.safetensors`)
for `read_newest` to fall back on when the latest is damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from spriteforge import versions
from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import atomic_write, require_regular_file
from spriteforge.models import model_class
from spriteforge.options import MAX_IMAGE_SIDE, config_from_meta

FORMAT = "spriteforge-checkpoint/1"
REQUIRED = ("model", "config", "shape", "step", "optimizers", "extra")
MAX_DOMAINS = 64


class NonFiniteState(SpriteForgeError):
    """The model's weights or optimiser state hold NaN or infinity: nothing was written."""


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]  # numpy's stubs give ndarray the buffer protocol only for Python 3.12+
    return "sha256:" + digest.hexdigest()


def _first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return key
    return None


def save_checkpoint(path: Path, model, step: int, extra: dict[str, Any] | None = None,
                    include_training_state: bool = True, networks: tuple[str, ...] | None = None, keep: int = 1) -> Path:
    """Write weights (all networks, or `networks`) and, for resume, optimiser states and the step.

    Refuses non-finite state (`NonFiniteState`, the file on disk untouched). With `keep` > 1 the file
    it replaces stays as `<stem>-<its step>.safetensors`, and only the keep - 1 newest of those stay.
    """
    path = Path(path)
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
    bad = _first_non_finite(tensors)
    if bad is not None:
        raise NonFiniteState(f"{path}: not written: {bad} holds NaN or infinity at step {step}")
    metadata = {
        "format": FORMAT,
        "model": model.name,
        "config": json.dumps(dict(model.config)),
        "shape": json.dumps({"domains": model.domain_count, "channels": model.channels, "image_size": model.image_size}),
        "step": str(step),
        "optimizers": json.dumps(optimizer_meta),
        "extra": json.dumps(extra or {}),
        "checksum": tensor_checksum(tensors),
        "versions": json.dumps(versions.versions()),  # looked up when called: tests replace it
    }
    if keep > 1:
        _keep_previous(path)
    with atomic_write(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    if keep >= 1:
        for old in previous_checkpoints(path)[keep - 1:]:
            old.unlink(missing_ok=True)
    return path


def previous_checkpoints(path: Path) -> list[Path]:
    """The kept earlier versions of `path` (`latest-00000120.safetensors` …), newest first."""
    path = Path(path)
    found = [p for p in path.parent.glob(f"{path.stem}-*{path.suffix}") if p.stem[len(path.stem) + 1:].isdigit()]
    return sorted(found, key=lambda p: int(p.stem[len(path.stem) + 1:]), reverse=True)


def _keep_previous(path: Path) -> None:
    """Keep the file about to be replaced under its step's name (a hard link: no copy, no window)."""
    if not path.is_file():
        return
    try:
        step = int(_read_header(path).get("step", ""))
    except (SpriteForgeError, ValueError):
        return  # a damaged latest is not worth keeping
    kept = path.with_name(f"{path.stem}-{step:08d}{path.suffix}")
    if kept.exists():
        return
    try:
        os.link(path, kept)
    except OSError:
        try:
            shutil.copy2(path, kept)
        except OSError:
            kept.unlink(missing_ok=True)


def _read_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise SpriteForgeError(f"{path}: not a SpriteForge checkpoint (unreadable safetensors: {error})") from None


def _json(raw: dict[str, str], key: str, path: Path, kind: type) -> Any:
    try:
        value = json.loads(raw[key])
    except (json.JSONDecodeError, TypeError):
        raise SpriteForgeError(f"{path}: damaged checkpoint metadata ('{key}' is not valid JSON)") from None
    if not isinstance(value, kind):
        raise SpriteForgeError(f"{path}: damaged checkpoint metadata ('{key}' is not a {kind.__name__})")
    return value


def _check_shape(shape: dict, path: Path) -> None:
    """Refuse declared sizes no model is built for, before any network is allocated from them."""
    def whole(value, low, high):
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    size = shape.get("image_size")
    sizes = size if isinstance(size, list) else [size]
    if (not whole(shape.get("domains"), 1, MAX_DOMAINS) or shape.get("channels") not in (3, 4)
            or len(sizes) not in (1, 2) or not all(whole(s, 1, MAX_IMAGE_SIDE) for s in sizes)):
        raise SpriteForgeError(f"{path}: damaged checkpoint metadata (shape {json.dumps(shape)[:120]} is outside what any "
                               f"model takes: 1-{MAX_DOMAINS} views, 3 or 4 channels, sides up to {MAX_IMAGE_SIDE})")


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load tensors and decoded metadata; a foreign, crafted or damaged file gives one clear error."""
    path = Path(path)
    if not path.exists():
        raise SpriteForgeError(f"{path}: checkpoint not found")
    require_regular_file(path, "a checkpoint file (.safetensors)")
    raw = _read_header(path)
    if raw.get("format") != FORMAT:
        raise SpriteForgeError(f"{path}: not a SpriteForge checkpoint (format '{raw.get('format')}'); pass a run folder or a .safetensors written by spriteforge")
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        raise SpriteForgeError(f"{path}: damaged checkpoint metadata (no {', '.join(missing)})")
    try:
        step = int(raw["step"])
    except ValueError:
        raise SpriteForgeError(f"{path}: damaged checkpoint metadata (step '{raw['step'][:40]}' is not a whole number)") from None
    if step < 0:
        raise SpriteForgeError(f"{path}: damaged checkpoint metadata (negative step {step})")
    meta = {
        "model": raw["model"],
        "config": _json(raw, "config", path, dict),
        "shape": _json(raw, "shape", path, dict),
        "step": step,
        "optimizers": _json(raw, "optimizers", path, dict),
        "extra": _json(raw, "extra", path, dict),
        "versions": _json(raw, "versions", path, dict) if "versions" in raw else {},
    }
    _check_shape(meta["shape"], path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise SpriteForgeError(f"{path}: not a SpriteForge checkpoint (unreadable safetensors: {error})") from None
    if "checksum" in raw and tensor_checksum(tensors) != raw["checksum"]:
        raise SpriteForgeError(f"{path}: damaged checkpoint (its tensors do not match the checksum it was written with)")
    return tensors, meta


def read_newest(path: Path, warn: Callable[[str], None] | None = None) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """`path`, or when it is missing or damaged the newest intact kept version (saying so through `warn`)."""
    path = Path(path)
    try:
        return path, *read_checkpoint(path)
    except SpriteForgeError as error:
        for earlier in previous_checkpoints(path):
            try:
                tensors, meta = read_checkpoint(earlier)
            except SpriteForgeError:
                continue
            if warn:
                warn(f"warning: {error}; using the previous checkpoint {earlier.name} (step {meta['step']})")
            return earlier, tensors, meta
        raise


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


def rebuild_model(tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path):
    """(model, configuration) a checkpoint describes, its inference networks loaded: for drawing, or as a
    --distill-from teacher. The model is built on the CPU in training mode; callers move it and set eval."""
    config = config_from_meta(meta, path)
    shape = meta["shape"]
    model = model_class(meta["model"])(config, shape["domains"], shape["channels"], shape["image_size"])
    load_weights(model, tensors, path, model.inference_networks)
    return model, config


def load_optimizers(model, tensors: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> None:
    for name, optimizer in model.optimizers.items():
        saved = meta["optimizers"].get(name)
        if saved is None:
            raise SpriteForgeError(f"{path}: holds no state for the {name} optimiser; it cannot resume training")
        try:
            state = {}
            for index, keys in saved["state_keys"].items():
                state[int(index)] = {key: tensors[f"optimizer/{name}/{index}/{key}"] for key in keys}
            optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SpriteForgeError(f"{path}: damaged optimiser state for {name} ({type(error).__name__}: {error})") from None
