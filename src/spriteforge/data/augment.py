"""The original system's augmentation: one hue rotation and/or one translation per character.

Both are shared by all views of a character (so the views stay consistent), alpha is never changed
and translation fills with transparent black. Probability 0.8 per character.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PROBABILITY = 0.8
HUE_RANGE = 0.5  # any rotation up to ±180°
VERTICAL_RANGE = (-0.15, 0.075)  # fraction of height: up to ~9.6 px up, ~4.8 px down at 64 px
HORIZONTAL_RANGE = (-0.125, 0.125)


@dataclass(frozen=True)
class Augmentation:
    hue: bool = True
    translation: bool = True
    probability: float = PROBABILITY

    @property
    def enabled(self) -> bool:
        return self.hue or self.translation

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment uint8-valued float RGBA [B, D, 4, H, W] in 0..255; returns a new tensor."""
        if not self.enabled:
            return batch
        batch = batch.clone()
        size_y, size_x = batch.shape[-2:]
        for index in range(batch.shape[0]):
            draws = torch.rand(4, generator=generator)
            if draws[0] >= self.probability:
                continue
            if self.hue:
                batch[index] = rotate_hue(batch[index], float(draws[1] * 2 - 1) * HUE_RANGE)
            if self.translation:
                dy = round(float(VERTICAL_RANGE[0] + draws[2] * (VERTICAL_RANGE[1] - VERTICAL_RANGE[0])) * size_y)
                dx = round(float(HORIZONTAL_RANGE[0] + draws[3] * (HORIZONTAL_RANGE[1] - HORIZONTAL_RANGE[0])) * size_x)
                batch[index] = translate(batch[index], dy, dx)
        return batch


def rotate_hue(images: torch.Tensor, offset: float) -> torch.Tensor:
    """Rotate the hue of RGB by `offset` (fraction of the circle); alpha untouched. Values 0..255."""
    rgb = images[..., :3, :, :] / 255.0
    hue, saturation, value = rgb_to_hsv(rgb)
    hue = torch.remainder(hue + offset, 1.0)
    rotated = torch.round(hsv_to_rgb(hue, saturation, value) * 255.0)
    result = images.clone()
    result[..., :3, :, :] = rotated
    result[..., :3, :, :] *= (images[..., 3:4, :, :] > 0)  # transparent pixels stay (0, 0, 0, 0)
    return result


def rgb_to_hsv(rgb: torch.Tensor):
    red, green, blue = rgb.unbind(-3)
    maximum, _ = rgb.max(-3)
    minimum, _ = rgb.min(-3)
    delta = maximum - minimum
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(
        maximum == red, ((green - blue) / safe) % 6,
        torch.where(maximum == green, (blue - red) / safe + 2, (red - green) / safe + 4),
    )
    hue = torch.where(delta > 0, hue / 6.0, torch.zeros_like(hue))
    saturation = torch.where(maximum > 0, delta / torch.where(maximum > 0, maximum, torch.ones_like(maximum)), torch.zeros_like(maximum))
    return hue, saturation, maximum


def hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    sector = hue * 6.0
    k = torch.stack([(5 + sector) % 6, (3 + sector) % 6, (1 + sector) % 6], dim=-3)
    channel = value.unsqueeze(-3) - value.unsqueeze(-3) * saturation.unsqueeze(-3) * torch.clamp(
        torch.minimum(k, 4 - k), 0, 1
    )
    return channel


def translate(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift every view by whole pixels (nearest), filling with transparent black."""
    result = torch.zeros_like(images)
    height, width = images.shape[-2:]
    if abs(dy) >= height or abs(dx) >= width:
        return result
    source_y = slice(max(0, -dy), height - max(0, dy))
    target_y = slice(max(0, dy), height - max(0, -dy))
    source_x = slice(max(0, -dx), width - max(0, dx))
    target_x = slice(max(0, dx), width - max(0, -dx))
    result[..., target_y, target_x] = images[..., source_y, source_x]
    return result
