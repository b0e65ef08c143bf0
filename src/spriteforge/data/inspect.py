"""`spriteforge data inspect`: what a dataset holds, in numbers and one picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spriteforge import imageio
from spriteforge.data import registry
from spriteforge.data.folders import SINGLE_DOMAIN
from spriteforge.data.loading import load_splits
from spriteforge.errors import SpriteForgeError


def colour_statistics(images: np.ndarray) -> dict[str, float]:
    """Per-image distinct opaque colours, opaque share and alpha binarity over uint8 [N, H, W, 4]."""
    counts = []
    for image in images:
        opaque = image[image[..., 3] > 0]
        counts.append(len(np.unique(opaque.view(np.uint32))) if len(opaque) else 0)
    alpha = images[..., 3]
    return {
        "colours_min": int(np.min(counts)), "colours_median": float(np.median(counts)), "colours_max": int(np.max(counts)),
        "opaque_share": float((alpha > 0).mean()),
        "partial_alpha_images": int(((alpha > 0) & (alpha < 255)).any(axis=(1, 2)).sum()),
    }


def inspect_source(source: str, domains, image_size: int | None = 64, data_dir=None, preview: str | None = None):
    """`image_size` None: 64, or a single folder's own size."""
    lines = []
    sample = None
    given_domains = domains
    for name in registry.expand([source]):
        splits = load_splits(name, domains=given_domains, image_size=image_size, data_dir=data_dir)
        domains = given_domains if splits["train"].images.shape[1] > 1 else (SINGLE_DOMAIN,)
        lines.append(f"{name}:")
        lines.append(f"  {'split':<8} {'chars':>6} " + " ".join(f"{d:>7}" for d in domains))
        for split, characters in splits.items():
            lines.append(f"  {split:<8} {len(characters):>6} " + " ".join(f"{len(characters):>7}" for _ in domains))
        train = splits["train"].images
        for index, domain in enumerate(domains):
            stats = colour_statistics(train[:, index])
            lines.append(
                f"  {domain:<6} colours/image {stats['colours_min']}-{stats['colours_max']} (median {stats['colours_median']:.0f}), "
                f"opaque {stats['opaque_share']:.1%}, images with partial alpha {stats['partial_alpha_images']}"
            )
        if sample is None:
            picks = np.linspace(0, len(train) - 1, min(8, len(train))).round().astype(int)
            sample = train[picks]
    if sample is None:
        raise SpriteForgeError(f"{source}: no dataset to show")
    rows = [list(character) for character in sample]
    path = Path(preview or f"{Path(source).name or 'dataset'}-preview.png")
    imageio.save_png(imageio.grid(rows, background=(40, 40, 40, 255)), path, scale=2)
    return "\n".join(lines), path
