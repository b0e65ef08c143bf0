"""`spriteforge translate`: draw the missing views of one character and write a sprite sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import load_for_inference, torch_device


def binarise_alpha(rgba: np.ndarray) -> np.ndarray:
    """Pixel art has no partial transparency: alpha ≥ 128 → opaque, else fully transparent (0,0,0,0)."""
    result = rgba.copy()
    opaque = result[..., 3] >= 128
    result[..., 3] = np.where(opaque, 255, 0)
    result[~opaque] = 0
    return result


MAX_PALETTE = 256


def read_forced_palette(path) -> np.ndarray:
    """`--palette-from FILE`: [N, 3] uint8 colours (a PNG's opaque pixels or hex lines), 1 to 256 of them."""
    from spriteforge.pixelart import read_palette

    palette = read_palette(path)
    if len(palette) > MAX_PALETTE:
        raise SpriteForgeError(f"{path}: {len(palette)} colours; a palette has at most {MAX_PALETTE}")
    return palette


def snap_to_palette(rgba: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Binarise alpha, then move every opaque pixel to its nearest palette colour (squared RGB distance)."""
    result = binarise_alpha(rgba)
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


@torch.no_grad()
def translate_views(model, config, given: dict[str, np.ndarray], binary_alpha: bool = True, device="cpu",
                    palette: np.ndarray | None = None, style: torch.Tensor | None = None) -> list[np.ndarray]:
    """Return every domain's view (uint8 RGBA): the given ones as given, the others generated.

    `style` ([1, style_size]) replaces the model's own choice of style (munit, remic) for every drawn view.

    With `palette` ([N, 3] uint8) every view, given ones included, uses only those colours: a
    palette-quantising model draws with them directly, and every view is then snapped to the nearest
    palette colour in RGB with alpha binarised (which is what happens for any other model).
    """
    domains = list(config.domains)
    size = config.image_size
    views = np.zeros((1, len(domains), size, size, 4), np.uint8)
    available = torch.zeros(1, len(domains), dtype=torch.bool)
    for name, image in given.items():
        views[0, domains.index(name)] = image
        available[0, domains.index(name)] = True
    from spriteforge.training.engine import to_model_input

    inputs = to_model_input(torch.from_numpy(views), config.output_channels).to(device)
    forced = {}
    if palette is not None and model.quantizes_palette:
        forced["palette"] = model_palette(palette, config.output_channels).to(device)
    if style is not None:
        forced["style"] = style.to(device)
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
        fake = model.impute(inputs, available.to(device), torch.tensor([index], device=device), **forced)
        image = imageio.to_uint8(fake)[0]
        result.append(binarise_alpha(image) if binary_alpha else image)
    if palette is not None:
        result = [snap_to_palette(image, palette) for image in result]
    return result


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


STYLE_SOURCES = ("encoded", "sampled")


def style_rows(style_size: int, count: int, source: str, seed: int) -> list[torch.Tensor | None]:
    """The styles of `count` variations: the model's own (encoded) style first unless `source` is
    'sampled', then draws from N(0, I) seeded by `seed` (the same seed gives the same sheet)."""
    generator = torch.Generator().manual_seed(seed)
    rows: list[torch.Tensor | None] = [None] if source == "encoded" else []
    while len(rows) < count:
        rows.append(torch.randn(1, style_size, generator=generator))
    return rows


def load_imputer(model_path, device: str, palette_from: str | Path | None):
    """(forced palette or None, torch device, model, config) for drawing missing views; refuses samplers."""
    palette = read_forced_palette(palette_from) if palette_from is not None else None
    device = torch_device(device)
    model, config = load_for_inference(model_path, device)
    if not model.imputes:
        raise SpriteForgeError(f"{config.model} draws new characters and cannot draw missing views; use `spriteforge sample`")
    return palette, device, model, config


def translate_files(model_path, given_paths: dict[str, str], out: Path, scale: int = 1, separate: bool = False,
                    binary_alpha: bool = True, device: str = "cpu", palette_from: str | Path | None = None,
                    indexed: bool = False, styles: int = 1, style_source: str | None = None, seed: int | None = None) -> list[Path]:
    """Draw the missing views and write the sheet (and with `separate` one file per view).

    `palette_from`: force a palette (see `translate_views`); `indexed`: write P-mode PNGs, index 0 transparent.
    `styles` K > 1 (models with a style code): K rows, one per style (`style_rows`); `separate` files are then
    named <out>-<row>-<view>.png.
    """
    if not given_paths:
        raise SpriteForgeError("give at least one view: --front, --back, --left or --right")
    if not binary_alpha and (indexed or palette_from is not None):
        raise SpriteForgeError(f"--soft-alpha cannot be combined with {'--indexed' if indexed else '--palette-from'}, which needs binary alpha")
    palette, device, model, config = load_imputer(model_path, device, palette_from)
    unknown = [name for name in given_paths if name not in config.domains]
    if unknown:
        raise SpriteForgeError(f"this model's views are {', '.join(config.domains)}; it has no '{unknown[0]}' view")
    if len(given_paths) == len(config.domains):
        raise SpriteForgeError("all views are given, so there is nothing to draw; leave out the views you want drawn")
    style_size = getattr(model, "style_size", 0)
    if styles < 1:
        raise SpriteForgeError(f"--styles must be at least 1, got {styles}")
    if (styles > 1 or style_source is not None) and not style_size:
        flag = "--styles" if styles > 1 else "--style"
        raise SpriteForgeError(f"{flag}: {config.model} has no style code to vary (munit and remic have one); leave {flag} out")
    if style_source is not None and style_source not in STYLE_SOURCES:
        raise SpriteForgeError(f"--style must be one of {', '.join(STYLE_SOURCES)}, got '{style_source}'")
    if seed is not None and styles == 1 and style_source != "sampled":
        raise SpriteForgeError("--seed only seeds sampled styles: add --styles K or --style sampled, or leave --seed out")
    images = {name: imageio.load_rgba(path, config.image_size) for name, path in given_paths.items()}
    rows = [translate_views(model, config, images, binary_alpha, device, palette, style)
            for style in style_rows(style_size, styles, style_source or "encoded", seed or 0)]
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
            for name, image in zip(config.domains, views):
                written.append(save(image, out.with_name(f"{prefix}-{name}{out.suffix or '.png'}")))
    return written


# -- batch mode: many characters, one model load ------------------------------------------------------
@torch.no_grad()
def draw_characters(model, config, views: np.ndarray, available: np.ndarray, device="cpu", batch: int = 32,
                    binary_alpha: bool = True, palette: np.ndarray | None = None) -> np.ndarray:
    """uint8 [N, D, H, W, 4] characters with the views `available` ([N, D] bool) given → every view drawn.

    A model that draws all views in one pass (`impute_all`, the turnaround model) runs once per
    character; any other imputer runs once per missing view, batched across characters.
    """
    from spriteforge.training.engine import to_model_input

    result = views.copy()
    for start in range(0, len(views), batch):
        chunk = to_model_input(torch.from_numpy(views[start : start + batch]), config.output_channels).to(device)
        kept = torch.from_numpy(available[start : start + batch]).to(device)
        if hasattr(model, "impute_all"):
            drawn = imageio.to_uint8(model.impute_all(chunk, kept).flatten(0, 1)).reshape(chunk.shape[0], chunk.shape[1], *views.shape[2:])
        else:
            drawn = result[start : start + batch].copy()
            for index in range(kept.shape[1]):
                rows = (~kept[:, index]).nonzero().flatten()
                if len(rows):
                    target = torch.full((len(rows),), index, device=device)
                    drawn[rows.cpu().numpy(), index] = imageio.to_uint8(model.impute(chunk[rows], kept[rows], target))
        for row in range(len(drawn)):
            for index in range(views.shape[1]):
                if available[start + row, index]:
                    continue
                image = binarise_alpha(drawn[row, index]) if binary_alpha else drawn[row, index]
                result[start + row, index] = snap_to_palette(image, palette) if palette is not None else image
    return result


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
    palette, device, model, config = load_imputer(model_path, device, palette_from)
    domains = list(config.domains)
    names, views, available = read_batch_input(source, domains, config.image_size)
    drawn = draw_characters(model, config, views, available, device, batch, binary_alpha, palette)
    if not source.is_dir():
        return [imageio.save_png(imageio.grid([list(character) for character in drawn], padding=0), out, scale)]
    return [imageio.save_png(imageio.grid([list(character)], padding=0), out / f"{name}.png", scale)
            for name, character in zip(names, drawn)]
