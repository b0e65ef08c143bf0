"""Speed of the autoencoder: ms per training step, images/s, peak memory; denoise latency.

Training: one `train_step` (encode, decode, MSE, Adam) on `--batch` characters = 4 × batch images.
Denoise: encode → decode of one sprite and of 64 at once (model only, ms per sprite), and the
whole `spriteforge denoise` path for 16 PNG files (load, check, model, alpha rule, write), from a
checkpoint of a freshly initialised model (speed does not depend on training).
Usage: python benchmarks/autoencoder.py [--steps 5] [--batch 25] [--feature-maps 64 16] [--repeats 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import build, devices, machine_line, synchronize, time_calls, time_training

from spriteforge import imageio
from spriteforge.denoising import denoise_files
from spriteforge.training import checkpoint as ckpt


def reconstruct_ms_per_sprite(model, count: int, device: torch.device, repeats: int) -> float:
    images = torch.rand(count, 4, 64, 64, device=device) * 2 - 1
    return time_calls(lambda: model.reconstruct(images), repeats, device) / count


def denoise_files_ms_per_sprite(model, device: torch.device, count: int = 16) -> float:
    """The command's path from PNG files to PNG files, per sprite (one warm-up call first)."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model.prior.fit(torch.rand(8, model.latent_size))
        path = ckpt.save_checkpoint(scratch / "model.safetensors", model, 0, include_training_state=False, networks=model.inference_networks)
        rng = np.random.default_rng(0)
        for index in range(count):
            image = np.zeros((64, 64, 4), np.uint8)
            image[16:48, 20:44] = np.concatenate([rng.integers(0, 256, (32, 24, 3)), np.full((32, 24, 1), 255)], -1)
            imageio.save_png(image, scratch / "in" / f"{index}.png")
        denoise_files(path, [scratch / "in"], scratch / "out", device=device.type)
        synchronize(device)
        start = time.perf_counter()
        denoise_files(path, [scratch / "in"], scratch / "out", device=device.type)
        synchronize(device)
        return (time.perf_counter() - start) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=25, help="characters per batch (images = 4 × batch; the notebook: 25)")
    parser.add_argument("--feature-maps", type=int, nargs="+", default=[64, 16])
    parser.add_argument("--repeats", type=int, default=10, help="repetitions of the latency measurements")
    args = parser.parse_args()
    print(machine_line())
    print(f"64×64 RGBA, latent 40, batch {args.batch} characters = {4 * args.batch} images, {args.steps} timed steps after 1 warm-up\n")
    print("| device | feature maps | parameters | ms / step | images / s | peak memory (MiB) | denoise ms/sprite (1 / 64 at once) | denoise files ms/sprite (16 PNGs) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for device in devices():
        for feature_maps in args.feature_maps:
            model = build("autoencoder", device, feature_maps=feature_maps, batch=args.batch)
            characters = torch.rand(args.batch, 4, 4, 64, 64, device=device) * 2 - 1
            row = time_training(model, characters, args.steps, device)
            model.eval()
            single = reconstruct_ms_per_sprite(model, 1, device, args.repeats)
            batched = reconstruct_ms_per_sprite(model, 64, device, max(1, args.repeats // 4))
            files = denoise_files_ms_per_sprite(model, device)
            parameters = sum(p.numel() for p in model.parameters())
            print(f"| {device.type} | {feature_maps} | {parameters:,} | {row['ms_per_step']:.0f} | {4 * row['images_per_s']:.1f} | "
                  f"{row['peak_mib']:.0f}{' (max RSS)' if device.type == 'cpu' else ''} | {single:.1f} / {batched:.2f} | {files:.1f} |", flush=True)
    print()
    print("CPU peak memory is the process's maximum resident set size so far (it only grows down the table).")


if __name__ == "__main__":
    main()
