"""`spriteforge translate`: read the given views (files, a sheet or a folder), draw the missing ones
through the Python API (`spriteforge.api`) and write sprite sheets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spriteforge import api, imageio
from spriteforge.drawing import STYLE_SOURCES, read_forced_palette
from spriteforge.errors import SpriteForgeError


def indexed_palette(sheet: np.ndarray, palette: np.ndarray | None, out: Path) -> np.ndarray:
    """The colours of `--indexed` output: the forced palette in its file's order when it fits (≤ 255,
    index 0 being transparent), else the sheet's own opaque colours; refuses more than 255."""
    used = np.unique(sheet[sheet[..., 3] == 255][:, :3], axis=0)
    if palette is not None:
        palette = np.asarray(palette, np.uint8)
        if len(palette) <= 255:
            return palette
        used = palette[np.isin(imageio._pack_rgb(palette), imageio._pack_rgb(used))]
    if len(used) > 255:
        raise SpriteForgeError(f"{out}: the sheet has {len(used)} opaque colours, more than the 255 an indexed PNG holds; "
                               "force a palette with --palette-from FILE or use a palette-quantising model (collagan --palette-quantization)")
    return used


def load_imputer(model_path, device: str, palette_from: str | Path | None) -> tuple[np.ndarray | None, api.Model]:
    """(forced palette or None, the loaded model) for drawing missing views; refuses samplers."""
    palette = read_forced_palette(palette_from) if palette_from is not None else None
    model = api.load_model(model_path, device)
    if not model.imputes:
        raise SpriteForgeError(f"{model.kind} draws new characters and cannot draw missing views; use `spriteforge sample`")
    return palette, model


def translate_files(model_path, given_paths: dict[str, str], out: Path, scale: int = 1, separate: bool = False,
                    binary_alpha: bool = True, device: str = "cpu", palette_from: str | Path | None = None,
                    indexed: bool = False, styles: int = 1, style_source: str | None = None, seed: int | None = None) -> list[Path]:
    """Draw the missing views and write the sheet (and with `separate` one file per view).

    `palette_from`: force a palette (every view uses only its colours); `indexed`: write P-mode PNGs, index 0
    transparent. `styles` K > 1 or `style_source` (models with a style code): K rows, one per style
    (`Model.variations`); `separate` files are then named <out>-<row>-<view>.png.
    """
    if not given_paths:
        raise SpriteForgeError("give at least one view: --front, --back, --left or --right")
    if not binary_alpha and (indexed or palette_from is not None):
        raise SpriteForgeError(f"--soft-alpha cannot be combined with {'--indexed' if indexed else '--palette-from'}, which needs binary alpha")
    palette, model = load_imputer(model_path, device, palette_from)
    unknown = [name for name in given_paths if name not in model.views]
    if unknown:
        raise SpriteForgeError(f"this model's views are {', '.join(model.views)}; it has no '{unknown[0]}' view")
    if len(given_paths) == len(model.views):
        raise SpriteForgeError("all views are given, so there is nothing to draw; leave out the views you want drawn")
    if styles < 1:
        raise SpriteForgeError(f"--styles must be at least 1, got {styles}")
    if (styles > 1 or style_source is not None) and not model.style_size:
        flag = "--styles" if styles > 1 else "--style"
        raise SpriteForgeError(f"{flag}: {model.kind} has no style code to vary (munit and remic have one); leave {flag} out")
    if style_source is not None and style_source not in STYLE_SOURCES:
        raise SpriteForgeError(f"--style must be one of {', '.join(STYLE_SOURCES)}, got '{style_source}'")
    if seed is not None and styles == 1 and style_source != "sampled":
        raise SpriteForgeError("--seed only seeds sampled styles: add --styles K or --style sampled, or leave --seed out")
    images = {name: imageio.load_rgba(path, model.image_size) for name, path in given_paths.items()}
    if model.style_size and (styles > 1 or style_source is not None):
        drawn = model.variations(images, styles, style_source or "encoded", seed or 0, palette, binary_alpha)
    else:
        drawn = [model.translate(images, palette, binary_alpha)]
    rows = [[api.as_rgba(character[name]) for name in model.views] for character in drawn]
    sheet = imageio.grid(rows, padding=0)
    if indexed:
        colours = indexed_palette(sheet, palette, out)
        save = lambda image, path: imageio.save_indexed_png(image, path, scale, palette=colours)
    else:
        save = lambda image, path: imageio.save_png(image, path, scale)
    written = [save(sheet, out)]
    if separate:
        for row, views in enumerate(rows, start=1):
            prefix = f"{out.stem}-{row}" if len(rows) > 1 else out.stem
            for name, image in zip(model.views, views):
                written.append(save(image, out.with_name(f"{prefix}-{name}{out.suffix or '.png'}")))
    return written


