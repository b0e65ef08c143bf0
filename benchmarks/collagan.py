"""Speed of CollaGAN / MDIGAN: ms per training step, images/s and peak memory; translate latency.

Runs on the machine it is started on (CPU, and the GPU too when one is present) and prints a
Markdown table. One training step of the paper's setup = 1 forward + 3 cycle generator passes per
character and both networks' updates; `select, L1 only` (--target-prior select with the adversarial,
domain and cycle weights at 0) skips the discriminator and the cycle. Usage: python benchmarks/collagan.py [--steps 3] [--capacities 1 4] [--batch 4]
"""

from __future__ import annotations

import argparse

import torch

from common import build, devices, machine_line, time_calls, time_training


def sprite_batch(batch: int, device: torch.device) -> torch.Tensor:
    """Blocky few-colour characters (random noise would give thousands of palette colours)."""
    generator = torch.Generator().manual_seed(0)
    colours = torch.rand(batch, 1, 4, 4, 1, 1, generator=generator) * 2 - 1
    codes = torch.randint(4, (batch, 4, 1, 8, 8), generator=generator)
    images = torch.gather(colours.expand(-1, 4, -1, -1, 8, 8), 2, codes.expand(-1, -1, 4, -1, -1).unsqueeze(2)).squeeze(2)
    images = images.repeat_interleave(8, -1).repeat_interleave(8, -2)
    return images.to(device)


def translate_latency(capacity: int, device: torch.device, repeats: int, **given) -> float:
    """Milliseconds to draw the two missing views of one character from its front and left views."""
    model = build("collagan", device, capacity=capacity, **given).eval()
    views = sprite_batch(1, device)
    available = torch.tensor([[False, True, True, False]], device=device)

    @torch.no_grad()
    def once():
        for target in (0, 3):
            model.impute(views, available, torch.tensor([target], device=device))

    return time_calls(once, repeats, device)


SETUPS = {
    "paper": {},
    "paper + palette": {"palette_quantization": True},
    "select, L1 only": {"target_prior": "select", "lambda_adversarial": 0.0, "lambda_domain": 0.0,
                        "lambda_l1_backward": 0.0, "lambda_ssim": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--capacities", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5, help="translate repetitions")
    args = parser.parse_args()
    print(machine_line())
    print()
    print("| device | capacity | batch | setup | ms/step | images/s | peak memory (MiB) | translate ms/character |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for device in devices():
        for capacity in args.capacities:
            for setup, given in SETUPS.items():
                model = build("collagan", device, capacity=capacity, **given)
                row = time_training(model, sprite_batch(args.batch, device), args.steps, device)
                latency = translate_latency(capacity, device, args.repeats, **given)
                print(f"| {device.type} | {capacity} | {args.batch} | {setup} | {row['ms_per_step']:.0f} | "
                      f"{row['images_per_s']:.2f} | {row['peak_mib']:.0f} | {latency:.1f} |", flush=True)
    print()
    print("images/s counts characters (target views) per second. CPU peak memory is the process's maximum")
    print("resident set size so far (it only grows down the table).")


if __name__ == "__main__":
    main()
