"""Drawing speed of every imputation model: ms per character and the share of this CPU's matmul peak.

Each model draws the three missing views of 64 procedural characters from their front view, through
`drawing.draw_characters` (what `spriteforge translate` runs: batched across characters, model loaded
once, inference mode), freshly initialised at its defaults with `--capacity` (1) where it has one
(`default`: the bundled, trained model).
Its FLOPs are counted with torch.utils.flop_counter on one batch and set against a 1024³ fp32 matmul
timed in the same process with the same threads: the median of `--repeats` drawings against the best
of the matmuls timed between them. Each model runs in a fresh process, the way a command
starts: with `devices.keep_freed_memory` as commands call it, or without it (`--system-malloc`, the before).
`--dataset NAME` draws that dataset's first test characters instead (real sprites have larger palettes
than the procedural ones, and palette snapping costs more: 8.3 against 3.7 ms per character before stop 36).

    OMP_NUM_THREADS=1 python benchmarks/drawing.py [--models default stargan-paired collagan …] [--batch 32] [--dataset all] [--system-malloc]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from common import build, flop_counter, machine_line, matmul_gflops
from spriteforge.data.loading import load_data
from spriteforge.data.synthetic import generate_characters
from spriteforge.devices import keep_freed_memory
from spriteforge.drawing import draw_characters
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class

IMPUTERS = ("default", "stargan-paired", "stargan-unpaired", "collagan", "munit", "remic", "yamata", "turnaround")


def measure(name: str, args) -> dict:
    if not args.system_malloc:
        keep_freed_memory()
    if name == "default":
        from spriteforge.inference import load_for_inference

        model, config = load_for_inference("default", "cpu")
    else:
        model = build(name, torch.device("cpu"), **({"capacity": args.capacity} if "capacity" in model_class(name).uses else {}))
        model.eval()
        config = model.config
    if args.dataset:
        characters = load_data([args.dataset]).test.images[: args.characters]
    else:
        characters = generate_characters(args.characters, seed=3, size=64)
    available = np.zeros((len(characters), 4), bool)
    available[:, 2] = True  # the front given, back, left and right drawn
    with torch.inference_mode():
        with flop_counter() as counter:
            draw_characters(model, config, characters[: args.batch], available[: args.batch], batch=args.batch)
        gflop = counter.get_total_flops() / 1e9 / min(args.batch, len(characters))
        draw_characters(model, config, characters[: args.batch], available[: args.batch], batch=args.batch)  # warm-up
        times, peaks = [], []
        for _ in range(args.repeats):  # the matmul timed between drawings: both see the machine as it is then
            peaks.append(matmul_gflops())
            start = time.perf_counter()
            draw_characters(model, config, characters, available, batch=args.batch)
            times.append((time.perf_counter() - start) / len(characters))
        peaks.append(matmul_gflops())
    # the median drawing against the best matmul: a busy moment cannot flatter the share
    return {"gflop": gflop, "ms": float(np.median(times)) * 1000, "peak": max(peaks), "characters": len(characters)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(IMPUTERS), choices=IMPUTERS)
    parser.add_argument("--batch", type=int, default=32, help="characters per generator call")
    parser.add_argument("--characters", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed drawings of all the characters; the median counts")
    parser.add_argument("--capacity", type=int, default=1, help="capacity of the freshly built models (the bundled default keeps its own)")
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's allocator as it is")
    parser.add_argument("--dataset", default=None, help="draw the first --characters test characters of this dataset (e.g. all) instead of procedural ones")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # measure one model in this process
    args = parser.parse_args()
    if args.dataset and not args.one:  # a wrong name is one line here, not an error row per model
        try:
            load_data([args.dataset])  # also extracts it once, before the models' processes read it
        except SpriteForgeError as error:
            parser.error(str(error))
    if args.one:
        print(json.dumps(measure(args.one, args)))
        return
    print(machine_line() + f"; freed memory kept for reuse: {'no' if args.system_malloc else 'yes'}")
    print()
    print("| model | GFLOP/character (3 views) | ms/character | GFLOP/s | matmul GFLOP/s (same process) | share of the peak | characters |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        command = [sys.executable, __file__, "--one", name, "--batch", str(args.batch), "--characters", str(args.characters),
                   "--capacity", str(args.capacity), "--repeats", str(args.repeats)]
        command += ["--dataset", args.dataset] if args.dataset else []
        command += ["--system-malloc"] if args.system_malloc else []
        result = subprocess.run(command, capture_output=True, text=True, env=os.environ)
        if result.returncode:
            print(f"| {name} | error: {(result.stderr.strip().splitlines() or ['?'])[-1][:80]} | | | | | |")
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rate = row["gflop"] / (row["ms"] / 1000)
        print(f"| {name} | {row['gflop']:.2f} | {row['ms']:.1f} | {rate:.0f} | {row['peak']:.0f} | {rate / row['peak']:.0%} | {row['characters']} |", flush=True)


if __name__ == "__main__":
    main()
