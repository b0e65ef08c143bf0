"""Turn dataset names and folders into train / validation / test character sets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spriteforge import VIEWS
from spriteforge.data import registry
from spriteforge.data.folders import CharacterSet, read_folder
from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import atomic_write

SYNTHETIC = "synthetic"
SYNTHETIC_CHARACTERS = 480
DEFAULT_VALIDATION_FRACTION = 0.1


@dataclass
class SpriteData:
    """The three partitions of a (possibly pooled) paired dataset."""

    train: CharacterSet
    validation: CharacterSet
    test: CharacterSet
    domains: tuple[str, ...]
    sources: list[str]

    def describe(self) -> str:
        return (
            f"{'+'.join(self.sources)}: {len(self.train)} train, {len(self.validation)} validation, "
            f"{len(self.test)} test characters; domains {', '.join(self.domains)}"
        )


def load_splits(source: str, *, domains: tuple[str, ...] = VIEWS, image_size: int = 64, data_dir=None,
                seed: int = 0, allow_download: bool = True) -> dict[str, CharacterSet]:
    """Load one source (a dataset name, 'synthetic' or a folder) as {'train', 'test'}."""
    if source == SYNTHETIC:
        return synthetic_splits(image_size, len(domains))
    if source in registry.NAMED_DATASETS:
        if image_size != 64:
            raise SpriteForgeError(f"dataset '{source}' has 64x64 images; drop --image-size {image_size} or pass 64")
        folder = registry.ensure_extracted(source, data_dir, allow_download)
        return {split: _cached_split(folder, split, domains, source) for split in ("train", "test")}
    if Path(source).expanduser().exists():
        return read_folder(source, domains, image_size, seed)
    known = ", ".join([*registry.NAMED_DATASETS, "all", SYNTHETIC])
    raise SpriteForgeError(f"unknown dataset '{source}': use one of {known}, or the path of a folder")


def synthetic_splits(image_size: int = 64, domain_count: int = 4, count: int = SYNTHETIC_CHARACTERS, seed: int = 0):
    """The built-in procedural set, split 85/15 by character index."""
    from spriteforge.data.synthetic import generate_characters

    if domain_count != 4:
        raise SpriteForgeError("the synthetic dataset has exactly 4 domains (back, left, front, right)")
    if image_size % 16 or not 32 <= image_size <= 512:
        raise SpriteForgeError(f"the synthetic dataset is drawn at sizes that are multiples of 16 from 32 to 512; "
                               f"--image-size {image_size} is not one (use 32, 64, 128, …)")
    images = generate_characters(count, seed=seed, size=image_size)
    names = [f"synthetic/{i}" for i in range(count)]
    cut = math.ceil(0.85 * count)
    return {"train": CharacterSet(images[:cut], names[:cut]), "test": CharacterSet(images[cut:], names[cut:])}


def _cached_split(folder: Path, split: str, domains: tuple[str, ...], name: str) -> CharacterSet:
    """Decode a named dataset's PNGs once and keep a .npy beside them (misc has 49k files)."""
    cache = folder / f".cache-{split}-{'-'.join(domains)}.npy"
    if cache.exists():
        images = np.load(cache)
    else:
        images = _read_split(folder, split, domains)
        with atomic_write(cache) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, images)
    return CharacterSet(images, [f"{name}/{split}/{i}" for i in range(len(images))])


def _read_split(folder: Path, split: str, domains: tuple[str, ...]) -> np.ndarray:
    from spriteforge.data.folders import read_paired

    return read_paired(folder / split, domains, 64, split).images


def load_data(sources: list[str], *, domains: tuple[str, ...] = VIEWS, image_size: int = 64, data_dir=None,
              seed: int = 0, validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
              test_sources: list[str] | None = None, allow_download: bool = True) -> SpriteData:
    """Pool the named sources; carve validation from the end of each source's train partition.

    The validation block is the *last* characters of train, not a random draw: consecutive RPG Maker
    indices are frames of one character, so a random carve would leak near-duplicates.
    """
    sources = registry.expand(sources or [SYNTHETIC])
    trains, validations, tests = [], [], {}
    for source in sources:
        splits = load_splits(source, domains=domains, image_size=image_size, data_dir=data_dir, seed=seed,
                             allow_download=allow_download)
        train = splits["train"]
        carve = math.ceil(validation_fraction * len(train)) if validation_fraction > 0 else 0
        carve = min(carve, len(train) - 1)
        trains.append(train.subset(range(len(train) - carve)))
        validations.append(train.subset(range(len(train) - carve, len(train))))
        tests[source] = splits["test"]
    test_names = registry.expand(test_sources) if test_sources else sources
    for source in test_names:
        if source not in tests:
            tests[source] = load_splits(source, domains=domains, image_size=image_size, data_dir=data_dir,
                                        seed=seed, allow_download=allow_download)["test"]
    validation = [v for v in validations if len(v)]
    empty = CharacterSet(np.zeros((0, len(domains), image_size, image_size, 4), np.uint8), [])
    return SpriteData(
        train=CharacterSet.concatenate(trains),
        validation=CharacterSet.concatenate(validation) if validation else empty,
        test=CharacterSet.concatenate([tests[s] for s in test_names]),
        domains=tuple(domains),
        sources=sources,
    )
