"""Picture folders for style transfer: pictures (domain A) and pixel art (domain B), unpaired or paired.

The two domains are prepared differently on purpose:
* **A pictures** (photos, drawings, any size) are fitted into the square training size with Pillow's
  Lanczos filter on premultiplied alpha, aspect kept, centred on transparency. Resampling a photo is
  harmless; the same fitting is applied again by `stylize`, so the model sees what it was trained on.
* **B pixel art** is never resampled. Upscaled art in a folder is snapped back to one pixel per art
  pixel (the pixel-grid detection of `pixelart`) so every B image has the same pixel scale (the lesson
  of the Pixel Art CycleGAN blog, reference §4.7); smaller art is centred on a transparent canvas and
  larger art is refused. Named datasets and character folders contribute every view as one image.

Folders hold pictures directly (split 85/15 by `--seed`) or in `train/` and `test/`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spriteforge import imageio
from spriteforge.data import registry
from spriteforge.data.batches import batch_indices
from spriteforge.data.folders import DOMAIN_FOLDER, CharacterSet, _natural_key, split_flat
from spriteforge.data.loading import SYNTHETIC, SpriteData, load_data
from spriteforge.errors import SpriteForgeError
from spriteforge.options import dataset_sources
from spriteforge.pixelart import binarize_alpha, detect_grid, sample_grid

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
B_SEED_OFFSET = 104_729
"""Shifts the seed of B's batch order so it is independent of A's (a prime, nothing more)."""


# -- one picture ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Where a fitted picture sits in its square: top, left, height, width."""

    top: int
    left: int
    height: int
    width: int


def fit_picture(rgba: np.ndarray, size: int) -> tuple[np.ndarray, Placement]:
    """A picture scaled so its longest side is `size` (aspect kept), centred on a transparent square.

    Lanczos on premultiplied alpha (Pillow does that for RGBA), so transparent pixels lend no colour.
    For pictures only: pixel art is never resampled (see `native_pixel_art`).
    """
    height, width = rgba.shape[:2]
    scale = size / max(height, width)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    if (new_height, new_width) != (height, width):
        resized = Image.fromarray(np.ascontiguousarray(rgba), "RGBA").resize((new_width, new_height), Image.Resampling.LANCZOS)
        rgba = np.array(resized, dtype=np.uint8)
    placement = Placement((size - new_height) // 2, (size - new_width) // 2, new_height, new_width)
    canvas = np.zeros((size, size, 4), np.uint8)
    canvas[placement.top : placement.top + new_height, placement.left : placement.left + new_width] = rgba
    canvas[canvas[..., 3] == 0] = 0
    return canvas, placement


def native_pixel_art(rgba: np.ndarray, size: int, path: Path) -> tuple[np.ndarray, bool]:
    """Pixel art at one pixel per art pixel, centred on a transparent `size` square; (image, was snapped).

    Alpha is binarised; upscaled art is reduced to its grid cells; nothing is ever resampled.
    """
    rgba = binarize_alpha(rgba)
    grid = detect_grid(rgba)
    if grid is not None:
        rgba = sample_grid(rgba, grid)
    height, width = rgba.shape[:2]
    if height > size or width > size:
        snapped = f" (its pixel grid is {grid.cell} px, so the art is {width}x{height})" if grid else " and has no pixel grid"
        raise SpriteForgeError(f"{path}: pixel art larger than --image-size {size}{snapped}; crop it, or pass a larger --image-size")
    canvas = np.zeros((size, size, 4), np.uint8)
    top, left = (size - height) // 2, (size - width) // 2
    canvas[top : top + height, left : left + width] = rgba
    return canvas, grid is not None


# -- folders --------------------------------------------------------------------------------------
def _has_domain_folders(folder: Path) -> bool:
    return any(child.is_dir() and DOMAIN_FOLDER.match(child.name) for child in folder.iterdir())


def is_character_folder(folder: Path) -> bool:
    """A folder in the character layouts of `folders.py` (domain sub-folders, possibly under train/)."""
    return _has_domain_folders(folder) or ((folder / "train").is_dir() and _has_domain_folders(folder / "train"))


def list_pictures(folder: Path) -> list[Path]:
    """The picture files directly in `folder`, in natural order; any other file is refused in one line."""
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=_natural_key)
    others = [p for p in files if p.suffix.lower() not in PICTURE_SUFFIXES]
    if others:
        raise SpriteForgeError(f"{others[0]}: not a picture ({', '.join(PICTURE_SUFFIXES)}); move it out of {folder}")
    return files


