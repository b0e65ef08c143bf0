"""From stored characters to what a model sees: which characters batch `step` holds, the seed of each
step, and uint8 RGBA → the model's [-1, 1] channels.

Every function here is a pure function of its arguments (seed, step …), which is what lets a run
resumed from a checkpoint continue bit for bit (see training/engine.py).
"""

from __future__ import annotations

import torch


def batch_indices(step: int, batch: int, count: int, seed: int) -> list[int]:
    """Characters of batch `step`: consecutive slices of per-epoch permutations seeded by (seed, epoch)."""
    indices: list[int] = []
    position = step * batch
    while len(indices) < batch:
        epoch, offset = divmod(position, count)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        take = min(batch - len(indices), count - offset)
        indices.extend(order[offset : offset + take].tolist())
        position += take
    return indices


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7_777_777 + 12345) % (2**63 - 1)


def to_model_input(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8-valued [..., H, W, 4] → [..., C, H, W] in [-1, 1] (3 channels: transparent → white)."""
    data = images.float().movedim(-1, -3)
    return normalise(data, channels)


def normalise(data: torch.Tensor, channels: int) -> torch.Tensor:
    """Float RGBA [..., 4, H, W] in 0..255 → [-1, 1]; with 3 channels composite on white, drop alpha."""
    if channels == 3:
        alpha = data[..., 3:4, :, :] / 255.0
        data = data[..., :3, :, :] * alpha + 255.0 * (1 - alpha)
    return data / 127.5 - 1.0
