"""`spriteforge sample`: new characters from a trained sampling model (DCGAN family, BigGAN), as a grid PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from spriteforge import api, imageio
from spriteforge.drawing import read_forced_palette
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation.samplers import view_conditional
from spriteforge.evaluation.views import classify_views
from spriteforge.inference import resolve_sampler


def sample_files(model_path, out: Path, count: int = 64, view: str | None = None, seed: int = 0, interpolate: bool = False,
                 scale: int = 1, separate: bool = False, binary_alpha: bool = True, device: str = "cpu",
                 truncation: float | None = None, colours: int = 32, palette_from: str | Path | None = None) -> list[Path]:
    """`spriteforge sample`: a grid PNG of `count` new characters (and with `separate` one PNG each), drawn
    through the Python API (`Model.sample`: alpha binarised, colours reduced to `colours` or snapped to
    the palette of `palette_from`)."""
    palette = read_forced_palette(palette_from) if palette_from is not None else None
    model = api.load_model(resolve_sampler(model_path), device)
    if model.imputes:
        raise SpriteForgeError(f"{model.kind} draws missing views, not new characters; use `spriteforge translate`")
    if view is not None and model.network.domain_count == 1:
        raise SpriteForgeError("--view: this model was trained on a single folder of images (one class, no views); drop --view")
    if view is not None and view not in model.views:
        raise SpriteForgeError(f"--view {view}: this model's views are {', '.join(model.views)}")
    columns = count if interpolate else math.ceil(math.sqrt(count))
    height, width = model.image_size if isinstance(model.image_size, tuple) else (model.image_size, model.image_size)
    rows_needed = math.ceil(count / columns)
    imageio.check_output_size((rows_needed * (height + 2) + 2) * scale, (columns * (width + 2) + 2) * scale, "the grid")  # before drawing
    images = model.sample_arrays(count, seed, view, truncation, binary_alpha, colours if binary_alpha else 0, palette, interpolate)
    rows = [list(images[start : start + columns]) for start in range(0, count, columns)]
    written = [imageio.save_png(imageio.grid(rows), out, scale)]
    if separate:
        for index, image in enumerate(images):
            written.append(imageio.save_png(image, out.with_name(f"{out.stem}-{index:03d}{out.suffix or '.png'}"), scale))
    return written


def new_characters(sampler, imputer, count: int, seed: int = 0, colours: int = 32, truncation: float | None = None,
                   palette: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brand-new characters in every view: uint8 [count, D, H, W, 4] and the view index each sample was placed at.

    The sampler draws one view per character (a view-conditional sampler is asked for the front); an
    unconditional sample is placed at the view an independent classifier sees in it (evaluation/views.py),
    so a sample that happens to face left becomes the left view. The imputer draws the other views.
    """
    if imputer.image_size != sampler.image_size or list(imputer.views) != list(sampler.views):
        raise SpriteForgeError(f"the sampler draws {sampler.image_size}px {', '.join(sampler.views)} views but the imputer "
                               f"{imputer.image_size}px {', '.join(imputer.views)}; use models trained on the same views and size")
    conditional = view_conditional(sampler.network)
    front = "front" if "front" in sampler.views else sampler.views[0]
    images = sampler.sample_arrays(count, seed, front if conditional else None, truncation, True, colours, palette)
    if conditional:
        placed = np.full(count, list(sampler.views).index(front))
    else:
        placed = classify_views(imageio.to_tensor(images)).numpy()
    characters = np.zeros((count, len(imputer.views), *images.shape[1:]), np.uint8)
    characters[np.arange(count), placed] = images
    available = np.zeros((count, len(imputer.views)), bool)
    available[np.arange(count), placed] = True
    return imputer.draw(characters, available, palette=palette), placed


def sheet_files(sampler_path, imputer_path, out: Path, count: int = 8, seed: int = 0, scale: int = 1, separate: bool = False,
                device: str = "cpu", colours: int = 32, truncation: float | None = None, palette_from: str | Path | None = None) -> list[Path]:
    """`spriteforge sample --sheet`: `count` new characters, one four-view row each, in one sheet PNG (the
    layout `translate --input` reads); with `separate` also one sheet per character (<out>-NNN.png)."""
    palette = read_forced_palette(palette_from) if palette_from is not None else None
    sampler = api.load_model(resolve_sampler(sampler_path), device)
    if sampler.imputes:
        raise SpriteForgeError(f"{sampler.kind} draws missing views, not new characters; give a sampling model (dcgan …) as MODEL")
    imputer = api.load_model(imputer_path, device)
    if not imputer.imputes:
        raise SpriteForgeError(f"--imputer {imputer_path}: {imputer.kind} draws new characters, not missing views; give an imputation model")
    size = imputer.side
    imageio.check_output_size(count * size * scale, len(imputer.views) * size * scale, "the sheet")
    characters, _ = new_characters(sampler, imputer, count, seed, colours, truncation, palette)
    written = [imageio.save_png(imageio.grid([list(character) for character in characters], padding=0), out, scale)]
    if separate:
        for index, character in enumerate(characters):
            written.append(imageio.save_png(imageio.grid([list(character)], padding=0), out.with_name(f"{out.stem}-{index:03d}.png"), scale))
    return written
