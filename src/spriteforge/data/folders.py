"""Reading paired 4-view characters from folders: the split layout and the flat layout.

Split layout: ``train|test/<k>-<name>/*.png``. Flat layout: ``<k>/*.png`` (or ``<k>-<name>/*.png``),
split 85/15 deterministically. The same file name in every domain folder is the same character.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError
from spriteforge.imageio import load_rgba

DOMAIN_FOLDER = re.compile(r"^(\d+)(?:-(.+))?$")
TEST_FRACTION = 0.15


@dataclass
class CharacterSet:
    """Characters as uint8 [N, domains, H, W, 4] with one name per character."""

    images: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "CharacterSet":
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
    by_name = {DOMAIN_FOLDER.match(p.name).group(2): p for p in found.values()}
    if all(name in by_name for name in domains):
        return [by_name[name] for name in domains]
    if sorted(found) == list(range(len(domains))):
        return [found[k] for k in range(len(domains))]
    missing = [f"{k}-{name}" for k, name in enumerate(domains) if k not in found and name not in by_name]
    raise SpriteForgeError(
        f"{folder}: domain folder(s) {', '.join(missing) or '?'} missing (found {', '.join(p.name for p in found.values())}); "
        f"add them or pass --domains with the names present"
    )


def read_paired(folder: Path, domains: tuple[str, ...], image_size: int, prefix: str) -> CharacterSet:
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


def read_folder(folder: str | Path, domains: tuple[str, ...], image_size: int, seed: int = 0) -> dict[str, CharacterSet]:
    """Read a dataset folder in the split or the flat layout into {'train': …, 'test': …}."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise SpriteForgeError(f"{folder}: no such folder; pass a dataset name or a folder of domain sub-folders")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        return {split: read_paired(folder / split, domains, image_size, f"{folder.name}/{split}") for split in ("train", "test")}
    if (folder / "train").is_dir() != (folder / "test").is_dir():
        present = "train" if (folder / "train").is_dir() else "test"
        raise SpriteForgeError(f"{folder}: has {present}/ but not its partner; the split layout needs both train/ and test/")
    everything = read_paired(folder, domains, image_size, folder.name)
    return split_flat(everything, seed)


def split_flat(characters: CharacterSet, seed: int = 0, test_fraction: float = TEST_FRACTION) -> dict[str, CharacterSet]:
    """Deterministic 85/15 train/test split of an unsplit set (seedable)."""
    count = len(characters)
    order = np.random.default_rng(seed).permutation(count)
    train_count = min(count - 1, math.ceil((1 - test_fraction) * count)) if count > 1 else count
    return {"train": characters.subset(sorted(order[:train_count])), "test": characters.subset(sorted(order[train_count:]))}
