"""The trivial baselines of the evaluation: imputers without a network that copy a given view
(the best one for the target, models/views.py) or, for a side view, mirror the other side."""

from __future__ import annotations

import torch

from spriteforge.errors import SpriteForgeError
from spriteforge.models.views import guess_views


class CopyBaseline:
    """Returns a given view unchanged: the first available of a fixed preference per target."""

    name = "baseline:copy"
    flip_mirror = False

    def eval(self):
        return self

    def to(self, device):
        return self

    def can_impute(self, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Any given view will do."""
        return available.any(dim=1)

    @torch.no_grad()
    def impute(self, views: torch.Tensor, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        try:
            return guess_views(views, available, target, mirror=self.flip_mirror)
        except SpriteForgeError as error:
            raise SpriteForgeError(f"the {self.name} baseline: {error}") from None


class MirrorBaseline(CopyBaseline):
    """Left↔right: the other side view flipped horizontally where given, else the copy baseline."""

    name = "baseline:mirror"
    flip_mirror = True


BASELINES = {"copy": CopyBaseline, "mirror": MirrorBaseline}


def baseline(name: str) -> CopyBaseline:
    key = name.split(":", 1)[1] if name.startswith("baseline:") else name
    if key not in BASELINES:
        raise SpriteForgeError(f"unknown baseline '{name}': choose {', '.join('baseline:' + b for b in BASELINES)}")
    return BASELINES[key]()
