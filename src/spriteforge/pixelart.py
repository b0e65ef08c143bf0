"""Pixel-art clean-up: snap to the pixel grid, limit the palette, binarise alpha, tidy the silhouette.

Used alone by `spriteforge pixelate` and, later, after a generator by `stylize`. Everything is numpy on
uint8 RGBA [H, W, 4]; no step ever blends colours bilinearly, so the result stays crisp pixel art.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.palettes import read_palette

EDGE_THRESHOLD = 16
"""Neighbours whose channels differ by more than this form an edge (smaller steps are noise)."""

OFF_GRID_TOLERANCE = 0.05
"""A grid is accepted if at most this share of edge evidence falls between its lines (noisy pixels)."""


# -- alpha ----------------------------------------------------------------------------------------
def binarize_alpha(rgba: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Alpha ≥ threshold becomes 255, the rest 0 with colour (0, 0, 0): pixel art has no half-transparency."""
    opaque = rgba[..., 3] >= threshold
    out = rgba * opaque[..., None].astype(rgba.dtype)  # a product, not a masked assignment: 10× faster on a batch
    out[..., 3] = np.where(opaque, 255, 0)
    return out


def remove_background(rgba: np.ndarray, tolerance: int = 12, share: float = 0.9) -> np.ndarray:
    """Make a uniform border colour transparent where it is connected to the border (flood fill).

    Pictures without alpha usually sit on a flat background. The colour is the border's most common one;
    it is used only if it covers `share` of the border, so busy photos are left alone. Interior pixels of
    the same colour (white eyes on a white background) stay, because they are not reached from outside.
    """
    height, width = rgba.shape[:2]
    border = np.concatenate([rgba[0], rgba[-1], rgba[:, 0], rgba[:, -1]])
    values, counts = np.unique(border, axis=0, return_counts=True)
    colour = values[np.argmax(counts)].astype(np.int16)
    close = np.abs(border.astype(np.int16) - colour).max(axis=1) <= tolerance
    if colour[3] == 0 or close.mean() < share:
        return rgba.copy()
    candidate = np.abs(rgba.astype(np.int16) - colour).max(axis=2) <= tolerance
    reached = np.zeros_like(candidate)
    reached[0], reached[-1], reached[:, 0], reached[:, -1] = candidate[0], candidate[-1], candidate[:, 0], candidate[:, -1]
    while True:  # grow through 4-neighbours until nothing changes
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= candidate
        if np.array_equal(grown, reached):
            break
        reached = grown
    out = rgba.copy()
    out[reached] = 0
    return out


# -- pixel grid -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """Cell size in picture pixels and where the first whole cell starts (x, y)."""

    cell: int
    offset_x: int
    offset_y: int


def _edge_mass(rgba: np.ndarray, axis: int) -> np.ndarray:
    """How many lines have an edge between position p-1 and p along `axis`; index p-1."""
    data = rgba.astype(np.int16)
    if axis == 1:
        differs = np.abs(data[:, 1:] - data[:, :-1]).max(axis=2) > EDGE_THRESHOLD
    else:
        differs = np.abs(data[1:] - data[:-1]).max(axis=2) > EDGE_THRESHOLD
    return differs.sum(axis=1 - axis).astype(np.float64)


def _best_offset(mass: np.ndarray, cell: int) -> tuple[int, float]:
    """The offset whose grid lines gather most edge evidence, and the share of evidence left off-grid."""
    total = mass.sum()
    if total == 0:
        return 0, 0.0
    positions = np.arange(1, len(mass) + 1)
    on_grid = np.bincount(positions % cell, weights=mass, minlength=cell)
    offset = int(np.argmax(on_grid))
    return offset, 1.0 - on_grid[offset] / total


