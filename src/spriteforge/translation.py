"""`spriteforge translate`: draw the missing views of one character and write a sprite sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import load_for_inference


def binarise_alpha(rgba: np.ndarray) -> np.ndarray:
    """Pixel art has no partial transparency: alpha ≥ 128 → opaque, else fully transparent (0,0,0,0)."""
    result = rgba.copy()
    opaque = result[..., 3] >= 128
    result[..., 3] = np.where(opaque, 255, 0)
    result[~opaque] = 0
    return result


@torch.no_grad()
def translate_views(model, config, given: dict[str, np.ndarray], binary_alpha: bool = True, device="cpu") -> list[np.ndarray]:
    """Return every domain's view (uint8 RGBA): the given ones unchanged, the others generated."""
    domains = list(config.domains)
    size = config.image_size
    views = np.zeros((1, len(domains), size, size, 4), np.uint8)
    available = torch.zeros(1, len(domains), dtype=torch.bool)
    for name, image in given.items():
        views[0, domains.index(name)] = image
        available[0, domains.index(name)] = True
    from spriteforge.training.engine import to_model_input

    inputs = to_model_input(torch.from_numpy(views), config.output_channels).to(device)
    missing = [index for index in range(len(domains)) if not available[0, index]]
    drawable = [index for index in missing if model.can_impute(available, torch.tensor([index]))[0]]
    if missing and not drawable:  # let the model say what it needs, in one line
        model.impute(inputs, available.to(device), torch.tensor([missing[0]], device=device))
    result = []
    for index in range(len(domains)):
        if available[0, index]:
            result.append(views[0, index])
            continue
        if index not in drawable:  # a view this (pairwise) model does not draw: left transparent
            result.append(np.zeros_like(views[0, index]))
            continue
        fake = model.impute(inputs, available.to(device), torch.tensor([index], device=device))
        image = imageio.to_uint8(fake)[0]
        result.append(binarise_alpha(image) if binary_alpha else image)
    return result


def translate_files(model_path, given_paths: dict[str, str], out: Path, scale: int = 1, separate: bool = False,
                    binary_alpha: bool = True, device: str = "cpu") -> list[Path]:
    if not given_paths:
        raise SpriteForgeError("give at least one view: --front, --back, --left or --right")
    try:
        torch_device = torch.device(device)
    except RuntimeError:
        raise SpriteForgeError(f"--device {device}: not a torch device (use cpu, cuda or cuda:N)") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise SpriteForgeError("--device cuda: no CUDA GPU is available here; use --device cpu")
    model, config = load_for_inference(model_path, torch_device)
    unknown = [name for name in given_paths if name not in config.domains]
    if unknown:
        raise SpriteForgeError(f"this model's views are {', '.join(config.domains)}; it has no '{unknown[0]}' view")
    if len(given_paths) == len(config.domains):
        raise SpriteForgeError("all views are given, so there is nothing to draw; leave out the views you want drawn")
    images = {name: imageio.load_rgba(path, config.image_size) for name, path in given_paths.items()}
    views = translate_views(model, config, images, binary_alpha, torch_device)
    written = [imageio.save_png(imageio.grid([views], padding=0), out, scale)]
    if separate:
        for name, image in zip(config.domains, views):
            written.append(imageio.save_png(image, out.with_name(f"{out.stem}-{name}{out.suffix or '.png'}"), scale))
    return written
