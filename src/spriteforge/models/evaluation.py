"""Training-time evaluation and pictures: L1 on distinct characters, preview grids, test images."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from spriteforge import imageio

CHUNK = 64


@torch.no_grad()
def evaluate_l1(model, images: torch.Tensor, device, seed: int = 0) -> float:
    """Mean |generated − real| over RGBA in [-1, 1], one (distinct) character per case."""
    if len(images) == 0:
        return float("nan")
    available, targets = model.evaluation_cases(len(images), images.shape[1], seed)
    total, pixels = 0.0, 0
    for start in range(0, len(images), CHUNK):
        views = images[start : start + CHUNK].to(device)
        rows = torch.arange(len(views), device=device)
        target = targets[start : start + CHUNK].to(device)
        fake = model.impute(views, available[start : start + CHUNK].to(device), target)
        difference = (fake - views[rows, target]).abs()
        total += difference.sum().item()
        pixels += difference.numel()
    return total / pixels


@torch.no_grad()
def impute_all_views(model, views: torch.Tensor, device) -> torch.Tensor:
    """For each character and view, that view drawn from all the other views: [B, D, C, H, W]."""
    views = views.to(device)
    count, domains = views.shape[:2]
    outputs = []
    for target in range(domains):
        available = torch.ones(count, domains, dtype=torch.bool, device=device)
        available[:, target] = False
        wanted = torch.full((count,), target, device=device)
        if model.can_impute(available, wanted).all():
            outputs.append(model.impute(views, available, wanted))
        else:  # a view this model cannot draw (a pairwise model's other views): left transparent
            outputs.append(torch.full_like(views[:, target], -1.0))
    return torch.stack(outputs, dim=1)


def preview_grid(model, train_views: torch.Tensor, test_views: torch.Tensor, device) -> np.ndarray:
    """One row per character: its real views, then each view drawn from the others."""
    views = torch.cat([train_views, test_views]).to(device)
    generated = impute_all_views(model, views, device)
    rows = [list(imageio.to_uint8(real)) + list(imageio.to_uint8(fake)) for real, fake in zip(views, generated)]
    return imageio.grid(rows)


@torch.no_grad()
def test_image_grid(model, character: torch.Tensor, device) -> np.ndarray:
    """A source × target grid for one character: row s holds every view drawn from view s alone.

    All D × D drawings go through the model as one batch (one call per character, not D²)."""
    views = character.unsqueeze(0).to(device)
    domains = views.shape[1]
    source = torch.arange(domains, device=device).repeat_interleave(domains)
    target = torch.arange(domains, device=device).repeat(domains)
    available = torch.nn.functional.one_hot(source, domains).bool()
    drawn = imageio.to_uint8(model.impute(views.expand(domains * domains, -1, -1, -1, -1), available, target))
    rows = [list(imageio.to_uint8(views[0]))] + [list(drawn[row * domains : (row + 1) * domains]) for row in range(domains)]
    return imageio.grid(rows)


@torch.no_grad()
def missing_views_grid(model, character: torch.Tensor, device, missing: int) -> np.ndarray:
    """One row per choice of `missing` views: given views (blanks), given + generated, the truth."""
    views = character.unsqueeze(0).to(device)
    domains = views.shape[1]
    truth = imageio.to_uint8(views[0])
    blank = np.zeros_like(truth[0])
    combos = list(itertools.combinations(range(domains), missing))
    pairs = [(index, slot) for index, combo in enumerate(combos) for slot in combo]
    available = torch.ones(len(pairs), domains, dtype=torch.bool, device=device)
    for row, (index, _) in enumerate(pairs):
        available[row, list(combos[index])] = False
    target = torch.tensor([slot for _, slot in pairs], device=device)
    generated = imageio.to_uint8(model.impute(views.expand(len(pairs), -1, -1, -1, -1), available, target))
    rows = []
    for index, combo in enumerate(combos):
        given = [blank if d in combo else truth[d] for d in range(domains)]
        drawn = [truth[d] for d in range(domains)]
        for row, (pair_index, slot) in enumerate(pairs):
            if pair_index == index:
                drawn[slot] = generated[row]
        rows.append(given + drawn + list(truth))
    return imageio.grid(rows)
