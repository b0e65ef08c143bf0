"""Drawing missing views with a loaded imputer: the core that `spriteforge.api`, the commands and the studio share.

Pixel-art rules live here too: alpha is binarised, forced palettes are exact (nearest RGB), and a
palette-quantising model draws with the forced colours directly.
"""

from __future__ import annotations

import numpy as np
import torch

from spriteforge import imageio
from spriteforge.data.batches import to_model_input
from spriteforge.errors import SpriteForgeError
from spriteforge.palettes import read_palette
from spriteforge.pixelart import binarize_alpha


MAX_PALETTE = 256


def read_forced_palette(path) -> np.ndarray:
    """`--palette-from FILE`: [N, 3] uint8 colours (a PNG's opaque pixels or hex lines), 1 to 256 of them."""
    palette = read_palette(path)
    if len(palette) > MAX_PALETTE:
        raise SpriteForgeError(f"{path}: {len(palette)} colours; a palette has at most {MAX_PALETTE}")
    return palette


def snap_to_palette(rgba: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Binarise alpha, then move every opaque pixel to its nearest palette colour (squared RGB distance)."""
    result = binarize_alpha(rgba)
    opaque = result[..., 3] == 255
    if opaque.any():
        colours, inverse = np.unique(result[opaque][:, :3], axis=0, return_inverse=True)
        distances = ((colours[:, None, :].astype(np.int64) - np.asarray(palette, np.int64)[None]) ** 2).sum(-1)
        result[opaque, :3] = np.asarray(palette, np.uint8)[distances.argmin(1)][inverse.reshape(-1)]
    return result


def model_palette(palette: np.ndarray, channels: int) -> torch.Tensor:
    """Forced RGB colours as a model palette [K, C] in [-1, 1]; with alpha, opaque plus fully transparent."""
    colours = np.asarray(palette, np.float32)
    if channels == 4:
        colours = np.concatenate([np.concatenate([colours, np.full((len(colours), 1), 255, np.float32)], 1),
                                  np.zeros((1, 4), np.float32)])
    return torch.from_numpy(colours) / 127.5 - 1


STYLE_SOURCES = ("encoded", "sampled")


def style_rows(style_size: int, count: int, source: str, seed: int) -> list[torch.Tensor | None]:
    """The styles of `count` variations: the model's own (encoded) style first unless `source` is
    'sampled', then draws from N(0, I) seeded by `seed` (the same seed gives the same sheet)."""
    generator = torch.Generator().manual_seed(seed)
    rows: list[torch.Tensor | None] = [None] if source == "encoded" else []
    while len(rows) < count:
        rows.append(torch.randn(1, style_size, generator=generator))
    return rows


@torch.no_grad()
def draw_characters(model, config, views: np.ndarray, available: np.ndarray, device="cpu", batch: int = 32,
                    binary_alpha: bool = True, palette: np.ndarray | None = None, style: torch.Tensor | None = None) -> np.ndarray:
    """uint8 [N, D, H, W, 4] characters with the views `available` ([N, D] bool) given → every view drawn.

    A model that draws all views in one pass (`impute_all`, the turnaround model) runs once per
    character; any other imputer runs once per missing view, batched across characters. A view a
    pairwise model cannot draw from what is given stays transparent; when it can draw none of a
    character's missing views, the model's own one-line error says what it needs.

    `palette` ([K, 3] uint8): every view, given ones included, uses only those colours (a
    palette-quantising model draws with them; every view is then snapped to the nearest one, alpha
    binarised). `style` ([1, S]; munit, remic) replaces the model's own choice of style.
    """
    forced = {}
    if palette is not None and model.quantizes_palette:
        forced["palette"] = model_palette(palette, config.output_channels).to(device)
    if style is not None:
        forced["style"] = style.to(device)
    result = views.copy()
    for start in range(0, len(views), batch):
        chunk = to_model_input(torch.from_numpy(views[start : start + batch]), config.output_channels).to(device)
        kept = torch.from_numpy(available[start : start + batch]).to(device)
        if hasattr(model, "impute_all") and not forced:
            drawn = imageio.to_uint8(model.impute_all(chunk, kept).flatten(0, 1)).reshape(chunk.shape[0], chunk.shape[1], *views.shape[2:])
            drawable = ~kept.cpu().numpy()
        else:
            drawn = np.zeros_like(result[start : start + batch])
            drawable = np.zeros(kept.shape, bool)
            for index in range(kept.shape[1]):
                target = torch.full((kept.shape[0],), index, device=device)
                rows = ((~kept[:, index]) & model.can_impute(kept, target).to(device)).nonzero().flatten()
                if len(rows):
                    drawn[rows.cpu().numpy(), index] = imageio.to_uint8(model.impute(chunk[rows], kept[rows], target[rows], **forced))
                    drawable[rows.cpu().numpy(), index] = True
            stuck = np.flatnonzero(~drawable.any(1) & ~kept.cpu().numpy().all(1))
            if len(stuck):  # nothing drawable for this character: the model says what it needs, in one line
                row = int(stuck[0])
                missing = int(np.flatnonzero(~kept[row].cpu().numpy())[0])
                model.impute(chunk[row : row + 1], kept[row : row + 1], torch.tensor([missing], device=device), **forced)
        if palette is None:  # the whole batch at once
            filled = binarize_alpha(drawn) if binary_alpha else drawn
            filled = np.where(drawable[:, :, None, None, None], filled, 0)  # a view the model does not draw: transparent
            given = available[start : start + batch][:, :, None, None, None]
            result[start : start + batch] = np.where(given, result[start : start + batch], filled)
            continue
        for row in range(len(drawn)):
            for index in range(views.shape[1]):
                if available[start + row, index]:
                    image = result[start + row, index]
                elif drawable[row, index]:
                    image = binarize_alpha(drawn[row, index]) if binary_alpha else drawn[row, index]
                else:  # a view this (pairwise) model does not draw: left transparent
                    image = np.zeros_like(result[start + row, index])
                result[start + row, index] = snap_to_palette(image, palette) if palette is not None else image
    return result


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
