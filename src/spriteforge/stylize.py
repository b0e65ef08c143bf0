"""`spriteforge stylize`: pictures → pixel art with a trained cyclegan or pix2pix-pairs, then the clean-up.

Per picture: load it (huge files are reduced on loading, see `imageio.load_image`), fit it into the
square the generator runs at exactly as training fitted domain A (`data.pictures.fit_picture`), run the
generator, cut the picture's own area out of the square, and hand that to `pixelart.pixelate`: pixel
grid snap (one output pixel per art pixel) or mode/median downscale to `--size`, a CIELAB k-means or a
given palette, binary alpha, optional clean-up and outline. A generator alone gives none of those
guarantees; the seed's CycleGAN left inconsistent pixel sizes (reference §4.7).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spriteforge import imageio
from spriteforge.data.pictures import PICTURE_SUFFIXES, fit_picture
from spriteforge.devices import resolve_device
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import load_for_inference
from spriteforge.pixelart import Pixelated, palette_option, pixelate, save_pixelated

MAX_SIZE = 512
"""Largest --size: the generator runs at least this large, and beyond it a CPU takes minutes per picture."""


def run_side(model, size: int) -> int:
    """The square the generator runs at: its training size, or larger when --size asks for more."""
    multiple = model.size_multiple
    return max(model.image_size, -(-size // multiple) * multiple)


@torch.no_grad()
def stylize_picture(model, rgba: np.ndarray, size: int, colours: int = 16, palette: np.ndarray | None = None,
                    clean: bool = False, outline: bool = False, seed: int = 0, device="cpu") -> tuple[Pixelated, int]:
    """One uint8 RGBA picture → clean pixel art (longest side `size`, or the art's grid) and the run side."""
    side = run_side(model, size)
    fitted, placement = fit_picture(rgba, side)
    drawn = imageio.to_uint8(model.stylize(imageio.to_tensor(fitted, model.channels)[None].to(device)))[0]
    drawn = drawn[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width]
    result = pixelate(drawn, size=size, colours=colours, palette=palette, clean=clean, outline=outline, seed=seed)
    result.source_size = rgba.shape[:2]
    return result, side


def input_files(inputs: list[str]) -> list[Path]:
    """Files as given, and the pictures directly inside given folders (other files there are skipped)."""
    return imageio.input_files(inputs, PICTURE_SUFFIXES, "picture", missing="no such picture or folder")


def output_paths(inputs: list[str], files: list[Path], out: Path) -> list[Path]:
    """One picture file in → `out` is the file (or a folder to put it in); else `out` is a folder of <name>.png."""
    if len(files) == 1 and not Path(inputs[0]).is_dir() and not out.is_dir():
        return [out]
    if out.exists() and not out.is_dir():
        raise SpriteForgeError(f"{out}: is a file, but several pictures need a folder for --out")
    return imageio.png_paths_in(out, files, "rename one")


def stylize_files(model_path, inputs: list[str], out: str | Path, size: int | None = None, colours: int = 16,
                  palette_file: str | Path | None = None, clean: bool = False, outline: bool = False, indexed: bool = False,
                  scale: int = 1, seed: int = 0, device: str | torch.device = "cpu", echo=None) -> list[Path]:
    """Stylize every input picture and write lossless PNGs; returns the written paths.

    A picture that fails (unreadable, too large to decode) does not stop the others; the call ends with
    one error naming how many failed and the first reason, after writing the rest.
    """
    if size is not None and not 1 <= size <= MAX_SIZE:
        raise SpriteForgeError(f"--size must be between 1 and {MAX_SIZE}, got {size}")
    palette = palette_option(palette_file, indexed)
    files = input_files(inputs)
    targets = output_paths(inputs, files, Path(out))
    device = resolve_device(device)
    model, _ = load_for_inference(model_path, device, stylize=True)
    size = size or model.image_size

    def work(file: Path, target: Path) -> str:
        rgba, reduced_by = imageio.load_image(file)
        result, side = stylize_picture(model, rgba, size, colours, palette, clean, outline, seed, device)
        save_pixelated(result, target, reduced_by, indexed=indexed, scale=scale, palette=palette)
        return f"{file}: {result.describe()}; generator run at {side}x{side}"

    return each_picture(files, targets, work, "stylized", echo)


def each_picture(files: list[Path], targets: list[Path], work, verb: str, echo=None) -> list[Path]:
    """Run `work(file, target)` (returns a line for `echo`) on every picture; returns the written targets.

    A picture that fails (unreadable, too large to decode) does not stop the others; the call ends with
    one error naming how many failed and the first reason, after writing the rest.
    """
    written, failures = [], []
    for file, target in zip(files, targets):
        try:
            line = work(file, target)
        except SpriteForgeError as error:
            failures.append(error)
            continue
        written.append(target)
        if echo:
            echo(line)
    if failures:
        if len(files) == 1:
            raise failures[0]  # as raised: an OutputTooLarge keeps the CLI's hint of the flags to lower
        kind = type(failures[0]) if isinstance(failures[0], imageio.OutputTooLarge) else SpriteForgeError
        raise kind(f"{len(failures)} of {len(files)} pictures could not be {verb} (the others were written); first: {failures[0]}")
    return written
