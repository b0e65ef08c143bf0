"""Where models run and in which precision: the one home of `--device`, `--memory-fraction` and `--precision`.

Every command that runs a model resolves its `--device` here, so `auto`, `cuda:N` and `mps` mean the
same thing everywhere and a device that is not there is one line, not a CUDA traceback.

Mixed precision follows PyTorch's recipe: the forward pass runs under `torch.autocast` (bf16 or fp16
matmuls and convolutions; losses, softmaxes and norms stay fp32), fp16 gradients go through one
`GradScaler` per optimiser, and the parts fp16 would overflow (gradient penalty, palette softmax,
selection log-softmax) are computed in fp32 with `full_precision()`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Iterator

import torch

from spriteforge.errors import SpriteForgeError
from spriteforge.options import BY_NAME

PRECISIONS: tuple[str, ...] = BY_NAME["precision"].choices or ()
"""32: float32 throughout; bf16: autocast to bfloat16 (no scaler needed); 16-mixed: autocast to float16
with a GradScaler per optimiser (meant for CUDA; it runs on the CPU too, for tests)."""


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Let this process reuse the CPU memory it frees instead of handing it back to the kernel (glibc only).

    Every activation of a batch is a fresh allocation of megabytes. By default glibc serves those with
    mmap and unmaps them on free, so the kernel zero-fills each of their pages again on first touch:
    drawing 64 characters with the default model spent half its time in page faults (24 → 14 ms per
    character, 2 threads), and the pooled-test protocol a quarter of its CPU time in the kernel. With
    mmap off and a 2 GiB trim threshold, freed blocks stay in the heap for the next batch. Memory the
    process no longer uses is returned only above that threshold, which suits the short-lived commands
    and a training run; a long-lived process that must shrink should not call this. Returns whether
    it took effect (False off glibc, e.g. macOS, Windows or musl, where the system allocator stays as is,
    and False when the environment sets SPRITEFORGE_SYSTEM_MALLOC=1, the way out if a long run's memory grows).
    """
    if not sys.platform.startswith("linux") or os.environ.get("SPRITEFORGE_SYSTEM_MALLOC", "") not in ("", "0"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def cpu_has_bf16_arithmetic() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX-BF16). There oneDNN's bf16
    matmuls run at about 2.3× the fp32 rate (409 against 175 GFLOP/s on 2 EPYC cores), and `--precision bf16`
    trains a StarGAN or CollaGAN step in 0.55–0.70 of the fp32 time; elsewhere bf16 is emulated and slower."""
    capabilities: dict[str, object] = getattr(torch.cpu, "get_capabilities", dict)()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device | None) -> torch.device:
    """A user's --device value as a torch device; a device that is not here is one line naming the fix."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise SpriteForgeError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpriteForgeError(f"--device {name}: no CUDA GPU is available here; use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SpriteForgeError(f"--device {name}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                                   f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
        return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())
    if device.type == "mps":
        if not mps_available():
            raise SpriteForgeError(f"--device {name}: Apple's MPS is not available here; use --device cpu (or auto)")
        return device
    if device.type == "cpu":
        return torch.device("cpu")
    raise SpriteForgeError(f"--device {name}: SpriteForge runs on cpu, cuda, cuda:N or mps")


def limit_memory(device: torch.device, fraction: float) -> None:
    """--memory-fraction: cap this process's share of a GPU's memory (1 = no cap); refused on the CPU."""
    if not 0 < fraction <= 1:
        raise SpriteForgeError(f"--memory-fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(fraction, device)
    elif device.type == "mps":
        torch.mps.set_per_process_memory_fraction(fraction)
    else:
        raise SpriteForgeError(f"--memory-fraction {fraction:g} caps a GPU's memory; this run is on the CPU (remove it)")


def check_precision(device: torch.device, precision: str) -> None:
    if precision not in PRECISIONS:
        raise SpriteForgeError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SpriteForgeError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16; use --precision 16-mixed")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a training step's forward passes run in (a no-op at --precision 32)."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def full_precision(reference: torch.Tensor) -> Iterator[None]:
    """Run the block in float32 even inside autocast (gradient penalty, palette softmax: fp16 would overflow)."""
    if torch.is_autocast_enabled(reference.device.type):
        with torch.autocast(reference.device.type, enabled=False):
            yield
    else:
        yield


def fits_on_device(nbytes: int, device: torch.device, share: float = 0.25) -> bool:
    """Whether a dataset of `nbytes` may live on `device` (at most `share` of its free memory): then
    batches are indexed there and only the batch indices cross the bus."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= share * free
    if device.type == "mps":
        return nbytes <= share * torch.mps.recommended_max_memory()
    return False
