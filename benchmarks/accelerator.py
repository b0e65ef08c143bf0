"""Training speed per model, capacity, precision and process count, with model FLOP utilisation (MFU).

For each setting: ms per training step, characters/s (the global batch over the step time), peak memory
and MFU = the step's FLOPs (counted once with `torch.utils.flop_counter`) ÷ step time ÷ the device's peak,
where the peak is a large matmul timed in the same run at the same precision (so the figure says how much
of what this device really reaches a step uses). Several processes run as `torchrun` would start them
(gloo on CPUs, NCCL on GPUs, one GPU each) with `--batch` the global batch, each rank its share.

On a CPU it runs a small smoke set; with a GPU, the full grid:
    python benchmarks/accelerator.py                       # CPU smoke set (or the GPU grid when there is a GPU)
    python benchmarks/accelerator.py --models collagan --capacities 4 --precisions bf16 --processes 1 2 --batch 16
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from common import build, flop_counter, matmul_gflops, peak_cpu_memory_mib, synchronize

from spriteforge import distributed
from spriteforge.devices import autocast
from spriteforge.models import model_class

MATMUL_DTYPES = {"32": torch.float32, "bf16": torch.bfloat16, "16-mixed": torch.float16}


def sprite_batch(batch: int, size: int, device: torch.device) -> torch.Tensor:
    """Blocky few-colour characters [B, 4, 4, size, size] in [-1, 1] (pure noise would be an odd input)."""
    generator = torch.Generator().manual_seed(0)
    cells = size // 8
    colours = torch.rand(batch, 4, 4, 1, 1, generator=generator) * 2 - 1
    codes = torch.randint(2, (batch, 4, 1, cells, cells), generator=generator).float()
    images = (colours * codes).repeat_interleave(8, -1).repeat_interleave(8, -2)
    return images.to(device)


def matmul_peak(device: torch.device, precision: str) -> float:
    """FLOP/s of a square matmul at the precision's compute dtype on `device`, measured now. CPUs without
    bf16 units emulate it slowly: there the fp32 matmul is the peak a bf16 step is set against."""
    if device.type == "cuda":
        return matmul_gflops(2048, 10, device, MATMUL_DTYPES[precision]) * 1e9
    return matmul_gflops(1024, 10, device) * 1e9


def make_model(name: str, capacity: int, size: int, device: torch.device, precision: str):
    """Models with --capacity take the grid's capacity; the samplers a small fixed width."""
    uses = model_class(name).uses
    model = build(name, device, image_size=size, **({"capacity": capacity} if "capacity" in uses else {"feature_maps": 8}),
                  **({"latent": 16} if "latent" in uses else {}))
    distributed.synchronise_layers(model, device)
    model.use_grad_scalers(device if precision == "16-mixed" else None)
    return model.train()


def step_flops(model, images: torch.Tensor, precision: str, device: torch.device) -> float:
    counter = flop_counter()
    with counter, autocast(device, precision):
        model.train_step(images, 0, 0.0)
    return float(counter.get_total_flops())


def time_steps(model, images: torch.Tensor, steps: int, precision: str, device: torch.device) -> float:
    """Seconds per step after one warm-up step."""
    with autocast(device, precision):
        model.train_step(images, 0, 0.0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        with autocast(device, precision):
            model.train_step(images, step, step / 1000)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def peak_memory_mib(device: torch.device) -> float:
    """GPU: the peak allocated. CPU: this process's peak resident set (VmHWM: a spawned rank's own, where
    getrusage's maximum would start from its parent's)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    except (OSError, StopIteration, ValueError):
        return peak_cpu_memory_mib()


def _rank(rank: int, world: int, port: int, setting: dict, results) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world), "RANK": str(rank),
                       "LOCAL_RANK": str(rank)})
    device = torch.device(setting["device"])
    if device.type == "cpu":
        torch.set_num_threads(max(1, setting["threads"] // world))
    device = distributed.local_device(device)
    distributed.start(device)
    torch.manual_seed(0)
    model = make_model(setting["model"], setting["capacity"], setting["size"], device, setting["precision"])
    distributed.broadcast_state(model)
    images = distributed.shard(sprite_batch(setting["batch"], setting["size"], device))
    seconds = time_steps(model, images, setting["steps"], setting["precision"], device)
    memory = peak_memory_mib(device)
    if rank == 0:
        results.put((seconds, memory))
    distributed.stop()


def measure(setting: dict, processes: int) -> tuple[float, float]:
    """(seconds per step, peak MiB of rank 0) with `processes` data-parallel processes."""
    if processes == 1:
        device = torch.device(setting["device"])
        torch.manual_seed(0)
        model = make_model(setting["model"], setting["capacity"], setting["size"], device, setting["precision"])
        images = sprite_batch(setting["batch"], setting["size"], device)
        return time_steps(model, images, setting["steps"], setting["precision"], device), peak_memory_mib(device)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.start_processes(_rank, args=(processes, port, setting, results), nprocs=processes, start_method="spawn")
    return results.get()


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["collagan", "stargan-paired", "dcgan"] if gpu else ["collagan", "dcgan"])
    parser.add_argument("--capacities", nargs="+", type=int, default=[1, 2, 4] if gpu else [1])
    parser.add_argument("--precisions", nargs="+", default=["32", "bf16"], choices=list(MATMUL_DTYPES))
    parser.add_argument("--processes", nargs="+", type=int,
                        default=sorted({1, min(2, torch.cuda.device_count())}) if gpu else [1, 2])
    parser.add_argument("--batch", type=int, default=16 if gpu else 4, help="global batch (characters of 4 views)")
    parser.add_argument("--size", type=int, default=64 if gpu else 32, help="sprite side in pixels")
    parser.add_argument("--steps", type=int, default=10 if gpu else 2)
    parser.add_argument("--device", default="cuda" if gpu else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {threads} threads"
    print(f"# Training throughput on {name} (torch {torch.__version__}); batch {args.batch} characters "
          f"(global), {args.size}×{args.size}, {args.steps} timed steps after one warm-up\n")
    print("| model | capacity | precision | processes | ms/step | characters/s | peak MiB (rank 0) | GFLOP/step | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model_name in args.models:
        uses_capacity = "capacity" in model_class(model_name).uses
        for capacity in (args.capacities if uses_capacity else [0]):
            for precision in args.precisions:
                setting = {"model": model_name, "capacity": capacity, "precision": precision, "batch": args.batch,
                           "size": args.size, "steps": args.steps, "device": args.device, "threads": threads}
                torch.manual_seed(0)
                counted = make_model(model_name, capacity, args.size, device, precision)
                flops = step_flops(counted, sprite_batch(args.batch, args.size, device), precision, device)
                del counted
                peak = matmul_peak(device, precision)
                for processes in args.processes:
                    seconds, memory = measure(setting, processes)
                    # several CPU processes share one CPU's peak; several GPUs each bring their own
                    devices_peak = peak * (processes if device.type == "cuda" else 1)
                    print(f"| {model_name} | {capacity or '-'} | {precision} | {processes} | {seconds * 1000:.0f} | "
                          f"{args.batch / seconds:.1f} | {memory:.0f} | {flops / 1e9:.1f} | "
                          f"{flops / seconds / devices_peak:.0%} |", flush=True)
    print("\nMFU: the step's FLOPs (flop_counter, one process) per second over a "
          + ("2048² matmul's FLOP/s at the same precision (per GPU), timed in this run." if device.type == "cuda"
             else "1024² fp32 matmul's FLOP/s on all threads, timed in this run (processes share the CPU's threads)."))


if __name__ == "__main__":
    main()
