"""pix2pix on paired folders: a picture (`--domain-a FOLDER`) → its pixel-art version (`--dataset FOLDER`).

The imputation zoo's Pix2Pix unchanged (U-Net generator, conditional 70×70 PatchGAN, BCE + λl1·L1,
λl1 100, lr 2e-4), trained on a different pair: domain 0 holds the pictures, fitted into the training
size like cyclegan's, domain 1 the pixel art of the same file name at its native pixel scale (see
`data/pictures.py`). Where cyclegan has to guess the correspondence, paired data teaches it, so this is
the model to use when a few hundred hand-made pixel-art versions of pictures exist. Used by `stylize`.
"""

from __future__ import annotations

import torch

from spriteforge.models.pix2pix import DOWN_WIDTHS, Pix2Pix, check_unet_size
from spriteforge.options import Config


class Pix2PixPairs(Pix2Pix):
    name = "pix2pix-pairs"
    uses = frozenset({"domain-a", "lambda-l1", "lambda-adversarial"})
    size_multiple = 2 ** len(DOWN_WIDTHS)  # the U-Net halves the image 6 times

    data_kind = "paired-pictures"

    @classmethod
    def check_data_config(cls, config: Config) -> None:
        check_unet_size(config.image_size)

    def view_pair(self, config: Config) -> tuple[int, int]:
        return 0, 1  # pictures → pixel art

    @torch.no_grad()
    def stylize(self, pictures: torch.Tensor) -> torch.Tensor:
        """Pictures [N, C, H, W] in [-1, 1] (H, W divisible by 64) → pixel art, same shape."""
        return self.generator(pictures)
