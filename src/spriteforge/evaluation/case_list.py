"""The protocol's cases: every target view × every combination of given views (28 for 4 views), and
the masking that shows a model only a case's given views."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from spriteforge.data.batches import to_model_input
from spriteforge.imageio import to_uint8

LETTERS = {"back": "b", "left": "l", "front": "f", "right": "r"}


@dataclass(frozen=True)
class Case:
    """Draw view `target` from the views `given`."""

    target: int
    given: tuple[int, ...]
    domains: int = 4

    @property
    def missing(self) -> int:
        return self.domains - len(self.given)

    def label(self, names: tuple[str, ...]) -> str:
        return "+".join(LETTERS.get(names[d], names[d]) for d in self.given)


def cases(domain_count: int = 4) -> list[Case]:
    """Per target: single given views, then pairs, …, then all others (28 cases for 4 views)."""
    result = []
    for target in range(domain_count):
        others = [d for d in range(domain_count) if d != target]
        for size in range(1, len(others) + 1):
            for given in itertools.combinations(others, size):
                result.append(Case(target, given, domain_count))
    return result


class CharacterViews:
    """The protocol's characters as stored (uint8 [N, D, H, W, 4]), turned into model input one batch or one
    view at a time: the pooled test split (2,127 characters) would take 557 MB as float32, 139 MB as stored."""

    def __init__(self, images: np.ndarray, channels: int = 4):
        self.pixels = torch.from_numpy(np.ascontiguousarray(images))
        self.channels = channels
        self._uint8: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def domains(self) -> int:
        return self.pixels.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[2:4])  # type: ignore[return-value]

    def batch(self, start: int, stop: int, device="cpu") -> torch.Tensor:
        """Characters start…stop-1 as model input [n, D, C, H, W] in [-1, 1] on `device`."""
        return to_model_input(self.pixels[start:stop].to(device), self.channels)

    def view(self, domain: int) -> torch.Tensor:
        """One view of every character as model input [N, C, H, W] (what a drawn view is compared with)."""
        return to_model_input(self.pixels[:, domain], self.channels)

    def uint8(self, batch: int = 256) -> np.ndarray:
        """Every view as the model sees it, back in uint8 RGBA [N, D, H, W, 4] (3 channels: on white, opaque)."""
        if self._uint8 is None:
            self._uint8 = np.concatenate([to_uint8(self.batch(start, start + batch)) for start in range(0, len(self), batch)])
        return self._uint8


def given_chunks(views: CharacterViews, case: Case, device, batch: int):
    """Batches of the characters with only the case's given views (the others zeroed) and their mask."""
    for start in range(0, len(views), batch):
        chunk = views.batch(start, start + batch, device)
        available = torch.zeros(len(chunk), views.domains, dtype=torch.bool, device=device)
        available[:, list(case.given)] = True
        yield chunk * available[:, :, None, None, None], available  # a model never sees a view that is not given


def drawable(imputer, case: Case) -> bool:
    """Whether the imputer draws this case (models without `can_impute` draw every case)."""
    if not hasattr(imputer, "can_impute"):
        return True
    available = torch.zeros(1, case.domains, dtype=torch.bool)
    available[0, list(case.given)] = True
    return bool(imputer.can_impute(available, torch.tensor([case.target])).all())