def picture_splits(folder: str | Path, seed: int, what: str) -> dict[str, list[Path]]:
    """{'train', 'test'} lists of picture files: from train/ and test/, or the folder split 85/15."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SpriteForgeError(f"{folder}: no such folder of {what}")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        splits = {split: list_pictures(folder / split) for split in ("train", "test")}
    else:
        files = list_pictures(folder)
        if len(files) < 2:
            raise SpriteForgeError(f"{folder}: {len(files)} {what}; at least 2 are needed (one is kept for test previews)")
        halves = split_flat(CharacterSet(np.zeros((len(files), 0)), [str(p) for p in files]), seed)
        splits = {split: [Path(name) for name in part.names] for split, part in halves.items()}
    for split, files in splits.items():
        if not files:
            raise SpriteForgeError(f"{folder / split}: holds no {what}")
    return splits


def read_pictures(files: list[Path], size: int) -> np.ndarray:
    """A-domain pictures fitted into `size` squares: uint8 [N, size, size, 4] (huge files reduced on load)."""
    return np.stack([fit_picture(imageio.load_image(path)[0], size)[0] for path in files])


def read_pixel_art(files: list[Path], size: int) -> tuple[np.ndarray, int]:
    """B-domain pixel art at its native pixel scale: uint8 [N, size, size, 4] and how many were snapped."""
    images, snapped = [], 0
    for path in files:
        image, was_snapped = native_pixel_art(imageio.load_image(path)[0], size, path)
        images.append(image)
        snapped += was_snapped
    return np.stack(images), snapped


def _views_as_pictures(images: np.ndarray) -> np.ndarray:
    """Characters [N, D, H, W, 4] → every non-empty view as one image [M, H, W, 4]."""
    flat = images.reshape(-1, *images.shape[-3:])
    return flat[flat[..., 3].any(axis=(1, 2))]


def pixel_art_splits(config) -> tuple[dict[str, np.ndarray], list[str], int]:
    """B for cyclegan from --dataset (names, character folders, picture folders; default the synthetic
    set): ({'train', 'test'} images, source names, how many folder images were snapped to their grid)."""
    sources, test_sources = dataset_sources(config)
    sources = registry.expand(sources or [SYNTHETIC])
    picture_folders = [s for s in sources if s not in registry.NAMED_DATASETS and s != SYNTHETIC
                       and Path(s).expanduser().is_dir() and not is_character_folder(Path(s).expanduser())]
    characters = [s for s in sources if s not in picture_folders]
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    if characters:
        data = load_data(characters, domains=tuple(config.domains), image_size=config.image_size, data_dir=config.data_dir or None,
                         seed=config.seed, validation_fraction=0.0, test_sources=test_sources)
        parts["train"].append(_views_as_pictures(data.train.images))
        parts["test"].append(_views_as_pictures(data.test.images))
    snapped = 0
    for folder in picture_folders:
        for split, files in picture_splits(folder, config.seed, "pixel-art images").items():
            images, count = read_pixel_art(files, config.image_size)
            parts[split].append(images)
            snapped += count
    splits = {split: np.concatenate(images) for split, images in parts.items()}
    for split, images in splits.items():
        if not len(images):
            raise SpriteForgeError(f"the pixel-art {split} images of {', '.join(sources)} are all empty (fully transparent)")
    return splits, sources, snapped


def domain_a_folder(config, model: str) -> Path:
    if not config.domain_a:
        raise SpriteForgeError(f"{model} needs --domain-a FOLDER: the pictures to turn into pixel art (PNG/JPEG, any size)")
    return Path(config.domain_a).expanduser()


# -- unpaired (cyclegan) --------------------------------------------------------------------------
class ZippedDomains:
    """Picture i of A beside image i of B (each index wrapping), indexed like CharacterSet.images.

    Previews and test images index [N, 2, H, W, 4] "characters"; this gives them one without
    materialising max(|A|, |B|) pairs. Its length, the larger domain, is also the epoch length.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a, self.b = a, b

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    @property
    def images(self) -> "ZippedDomains":
        return self

    def __getitem__(self, picks) -> np.ndarray:
        picks = np.asarray(picks, dtype=np.int64).reshape(-1)
        return np.stack([self.a[picks % len(self.a)], self.b[picks % len(self.b)]], axis=1)


