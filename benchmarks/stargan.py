"""Speed of paired StarGAN: ms per training step, images/s and peak memory; translate latency.

Runs on the machine it is started on (CPU, and the GPU too when one is present) and prints a
Markdown table. Usage: python benchmarks/stargan.py [--steps 5] [--capacities 1 4] [--batch 4]
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
    cls = model_class("stargan-paired")
    config = resolve("stargan-paired", cls.uses, cls.defaults, {"capacity": capacity, **given})
    torch.manual_seed(0)
    return cls(config, 4, 4, 64).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(capacity: int, batch: int, steps: int, device: torch.device, **given) -> dict:
    model = build(capacity, device, **given)
    images = torch.rand(batch, 4, 4, 64, 64, device=device) * 2 - 1
    model.train_step(images, 0, 0.0)  # warm-up (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        model.train_step(images, step, 0.0)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_cpu_memory_mib()
    return {"ms_per_step": seconds * 1000, "images_per_s": batch / seconds, "peak_mib": memory}


@torch.no_grad()
def bench_translate(capacity: int, device: torch.device, repeats: int) -> float:
    """Milliseconds to draw the three missing views of one character from its front view."""
    model = build(capacity, device).eval()
    views = torch.rand(1, 4, 4, 64, 64, device=device) * 2 - 1
    available = torch.tensor([[False, False, True, False]], device=device)
    def once():
        for target in (0, 1, 3):
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
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--capacities", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=10, help="translate repetitions")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    print()
    print("| device | capacity | batch | λgp | ms/step | images/s | peak memory (MiB) | translate ms/character |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for device in devices:
        for capacity in args.capacities:
            for gp in (10.0, 0.0):
                row = bench_training(capacity, args.batch, args.steps, device, lambda_gp=gp)
                latency = bench_translate(capacity, device, args.repeats) if gp else float("nan")
                print(f"| {device.type} | {capacity} | {args.batch} | {gp:g} | {row['ms_per_step']:.0f} | {row['images_per_s']:.2f} | "
                      f"{row['peak_mib']:.0f} | {latency:.1f} |", flush=True)
    print()
    print("CPU peak memory is the process's maximum resident set size so far (it only grows down the table).")


if __name__ == "__main__":
    main()
