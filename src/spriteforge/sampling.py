"""`spriteforge sample`: new characters from a trained sampling model (DCGAN family, BigGAN), as a grid PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import load_for_inference, torch_device
from spriteforge.drawing import binarise_alpha


def latent_vectors(model, count: int, seed: int, interpolate: bool, truncation: float | None = None) -> torch.Tensor:
    """`count` latent vectors from `seed`; with `interpolate`, evenly spaced from z(seed) to z(seed + 1).

    `truncation` (BigGAN only) overrides the model's own --truncation; None keeps it.
    """
    options = {} if truncation is None else {"truncation": truncation}
    if not interpolate:
        return model.noise(count, torch.Generator().manual_seed(seed), **options)
    start = model.noise(1, torch.Generator().manual_seed(seed), **options)
    end = model.noise(1, torch.Generator().manual_seed(seed + 1), **options)
    weights = torch.linspace(0, 1, count)[:, None]
    return (1 - weights) * start + weights * end


@torch.no_grad()
def sample_files(model_path, out: Path, count: int = 64, view: str | None = None, seed: int = 0, interpolate: bool = False,
                 scale: int = 1, separate: bool = False, binary_alpha: bool = True, device: str = "cpu",
                 truncation: float | None = None) -> list[Path]:
    device = torch_device(device)
    model, config = load_for_inference(model_path, device)
    if model.imputes:
        raise SpriteForgeError(f"{config.model} draws missing views, not new characters; use `spriteforge translate`")
    if truncation is not None and not model.truncates:
        raise SpriteForgeError(f"--truncation: {config.model} draws from an untruncated normal; only biggan and deep-biggan take it")
    if truncation is not None and truncation < 0:
        raise SpriteForgeError(f"--truncation must be 0 (off) or positive, got {truncation}")
    views = None
    if view is not None and model.domain_count == 1:
        raise SpriteForgeError("--view: this model was trained on a single folder of images (one class, no views); drop --view")
    if view is not None:
        if view not in config.domains:
            raise SpriteForgeError(f"--view {view}: this model's views are {', '.join(config.domains)}")
        views = torch.full((count,), list(config.domains).index(view), device=device)
    columns = count if interpolate else math.ceil(math.sqrt(count))
    height, width = model.image_size if isinstance(model.image_size, tuple) else (model.image_size, model.image_size)
    rows_needed = math.ceil(count / columns)
    imageio.check_output_size((rows_needed * (height + 2) + 2) * scale, (columns * (width + 2) + 2) * scale, "the grid")  # before drawing
    noise = latent_vectors(model, count, seed, interpolate, truncation).to(device)
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
