"""Loading a trained model for use: from a run folder, an export or a checkpoint file."""

from __future__ import annotations

from pathlib import Path

import torch

from spriteforge.devices import resolve_device
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.kinds import Stylizer
from spriteforge.models.pix2pix import PairModels
from spriteforge.training import checkpoint as ckpt
from spriteforge.training.locations import (  # noqa: F401 (the names commands import from here)
    BUNDLED, BUNDLED_FOLDER, DEFAULT_MODEL, DEFAULT_SAMPLER, bundled_path, find_checkpoint, resolve_sampler)
from spriteforge.training.run_folder import RunFolder


def load_for_inference(location: str | Path, device: str | torch.device = "cpu", stylize: bool = False):
    """Rebuild the model a checkpoint describes and load its generator weights (no unpickling).

    A folder holding several pix2pix run folders (one per view pair) loads as one imputer of them all.
    Picture → pixel-art models load only for `stylize=True`, and only they load for it (one clear line).
    """
    device = resolve_device(device)
    pairs = None if stylize or str(location) in BUNDLED else load_pair_models(location, device)
    if pairs is not None:
        return pairs
    path = find_checkpoint(location)
    tensors, meta = ckpt.read_checkpoint(path)
    cls = model_class(meta["model"])
    if issubclass(cls, Stylizer) and not stylize:
        raise SpriteForgeError(f"{path}: a {meta['model']} model turns pictures into pixel art; use `spriteforge stylize`")
    if stylize and not issubclass(cls, Stylizer):
        raise SpriteForgeError(f"{path}: a {meta['model']} model does not turn pictures into pixel art; "
                               "stylize needs a run of cyclegan or pix2pix-pairs (or use `spriteforge pixelate` without a model)")
    model, config = ckpt.rebuild_model(tensors, meta, path)
    return model.to(device).eval(), config


def load_pair_models(location: str | Path, device):
    """The pix2pix runs below a folder that is not itself a run, as one `PairModels`; None if there are none."""
    location = Path(location).expanduser()
    if not location.is_dir() or RunFolder(location).inference_checkpoint() is not None:
        return None
    runs = [run.path for run in RunFolder.below(location)]
    if not runs:
        return None
    loaded = [load_for_inference(run, device) for run in runs]
    if any(config.model != "pix2pix" for _, config in loaded):
        return None
    first = loaded[0][1]
    for run, (_, config) in zip(runs, loaded):
        if list(config.domains) != list(first.domains) or config.image_size != first.image_size or config.output_channels != first.output_channels:
            raise SpriteForgeError(f"{run}: its views, image size or channels differ from {runs[0]}; keep one kind of pair model per folder")
    return PairModels([model for model, _ in loaded]).to(device).eval(), first