def detect_grid(rgba: np.ndarray, max_cell: int | None = None) -> Grid | None:
    """Find the pixel grid of upscaled pixel art, or None when the picture has none.

    Edges between neighbouring pixels are counted per column and per row boundary. A grid of cell c and
    offset o explains the edges at positions ≡ o (mod c); the largest square cell (≥ 2) that explains all
    but OFF_GRID_TOLERANCE of them on both axes wins, so a few noisy pixels do not hide the grid.
    """
    height, width = rgba.shape[:2]
    limit = min(height, width) // 4 if max_cell is None else max_cell
    mass_x, mass_y = _edge_mass(rgba, 1), _edge_mass(rgba, 0)
    if mass_x.sum() + mass_y.sum() == 0:
        return None
    for cell in range(limit, 1, -1):
        offset_x, off_x = _best_offset(mass_x, cell)
        offset_y, off_y = _best_offset(mass_y, cell)
        if off_x <= OFF_GRID_TOLERANCE and off_y <= OFF_GRID_TOLERANCE:
            return Grid(cell, offset_x, offset_y)
    return None


def forced_grid(rgba: np.ndarray, cell: int) -> Grid | None:
    """A grid of the given cell size (≥ 1; 1 keeps every pixel), aligned where the edges say."""
    if cell < 1 or cell > min(rgba.shape[:2]):
        raise SpriteForgeError(f"--pixel-size {cell}: must be from 1 to the picture's shorter side ({min(rgba.shape[:2])})")
    if cell == 1:
        return Grid(1, 0, 0)
    offset_x, _ = _best_offset(_edge_mass(rgba, 1), cell)
    offset_y, _ = _best_offset(_edge_mass(rgba, 0), cell)
    return Grid(cell, offset_x, offset_y)


def _pack(rgba: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgba, dtype=np.uint8).view(np.uint32)[..., 0]


