"""Training-time FID and KID, for the engine's --callback-evaluate-fid: of an imputer on one seeded case
per character, or of a sampler's seeded samples."""

from __future__ import annotations

import torch

from spriteforge.evaluation import metrics as m
from spriteforge.models.views import evaluation_cases


@torch.no_grad()
def evaluate_fid(model, images: torch.Tensor, device, extractor, seed: int = 0, given: int | None = None) -> dict[str, float]:
    """FID and KID of one evaluation split: distinct characters [N, D, C, H, W] in [-1, 1], per character
    one seeded target view and `given` other views (the cases of training-time L1); the real set is the
    same characters' target views. Every channel is used as it should be: RGBA → RGB over the
    extractor's background (the original mixed channels up as (R, B, A))."""
    given = given or model.evaluation_given_views
    available, targets = evaluation_cases(len(images), images.shape[1], given, seed)
    fakes = []
    for start in range(0, len(images), 64):
        chunk = images[start : start + 64].to(device)
        mask = available[start : start + 64].to(device)
        fakes.append(model.impute(chunk * mask[:, :, None, None, None], mask, targets[start : start + 64].to(device)).float().cpu())
    fake = torch.cat(fakes)
    real = images[torch.arange(len(images)), targets].float().cpu()
    real_features, fake_features = extractor(m.to_uint8(real)), extractor(m.to_uint8(fake))
    kid, _ = m.kernel_inception_distance(real_features, fake_features, seed=seed)
    return {"fid": m.frechet_distance(real_features, fake_features), "kid": kid}


@torch.no_grad()
def evaluate_sample_fid(model, images: torch.Tensor, device, extractor, seed: int = 0) -> dict[str, float]:
    """FID and KID of a sampling model: as many samples (seeded noise) as there are real images of the
    split's characters [N, D, C, H, W], against those real images (every view)."""
    real = images.flatten(0, 1).float()
    generator = torch.Generator().manual_seed(seed)
    fakes = [model.sample(model.noise(min(64, len(real) - start), generator, device)).float().cpu()
             for start in range(0, len(real), 64)]
    real_features, fake_features = extractor(m.to_uint8(real)), extractor(m.to_uint8(torch.cat(fakes)))
    kid, _ = m.kernel_inception_distance(real_features, fake_features, seed=seed)
    return {"fid": m.frechet_distance(real_features, fake_features), "kid": kid}
