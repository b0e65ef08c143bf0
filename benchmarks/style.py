"""Speed of pixel-art style transfer: ms per training step of cyclegan and pix2pix-pairs, and stylize latency.

Training rows time `train_step` on random batches (A and B images, [batch, 2, 4, size, size]); one
"image" is one A picture (cyclegan also turns one B image back per step). Stylize rows time the whole
command for one file (load, fit, generator, grid snap or downscale, k-means palette, PNG written) with
freshly initialised models (latency does not depend on training). CPU, plus the GPU when present.
Usage: OMP_NUM_THREADS=1 python benchmarks/style.py [--steps 3] [--repeats 3] [--blocks 9]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from common import devices, machine_line, time_calls, time_training
from pixelate import photo
from spriteforge import imageio
from spriteforge.models import model_class
from spriteforge.options import resolve
from spriteforge.inference import load_for_inference
from spriteforge.stylize import stylize_files, stylize_picture
from spriteforge.training import checkpoint as ckpt


def build(name: str, device: torch.device, size: int, **given):
    """A freshly initialised two-domain model (pictures, pixel art), seeded."""
    cls = model_class(name)
    config = resolve(name, cls.uses, cls.defaults, {"steps": 1000, "image_size": size, **given})
    torch.manual_seed(0)
    return cls(config, 2, 4, size).to(device)


def stylize_latency(model, picture: Path, folder: Path, size: int, device: torch.device, repeats: int) -> tuple[float, float]:
    """Mean ms of the whole command on one picture (model loading included), and of one more picture with
    the model loaded (what each further picture of a folder costs), each after a warm-up call."""
    run = folder / model.name
    ckpt.save_checkpoint(run / "models" / "generator.safetensors", model.cpu(), 1, include_training_state=False,
                         networks=model.inference_networks)
    command = lambda: stylize_files(run, [str(picture)], folder / "out.png", size=size, colours=16, device=str(device))
    loaded, _ = load_for_inference(run, device, stylize=True)
    one_picture = lambda: stylize_picture(loaded, imageio.load_image(picture)[0], size, colours=16, device=device)
    return time_calls(command, repeats, device), time_calls(one_picture, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="stylize repetitions")
    parser.add_argument("--blocks", type=int, default=9, help="cyclegan --generator-blocks")
    parser.add_argument("--size", type=int, default=64, help="training image size")
    args = parser.parse_args()
    print(machine_line())
    print()
    print("| device | model | batch | ms/step | images/s | peak memory (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    cases = [("cyclegan", 1, {"generator_blocks": args.blocks}), ("cyclegan", 4, {"generator_blocks": args.blocks}), ("pix2pix-pairs", 4, {})]
    for device in devices():
        for name, batch, given in cases:
            model = build(name, device, args.size, batch=batch, **given)
            row = time_training(model, torch.rand(batch, 2, 4, args.size, args.size, device=device) * 2 - 1, args.steps, device)
            print(f"| {device.type} | {name} | {batch} | {row['ms_per_step']:.0f} | {row['images_per_s']:.2f} | {row['peak_mib']:.0f} |", flush=True)
    print()
    print("| device | model | picture | --size | stylize command ms (one picture) | ms per further picture |")
    print("|---|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for device in devices():
            for name, given in (("cyclegan", {"generator_blocks": args.blocks}), ("pix2pix-pairs", {})):
                model = build(name, torch.device("cpu"), args.size, **given)
                for side in (256, 1024):
                    picture = imageio.save_png(photo(side), folder / f"photo-{side}.png")
                    for size in (args.size, 2 * args.size):
                        command, further = stylize_latency(model, picture, folder, size, device, args.repeats)
                        print(f"| {device.type} | {name} | {side}x{side} | {size} | {command:.0f} | {further:.0f} |", flush=True)


if __name__ == "__main__":
    main()
