"""Speed of MUNIT and ReMIC: ms per training step, images/s and peak memory; translate latency.

Runs on the machine it is started on (CPU, and the GPU too when one is present) and prints a Markdown
table. The default --feature-maps 64 is the reference architecture (MUNIT: 60.1M generator + 33.1M
discriminator parameters; ReMIC 62.9M + 33.1M); smaller widths show how the cost scales.
Usage: python benchmarks/munit_remic.py [--steps 3] [--batch 4] [--feature-maps 64 16] [--models munit remic]
"""

from __future__ import annotations

import argparse

import torch

from common import build, devices, machine_line, time_calls, time_training


@torch.no_grad()
def translate_latency(name: str, device: torch.device, repeats: int, styles: int, **given) -> float:
    """Milliseconds to draw the three missing views of one character from its front view, `styles` times
    (the first with the encoded style, the others sampled: `translate --styles K`)."""
    model = build(name, device, **given).eval()
    views = torch.rand(1, 4, 4, 64, 64, device=device) * 2 - 1
    available = torch.tensor([[False, False, True, False]], device=device)
    sampled = [None] + [torch.randn(1, model.style_size, device=device) for _ in range(styles - 1)]

    def once():
        for style in sampled:
            for target in (0, 1, 3):
                model.impute(views, available, torch.tensor([target], device=device), style=style)

    return time_calls(once, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--feature-maps", type=int, nargs="+", default=[64])
    parser.add_argument("--models", nargs="+", default=["munit", "remic"])
    parser.add_argument("--repeats", type=int, default=5, help="translate repetitions")
    args = parser.parse_args()
    print(machine_line())
    print()
    print("| device | model | feature-maps | batch | ms/step | images/s | peak memory (MiB) | translate ms (3 views) | translate ms (--styles 4) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for device in devices():
        for name in args.models:
            for width in args.feature_maps:
                model = build(name, device, feature_maps=width, batch=args.batch)
                row = time_training(model, torch.rand(args.batch, 4, 4, 64, 64, device=device) * 2 - 1, args.steps, device)
                del model
                one = translate_latency(name, device, args.repeats, 1, feature_maps=width)
                four = translate_latency(name, device, args.repeats, 4, feature_maps=width)
                print(f"| {device.type} | {name} | {width} | {args.batch} | {row['ms_per_step']:.0f} | {row['images_per_s']:.2f} | "
                      f"{row['peak_mib']:.0f} | {one:.1f} | {four:.1f} |", flush=True)
    print()
    print("images/s counts characters (all four views each) per second. CPU peak memory is the process's maximum")
    print("resident set size so far (it only grows down the table); GPU peak memory is per row.")


if __name__ == "__main__":
    main()
