"""The model registry: `spriteforge train MODEL` looks names up here."""

from __future__ import annotations

from spriteforge.errors import SpriteForgeError
from spriteforge.models.autoencoder import AutoEncoder
from spriteforge.models.base import SpriteModel
from spriteforge.models.biggan import BigGAN, DeepBigGAN
from spriteforge.models.cdcgan import ConditionalDCGAN
from spriteforge.models.collagan import CollaGAN
from spriteforge.models.cyclegan import CycleGAN
from spriteforge.models.dcgan import DCGAN
from spriteforge.models.fastgan import FastGAN
from spriteforge.models.munit import MUNIT
from spriteforge.models.pix2pix import Pix2Pix
from spriteforge.models.pix2pix_pairs import Pix2PixPairs
from spriteforge.models.remic import ReMIC
from spriteforge.models.stargan import PairedStarGAN
from spriteforge.models.stargan_unpaired import UnpairedStarGAN
from spriteforge.models.turnaround import Turnaround
from spriteforge.models.wgan_gp import WGANGP
from spriteforge.models.yamata import Yamata

MODELS: dict[str, type[SpriteModel]] = {model.name: model for model in (
    PairedStarGAN, UnpairedStarGAN, CollaGAN, Pix2Pix, DCGAN, ConditionalDCGAN, WGANGP,
    AutoEncoder, CycleGAN, Pix2PixPairs, MUNIT, ReMIC, Yamata, BigGAN, DeepBigGAN, Turnaround, FastGAN,
)}


def model_class(name: str) -> type[SpriteModel]:
    try:
        return MODELS[name]
    except KeyError:
        raise SpriteForgeError(f"unknown model '{name}': choose one of {', '.join(MODELS)}") from None