# -- batch mode: many characters, one model load ------------------------------------------------------
def view_folder(folder: Path, domains: list[str]) -> dict[int, Path]:
    """The view sub-folders of a batch folder: `<view>`, `<k>-<view>` or `<k>` for view k."""
    found = {}
    for index, name in enumerate(domains):
        for candidate in (name, f"{index}-{name}", str(index)):
            if (folder / candidate).is_dir():
                found[index] = folder / candidate
                break
    return found


def read_batch_input(source: Path, domains: list[str], size: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, uint8 [N, D, size, size, 4], available [N, D]) from a sprite sheet or a folder of view folders.

    A sheet has one character per row and the views left to right; a fully transparent cell is a view
    to draw. A folder has one sub-folder per given view (e.g. `front/`, `2-front/` or `2/`), the same
    file name being the same character.
    """
    if source.is_dir():
        folders = view_folder(source, domains)
        if not folders:
            raise SpriteForgeError(f"{source}: no view folders; put each view in a sub-folder named {', '.join(domains)} "
                                   "(or 0-back, 1-left …), the same file name for the same character")
        names = sorted({path.name for folder in folders.values() for path in folder.glob("*.png")})
        if not names:
            raise SpriteForgeError(f"{source}: the view folders hold no PNG files")
        views = np.zeros((len(names), len(domains), size, size, 4), np.uint8)
        for row, name in enumerate(names):
            for index, folder in folders.items():
                if (folder / name).is_file():
                    views[row, index] = imageio.load_rgba(folder / name, size)
        labels = [Path(name).stem for name in names]
    else:
        sheet = imageio.load_rgba(source)
        height, width = sheet.shape[:2]
        if width != len(domains) * size or height % size:
            raise SpriteForgeError(f"{source}: a sheet of {len(domains)} views of {size}x{size} is {len(domains) * size} pixels wide "
                                   f"and a multiple of {size} high (one character per row); this one is {width}x{height}")
        rows = height // size
        views = sheet.reshape(rows, size, len(domains), size, 4).transpose(0, 2, 1, 3, 4).copy()
        labels = [f"{source.stem}-{row}" for row in range(rows)]
    available = views[..., 3].reshape(len(views), len(domains), -1).max(-1) > 0
    empty = np.flatnonzero(~available.any(1))
    if len(empty):
        raise SpriteForgeError(f"{source}: character '{labels[empty[0]]}' has no view at all; give at least one view of every character")
    return labels, views, available


def translate_batch(model_path, source: str | Path, out: Path, scale: int = 1, binary_alpha: bool = True, device: str = "cpu",
                    palette_from: str | Path | None = None, batch: int = 32) -> list[Path]:
    """Batch mode of `translate`: a sheet in → the completed sheet (`out`, PNG); a folder in → one sheet per
    character in folder `out` (<name>.png). The model is loaded once."""
    source = Path(source)
    if not source.exists():
        raise SpriteForgeError(f"{source}: no such sprite sheet or folder")
    if not source.is_dir() and out.suffix.lower() != ".png":
        raise SpriteForgeError(f"--out {out}: the completed sheet is a PNG; name it {out.with_suffix('.png').name}")
    if source.is_dir() and out.suffix:
        raise SpriteForgeError(f"--out {out}: a folder of characters writes one sheet per character into a folder; give a folder name without an extension")
    palette, model = load_imputer(model_path, device, palette_from)
    names, views, available = read_batch_input(source, list(model.views), model.side)
    drawn = model.draw(views, available, palette=palette, binary_alpha=binary_alpha, batch=batch)
    if not source.is_dir():
        return [imageio.save_png(imageio.grid([list(character) for character in drawn], padding=0), out, scale)]
    return [imageio.save_png(imageio.grid([list(character)], padding=0), out / f"{name}.png", scale)
            for name, character in zip(names, drawn)]
