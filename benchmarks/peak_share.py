"""FLOPs per training step of every model and the share of this CPU's matmul peak it reaches.

A model's step time says little alone: it depends on the machine and on the work the step does.
Here each step's floating-point work is counted (torch.utils.flop_counter: convolutions and matmuls,
forward and backward) and set against a large fp32 matmul timed in the same run, with the same
threads. A low share points at overhead (small kernels, memory-bound layers, Python), a high share at
a step that can only get faster by doing less work.

    python benchmarks/peak_share.py [--models stargan-paired collagan …] [--threads 2] [--steps 2] [--precision bf16]

`--precision bf16` runs each step under CPU autocast, as `spriteforge train --precision bf16` does, and
sets it against a bf16 matmul (on CPUs with AVX512-BF16 or AMX about 2.3× the fp32 rate; elsewhere
emulated and slower), with the fp32 matmul printed beside it.

Models run at their defaults except capacity 1 (where a model has one), batch 4 characters, 64×64
RGBA (BigGAN: its own image size), on a fixed random batch, each in a fresh process so that the peak
resident memory (max RSS) column is the model's own, set up as `spriteforge train` sets up memory
(`devices.keep_freed_memory`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import nullcontext

import torch

from common import build, flop_counter, machine_line, matmul_gflops, peak_cpu_memory_mib
from spriteforge.devices import autocast, keep_freed_memory
from spriteforge.models import MODELS, model_class

PICTURES = ("cyclegan", "pix2pix-pairs")


def batch_for(model, batch: int) -> torch.Tensor:
    size = type(model).data_size(model.config) if hasattr(type(model), "data_size") else 64
    height, width = size if isinstance(size, tuple) else (size, size)
    domains = model.domain_count if hasattr(model, "domain_count") else 4
    return torch.rand(batch, domains, 4, height, width) * 2 - 1


def measure(name: str, args) -> dict:
    """GFLOP and seconds per step of `name` (steps 1..N after a warm-up step 0 on a fresh model; two passes,
    so the counter's overhead is not timed; the same d-steps schedule in both), and this process's peak RSS."""
    given = {"capacity": 1} if "capacity" in model_class(name).uses else {}

    def steps(count_flops: bool) -> float:
        model = build(name, torch.device("cpu"), **given)
        model.train()
        images = batch_for(model, args.batch)
        with autocast(torch.device("cpu"), args.precision):
            model.train_step(images, 0, 0.0)
        start = time.perf_counter()
        with flop_counter() if count_flops else nullcontext() as counter:
            for step in range(1, args.steps + 1):
                with autocast(torch.device("cpu"), args.precision):
                    model.train_step(images, step, step / 1000)
        if count_flops:
            return counter.get_total_flops() / 1e9 / args.steps
        return (time.perf_counter() - start) / args.steps

    gflop, seconds = steps(True), steps(False)
    return {"gflop": gflop, "seconds": seconds, "peak_mib": peak_cpu_memory_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=sorted(MODELS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", choices=("32", "bf16"), default="32", help="32, or bf16 autocast against a bf16 matmul")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model, print JSON
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        keep_freed_memory()  # as `spriteforge train` does
        print(json.dumps(measure(args.one, args)))
        return
    fp32 = matmul_gflops(2048, 5)
    peak = matmul_gflops(2048, 5, dtype=torch.bfloat16) if args.precision == "bf16" else fp32
    print(f"{machine_line()}; fp32 matmul 2048³ in this run: {fp32:.1f} GFLOP/s"
          + (f", bf16 {peak:.1f} GFLOP/s; steps under bf16 autocast" if args.precision == "bf16" else "")
          + "; each model in its own process\n")
    print("| model | GFLOP/step | ms/step | GFLOP/s | share of the matmul peak | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.models:
        if name in PICTURES:
            print(f"| {name} | – | – | – | trains on pictures; see benchmarks/style.py | – |")
            continue
        # a fresh interpreter per model, so the peak resident memory is that model's own
        command = [sys.executable, __file__, "--one", name, "--batch", str(args.batch), "--steps", str(args.steps),
                   "--threads", str(args.threads), "--precision", args.precision]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:  # one model's failure must not hide the others' rows
            print(f"| {name} | – | – | – | {(result.stderr.strip().splitlines() or ['failed'])[-1][:70]} | – |")
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        gflop, seconds = row["gflop"], row["seconds"]
        print(f"| {name} | {gflop:.1f} | {seconds * 1000:.0f} | {gflop / seconds:.1f} | {gflop / seconds / peak:.0%} "
              f"| {row['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
