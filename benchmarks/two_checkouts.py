"""Time training steps of two SpriteForge checkouts alternately, in one run, on one machine.

Speed claims need a before and an after measured under the same conditions: machines of one kind
differ by 1.5×, and a shared CPU drifts within minutes. This script runs the same measurement in a
fresh interpreter for checkout A, then B, then A … (`--rounds` times each), so both see the same
drift, and prints the median ms per step of each and the ratio B / A.

    git worktree add /tmp/before <commit>            # e.g. today's main
    python benchmarks/two_checkouts.py /tmp/before . --models stargan-paired collagan --threads 2

Each measurement builds the model from the checkout's own code (its `src/` first on sys.path), seeds
torch, runs one warm-up step and times `--steps` steps of `train_step` on a fixed random batch
(capacity, batch and image size as given), after the process setup its `spriteforge` command makes
(`devices.keep_freed_memory`, where the checkout has it). Options a checkout does not know are an error
for that checkout only, shown in its cell.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

MEASURE = r"""
import contextlib, json, sys, time, torch
torch.set_num_threads({threads})
try:  # the process setup `spriteforge` commands make, in checkouts that have it
    from spriteforge.devices import keep_freed_memory
    keep_freed_memory()
except ImportError:
    pass
from spriteforge.models import model_class
from spriteforge.options import resolve
name, given = {name!r}, json.loads({given!r})
cls = model_class(name)
config = resolve(name, cls.uses, cls.defaults, {{"steps": 1000, **given}}, getattr(cls, "refuses", None))
torch.manual_seed(0)
model = cls(config, 4, 4, {size})
model.train()
batch = torch.rand({batch}, 4, 4, {size}, {size}) * 2 - 1
# bf16: the forward passes under CPU autocast, as `spriteforge train --precision bf16` runs them
precision = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if {precision!r} == "bf16" else contextlib.nullcontext
with precision():
    model.train_step(batch, 0, 0.0)
start = time.perf_counter()
for step in range(1, {steps} + 1):
    with precision():
        model.train_step(batch, step, step / 1000)
print(json.dumps({{"ms": (time.perf_counter() - start) / {steps} * 1000}}))
"""


def measure(checkout: Path, name: str, given: dict, args, precision: str) -> float | str:
    """ms per step of `name` in `checkout`, measured in a fresh interpreter (or the error's last line)."""
    code = MEASURE.format(threads=args.threads, name=name, given=json.dumps(given), size=args.image_size, batch=args.batch,
                          steps=args.steps, precision=precision)
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode != 0:
        return (result.stderr.strip().splitlines() or ["failed"])[-1][:80]
    return json.loads(result.stdout.strip().splitlines()[-1])["ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="checkout A (e.g. a worktree of today's main)")
    parser.add_argument("after", type=Path, help="checkout B (e.g. this one)")
    parser.add_argument("--models", nargs="+", default=["stargan-paired", "collagan"])
    parser.add_argument("--capacity", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per checkout, alternating A, B, A, B …")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra option for every model, e.g. lambda_gp=0 (a JSON value)")
    parser.add_argument("--precision", choices=("32", "bf16"), default="32",
                        help="checkout A's precision: 32, or bf16 (CPU autocast; worth it where the CPU has AVX512-BF16 or AMX)")
    parser.add_argument("--precision-b", choices=("32", "bf16"), help="checkout B's precision (default: --precision)")
    args = parser.parse_args()
    args.precision_b = args.precision_b or args.precision
    extra = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.option)}

    print(f"{args.rounds} alternating rounds, {args.steps} steps each after a warm-up step; capacity {args.capacity}, "
          f"batch {args.batch}, {args.image_size}px, {args.threads} threads; precision A {args.precision}, B {args.precision_b}")
    print(f"A = {args.before.resolve()}\nB = {args.after.resolve()}\n")
    print("| model | A ms/step (median) | B ms/step (median) | B / A | A runs | B runs |")
    print("|---|---:|---:|---:|---|---|")
    for name in args.models:
        given = {"capacity": args.capacity, **extra} if name not in ("dcgan", "cdcgan", "wgan-gp", "biggan", "deep-biggan") else dict(extra)
        runs: dict[str, list] = {"A": [], "B": []}
        for _ in range(args.rounds):
            runs["A"].append(measure(args.before, name, given, args, args.precision))
            runs["B"].append(measure(args.after, name, given, args, args.precision_b))
        numbers = {key: [v for v in values if isinstance(v, float)] for key, values in runs.items()}
        if not numbers["A"] or not numbers["B"]:
            print(f"| {name} | {runs['A'][0]} | {runs['B'][0]} | – | | |")
            continue
        a, b = statistics.median(numbers["A"]), statistics.median(numbers["B"])
        show = lambda values: ", ".join(f"{v:.0f}" if isinstance(v, float) else "error" for v in values)
        print(f"| {name} | {a:.0f} | {b:.0f} | {b / a:.2f} | {show(runs['A'])} | {show(runs['B'])} |", flush=True)


if __name__ == "__main__":
    main()
