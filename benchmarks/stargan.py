"""Speed of paired StarGAN: ms per training step, images/s and peak memory; translate latency.

Runs on the machine it is started on (CPU, and the GPU too when one is present) and prints a
Markdown table. Usage: python benchmarks/stargan.py [--steps 5] [--capacities 1 4] [--batch 4]
"""

from __future__ import annotations

import argparse

import torch

from common import build, devices, machine_line, time_calls, time_training


def translate_latency(capacity: int, device: torch.device, repeats: int) -> float:
    """Milliseconds to draw the three missing views of one character from its front view."""
    model = build("stargan-paired", device, capacity=capacity).eval()
    views = torch.rand(1, 4, 4, 64, 64, device=device) * 2 - 1
    available = torch.tensor([[False, False, True, False]], device=device)

    @torch.no_grad()
    def once():
        for target in (0, 1, 3):
            model.impute(views, available, torch.tensor([target], device=device))

    return time_calls(once, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--capacities", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=10, help="translate repetitions")
    args = parser.parse_args()
    print(machine_line())
    print()
    print("| device | capacity | batch | λgp | ms/step | images/s | peak memory (MiB) | translate ms/character |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for device in devices():
        for capacity in args.capacities:
            for gp in (10.0, 0.0):
                model = build("stargan-paired", device, capacity=capacity, lambda_gp=gp)
                row = time_training(model, torch.rand(args.batch, 4, 4, 64, 64, device=device) * 2 - 1, args.steps, device)
                latency = translate_latency(capacity, device, args.repeats) if gp else float("nan")
                print(f"| {device.type} | {capacity} | {args.batch} | {gp:g} | {row['ms_per_step']:.0f} | {row['images_per_s']:.2f} | "
                      f"{row['peak_mib']:.0f} | {latency:.1f} |", flush=True)
    print()
    print("CPU peak memory is the process's maximum resident set size so far (it only grows down the table).")


if __name__ == "__main__":
    main()
