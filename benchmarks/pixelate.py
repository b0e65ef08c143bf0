"""Latency of `spriteforge pixelate` per image: file in, PNG out, for photos and upscaled sprites.

Photos (no pixel grid) take the mode/median downscale; sprites upscaled with nearest-neighbour take
the grid path. Prints a Markdown table (median of --repeats runs, after one warm-up run).
Usage: OMP_NUM_THREADS=1 python benchmarks/pixelate.py [--repeats 5] [--size 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from spriteforge import imageio
from spriteforge.data.synthetic import generate_characters
from spriteforge.pixelating import pixelate_file


def photo(side: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: tens of thousands of colours and no grid, like a real photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    rgb = np.stack([np.sin(6 * x + 1) * 100 + 128, np.cos(5 * y) * 100 + 128, (x + y) * 120], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    return np.dstack([rgb, np.full((side, side), 255, np.uint8)])


def sprite(side: int) -> np.ndarray:
    """A 64x64 synthetic sprite upscaled by side/64 (4 or 16): pixel art with a grid to find."""
    return imageio.upscale(generate_characters(1, seed=0, size=64)[0, 2], side // 64)


def time_once(source: Path, out: Path, colours: int, size: int) -> tuple[float, str]:
    start = time.perf_counter()
    result = pixelate_file(source, out, size=size, colours=colours)
    return (time.perf_counter() - start) * 1000, result.describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    print("| input | side | colours | ms per image (median) | result |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for kind, make in (("photo", photo), ("upscaled sprite", sprite)):
            for side in (256, 1024):
                source = imageio.save_png(make(side), folder / f"{kind}-{side}.png")
                for colours in (16, 32):
                    time_once(source, folder / "out.png", colours, args.size)  # warm-up
                    runs = [time_once(source, folder / "out.png", colours, args.size) for _ in range(args.repeats)]
                    median = statistics.median(ms for ms, _ in runs)
                    print(f"| {kind} | {side}x{side} | {colours} | {median:.1f} | {runs[0][1]} |", flush=True)


if __name__ == "__main__":
    main()
