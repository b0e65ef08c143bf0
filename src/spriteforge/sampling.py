"""`spriteforge sample`: new characters from a trained sampling model (DCGAN family), as a grid PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import load_for_inference, torch_device
from spriteforge.translation import binarise_alpha


def latent_vectors(model, count: int, seed: int, interpolate: bool) -> torch.Tensor:
    """`count` latent vectors from `seed`; with `interpolate`, evenly spaced from z(seed) to z(seed + 1)."""
    if not interpolate:
        return model.noise(count, torch.Generator().manual_seed(seed))
    start = model.noise(1, torch.Generator().manual_seed(seed))
    end = model.noise(1, torch.Generator().manual_seed(seed + 1))
    weights = torch.linspace(0, 1, count)[:, None]
    return (1 - weights) * start + weights * end


@torch.no_grad()
def sample_files(model_path, out: Path, count: int = 64, view: str | None = None, seed: int = 0, interpolate: bool = False,
                 scale: int = 1, separate: bool = False, binary_alpha: bool = True, device: str = "cpu") -> list[Path]:
    device = torch_device(device)
    model, config = load_for_inference(model_path, device)
    if model.imputes:
        raise SpriteForgeError(f"{config.model} draws missing views, not new characters; use `spriteforge translate`")
    views = None
    if view is not None:
        if view not in config.domains:
            raise SpriteForgeError(f"--view {view}: this model's views are {', '.join(config.domains)}")
        views = torch.full((count,), list(config.domains).index(view), device=device)
    noise = latent_vectors(model, count, seed, interpolate).to(device)
    images = imageio.to_uint8(model.sample(noise, views))
    if binary_alpha and images.shape[-1] == 4:
        images = np.stack([binarise_alpha(image) for image in images])
    columns = count if interpolate else math.ceil(math.sqrt(count))
    rows = [list(images[start : start + columns]) for start in range(0, count, columns)]
    written = [imageio.save_png(imageio.grid(rows), out, scale)]
    if separate:
        for index, image in enumerate(images):
            written.append(imageio.save_png(image, out.with_name(f"{out.stem}-{index:03d}{out.suffix or '.png'}"), scale))
    return written
