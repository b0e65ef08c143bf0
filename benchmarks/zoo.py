"""Speed of the model zoo beyond paired StarGAN: ms per training step, images/s, peak memory, translate latency.

One row per model (unpaired StarGAN, Pix2Pix); runs on CPU, and on the GPU too when one is present.
Usage: python benchmarks/zoo.py [--steps 5] [--batch 4] [--models stargan-unpaired pix2pix]
Timing uses benchmarks/common.py; "images/s" counts generated images of
training steps (one per character of the batch); for unpaired StarGAN, --d-steps 5 means one generator
update every 5 steps: the timed steps are 1..--steps (after a warm-up step 0), so the default 5 includes
exactly one generator update and fewer than 5 time the critic alone.
"""

from __future__ import annotations

import argparse

import torch

from common import build as build_model, time_calls, time_training


def build(name: str, device: torch.device):
    return build_model(name, device)


def bench_training(name: str, batch: int, steps: int, device: torch.device) -> dict:
    return time_training(build(name, device), torch.rand(batch, 4, 4, 64, 64, device=device) * 2 - 1, steps, device)


@torch.no_grad()
def bench_translate(name: str, device: torch.device, repeats: int) -> tuple[float, int]:
    """Milliseconds to draw what the model can from one character's front view (Pix2Pix: only its right view)."""
    model = build(name, device).eval()
    views = torch.rand(1, 4, 4, 64, 64, device=device) * 2 - 1
    available = torch.tensor([[False, False, True, False]], device=device)
    targets = [t for t in (0, 1, 3) if model.can_impute(available, torch.tensor([t], device=device)).all()]

    def once():
        for target in targets:
            model.impute(views, available, torch.tensor([target], device=device))

    return time_calls(once, repeats, device), len(targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--models", nargs="+", default=["stargan-unpaired", "pix2pix"])
    parser.add_argument("--repeats", type=int, default=10, help="translate repetitions")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    print()
    print("| device | model | batch | steps | ms/step | images/s | peak memory (MiB) | translate ms (views drawn) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for device in devices:
        for name in args.models:
            row = bench_training(name, args.batch, args.steps, device)
            latency, drawn = bench_translate(name, device, args.repeats)
            print(f"| {device.type} | {name} | {args.batch} | {args.steps} | {row['ms_per_step']:.0f} | {row['images_per_s']:.2f} | "
                  f"{row['peak_mib']:.0f} | {latency:.1f} ({drawn}) |", flush=True)
    print()
    print("CPU peak memory is the process's maximum resident set size so far (it only grows down the table).")


if __name__ == "__main__":
    main()
