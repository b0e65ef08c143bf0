"""The views, and what models do with them that is not a network: which given view to draw a target
from, the trivial guess of a missing view, which views stay given in a training example or an
evaluation case, and characters as single images.

The views are `spriteforge.VIEWS` (back=0, left=1, front=2, right=3). One preference table ranks the
other views as a source for each target (mirror pose first, then the opposite view, then the adjacent
ones, from the original's per-pair results, table A1): single-source models (stargan, munit, pix2pix's
pair models) draw from the best given view, and the trivial guess copies it. The guess serves twice:
the evaluation's copy and mirror baselines *are* this guess (models/baselines.py), and CollaGAN's
`--target-prior baseline` hands it to the generator in the otherwise empty target slot, so the model
starts from what the baselines score and only has to learn the corrections.
"""

from __future__ import annotations

import torch

from spriteforge import distributed
from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError


# -- sources ----------------------------------------------------------------------------------------
# The other views as a source per target view (back=0, left=1, front=2, right=3), best first: the
# mirror pose for left/right, the opposite view for back/front, then the adjacent ones.
PREFERENCE = {0: (2, 1, 3), 1: (3, 2, 0), 2: (0, 1, 3), 3: (1, 2, 0)}
MIRROR = {1: 3, 3: 1}


def source_order(target: int, domain_count: int) -> list[int]:
    """The views to draw `target` from, best first: the target itself, PREFERENCE (four views), then every view."""
    preferred = (target, *PREFERENCE[target]) if domain_count == len(VIEWS) and target in PREFERENCE else ()
    return [*preferred, *range(domain_count)]


def best_sources(available: torch.Tensor, target: torch.Tensor, domain_count: int) -> torch.Tensor:
    """For single-source models: the best available view to draw each target from (mirror pose first)."""
    sources = []
    for row, wanted in zip(available.tolist(), target.tolist()):
        sources.append(next(d for d in source_order(wanted, domain_count) if row[d]))
    return torch.tensor(sources, device=target.device)


# -- the trivial guess ------------------------------------------------------------------------------
def check_four_views(domain_count: int, what: str) -> None:
    if domain_count != len(VIEWS):
        raise SpriteForgeError(f"{what} needs the four views {', '.join(VIEWS)}; the data has {domain_count} domains")


def guess_views(views: torch.Tensor, available: torch.Tensor, target: torch.Tensor, mirror: bool = True,
                empty_ok: bool = False) -> torch.Tensor:
    """[B, C, H, W]: for each row the target view guessed from the available views [B, D] of views [B, D, C, H, W].

    With `mirror`, a left/right target whose other side is given is that side flipped horizontally;
    otherwise the first given view of PREFERENCE. A row with nothing given is zeros if `empty_ok`, else an error.
    """
    check_four_views(views.shape[1], "the trivial guess")
    outputs = []
    for row, (given, wanted) in enumerate(zip(available.tolist(), target.tolist())):
        if mirror and wanted in MIRROR and given[MIRROR[wanted]]:
            outputs.append(views[row, MIRROR[wanted]].flip(-1))
            continue
        source = next((d for d in PREFERENCE[wanted] if given[d]), None)
        if source is None:
            if not empty_ok:
                raise SpriteForgeError(f"no view given for character {row}")
            outputs.append(torch.zeros_like(views[row, 0]))
        else:
            outputs.append(views[row, source])
    return torch.stack(outputs)


# -- kept views -------------------------------------------------------------------------------------
# P(k views dropped, the target included) for k = 1, 2, 3 (reference §4.3).
DROPOUT_PROBABILITIES = {
    "none": (1.0, 0.0, 0.0),
    "original": (1 / 3, 1 / 3, 1 / 3),
    "aggressive": (0.1, 0.3, 0.6),
    "balanced": (0.14, 0.43, 0.43),
    "conservative": (0.6, 0.3, 0.1),
}


def dropout_probabilities(strategy: str, progress: float) -> tuple[float, ...]:
    """P(k = 1, 2, 3) at training progress t; the curriculum goes 1 → 2 → 3 dropped, then balanced."""
    if strategy != "curriculum":
        return DROPOUT_PROBABILITIES[strategy]
    for stage, limit in enumerate((1 / 6, 1 / 3, 1 / 2)):
        if progress < limit:
            return tuple(1.0 if k == stage else 0.0 for k in range(3))
    return DROPOUT_PROBABILITIES["balanced"]


def sample_kept_views(target: torch.Tensor, domains: int, strategy: str, progress: float) -> torch.Tensor:
    """Per example, which views stay given ([B, D] bool): the target and k − 1 random others dropped.

    k follows the strategy's table (clipped to the D − 1 views that can be dropped); given k, the
    dropped others are a uniformly random subset. Uses the global torch RNG (resume-safe).
    """
    probabilities = torch.tensor(dropout_probabilities(strategy, progress)[: domains - 1], dtype=torch.float64)
    count = len(target)
    dropped_count = distributed.shard(torch.multinomial(probabilities / probabilities.sum(), distributed.global_count(count), replacement=True)) + 1  # k
    rows = torch.arange(count)
    scores = distributed.rand(count, domains)
    scores[rows, target.cpu()] = 2.0  # the target sorts last among the candidates
    rank = scores.argsort(1).argsort(1)
    dropped = rank < (dropped_count - 1)[:, None]
    dropped[rows, target.cpu()] = True
    return (~dropped).to(target.device)


def evaluation_cases(count: int, domains: int, given: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per character a target view and `given` other views, drawn once from `seed` (reproducible)."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(domains, (count,), generator=generator)
    available = torch.zeros(count, domains, dtype=torch.bool)
    for row in range(count):
        others = [d for d in range(domains) if d != targets[row]]
        order = torch.randperm(len(others), generator=generator)[:given]
        available[row, [others[i] for i in order]] = True
    return available, targets


def one_view_missing(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, target, available) for a batch [B, D, …] where example i misses view i mod D only."""
    rows = torch.arange(batch.shape[0], device=batch.device)
    target = rows % batch.shape[1]
    available = torch.ones(batch.shape[:2], dtype=torch.bool, device=batch.device)
    available[rows, target] = False
    return rows, target, available


# -- characters as images ---------------------------------------------------------------------------
def as_images(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, D, C, H, W] characters → [B·D, C, H, W] single images and their view indices."""
    count, domains = batch.shape[:2]
    views = torch.arange(domains, device=batch.device).repeat(count)
    return batch.flatten(0, 1), views
