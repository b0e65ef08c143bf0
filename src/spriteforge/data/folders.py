"""Reading characters from folders: the split layout, the flat layout and the single folder.

Split layout: ``train|test/<k>-<name>/*.png``. Flat layout: ``<k>/*.png`` (or ``<k>-<name>/*.png``),
split 85/15 deterministically. The same file name in every domain folder is the same character.
Single folder: images directly in the folder, no domain sub-folders; every image is one sample of a
single domain (D = 1), of any one size (non-square too), split 85/15 like the flat layout.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import image_shape, load_rgba, size_flags

DOMAIN_FOLDER = re.compile(r"^(\d+)(?:-(.+))?$")
TEST_FRACTION = 0.15
SINGLE_DOMAIN = "image"
"""The one domain of a single-folder dataset (images without views)."""
IMAGE_SUFFIXES = (".png", ".gif", ".bmp", ".webp")
"""Lossless formats a single folder may hold (JPEG would blur pixel art, so it is refused)."""


@dataclass
class CharacterSet:
    """Characters as uint8 [N, domains, H, W, 4] with one name per character (domains = 1 for a single folder)."""

    images: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "CharacterSet":
        if isinstance(indices, range) and indices.step == 1:  # a block (the validation carve): a view, no copy
            return CharacterSet(self.images[indices.start : indices.stop], self.names[indices.start : indices.stop])
        indices = list(indices)
        return CharacterSet(self.images[indices], [self.names[i] for i in indices])

    @staticmethod
    def concatenate(parts: list["CharacterSet"]) -> "CharacterSet":
        parts = [part for part in parts if len(part)]
        if not parts:
            raise SpriteForgeError("no characters to concatenate")
        return CharacterSet(np.concatenate([p.images for p in parts]), [n for p in parts for n in p.names])


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]


def domain_folders(folder: Path, domains: tuple[str, ...] = VIEWS) -> list[Path]:
    """Pick the domain sub-folders of `folder` in the order of `domains` (by name, else by index)."""
    found: dict[int, Path] = {}
    for child in sorted(folder.iterdir()):
        match = DOMAIN_FOLDER.match(child.name)
        if child.is_dir() and match:
            found[int(match.group(1))] = child
    if not found:
        raise SpriteForgeError(
            f"{folder}: no domain folders; expected sub-folders named like 0-back, 1-left, 2-front, 3-right"
        )
    by_name = {match.group(2): p for p in found.values() if (match := DOMAIN_FOLDER.match(p.name))}
    if all(name in by_name for name in domains):
        return [by_name[name] for name in domains]
    if sorted(found) == list(range(len(domains))):
        return [found[k] for k in range(len(domains))]
    missing = [f"{k}-{name}" for k, name in enumerate(domains) if k not in found and name not in by_name]
    raise SpriteForgeError(
        f"{folder}: domain folder(s) {', '.join(missing) or '?'} missing (found {', '.join(p.name for p in found.values())}); "
        f"add them or pass --domains with the names present"
    )


def read_paired(folder: Path, domains: tuple[str, ...], image_size: int | tuple[int, int] | None, prefix: str) -> CharacterSet:
    """Load every character of a folder with one sub-folder per domain, pairing files by name."""
    folders = domain_folders(folder, domains)
    listings = []
    for domain_folder in folders:
        files = sorted((p for p in domain_folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=_natural_key)
        others = [p for p in files if p.suffix.lower() != ".png"]
        if others:
            raise SpriteForgeError(
                f"{others[0]}: not a PNG file; only .png images may be in the domain folders (move it elsewhere)"
            )
        listings.append(files)
    names = [{p.name for p in files} for files in listings]
    reference = names[0]
    for domain_folder, current in zip(folders[1:], names[1:]):
        if current != reference:
            only_here = sorted(current - reference)[:5]
            only_there = sorted(reference - current)[:5]
            raise SpriteForgeError(
                f"{domain_folder}: files do not pair with {folders[0]} "
                f"({len(current)} vs {len(reference)} files; only in {domain_folder.name}: {only_here}, "
                f"missing here: {only_there}); every character needs one file of the same name per domain"
            )
    if not listings[0]:
        raise SpriteForgeError(f"{folder}: the domain folders hold no PNG files")
    images = np.stack(
        [np.stack([load_rgba(domain_folder / p.name, image_size) for domain_folder in folders]) for p in listings[0]]
    )
    return CharacterSet(images, [f"{prefix}/{p.stem}" for p in listings[0]])


def read_folder(folder: str | Path, domains: tuple[str, ...], image_size: int | tuple[int, int] | None, seed: int = 0) -> dict[str, CharacterSet]:
    """Read a dataset folder in the split or the flat layout into {'train': …, 'test': …}."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SpriteForgeError(f"{folder}: no such folder; pass a dataset name or a folder of domain sub-folders")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return {split: read_paired(folder / split, domains, image_size, f"{folder.name}/{split}") for split in ("train", "test")}
    if (folder / "train").is_dir() != (folder / "test").is_dir():
        present = "train" if (folder / "train").is_dir() else "test"
        raise SpriteForgeError(f"{folder}: has {present}/ but not its partner; the split layout needs both train/ and test/")
    if is_single_folder(folder):
        return split_flat(read_single_folder(folder, image_size, domains), seed)
    everything = read_paired(folder, domains, image_size, folder.name)
    return split_flat(everything, seed)


