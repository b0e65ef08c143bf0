"""The three kinds of model, as the methods each really has (`typing.Protocol`, checked with isinstance).

* `Imputer`: draws missing views of characters from the given ones (stargan, collagan, pix2pix,
  munit, remic, yamata, turnaround; a folder of pix2pix pair models; the copy and mirror baselines).
* `Sampler`: draws new characters from noise (dcgan, cdcgan, wgan-gp, biggan, the autoencoder).
* `Stylizer`: turns pictures into pixel art (cyclegan, pix2pix-pairs).

A model is of a kind because it has the methods, not because of a flag: `isinstance(model, Imputer)`
(or `issubclass(cls, Imputer)` for a class) is the one test, and `SpriteModel.imputes` /
`SpriteModel.stylizes` are derived from it. pix2pix-pairs is a Stylizer that also imputes: its
pictures and pixel art are two views, so training-time L1 and previews draw the second from the first.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Imputer(Protocol):
    def impute(self, views: torch.Tensor, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Draw view `target[i]` of each character [B, D, C, H, W] from its `available[i]` views ([B, D] bool)."""

    def can_impute(self, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[B] bool: whether `impute` can draw view `target[i]` from `available[i]`."""


@runtime_checkable
class Sampler(Protocol):
    def noise(self, count: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        """`count` latent vectors (from `generator` when given)."""

    def sample(self, noise: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """Images [N, C, H, W] in [-1, 1] for the latents (in the given views, for a view-conditional sampler)."""


@runtime_checkable
class Stylizer(Protocol):
    def stylize(self, pictures: torch.Tensor) -> torch.Tensor:
        """Pictures [N, C, H, W] in [-1, 1] → pixel art, same shape."""


KINDS = (Imputer, Sampler, Stylizer)


def kinds(model) -> tuple[type, ...]:
    """The kinds a model (or model class) is of."""
    test = issubclass if isinstance(model, type) else isinstance
    return tuple(kind for kind in KINDS if test(model, kind))
