"""Speed of YamataGAN (the joint 4-view model): ms per training step, images/s, peak memory; translate latency.

Runs on the machine it is started on (CPU, and the GPU too when one is present) and prints a
Markdown table. One training step = one generator pass (all four views of every character), two
discriminator passes for D's update and one for G's. Usage:
python benchmarks/yamata.py [--steps 3] [--capacities 1 2] [--batch 4]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from collagan import sprite_batch
from common import build, devices, machine_line, time_calls, time_training

from spriteforge import imageio
from spriteforge.drawing import draw_characters


def translate_latency(capacity: int, device: torch.device, repeats: int) -> tuple[float, float]:
    """Milliseconds for `translate`'s drawing from the front view alone (uint8 in, the joint pass,
    alpha binarised, uint8 out), and for the bare joint pass that draws every missing view at once."""
    model = build("yamata", device, capacity=capacity).eval()
    views = sprite_batch(1, device)
    character = imageio.to_uint8(views[0])[None]
    character[:, [0, 1, 3]] = 0
    kept = np.array([[False, False, True, False]])
    available = torch.from_numpy(kept).to(device)
    translate = time_calls(lambda: draw_characters(model, model.config, character, kept, device=device), repeats, device)
    joint = time_calls(lambda: model.impute_all(views, available), repeats, device)
    return translate, joint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--capacities", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="translate repetitions")
    args = parser.parse_args()
    print(machine_line())
    print()
    print("| device | capacity | batch | ms/step | images/s | peak memory (MiB) | translate ms (front → 3 views) | one joint pass ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for device in devices():
        for capacity in args.capacities:
            model = build("yamata", device, capacity=capacity)
            row = time_training(model, sprite_batch(args.batch, device), args.steps, device)
            translate, joint = translate_latency(capacity, device, args.repeats)
            print(f"| {device.type} | {capacity} | {args.batch} | {row['ms_per_step']:.0f} | {row['images_per_s']:.2f} | "
                  f"{row['peak_mib']:.0f} | {translate:.1f} | {joint:.1f} |", flush=True)
    print()
    print("images/s counts characters (4-view tuples) per second. CPU peak memory is the process's maximum")
    print("resident set size so far (it only grows down the table).")


if __name__ == "__main__":
    main()
