"""Speed of `spriteforge translate` with the bundled default model: ms per character, model loaded once.

Per character every missing view is drawn (the turnaround model draws all four views in one pass).
Prints GFLOP per character (torch.utils.flop_counter) beside the time of a large fp32 matmul measured
in the same run, so the share of the CPU's peak is read off the table. Real sprites come from the
procedural set (few colours, like real sprites; the palette snapping depends on the colour count).
With `--before`, the turnaround model also draws without speck removal (`remove_specks=False`, before
stop 34), without hole filling either (`fill_holes=False`, before stop 33) and the way it did before stop 31 (the most likely candidate of one pass, `decoding="most-likely"`,
`mirror_average=False`), in the same run.
Usage: OMP_NUM_THREADS=1 python benchmarks/translate_default.py [--model default] [--characters 64] [--before]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from common import flop_counter, machine_line, matmul_gflops
from spriteforge.data.synthetic import generate_characters
from spriteforge.devices import keep_freed_memory
from spriteforge.inference import load_for_inference
from spriteforge.drawing import draw_characters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--characters", type=int, default=64)
    parser.add_argument("--before", action="store_true", help="also time the turnaround model's one-pass most-likely drawing")
    args = parser.parse_args()
    keep_freed_memory()  # as `spriteforge translate` does
    print(machine_line())
    model, config = load_for_inference(args.model, "cpu")
    size = config.image_size
    characters = generate_characters(args.characters, seed=3, size=size)  # uint8 [N, 4, H, W, 4]
    peak = matmul_gflops()
    print(f"fp32 matmul 1024³ in this run: {peak:.1f} GFLOP/s")
    print()
    drawings = [("as shipped", {})]
    if args.before and hasattr(model, "remove_specks"):
        drawings.append(("no speck removal", {"remove_specks": False}))
        drawings.append(("no speck removal, no hole filling", {"remove_specks": False, "fill_holes": False}))
    if args.before and hasattr(model, "mirror_average"):
        drawings.append(("most likely, one pass", {"decoding": "most-likely", "mirror_average": False, "fill_holes": False, "remove_specks": False}))
    print("| drawing | given views | missing | batch | GFLOP/character | ms/character | share of matmul peak |")
    print("|---|---|---:|---:|---:|---:|---:|")
    shipped = {name: getattr(model, name) for name in ("decoding", "mirror_average", "fill_holes", "remove_specks") if hasattr(model, name)}
    for (label, settings), given in ((drawing, given) for given in ([2], [1, 2], [0, 1, 2]) for drawing in drawings):
        for name, value in {**shipped, **settings}.items():
            setattr(model, name, value)
        available = np.zeros((len(characters), 4), bool)
        available[:, given] = True
        for batch in (1, 32):
            one = (characters[:1], available[:1])
            with flop_counter() as counter:
                draw_characters(model, config, *one, batch=1)
            gflop = counter.get_total_flops() / 1e9
            draw_characters(model, config, characters[:batch], available[:batch], batch=batch)  # warm-up
            start = time.perf_counter()
            draw_characters(model, config, characters, available, batch=batch)
            ms = (time.perf_counter() - start) / len(characters) * 1000
            names = "+".join(config.domains[g] for g in given)
            print(f"| {label} | {names} | {4 - len(given)} | {batch} | {gflop:.2f} | {ms:.1f} | {gflop / (ms / 1000) / peak:.0%} |", flush=True)


if __name__ == "__main__":
    main()
