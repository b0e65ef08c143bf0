"""Speed of the sampling family (dcgan, cdcgan, wgan-gp, biggan, deep-biggan): ms per training step, images/s, peak memory.

One training step = one `train_step` call: a discriminator/critic update, plus the generator update
on the steps where it happens (every step for dcgan/cdcgan/biggan, every --d-steps = 5th for wgan-gp,
so run a multiple of 5 steps to average over whole cycles). Batch = characters; images = 4 × batch.
biggan and deep-biggan run with their defaults file (widths 32, EMA, orthogonal penalty) at
base 4 × 4 and log2(image size / 4) up-sampling layers; their parameters are G + D (not the EMA copy).
Each model is measured in its own process so the CPU peak (max RSS) is its own.
Usage: python benchmarks/sampling.py [--steps 5] [--batch 16] [--image-size 64] [--models dcgan cdcgan wgan-gp biggan deep-biggan]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from common import build, time_training

MODELS = ("dcgan", "cdcgan", "wgan-gp", "biggan", "deep-biggan")


def measure(name: str, batch: int, steps: int, image_size: int, device: torch.device) -> dict:
    if name in ("biggan", "deep-biggan"):  # image size = 4 × 2^layers
        model = build(name, device, batch=batch, upsample_layers=(image_size // 4).bit_length() - 1)
    else:
        model = build(name, device, image_size=image_size, batch=batch)
    characters = torch.rand(batch, 4, 4, image_size, image_size, device=device) * 2 - 1
    row = time_training(model, characters, steps, device)
    parameters = sum(p.numel() for key, network in model.networks().items() if key != "generator_ema" for p in network.parameters())
    return {"model": name, "device": device.type, "ms_per_step": row["ms_per_step"], "images_per_s": 4 * row["images_per_s"],
            "peak_mib": row["peak_mib"], "parameters": parameters, "d_steps": model.config.d_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="characters per batch (images = 4 × batch)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.batch, args.steps, args.image_size, torch.device(args.device))))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"batch {args.batch} characters = {4 * args.batch} images of {args.image_size}², {args.steps} timed steps after 1 warm-up,"
          f" torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | device | ms / step | images / s | peak memory (MiB) | parameters | critic steps per G step |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for device in devices:
        for name in args.models:
            command = [sys.executable, __file__, "--one", name, "--device", device, "--steps", str(args.steps),
                       "--batch", str(args.batch), "--image-size", str(args.image_size)]
            row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            print(f"| {row['model']} | {row['device']} | {row['ms_per_step']:.0f} | {row['images_per_s']:.1f} |"
                  f" {row['peak_mib']:.0f}{' (max RSS)' if device == 'cpu' else ''} | {row['parameters']:,} | {row['d_steps']} |")


if __name__ == "__main__":
    main()
