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


ALIGNMENT_MOVES = 2  # columns either way
# (view mirrored, view it is laid onto, what the line says): the pairs a turnaround is drawn from
ALIGNMENT_PAIRS = (("front", "front", "front onto itself (its axis)"), ("front", "back", "front onto the back"),
                   ("right", "left", "right onto the left"))


def mirrored_alignment(mirrored: np.ndarray, onto: np.ndarray) -> np.ndarray:
    """Per character, how many columns right (negative: left) `mirrored` [N, H, W, 4] flipped must move to
    match `onto` best, within ±ALIGNMENT_MOVES: the fewest differing pixels (two clear pixels are equal
    whatever their RGB; columns moved in are clear). Ties go to the smaller move, a tie between s and −s to 0.

    Why: the imputation models copy a given view mirrored about the image's centre; a character drawn
    about another column (a front symmetric about column 32 of 0..63, not 31.5) has its back one column
    over, and a model can only draw such pixels, not copy them. The pooled `all` data has both kinds."""
    def canonical(images: np.ndarray) -> np.ndarray:
        pixels = images.view(np.uint32)[..., 0]  # [N, H, W]: one code per RGBA pixel
        return np.where(images[..., 3] == 0, 0, pixels)
    flipped, target = canonical(mirrored[:, :, ::-1].copy()), canonical(onto)
    width, moves = flipped.shape[2], range(-ALIGNMENT_MOVES, ALIGNMENT_MOVES + 1)
    differing = []
    for move in moves:
        moved = np.zeros_like(flipped)
        moved[:, :, max(move, 0) : width + min(move, 0)] = flipped[:, :, max(-move, 0) : width - max(move, 0)]
        differing.append((moved != target).sum(axis=(1, 2)))
    table = np.stack(differing, 1)  # [N, moves]
    best = table == table.min(1, keepdims=True)
    result = np.zeros(len(table), dtype=int)
    decided = best[:, ALIGNMENT_MOVES]  # in place is best: 0
    for distance in range(1, ALIGNMENT_MOVES + 1):  # the smallest best move wins; both ways best: 0
        left, right = best[:, ALIGNMENT_MOVES - distance], best[:, ALIGNMENT_MOVES + distance]
        result = np.where(~decided & (left != right), np.where(left, -distance, distance), result)
        decided = decided | left | right
    return result


def alignment_lines(images: np.ndarray, domains) -> list[str]:
    """`data inspect`'s view alignment table for four-view characters uint8 [N, D, H, W, 4] (none otherwise)."""
    if not all(view in domains for view in ("back", "left", "front", "right")):
        return []
    moves = range(-ALIGNMENT_MOVES, ALIGNMENT_MOVES + 1)
    lines = ["  alignment (train): characters whose view, mirrored, matches the other best moved by "
             + " ".join(f"{move:+d}" for move in moves) + " columns"]
    for source, target, label in ALIGNMENT_PAIRS:
        found = mirrored_alignment(images[:, domains.index(source)], images[:, domains.index(target)])
        counts = np.bincount(found + ALIGNMENT_MOVES, minlength=len(moves))
        lines.append(f"    {label:<28} " + " ".join(f"{count:>6}" for count in counts))
    return lines


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
        lines += alignment_lines(train, list(domains))
        if sample is None:
            picks = np.linspace(0, len(train) - 1, min(8, len(train))).round().astype(int)
            sample = train[picks]
    if sample is None:
        raise SpriteForgeError(f"{source}: no dataset to show")
    rows = [list(character) for character in sample]
    path = Path(preview or f"{Path(source).name or 'dataset'}-preview.png")
    imageio.save_png(imageio.grid(rows, background=(40, 40, 40, 255)), path, scale=2)
    return "\n".join(lines), path
