"""Data-parallel training over several processes (`torchrun`): the one home of ranks, shards and collectives.

Why it looks like this: every rank computes the same deterministic global batch and the same random
draws (the engine reseeds every rank from (seed, step)), then keeps only its own rows. So a run on N
processes follows the one-process run with the same global `--batch` up to float rounding, and a
checkpoint written by N processes resumes on M. Gradients are averaged over ranks with one all-reduce
per optimiser step (`average_gradients`), the pattern StyleGAN2-ADA uses for GANs: it works whatever a
model does between zero_grad and step (several forwards of one network, a gradient penalty's double
backward, `--d-steps`, calls into sub-networks), which `DistributedDataParallel`'s forward hooks do not.
BatchNorm statistics are computed over the global batch (SyncBatchNorm on GPUs, `GlobalBatchNorm` on CPUs).

With one process (no `torchrun`) every function here is the identity, and nothing is initialised.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from spriteforge.errors import SpriteForgeError

COLLECTIVE_TIMEOUT = timedelta(hours=2)
"""How long a rank waits at a barrier (rank 0 may be evaluating FID on a CPU meanwhile)."""


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting WORLD_SIZE) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 alone writes the run folder, TensorBoard, previews, evaluations and checkpoints."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process on a machine takes its own GPU (LOCAL_RANK); a CPU stays the CPU."""
    if launched() and device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise SpriteForgeError(f"torchrun started local rank {local}, but this machine has {torch.cuda.device_count()} "
                                   f"CUDA GPUs; lower --nproc-per-node to at most {torch.cuda.device_count()}")
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def start(device: torch.device) -> None:
    """Join the process group torchrun describes (gloo on CPUs, NCCL on CUDA GPUs); nothing without torchrun."""
    if not launched() or active():
        return
    if not dist.is_available():
        raise SpriteForgeError("this PyTorch build has no torch.distributed; run spriteforge train without torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT,
                                device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError) as error:
        raise SpriteForgeError(f"could not join the torchrun process group ({backend}): {error}; check --rdzv-endpoint "
                               f"and that every node runs the same command") from None


def stop() -> None:
    """Leave the process group, all ranks together: a rank that tore gloo down while another still had
    its last collective open aborted that one ("terminate called without an active exception", exit −6;
    seen once in CI under load)."""
    if active():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def check_batch(batch: int) -> None:
    """`--batch` is the global batch: it must split evenly over the ranks."""
    if batch % world_size():
        raise SpriteForgeError(f"--batch {batch} does not split over {world_size()} processes; use a multiple of "
                               f"{world_size()} (--batch is the global batch, shared by all processes)")


def global_count(local: int) -> int:
    """The global batch size of a local one: per-example random draws are made at this size, then `shard`ed."""
    return local * world_size()


