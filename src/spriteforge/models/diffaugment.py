"""Differentiable augmentation of everything a discriminator sees (`--diff-augment POLICY`).

Why: with a few hundred training characters a discriminator memorises the real set within a few
thousand steps and its gradient stops teaching the generator anything. Augmenting real *and* fake
images the same way, with operations the gradient flows through, keeps it from memorising without
teaching the generator to draw augmented sprites (Zhao et al., "Differentiable Augmentation for
Data-Efficient GAN Training", 2020). The operations here are pixel-art safe for RGBA in [-1, 1]:
colour changes touch RGB only (alpha stays binary), translation and cutout fill with transparent.

Applied by a forward pre-hook on the discriminator while the model trains, so every call (real,
fake, the generator's step, a gradient penalty's interpolates) is augmented and no train step changes.
"""

from __future__ import annotations

import torch
from torch import nn

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError

TRANSPARENT = -1.0


def _colour(images: torch.Tensor) -> torch.Tensor:
    """Brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5] per image, on RGB only and weighted by
    opacity, so transparent pixels stay transparent black (as every real sprite stores them)."""
    rgb, rest = images[:, :3], images[:, 3:]
    count = images.shape[0]
    shape = (count, 1, 1, 1)
    changed = rgb + (distributed.rand(*shape, device=images.device, dtype=images.dtype) - 0.5)
    mean = changed.mean(dim=1, keepdim=True)
    changed = (changed - mean) * (distributed.rand(*shape, device=images.device, dtype=images.dtype) * 2) + mean
    mean = changed.mean(dim=(1, 2, 3), keepdim=True)
    changed = (changed - mean) * (distributed.rand(*shape, device=images.device, dtype=images.dtype) + 0.5) + mean
    if images.shape[1] == 4:
        opacity = (images[:, 3:] + 1) / 2
        changed = changed * opacity + rgb * (1 - opacity)
    return torch.cat([changed, rest], dim=1)


def _translation(images: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side in x and y (whole pixels); uncovered pixels are transparent."""
    count, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = distributed.randint(-shift_y, shift_y + 1, count, 1, 1, device=images.device)
    dx = distributed.randint(-shift_x, shift_x + 1, count, 1, 1, device=images.device)
    rows = torch.arange(height, device=images.device)[None, :, None] - dy  # source row of each output row
    cols = torch.arange(width, device=images.device)[None, None, :] - dx
    inside = ((rows >= 0) & (rows < height) & (cols >= 0) & (cols < width))[:, None]
    index = (rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)).flatten(1)  # [B, H·W]
    gathered = images.flatten(2).gather(2, index[:, None].expand(-1, images.shape[1], -1)).view_as(images)
    return torch.where(inside, gathered, torch.full_like(gathered, TRANSPARENT))


def _cutout(images: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Blank one square of `ratio` × the side per image, anywhere (clipped at the border), to transparent."""
    count, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = distributed.randint(0, height + (1 - size_y % 2), count, 1, 1, device=images.device) - size_y // 2
    left = distributed.randint(0, width + (1 - size_x % 2), count, 1, 1, device=images.device) - size_x // 2
    rows = torch.arange(height, device=images.device)[None, :, None]
    cols = torch.arange(width, device=images.device)[None, None, :]
    hole = ((rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x))[:, None]
    return torch.where(hole, torch.full_like(images, TRANSPARENT), images)


OPERATIONS = {"color": _colour, "translation": _translation, "cutout": _cutout}
POLICY_HELP = "none, or a comma-separated list of " + ", ".join(OPERATIONS) + " (the paper's: color,translation,cutout)"


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' → ('color', 'translation'); '' or 'none' → (); an unknown name is one clear error."""
    names = tuple(name.strip() for name in (policy or "").split(",") if name.strip() and name.strip() != "none")
    unknown = [name for name in names if name not in OPERATIONS]
    if unknown:
        raise SpriteForgeError(f"--diff-augment: unknown operation '{unknown[0]}'; use {POLICY_HELP}")
    return names


def diff_augment(images: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """`images` [B, C, H, W] in [-1, 1] with each operation of `policy` applied, independently per image."""
    for name in policy:
        images = OPERATIONS[name](images)
    return images


def augment_discriminator(discriminator: nn.Module, policy: str) -> tuple[str, ...]:
    """Augment the first input of every call of `discriminator` while it is in training mode; returns the policy.

    The hook is not part of the weights, so checkpoints and exports are unchanged; inference and the
    evaluation put the model in eval mode, where the discriminator sees images as they are."""
    names = parse_policy(policy)
    if names:
        def hook(module: nn.Module, args: tuple):
            if not module.training:
                return None
            return (diff_augment(args[0], names), *args[1:])

        discriminator.register_forward_pre_hook(hook)
    return names