@dataclass
class UnpairedData:
    """Two unrelated image sets; each training batch draws A and B independently (own epoch orders)."""

    a: dict[str, np.ndarray]
    b: dict[str, np.ndarray]
    sources: list[str]
    snapped: int = 0
    domains: tuple[str, ...] = ("pictures", "pixel-art")

    def __post_init__(self):
        self.train = ZippedDomains(self.a["train"], self.b["train"])
        self.test = ZippedDomains(self.a["test"], self.b["test"])
        self.validation = ZippedDomains(self.a["test"][:0], self.b["test"][:0])

    def batch_images(self, step: int, batch: int, seed: int) -> torch.Tensor:
        """uint8 [batch, 2, H, W, 4]: A and B each from its own seeded per-epoch permutation."""
        a = self.a["train"][batch_indices(step, batch, len(self.a["train"]), seed)]
        b = self.b["train"][batch_indices(step, batch, len(self.b["train"]), seed + B_SEED_OFFSET)]
        return torch.from_numpy(np.stack([a, b], axis=1))

    def describe(self) -> str:
        snapped = f" ({self.snapped} snapped to their pixel grid)" if self.snapped else ""
        return (f"A {self.sources[0]}: {len(self.a['train'])} train, {len(self.a['test'])} test pictures; "
                f"B {'+'.join(self.sources[1:])}: {len(self.b['train'])} train, {len(self.b['test'])} test pixel-art images{snapped}")


def load_unpaired(config, model: str) -> UnpairedData:
    folder = domain_a_folder(config, model)
    a = {split: read_pictures(files, config.image_size) for split, files in picture_splits(folder, config.seed, "pictures").items()}
    b, sources, snapped = pixel_art_splits(config)
    return UnpairedData(a, b, [str(folder), *sources], snapped)


# -- paired (pix2pix-pairs) -----------------------------------------------------------------------
def _by_stem(files: list[Path]) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise SpriteForgeError(f"{path}: {stems[path.stem].name} has the same name; pairs match by file name, so keep one of them")
        stems[path.stem] = path
    return stems


def load_pairs(config, model: str) -> SpriteData:
    """A pictures and B pixel art paired by file name (extension ignored): 2-domain characters.

    The split follows A's folder (train/ and test/, or 85/15 by --seed); validation is the last
    --validation-fraction of train, as for every dataset.
    """
    folder_a = domain_a_folder(config, model)
    sources = list(config.dataset)
    if len(sources) != 1 or not Path(sources[0]).expanduser().is_dir() or any(config[name] for name in ("tiny", "rm2k", "rmxp", "rmvx", "misc")):
        raise SpriteForgeError(f"{model} needs --dataset FOLDER: the pixel art paired with the pictures of --domain-a by file name (one folder)")
    folder_b = Path(sources[0]).expanduser()
    splits_a = picture_splits(folder_a, config.seed, "pictures")
    files_b = [path for sub in (folder_b, folder_b / "train", folder_b / "test") if sub.is_dir() for path in list_pictures(sub)]
    everything_b = _by_stem(files_b)  # B may be split or not: A's split decides
    parts = {}
    for split, files in splits_a.items():
        stems = _by_stem(files)
        missing = [stem for stem in stems if stem not in everything_b]
        if missing:
            raise SpriteForgeError(f"{stems[missing[0]]}: no pixel-art image named '{missing[0]}' in {folder_b} "
                                   f"({len(missing)} of {len(stems)} pictures unpaired); pairs need the same file name")
        pictures = read_pictures(files, config.image_size)
        art, _ = read_pixel_art([everything_b[stem] for stem in stems], config.image_size)
        parts[split] = CharacterSet(np.stack([pictures, art], axis=1), [f"{folder_a.name}/{stem}" for stem in stems])
    train = parts["train"]
    carve = min(math.ceil(config.validation_fraction * len(train)), len(train) - 1) if config.validation_fraction > 0 else 0
    return SpriteData(train=train.subset(range(len(train) - carve)), validation=train.subset(range(len(train) - carve, len(train))),
                      test=parts["test"], domains=("pictures", "pixel-art"), sources=[str(folder_a), str(folder_b)])
