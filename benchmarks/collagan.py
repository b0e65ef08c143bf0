"""Speed of CollaGAN / MDIGAN: ms per training step, images/s and peak memory; translate latency.

Runs on the machine it is started on (CPU, and the GPU too when one is present) and prints a
Markdown table. One training step = 1 forward + 3 cycle generator passes per character and both
networks' updates. Usage: python benchmarks/collagan.py [--steps 3] [--capacities 1 4] [--batch 4]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from spriteforge.models import model_class
from spriteforge.options import resolve


def peak_cpu_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(capacity: int, device: torch.device, **given):
    cls = model_class("collagan")
    config = resolve("collagan", cls.uses, cls.defaults, {"capacity": capacity, "steps": 1000, **given})
    torch.manual_seed(0)
    return cls(config, 4, 4, 64).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sprite_batch(batch: int, device: torch.device) -> torch.Tensor:
    """Blocky few-colour characters (random noise would give thousands of palette colours)."""
    generator = torch.Generator().manual_seed(0)
    colours = torch.rand(batch, 1, 4, 4, 1, 1, generator=generator) * 2 - 1
    codes = torch.randint(4, (batch, 4, 1, 8, 8), generator=generator)
    images = torch.gather(colours.expand(-1, 4, -1, -1, 8, 8), 2, codes.expand(-1, -1, 4, -1, -1).unsqueeze(2)).squeeze(2)
    images = images.repeat_interleave(8, -1).repeat_interleave(8, -2)
    return images.to(device)


def bench_training(capacity: int, batch: int, steps: int, device: torch.device, **given) -> dict:
    model = build(capacity, device, **given)
    images = sprite_batch(batch, device)
    model.train_step(images, 0, 0.0)  # warm-up (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        model.train_step(images, step, step / 1000)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_cpu_memory_mib()
    return {"ms_per_step": seconds * 1000, "images_per_s": batch / seconds, "peak_mib": memory}


@torch.no_grad()
def bench_translate(capacity: int, device: torch.device, repeats: int, **given) -> float:
    """Milliseconds to draw the two missing views of one character from its front and left views."""
    model = build(capacity, device, **given).eval()
    views = sprite_batch(1, device)
    available = torch.tensor([[False, True, True, False]], device=device)

    def once():
        for target in (0, 3):
            model.impute(views, available, torch.tensor([target], device=device))

    once()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        once()
    synchronize(device)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--capacities", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5, help="translate repetitions")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    print()
    print("| device | capacity | batch | palette | ms/step | images/s | peak memory (MiB) | translate ms/character |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for device in devices:
        for capacity in args.capacities:
            for palette in (False, True):
                given = {"palette_quantization": palette}
                row = bench_training(capacity, args.batch, args.steps, device, **given)
                latency = bench_translate(capacity, device, args.repeats, **given)
                print(f"| {device.type} | {capacity} | {args.batch} | {'on' if palette else 'off'} | {row['ms_per_step']:.0f} | "
                      f"{row['images_per_s']:.2f} | {row['peak_mib']:.0f} | {latency:.1f} |", flush=True)
    print()
    print("images/s counts characters (target views) per second. CPU peak memory is the process's maximum")
    print("resident set size so far (it only grows down the table).")


if __name__ == "__main__":
    main()