def _unpack(packed: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(packed, dtype=np.uint32)[..., None].view(np.uint8)


def _row_mode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most common value of each row of [N, K] (ties: the smallest) and its count, vectorised by sorting."""
    ordered = np.sort(values, axis=1)
    starts = np.ones(ordered.shape, bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    index = np.broadcast_to(np.arange(ordered.shape[1]), ordered.shape)
    run_start = np.maximum.accumulate(np.where(starts, index, 0), axis=1)
    run_length = index - run_start
    return ordered[np.arange(len(ordered)), np.argmax(run_length, axis=1)], run_length.max(axis=1) + 1


def sample_grid(rgba: np.ndarray, grid: Grid) -> np.ndarray:
    """One output pixel per whole cell: the cell's most common RGBA, so stray pixels do not win.

    Partial cells at the picture's edges (before the offset, after the last whole cell) are dropped.
    """
    cell = grid.cell
    rows, columns = (rgba.shape[0] - grid.offset_y) // cell, (rgba.shape[1] - grid.offset_x) // cell
    block = _pack(rgba[grid.offset_y : grid.offset_y + rows * cell, grid.offset_x : grid.offset_x + columns * cell])
    cells = block.reshape(rows, cell, columns, cell).transpose(0, 2, 1, 3).reshape(rows * columns, cell * cell)
    mode, _ = _row_mode(cells)
    return _unpack(mode.reshape(rows, columns))


def downscale(rgba: np.ndarray, size: int) -> np.ndarray:
    """Shrink so the longest side is `size` (aspect kept, never enlarged), one block per output pixel.

    Alpha: opaque if at least half of the block is. Colour: the block's most common opaque colour when it
    covers a quarter of the block (flat pixel-art areas keep their exact colour), else the per-channel
    median of its opaque pixels (photos). No bilinear blending anywhere.
    """
    height, width = rgba.shape[:2]
    if max(height, width) <= size:
        return rgba.copy()
    out_h = max(1, round(height * size / max(height, width)))
    out_w = max(1, round(width * size / max(height, width)))
    ys = (np.arange(out_h) * height) // out_h
    xs = (np.arange(out_w) * width) // out_w
    block_h, block_w = -(-height // out_h), -(-width // out_w)
    rows = np.minimum(ys[:, None] + np.arange(block_h), height - 1)
    columns = np.minimum(xs[:, None] + np.arange(block_w), width - 1)
    blocks = rgba[rows[:, None, :, None], columns[None, :, None, :]]  # [out_h, out_w, bh, bw, 4]
    blocks = blocks.reshape(out_h * out_w, block_h * block_w, 4)
    opaque = blocks[..., 3] >= 128
    keep = opaque.mean(axis=1) >= 0.5
    packed = np.where(opaque, _pack(blocks), np.uint32(0xFFFFFFFF))  # transparent never wins the mode
    mode, count = _row_mode(packed)
    mode_rgba = _unpack(mode)
    flat = (count >= blocks.shape[1] / 4) & (mode != 0xFFFFFFFF)
    median = np.zeros((len(blocks), 3), np.float32)
    whole = opaque.all(axis=1)  # the common case; nanmedian (slow) only for blocks on the silhouette's edge
    median[whole] = np.median(blocks[whole][..., :3], axis=1)
    mixed = ~whole & keep & ~flat
    if mixed.any():
        colour = np.where(opaque[mixed][..., None], blocks[mixed][..., :3].astype(np.float32), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median[mixed] = np.nanmedian(colour, axis=1)
    out = np.zeros((out_h * out_w, 4), np.uint8)
    out[:, :3] = np.where(flat[:, None], mode_rgba[:, :3], np.nan_to_num(np.round(median)).astype(np.uint8))
    out[:, 3] = 255
    out[~keep] = 0
    return out.reshape(out_h, out_w, 4)


# -- colour ---------------------------------------------------------------------------------------
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 [..., 3] → CIELAB (D65): distances there follow what the eye sees, unlike RGB."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _RGB_TO_XYZ.T) / _WHITE_D65
    delta = 6 / 29
    f = np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """[N, K] squared Euclidean distances as |p|² - 2 p·c + |c|² (one matrix product, no [N, K, 3] temporary)."""
    distances = (points**2).sum(axis=1)[:, None] - 2 * points @ centres.T + (centres**2).sum(axis=1)[None, :]
    return np.maximum(distances, 0)


def kmeans_palette(colours: np.ndarray, weights: np.ndarray, count: int, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Pick ≤ `count` palette colours from distinct colours [N, 3] weighted by pixel counts.

    Weighted k-means in CIELAB with k-means++ seeding from a fixed seed (same input, same palette).
    Each palette entry is the member colour closest to its cluster's centre, so colours the picture
    already uses exactly (a sprite's own palette) survive unchanged. Sorted dark to light.
    """
    colours = np.asarray(colours, np.uint8).reshape(-1, 3)
    if len(colours) <= count:
        return colours[np.argsort(rgb_to_lab(colours)[:, 0], kind="stable")]
    lab = rgb_to_lab(colours)
    weights = np.asarray(weights, np.float64)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.choice(len(lab), p=weights / weights.sum()))]
    nearest = _squared_distances(lab, lab[chosen])[:, 0]
    while len(chosen) < count:
        pull = weights * nearest
        if pull.sum() <= 0:
            break
        chosen.append(int(rng.choice(len(lab), p=pull / pull.sum())))
        nearest = np.minimum(nearest, _squared_distances(lab, lab[chosen[-1:]])[:, 0])
    centres = lab[chosen]
    for _ in range(iterations):
        assignment = np.argmin(_squared_distances(lab, centres), axis=1)
        totals = np.bincount(assignment, weights=weights, minlength=len(centres))
        moved = centres.copy()
        for axis in range(3):
            sums = np.bincount(assignment, weights=weights * lab[:, axis], minlength=len(centres))
            moved[:, axis] = np.where(totals > 0, sums / np.maximum(totals, 1e-12), centres[:, axis])
        if np.allclose(moved, centres, atol=1e-6):
            break
        centres = moved
    assignment = np.argmin(_squared_distances(lab, centres), axis=1)
    chosen = []
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment == cluster)
        chosen.append(colours[members[np.argmin(_squared_distances(lab[members], centres[cluster : cluster + 1])[:, 0])]])
    palette = np.array(chosen, np.uint8)
    return palette[np.argsort(rgb_to_lab(palette)[:, 0], kind="stable")]


