"""`spriteforge denoise`: pass sprites, or fresh samples of a GAN, through a trained autoencoder.

Encode → decode projects an image onto the sprites the autoencoder learned (TinyHero notebook 6
used this to clean GAN samples). Pixel art stays pixel art: inputs must have the model's size (never
resized), alpha stays binary when the input's was, a palette can be forced, and PNGs are lossless
with nearest-neighbour upscaling only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spriteforge import imageio
from spriteforge.devices import resolve_device
from spriteforge.errors import SpriteForgeError
from spriteforge.drawing import read_forced_palette, snap_to_palette
from spriteforge.inference import find_checkpoint, load_for_inference
from spriteforge.models.autoencoder import AutoEncoder
from spriteforge.pixelart import binarize_alpha, quantize
from spriteforge.sampling import sample_files
from spriteforge.training import checkpoint as ckpt

BATCH = 64


def load_autoencoder(location, device):
    """The autoencoder of a run folder or checkpoint; any other model is refused in one line."""
    model, config = load_for_inference(location, device)
    if not isinstance(model, AutoEncoder):
        raise SpriteForgeError(f"{location}: a '{config.model}' model; denoise needs an autoencoder run (spriteforge train autoencoder)")
    return model, config


def input_files(inputs: list[str | Path]) -> list[Path]:
    """The PNGs to clean: files as given, folders expanded to their *.png files (sorted, not recursive)."""
    return imageio.input_files(inputs, (".png",), "PNG file")


def output_paths(files: list[Path], out: Path) -> list[Path]:
    """OUT is a file for one input (a name ending in .png), else a folder of <input name>.png files."""
    if out.suffix.lower() == ".png" and not out.is_dir():
        if len(files) != 1:
            raise SpriteForgeError(f"--out {out}: {len(files)} inputs need a folder, not a file name")
        paths = [out]
    else:
        paths = imageio.png_paths_in(out, files, "clean them into separate --out folders")
    for source, target in zip(files, paths):
        if target.resolve() == source.resolve():
            raise SpriteForgeError(f"--out {out}: would overwrite the input {source}; write to another folder")
    return paths


def load_sprite(path: Path, size: int) -> np.ndarray:
    image = imageio.load_rgba(path)
    if image.shape[:2] != (size, size):
        raise SpriteForgeError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but this autoencoder takes {size}x{size} sprites; "
                               f"crop it or resize it with nearest-neighbour first (it is never resized here)")
    return image


def opaque_colours(image: np.ndarray) -> np.ndarray:
    return np.unique(image[image[..., 3] >= 128][:, :3], axis=0)


@torch.no_grad()
def denoise_images(model, images: np.ndarray, channels: int, device) -> np.ndarray:
    """uint8 RGBA sprites [N, H, W, 4] → their reconstructions, uint8 RGBA (3-channel models: opaque)."""
    outputs = []
    for start in range(0, len(images), BATCH):
        batch = imageio.to_tensor(images[start : start + BATCH], channels).to(device)
        outputs.append(imageio.to_uint8(model.reconstruct(batch)))
    return np.concatenate(outputs)


def finish_sprite(output: np.ndarray, source: np.ndarray, palette: np.ndarray | None, input_palette: bool, colours: int | None) -> np.ndarray:
    """Alpha binarised if the input's was binary; then the chosen palette (which always binarises alpha)."""
    if palette is None and input_palette:
        palette = opaque_colours(source)
    if palette is not None:
        return snap_to_palette(output, palette)
    if colours is not None:
        return quantize(binarize_alpha(output), colours)[0]
    binary = np.isin(source[..., 3], (0, 255)).all()
    return binarize_alpha(output) if binary else output


def denoise_files(model_path, inputs: list[str | Path], out: str | Path, scale: int = 1, palette_from: str | Path | None = None,
                  input_palette: bool = False, colours: int | None = None, compare: str | Path | None = None,
                  device: str | torch.device = "cpu") -> list[Path]:
    """Clean every input PNG (files or folders of PNGs) and write the results; returns the written paths.

    Everything is read and checked before anything is written, so a bad file leaves no half-done output.
    """
    if not inputs:
        raise SpriteForgeError("give the sprites to clean (PNG files or folders), or --from-sample GAN_RUN")
    palette = _palette_choice(palette_from, input_palette, colours)
    device = resolve_device(device)
    model, config = load_autoencoder(model_path, device)
    return _denoise(model, config, input_files(inputs), Path(out), scale, palette, input_palette, colours, compare, device)


def denoise_samples(model_path, sampler_path, out: str | Path, count: int = 16, seed: int = 0, view: str | None = None,
                    scale: int = 1, palette_from: str | Path | None = None, input_palette: bool = False, colours: int | None = None,
                    compare: str | Path | None = None, device: str | torch.device = "cpu") -> list[Path]:
    """Notebook 6 in one command: draw `count` samples with a sampling model (as `spriteforge sample --separate`
    does), then clean them. OUT is a folder: OUT/raw/ holds the samples and their grid, OUT/sample-NNN.png the cleaned ones."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        raise SpriteForgeError(f"--out {out}: --from-sample writes a folder (raw/ and the cleaned samples); give a folder name")
    palette = _palette_choice(palette_from, input_palette, colours)
    device = resolve_device(device)
    model, config = load_autoencoder(model_path, device)
    _, meta = ckpt.read_checkpoint(find_checkpoint(sampler_path))
    size = meta["shape"]["image_size"]
    if size != config.image_size:
        raise SpriteForgeError(f"{sampler_path}: draws {size}x{size} sprites but the autoencoder takes {config.image_size}x{config.image_size}; "
                               "use models trained at the same --image-size")
    grid = sample_files(sampler_path, out / "raw" / "sample.png", count=count, view=view, seed=seed, separate=True, device=str(device))[0]
    files = [grid.with_name(f"sample-{index:03d}.png") for index in range(count)]
    return _denoise(model, config, files, out, scale, palette, input_palette, colours, compare, device)


def _palette_choice(palette_from, input_palette: bool, colours: int | None) -> np.ndarray | None:
    if sum([palette_from is not None, input_palette, colours is not None]) > 1:
        raise SpriteForgeError("choose one of --palette-from, --input-palette and --colors")
    return read_forced_palette(palette_from) if palette_from is not None else None


def _denoise(model, config, files: list[Path], out: Path, scale: int, palette, input_palette: bool, colours: int | None,
             compare, device) -> list[Path]:
    targets = output_paths(files, out)
    sources = np.stack([load_sprite(path, config.image_size) for path in files])
    if input_palette:
        for path, source in zip(files, sources):
            if not len(opaque_colours(source)):
                raise SpriteForgeError(f"{path}: no opaque pixel, so there is no palette to keep; drop --input-palette for it")
    outputs = denoise_images(model, sources, config.output_channels, device)
    cleaned = [finish_sprite(output, source, palette, input_palette, colours) for output, source in zip(outputs, sources)]
    written = [imageio.save_png(image, target, scale) for image, target in zip(cleaned, targets)]
    if compare is not None:
        written.append(imageio.save_png(comparison_grid(sources, cleaned), Path(compare), scale))
    return written


def comparison_grid(sources: np.ndarray, cleaned: list[np.ndarray], columns: int = 8) -> np.ndarray:
    """Pairs of rows: up to `columns` inputs, and below them their cleaned versions."""
    rows = []
    for start in range(0, len(sources), columns):
        rows += [list(sources[start : start + columns]), list(cleaned[start : start + columns])]
    return imageio.grid(rows)
