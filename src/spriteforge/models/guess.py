"""The trivial guess of a missing view: the other side view mirrored, else a given view copied.

One rule serves twice: the evaluation's copy and mirror baselines *are* this guess, and CollaGAN's
`--target-prior baseline` hands it to the generator in the otherwise empty target slot, so the model
starts from what the baselines score and only has to learn the corrections.
"""

from __future__ import annotations

import torch

from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError

# The fixed source preference per target view (back=0, left=1, front=2, right=3): the mirror pose for
# left/right, the opposite view for back/front, then the adjacent ones.
PREFERENCE = {0: (2, 1, 3), 1: (3, 2, 0), 2: (0, 1, 3), 3: (1, 2, 0)}
MIRROR = {1: 3, 3: 1}


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