def apply_palette(rgba: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Replace every opaque colour by its nearest palette colour in CIELAB; transparency untouched."""
    out = rgba.copy()
    opaque = out[..., 3] == 255
    if not opaque.any():
        return out
    colours, inverse = np.unique(out[opaque][:, :3], axis=0, return_inverse=True)
    nearest = np.argmin(_squared_distances(rgb_to_lab(colours), rgb_to_lab(palette)), axis=1)
    out[opaque, :3] = np.asarray(palette, np.uint8)[nearest][inverse.reshape(-1)]
    return out


def quantize(rgba: np.ndarray, colours: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Limit the opaque pixels to ≤ `colours` distinct colours (k-means in CIELAB); returns image and palette."""
    opaque = rgba[..., 3] == 255
    if not opaque.any():
        return rgba.copy(), np.zeros((0, 3), np.uint8)
    distinct, counts = np.unique(rgba[opaque][:, :3], axis=0, return_counts=True)
    palette = kmeans_palette(distinct, counts, colours, seed=seed)
    return apply_palette(rgba, palette), palette


SAMPLE_COLOURS = 32
"""Colours per sampled sprite (the training sprites have 27–36 on average: TinyHero 35.6, RPG Maker 2000 26.7, XP 33.1)."""


def pixel_art_samples(images: np.ndarray, colours: int = SAMPLE_COLOURS, seed: int = 0) -> np.ndarray:
    """A sampler's uint8 RGBA output [N, H, W, 4] made valid sprites: alpha binarised, each sprite's opaque
    colours reduced to `colours` (k-means in CIELAB; 0 keeps them)."""
    images = np.stack([binarize_alpha(image) for image in images]) if len(images) else images
    if colours:
        images = np.stack([quantize(image, colours, seed=seed)[0] for image in images])
    return images


# -- silhouette -----------------------------------------------------------------------------------
def _neighbour_stack(rgba: np.ndarray) -> np.ndarray:
    """The 8 neighbours of every pixel, [8, H, W, 4]; outside the picture counts as transparent."""
    padded = np.pad(rgba, ((1, 1), (1, 1), (0, 0)))
    height, width = rgba.shape[:2]
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    return np.stack([padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in shifts])


def clean_pixels(rgba: np.ndarray) -> np.ndarray:
    """Remove stray specks and fill pinholes, the noise a generator or a downscale leaves behind.

    Exact rule, one pass, on the 8-neighbourhood (outside the picture is transparent):
    * an opaque pixel with no opaque neighbour becomes transparent;
    * a transparent pixel whose 8 neighbours are all opaque takes their most common colour.
    Single pixels of a different colour inside the silhouette (eyes, highlights) are kept on purpose.
    """
    neighbours = _neighbour_stack(rgba)
    opaque_neighbours = (neighbours[..., 3] == 255).sum(axis=0)
    out = rgba.copy()
    out[(rgba[..., 3] == 255) & (opaque_neighbours == 0)] = 0
    holes = (rgba[..., 3] == 0) & (opaque_neighbours == 8)
    if holes.any():
        mode, _ = _row_mode(_pack(neighbours.transpose(1, 2, 0, 3))[holes])
        out[holes] = _unpack(mode)
    return out


def add_outline(rgba: np.ndarray, colour: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """Paint `colour` on every transparent pixel 4-adjacent to the silhouette (a 1-px outline, same size)."""
    opaque = rgba[..., 3] == 255
    touching = np.zeros_like(opaque)
    touching[1:] |= opaque[:-1]
    touching[:-1] |= opaque[1:]
    touching[:, 1:] |= opaque[:, :-1]
    touching[:, :-1] |= opaque[:, 1:]
    out = rgba.copy()
    out[touching & ~opaque] = (*np.asarray(colour, np.uint8)[:3], 255)
    return out


def darkest(palette: np.ndarray) -> np.ndarray:
    """The palette's darkest colour (lowest L*): the outline uses it so no colour is added."""
    return np.asarray(palette, np.uint8)[np.argmin(rgb_to_lab(palette)[:, 0])]


# -- the whole step -------------------------------------------------------------------------------
@dataclass
class Pixelated:
    image: np.ndarray
    palette: np.ndarray
    grid: Grid | None
    source_size: tuple[int, int]
    reduced_by: int = 1
    """The loader's integer reduction of a huge picture (1: read as is)."""

    def describe(self) -> str:
        height, width = self.image.shape[:2]
        how = (f"pixel grid {self.grid.cell}px at offset ({self.grid.offset_x}, {self.grid.offset_y})" if self.grid
               else "no pixel grid found, mode/median downscale")
        source = f"{self.source_size[1]}x{self.source_size[0]}"
        if self.reduced_by > 1:
            source += f" (read at 1/{self.reduced_by}: over {imageio.MAX_SIDE} px)"
        return f"{source} -> {width}x{height} ({how}), {len(self.palette)} colours"


def pixelate(rgba: np.ndarray, size: int = 64, colours: int = 16, palette: np.ndarray | None = None, clean: bool = False,
             outline: bool = False, background: str | None = None, seed: int = 0, scale: int = 1,
             pixel_size: int | None = None) -> Pixelated:
    """Turn a picture (uint8 RGBA) into clean pixel art: background, alpha, grid or downscale, palette, clean-up.

    `scale`: the upscale it will be written at; an output over imageio.MAX_OUTPUT_PIXELS is refused early.

    With a grid, the result has one pixel per art pixel whatever `size`; without one, the longest side
    becomes `size`. `palette` ([N, 3]) replaces k-means (then `colours` is not used). `outline` cleans too.
    `pixel_size` forces the grid's cell (in picture pixels; its offset is still found from the edges)
    instead of detecting it, for art whose grid detection fails or picks a multiple.
    """
    source_size = rgba.shape[:2]
    if background == "auto":
        rgba = remove_background(rgba)
    rgba = binarize_alpha(rgba)
    grid = detect_grid(rgba) if pixel_size is None else forced_grid(rgba, pixel_size)
    small = sample_grid(rgba, grid) if grid else downscale(rgba, size)
    imageio.check_output_size(small.shape[0] * scale, small.shape[1] * scale)  # before the palette work
    if palette is not None:
        palette = np.asarray(palette, np.uint8).reshape(-1, 3)
        small = apply_palette(small, palette)
    else:
        small, palette = quantize(small, colours, seed=seed)
    if clean or outline:
        small = clean_pixels(small)
    if outline and len(palette):
        small = add_outline(small, darkest(palette))
    return Pixelated(small, palette, grid, source_size)


def palette_option(palette_file: str | Path | None, indexed: bool) -> np.ndarray | None:
    """`--palette FILE` read and checked against `--indexed` (None without a file)."""
    palette = read_palette(palette_file) if palette_file else None
    if indexed and palette is not None and len(palette) > 255:
        raise SpriteForgeError(f"{palette_file}: {len(palette)} colours do not fit an indexed PNG (255 at most)")
    return palette


def save_pixelated(result: Pixelated, out: str | Path, reduced_by: int = 1, indexed: bool = False, scale: int = 1,
                   palette: np.ndarray | None = None) -> Path:
    """Note the loader's reduction of a huge picture in `result`, then write a lossless PNG (RGBA, or
    P-mode with `indexed`, its palette in the given file's order when there is one)."""
    if reduced_by > 1:
        height, width = result.source_size
        result.source_size = (height * reduced_by, width * reduced_by)
        result.reduced_by = reduced_by
    if indexed:
        return imageio.save_indexed_png(result.image, out, scale=scale, palette=palette if palette is not None else result.palette)
    return imageio.save_png(result.image, out, scale=scale)