def _visible_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=_natural_key)


def is_single_folder(folder: Path) -> bool:
    """A folder of images with no domain sub-folders (an unconditional dataset)."""
    has_domains = any(child.is_dir() and DOMAIN_FOLDER.match(child.name) for child in folder.iterdir())
    return not has_domains and bool(_visible_files(folder))


def read_single_folder(folder: str | Path, image_size: int | tuple[int, int] | None = None,
                       domains: tuple[str, ...] = VIEWS) -> CharacterSet:
    """Every image of `folder` as one sample [N, 1, H, W, 4]; all must share one size.

    `image_size` (a side or (height, width)) is the size the model draws; None accepts the folder's
    own size. The size check reads only the headers, so a wrong file is named before anything is decoded.
    """
    folder = Path(folder).expanduser()
    if tuple(domains) != VIEWS:
        raise SpriteForgeError(f"{folder}: a single folder of images has no views; drop --domains (it names the view folders of a paired dataset)")
    files = _visible_files(folder)
    for path in files:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            raise SpriteForgeError(f"{path}: JPEG is lossy and blurs pixel art; convert it to PNG (or move it out of {folder})")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SpriteForgeError(f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}); move it out of {folder}")
    if not files:
        raise SpriteForgeError(f"{folder}: no images in this folder")
    shape = image_shape(files[0])
    for path in files[1:]:
        other = image_shape(path)
        if other != shape:
            raise SpriteForgeError(
                f"{path}: image is {other[1]}x{other[0]} but the other images of {folder.name} are {shape[1]}x{shape[0]} "
                f"(e.g. {files[0].name}); a single-folder dataset needs one size: resize it (nearest-neighbour) or move it out"
            )
    if image_size is not None:
        expected = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if shape != expected:
            raise SpriteForgeError(
                f"{folder}: the images are {shape[1]}x{shape[0]} but the model draws {expected[1]}x{expected[0]}; "
                f"{size_flags(shape[1], shape[0])}, or resize them with nearest-neighbour"
            )
    images = np.stack([load_rgba(path, shape)[None] for path in files])
    return CharacterSet(images, [f"{folder.name}/{path.stem}" for path in files])


def split_flat(characters: CharacterSet, seed: int = 0, test_fraction: float = TEST_FRACTION) -> dict[str, CharacterSet]:
    """Deterministic 85/15 train/test split of an unsplit set (seedable)."""
    count = len(characters)
    order = np.random.default_rng(seed).permutation(count)
    train_count = min(count - 1, math.ceil((1 - test_fraction) * count)) if count > 1 else count
    return {"train": characters.subset(sorted(order[:train_count])), "test": characters.subset(sorted(order[train_count:]))}
