"""Shared fixtures: small hand-made datasets, and the real archives when ../shared/datasets exists."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from spriteforge import VIEWS
from spriteforge.imageio import save_png

ARCHIVES = Path(os.environ.get("SPRITEFORGE_ARCHIVES", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))


def random_sprite(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A blocky opaque figure on a transparent background, a handful of colours."""
    image = np.zeros((size, size, 4), np.uint8)
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    top, left = rng.integers(size // 8, size // 3, 2)
    height, width = rng.integers(size // 4, size // 2, 2)
    for band in range(4):
        y0 = top + band * height // 4
        image[y0 : y0 + height // 4 + 1, left : left + width, :3] = palette[band]
        image[y0 : y0 + height // 4 + 1, left : left + width, 3] = 255
    return image


def write_split_folder(root: Path, train: int = 6, test: int = 2, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("test", test)):
        for domain, name in enumerate(VIEWS):
            for index in range(count):
                save_png(random_sprite(rng, size), root / split / f"{domain}-{name}" / f"{index}.png")
    return root


@pytest.fixture
def split_folder(tmp_path: Path) -> Path:
    return write_split_folder(tmp_path / "sprites")


@pytest.fixture
def archives(monkeypatch, tmp_path) -> Path:
    """Point SpriteForge at the shared archives (skips when absent) with a private data directory."""
    if not (ARCHIVES / "rpg-maker-2000.zip").is_file():
        pytest.skip("dataset archives not available (set SPRITEFORGE_ARCHIVES)")
    monkeypatch.setenv("SPRITEFORGE_ARCHIVES", str(ARCHIVES))
    monkeypatch.setenv("SPRITEFORGE_DATA_DIR", str(tmp_path / "data"))
    return ARCHIVES
