"""`spriteforge pixelate`: pictures (files and folders) in, lossless pixel-art PNGs out, through the
Python API (`spriteforge.api.pixelate_detailed`) so the command, the studio and a notebook agree."""

from __future__ import annotations

from pathlib import Path

from spriteforge import api, imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.pixelart import Pixelated, palette_option, save_pixelated
from spriteforge.stylize import each_picture, input_files, output_paths


def pixelate_file(source: str | Path, out: str | Path, size: int = 64, colours: int = 16, palette_file: str | Path | None = None,
                  clean: bool = False, outline: bool = False, indexed: bool = False, scale: int = 1,
                  background: str | None = None, seed: int = 0, pixel_size: int | None = None) -> Pixelated:
    """Read, pixelate and write a lossless PNG (RGBA, or P-mode with `indexed`): the CLI's whole job for one picture."""
    if size < 1:
        raise SpriteForgeError(f"--size must be at least 1 (got {size})")
    palette = palette_option(palette_file, indexed)
    rgba, reduced_by = imageio.load_image(source)
    result = api.pixelate_detailed(rgba, size=size, colours=colours, palette=palette, clean=clean, outline=outline,
                                   background=background, seed=seed, scale=scale, pixel_size=pixel_size)
    save_pixelated(result, out, reduced_by, indexed=indexed, scale=scale, palette=palette)
    return result


def pixelate_files(inputs: list[str], out: str | Path, echo=None, **options) -> list[Path]:
    """`spriteforge pixelate` on several files and folders: one picture in → `out` is the PNG (or a folder
    for it); else `out` is a folder of <name>.png. A picture that fails does not stop the others; the call
    ends with one error naming how many failed and the first reason. `options` go to `pixelate_file`."""
    files = input_files(inputs)
    targets = output_paths(inputs, files, Path(out))
    palette_option(options.get("palette_file"), options.get("indexed", False))  # a bad palette fails once, up front
    return each_picture(files, targets, lambda file, target: f"{file}: {pixelate_file(file, target, **options).describe()}",
                        "pixelated", echo)
