"""Timing helpers shared by the benchmark scripts: model construction, step timing, peak memory."""

from __future__ import annotations

import resource
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from spriteforge.models import model_class
from spriteforge.options import resolve


def peak_cpu_memory_mib() -> float:
    """The process's maximum resident set size so far (it only grows down a table)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TotalsOnly:
    """Stands in for FlopCounterMode's per-module tracker, whose backward hooks break inside a double
    backward (`autograd.grad(create_graph=True)`, i.e. every gradient penalty) on torch ≥ 2.10."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that counts totals only (`get_total_flops`), gradient penalties included."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _TotalsOnly()
    return counter


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def machine_line() -> str:
    return (f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
            + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))


def build(name: str, device: torch.device, image_size: int = 64, **given):
    """A freshly initialised model `name` (seeded) with the given options."""
    cls = model_class(name)
    config = resolve(name, cls.uses, cls.defaults, {"steps": 1000, **given}, cls.refuses)
    torch.manual_seed(0)
    return cls(config, 4, 4, image_size).to(device)


def time_training(model, images: torch.Tensor, steps: int, device: torch.device) -> dict:
    """ms per `train_step`, characters/s and peak memory (one warm-up step first)."""
    model.train_step(images, 0, 0.0)  # warm-up (allocations, kernel selection)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        model.train_step(images, step, step / 1000)
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_cpu_memory_mib()
    return {"ms_per_step": seconds * 1000, "images_per_s": images.shape[0] / seconds, "peak_mib": memory}


def time_calls(call: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Mean milliseconds of `call()` over `repeats` calls after one warm-up call."""
    call()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    synchronize(device)
    return (time.perf_counter() - start) / repeats * 1000


def matmul_gflops(size: int = 1024, repeats: int = 10, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """This machine's matmul rate now (GFLOP/s) with the current thread count, on `device` in `dtype`: the
    peak a step's FLOP count is set against, measured in the same run because shared machines drift."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9