def shard(rows: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """This rank's contiguous share of a tensor whose dimension `dim` is global (the batch)."""
    size = world_size()
    if size == 1:
        return rows
    if rows.shape[dim] % size:
        raise ValueError(f"cannot split {rows.shape[dim]} rows over {size} processes")
    share = rows.shape[dim] // size
    return rows.narrow(dim, rank() * share, share)


def rand(count: int, *shape: int, **options) -> torch.Tensor:
    """`torch.rand(count, *shape)` for `count` local examples, drawn for the global batch and sharded, so every
    example gets the number it gets in a one-process run (all ranks share the RNG state)."""
    return shard(torch.rand(global_count(count), *shape, **options))


def randn(count: int, *shape: int, **options) -> torch.Tensor:
    """`torch.randn(count, *shape)` per local example; see `rand`."""
    return shard(torch.randn(global_count(count), *shape, **options))


def randint(low: int, high: int, count: int, *shape: int, **options) -> torch.Tensor:
    """`torch.randint(low, high, (count, *shape))` per local example; see `rand`."""
    return shard(torch.randint(low, high, (global_count(count), *shape), **options))


def count_per_rank(count: torch.Tensor) -> torch.Tensor:
    """A loss's normaliser (a count of selected elements) averaged over the ranks: a rank's sum divided by
    it, averaged over the ranks as the gradients are, is the one-process loss (sum over all ÷ count over all)."""
    if not active():
        return count
    total = count.detach().double().clone()
    dist.all_reduce(total)
    return (total / world_size()).to(torch.promote_types(count.dtype, torch.float32))


def global_rows(count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The global index of each of `count` local examples (0 … count − 1 with one process)."""
    return torch.arange(rank() * count, (rank() + 1) * count, device=device)


def average_gradients(parameters) -> None:
    """Average the gradients of `parameters` over all ranks in one all-reduce. Only existing gradients take
    part: every rank runs the same code on the same draws, so the same ones exist everywhere, and a
    parameter without a gradient stays without one (Adam then leaves it alone, as in a one-process run)."""
    if not active():
        return
    with_gradients = [parameter for parameter in parameters if parameter.grad is not None]
    if not with_gradients:
        return
    flat = torch.cat([parameter.grad.reshape(-1) for parameter in with_gradients])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for parameter in with_gradients:
        count = parameter.numel()
        parameter.grad.copy_(flat[offset:offset + count].view_as(parameter.grad))
        offset += count


def broadcast_state(module: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (they start equal anyway: all ranks seed alike)."""
    if not active():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_values(values: dict[str, float], flag: bool = False) -> tuple[dict[str, float], bool]:
    """Losses averaged over the ranks (so every rank logs, and judges divergence by, the same numbers),
    and whether any rank raised `flag` (a stop request), so all ranks stop at the same step."""
    if not active():
        return values, flag
    names = sorted(values)
    packed = torch.tensor([float(values[name]) for name in names] + [float(flag)], dtype=torch.float64)
    dist.all_reduce(packed)
    averaged = {name: float(packed[index]) / world_size() for index, name in enumerate(names)}
    return {name: averaged[name] for name in values}, bool(packed[-1] > 0)


def broadcast_value(value: Any) -> Any:
    """Rank 0's `value` on every rank (a run folder's path, an early-stop decision)."""
    if not active():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _SumOverRanks(torch.autograd.Function):
    """Sum a tensor over the ranks; the gradient of each rank's copy is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        total = gradient.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch: one differentiable all-reduce of the
    per-channel sums and sums of squares. `nn.SyncBatchNorm` does the same on GPUs but refuses CPUs."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(images)
        local = images.float()
        count = torch.tensor(float(local.numel() // local.shape[1]), device=local.device)
        sums = torch.cat([local.sum((0, 2, 3)), (local * local).sum((0, 2, 3)), count.view(1)])
        sums = _SumOverRanks.apply(sums)
        channels = local.shape[1]
        total = sums[-1]
        mean = sums[:channels] / total
        variance = (sums[channels:2 * channels] / total - mean * mean).clamp_min(0)
        tracked = self.num_batches_tracked
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None and tracked is not None:
            with torch.no_grad():
                tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * variance.detach() * total / (total - 1).clamp_min(1))
        normalised = (local - mean.view(1, -1, 1, 1)) * torch.rsqrt(variance.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            normalised = normalised * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return normalised.to(images.dtype)


class GlobalDropout(nn.Dropout):
    """Dropout whose mask is cut from the mask of the global batch, so each rank's examples get the mask
    a one-process run gives them (with `nn.Dropout` every rank would draw the same local mask)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()) or self.p == 0:
            return super().forward(features)
        ones = torch.ones((global_count(features.shape[0]), *features.shape[1:]), dtype=features.dtype, device=features.device)
        if features.dim() == 4 and not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
            ones = ones.contiguous(memory_format=torch.channels_last)  # dropout draws in memory order: keep the layout
        return features * shard(nn.functional.dropout(ones, self.p, True))


def synchronise_layers(module: nn.Module, device: torch.device) -> nn.Module:
    """Under torchrun: every BatchNorm2d computes its statistics over the global batch (SyncBatchNorm on
    CUDA, `GlobalBatchNorm` elsewhere) and every Dropout draws its part of the global mask. Layers keep
    their parameter objects, so optimisers built before still hold them. Nothing changes with one process."""
    if not active():
        return module
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            if device.type == "cuda":
                setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
            else:
                child.__class__ = GlobalBatchNorm
        elif type(child) is nn.Dropout:
            child.__class__ = GlobalDropout
        else:
            synchronise_layers(child, device)
    return module
