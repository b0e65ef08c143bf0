"""Speed of the sampling family (dcgan, cdcgan, wgan-gp): ms per training step, images/s, peak memory.

One training step = one `train_step` call: a discriminator/critic update, plus the generator update
on the steps where it happens (every step for dcgan/cdcgan, every --d-steps = 5th for wgan-gp, so
run a multiple of 5 steps to average over whole cycles). Batch = characters; images = 4 × batch.
Each model is measured in its own process so the CPU peak (max RSS) is its own.
Usage: python benchmarks/sampling.py [--steps 5] [--batch 16] [--image-size 64] [--models dcgan cdcgan wgan-gp]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from spriteforge.models import model_class
from spriteforge.options import resolve

MODELS = ("dcgan", "cdcgan", "wgan-gp")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, batch: int, steps: int, image_size: int, device: torch.device) -> dict:
    cls = model_class(name)
    config = resolve(name, cls.uses, cls.defaults, {"batch": batch, "steps": 1000, "image_size": image_size})
    torch.manual_seed(0)
    model = cls(config, 4, 4, image_size).to(device)
    characters = torch.rand(batch, 4, 4, image_size, image_size, device=device) * 2 - 1
    model.train_step(characters, 0, 0.0)  # warm-up (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        model.train_step(characters, step, step / 1000)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parameters = sum(p.numel() for p in model.parameters())
    return {"model": name, "device": device.type, "ms_per_step": seconds * 1000, "images_per_s": 4 * batch / seconds,
            "peak_mib": memory, "parameters": parameters, "d_steps": config.d_steps}


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
