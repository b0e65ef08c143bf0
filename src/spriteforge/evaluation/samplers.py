"""Measuring sampling models (new characters): seeded samples, FID/KID against real images and the
pixel-art statistics of both. `spriteforge evaluate` runs it on a sampler's run."""

from __future__ import annotations

import numpy as np
import torch

from spriteforge.evaluation import metrics as m
from spriteforge.evaluation.protocol import FEATURE_METRICS

SAMPLER_METRICS = ("fid", "kid", "palette")


def view_conditional(model) -> bool:
    """Whether the sampler draws a chosen view (cdcgan, biggan …) rather than any view."""
    return int(getattr(model, "view_count", 0) or 0) > 1


@torch.no_grad()
def draw_samples(model, count: int, views: torch.Tensor | None, device, seed: int, batch: int = 64) -> torch.Tensor:
    """`count` seeded samples [N, C, H, W] on CPU; row i asks for view `views[i]` when given."""
    generator = torch.Generator().manual_seed(seed)
    fakes = []
    for start in range(0, count, batch):
        size = min(batch, count - start)
        noise = model.noise(size, generator).to(device)
        asked = None if views is None else views[start : start + size].to(device)
        fakes.append(model.sample(noise, asked).float().cpu())
    return torch.cat(fakes)


def sample_metrics(fake: torch.Tensor, real: torch.Tensor, selected, extractor, seed: int) -> dict[str, float]:
    """FID/KID of a set of samples against a set of real images, plus the pixel-art statistics of both."""
    row: dict[str, float] = {"images": int(len(fake))}
    fake_uint8, real_uint8 = m.to_uint8(fake), m.to_uint8(real)
    if FEATURE_METRICS & set(selected):
        real_features = extractor(real_uint8)
        fake_features = extractor(fake_uint8)
        if "fid" in selected:
            row["fid"] = m.frechet_distance(real_features, fake_features)
        if "kid" in selected:
            row["kid"], _ = m.kernel_inception_distance(real_features, fake_features, seed=seed)
    if "palette" in selected:  # uint8 RGBA [N, H, W, 4] (3-channel models come back opaque)
        row["alpha_binary"] = float(np.mean(m.alpha_binarity(fake_uint8)))
        row["colours"] = float(np.mean(m.colour_counts(fake_uint8)))
        row["real_colours"] = float(np.mean(m.colour_counts(real_uint8)))
    return row
