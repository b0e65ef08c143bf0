"""The protocol's cases: every target view × every combination of given views (28 for 4 views), and
the masking that shows a model only a case's given views."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

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


def given_chunks(views: torch.Tensor, case: Case, device, batch: int):
    """Batches of the characters with only the case's given views (the others zeroed) and their mask."""
    for start in range(0, len(views), batch):
        chunk = views[start : start + batch].to(device)
        available = torch.zeros(len(chunk), views.shape[1], dtype=torch.bool, device=device)
        available[:, list(case.given)] = True
        yield chunk * available[:, :, None, None, None], available  # a model never sees a view that is not given



def drawable(imputer, case: Case) -> bool:
    """Whether the imputer draws this case (models without `can_impute` draw every case)."""
    if not hasattr(imputer, "can_impute"):
        return True
    available = torch.zeros(1, case.domains, dtype=torch.bool)
    available[0, list(case.given)] = True
    return bool(imputer.can_impute(available, torch.tensor([case.target])).all())
