"""Turn dataset names and folders into train / validation / test character sets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spriteforge import VIEWS
from spriteforge.data import registry
from spriteforge.data.folders import SINGLE_DOMAIN, CharacterSet, is_single_folder, read_folder, read_paired
from spriteforge.data.synthetic import generate_characters
from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import atomic_write, size_flags

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


def load_splits(source: str, *, domains: tuple[str, ...] = VIEWS, image_size: int | tuple[int, int] | None = 64, data_dir=None,
                seed: int = 0, allow_download: bool = True) -> dict[str, CharacterSet]:
    """Load one source (a dataset name, 'synthetic' or a folder) as {'train', 'test'}.

    `image_size` is a square side or (height, width); None means 64, or a single folder's own size.
    """
    if image_size is None and not is_single_folder_source(source):
        image_size = 64
    square = image_size if isinstance(image_size, int) else (image_size[0] if image_size and image_size[0] == image_size[1] else None)
    if source == SYNTHETIC:
        if square is None:
            assert isinstance(image_size, tuple)  # None became 64 above
            raise SpriteForgeError(f"the synthetic dataset is square; for {image_size[1]}x{image_size[0]} images pass a folder with --dataset")
        return synthetic_splits(square, len(domains))
    if source in registry.NAMED_DATASETS:
        if square != 64:
            advice = f"drop --image-size {image_size} or pass 64" if isinstance(image_size, int) else size_flags(64, 64)
            raise SpriteForgeError(f"dataset '{source}' has 64x64 images; {advice}")
        folder = registry.ensure_extracted(source, data_dir, allow_download)
        return {split: _cached_split(folder, split, domains, source) for split in ("train", "test")}
    if Path(source).expanduser().exists():
        return read_folder(source, domains, image_size, seed)
    known = ", ".join([*registry.NAMED_DATASETS, "all", SYNTHETIC])
    raise SpriteForgeError(f"unknown dataset '{source}': use one of {known}, or the path of a folder")


def is_single_folder_source(source: str) -> bool:
    """Whether a --dataset value is a single folder of images (no views), before anything is loaded."""
    folder = Path(source).expanduser()
    return source not in registry.NAMED_DATASETS and source != SYNTHETIC and folder.is_dir() and is_single_folder(folder)


def synthetic_splits(image_size: int = 64, domain_count: int = 4, count: int = SYNTHETIC_CHARACTERS, seed: int = 0):
    """The built-in procedural set, split 85/15 by character index."""
    if domain_count != 4:
        raise SpriteForgeError("the synthetic dataset has exactly 4 domains (back, left, front, right)")
    if image_size % 16 or not 32 <= image_size <= 512:
        raise SpriteForgeError(f"the synthetic dataset is drawn at 32 to 512 px (a multiple of 16), not {image_size}; "
                               f"choose such a size or pass a folder with --dataset")
    images = generate_characters(count, seed=seed, size=image_size)
    names = [f"synthetic/{i}" for i in range(count)]
    cut = math.ceil(0.85 * count)
    return {"train": CharacterSet(images[:cut], names[:cut]), "test": CharacterSet(images[cut:], names[cut:])}


def _cached_split(folder: Path, split: str, domains: tuple[str, ...], name: str) -> CharacterSet:
    """Decode a named dataset's PNGs once and keep a .npy beside them (misc has 49k files)."""
    cache = folder / f".cache-{split}-{'-'.join(domains)}.npy"
    images = _load_cache(cache, len(domains))
    if images is None:  # none yet, or truncated or damaged (a crash, a full disk): decode the PNGs again
        images = _read_split(folder, split, domains)
        try:
            with atomic_write(cache) as temporary:
                with open(temporary, "wb") as handle:
                    np.save(handle, images)
        except SpriteForgeError:
            pass  # a read-only data directory: the cache only saves time
    return CharacterSet(images, [f"{name}/{split}/{i}" for i in range(len(images))])


def _load_cache(cache: Path, domain_count: int) -> np.ndarray | None:
    """The decoded split cached beside the PNGs, or None when it is missing, truncated or not ours."""
    try:
        images = np.load(cache, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if images.dtype != np.uint8 or images.ndim != 5 or images.shape[1] != domain_count or images.shape[-1] != 4:
        return None
    return images


def _read_split(folder: Path, split: str, domains: tuple[str, ...]) -> np.ndarray:
    return read_paired(folder / split, domains, 64, split).images


def load_data(sources: list[str], *, domains: tuple[str, ...] = VIEWS, image_size: int | tuple[int, int] = 64, data_dir=None,
              seed: int = 0, validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
              test_sources: list[str] | None = None, allow_download: bool = True) -> SpriteData:
    """Pool the named sources; carve validation from the end of each source's train partition.

    The validation block is the *last* characters of train, not a random draw: consecutive RPG Maker
    indices are frames of one character, so a random carve would leak near-duplicates.
    `image_size` is a square side or (height, width). Single folders (one domain) pool only with
    single folders; the data's domains are then (SINGLE_DOMAIN,).
    """
    sources = registry.expand(sources or [SYNTHETIC])
    trains, validations, tests = [], [], {}
    loaded_domains: dict[str, int] = {}
    for source in sources:
        splits = load_splits(source, domains=domains, image_size=image_size, data_dir=data_dir, seed=seed,
                             allow_download=allow_download)
        train = splits["train"]
        loaded_domains[source] = train.images.shape[1]
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
    for source in test_names:
        loaded_domains.setdefault(source, tests[source].images.shape[1])
    if len(set(loaded_domains.values())) > 1:
        single = next(s for s, count in loaded_domains.items() if count == 1)
        paired = next(s for s, count in loaded_domains.items() if count != 1)
        raise SpriteForgeError(f"{single} is a single folder of images (no views) and cannot be pooled with {paired} "
                               f"({loaded_domains[paired]} views per character); train on them separately")
    if set(loaded_domains.values()) == {1}:
        domains = (SINGLE_DOMAIN,)
    validation = [v for v in validations if len(v)]
    height, width = trains[0].images.shape[2:4]
    empty = CharacterSet(np.zeros((0, len(domains), height, width, 4), np.uint8), [])
    return SpriteData(
        train=CharacterSet.concatenate(trains),
        validation=CharacterSet.concatenate(validation) if validation else empty,
        test=CharacterSet.concatenate([tests[s] for s in test_names]),
        domains=tuple(domains),
        sources=sources,
    )
