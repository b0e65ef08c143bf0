"""FastGAN: brand-new characters from a few hundred sprites (Liu et al. 2021, "lightweight GAN").

A plain DCGAN's discriminator memorises a set as small as TinyHero's 776 training characters and
stops teaching the generator. This model adds the two remedies that paper found for small data:

* skip-layer excitation in G: the 8² and 16² feature maps gate the channels of the 32² and 64²
  ones, so coarse layers steer fine ones with a short gradient path (cheap, no attention);
* a self-supervised discriminator: on real images only, small decoders must rebuild the whole image
  (at 32²) from D's 8² features and a random quarter of it from the matching quarter of D's 16²
  features. D then has to keep a description of the sprite, not just what separates this training
  set from the fakes, which regularises it. The paper uses a perceptual (LPIPS) reconstruction loss;
  its weights would be a download, so this uses L1, which on flat-coloured pixel art is close.

Hinge loss, spectral norm in D, a moving average of G (`--ema-decay`, default 0.999) and
DiffAugment colour + translation (`--diff-augment`, applied by the pre-hook on D, so the decoders
rebuild the augmented image D was shown) complete the recipe. `--feature-maps f` sets the widths:
G has 16f, 8f, 4f, 2f, f channels at 4², 8², 16², 32², 64²; D has 2f, 4f, 8f, 16f at 32² … 4².
Sampling, previews and `spriteforge sample` are DCGAN's (an unconditional model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import frozen
from spriteforge.models.dcgan import DCGAN
from spriteforge.models.views import as_images
from spriteforge.options import Config

IMAGE_SIZE = 64
"""G's stages are fixed (4² → 64²); the sprites of every dataset are 64 × 64."""
RECONSTRUCTION_SIZE = 32


def _up(cin: int, cout: int, convs: int) -> nn.Sequential:
    """Nearest ×2, then `convs` × (3×3 conv to 2·cout, BatchNorm, GLU → cout)."""
    layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")]
    for index in range(convs):
        layers += [nn.Conv2d(cin if index == 0 else cout, 2 * cout, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * cout), nn.GLU(dim=1)]
    return nn.Sequential(*layers)


class SkipExcitation(nn.Module):
    """Channel gates for a fine feature map computed from a coarse one (FastGAN's SLE)."""

    def __init__(self, coarse: int, fine: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(coarse, fine, 4, 1, 0, bias=False), nn.SiLU(),
                                  nn.Conv2d(fine, fine, 1, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        return fine * self.gate(coarse)


class FastGenerator(nn.Module):
    """z [B, latent] → image [B, C, 64, 64] in [-1, 1]."""

    def __init__(self, latent: int, channels: int, feature_maps: int):
        super().__init__()
        f = feature_maps
        self.seed = nn.Sequential(nn.ConvTranspose2d(latent, 2 * 16 * f, 4, 1, 0, bias=False), nn.BatchNorm2d(2 * 16 * f), nn.GLU(dim=1))
        self.to8, self.to16 = _up(16 * f, 8 * f, 2), _up(8 * f, 4 * f, 2)
        self.to32, self.to64 = _up(4 * f, 2 * f, 1), _up(2 * f, f, 1)
        self.excite32, self.excite64 = SkipExcitation(8 * f, 2 * f), SkipExcitation(4 * f, f)
        self.to_image = nn.Sequential(nn.Conv2d(f, channels, 3, 1, 1), nn.Tanh())

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        x4 = self.seed(noise[:, :, None, None])
        x8 = self.to8(x4)
        x16 = self.to16(x8)
        x32 = self.excite32(x8, self.to32(x16))
        x64 = self.excite64(x16, self.to64(x32))
        return self.to_image(x64)


def _down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1, bias=False))]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, True))


def _decoder(cin: int, channels: int, doublings: int, width: int) -> nn.Sequential:
    """A small decoder of D's features back to pixels (`doublings` × up, then a 3×3 conv, tanh)."""
    layers: list[nn.Module] = []
    for _ in range(doublings):
        layers.append(_up(cin, width, 1))
        cin, width = width, max(width // 2, 8)
    return nn.Sequential(*layers, nn.Conv2d(cin, channels, 3, 1, 1), nn.Tanh())


def quarters(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, 4, C, H/2, W/2]: top-left, top-right, bottom-left, bottom-right."""
    b, c, h, w = images.shape
    return images.reshape(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(b, 4, c, h // 2, w // 2)


class SelfSupervisedDiscriminator(nn.Module):
    """image → real/fake logit [B]; with `reconstruct`, also the L1 of its two decoders on that image."""

    def __init__(self, channels: int, feature_maps: int):
        super().__init__()
        f = feature_maps
        self.to32 = _down(channels, 2 * f, norm=False)
        self.to16 = _down(2 * f, 4 * f)
        self.to8 = _down(4 * f, 8 * f)
        self.to4 = _down(8 * f, 16 * f)
        self.head = spectral_norm(nn.Conv2d(16 * f, 1, 4, 1, 0, bias=False))
        self.whole = _decoder(8 * f, channels, 2, 4 * f)  # 8² → 32²: the image at half size
        self.part = _decoder(4 * f, channels, 2, 2 * f)  # a quarter of 16² (8²) → 32²: that quarter at full size

    def forward(self, image: torch.Tensor, reconstruct: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x16 = self.to16(self.to32(image))
        x8 = self.to8(x16)
        logits = self.head(self.to4(x8)).flatten()
        if not reconstruct:
            return logits, None
        small = F.interpolate(image, size=RECONSTRUCTION_SIZE, mode="area")
        which = distributed.randint(0, 4, len(image), device=image.device)
        rows = torch.arange(len(image), device=image.device)
        part_features = quarters(x16)[rows, which]
        part_image = quarters(image)[rows, which]
        part_image = F.interpolate(part_image, size=RECONSTRUCTION_SIZE, mode="area")
        loss = F.l1_loss(self.whole(x8), small) + F.l1_loss(self.part(part_features), part_image)
        return logits, loss


class FastGAN(DCGAN):
    name = "fastgan"
    uses = frozenset({"latent", "diff-augment", "feature-maps", "lambda-reconstruction", "lambda-adversarial", "ema-decay"})
    # The paper's recipe scaled to 64² sprites: Adam 2e-4 (β 0.5, 0.999), batch 8 characters (32 images),
    # moving average 0.999, DiffAugment colour + translation, reconstruction weighted as the hinge loss. No data
    # augmentation: shifted or hue-rotated training sprites would be learnt as sprites (D sees DiffAugment instead).
    defaults = {"latent": 128, "feature-maps": 16, "lr": 2e-4, "batch": 8, "lr-decay": "none", "ema-decay": 0.999,
                "diff-augment": "color,translation", "lambda-reconstruction": 1.0, "no-aug": True}

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        SpriteModel.__init__(self, config, domain_count, channels, image_size)
        if image_size != IMAGE_SIZE:
            raise SpriteForgeError(f"--image-size {image_size}: fastgan draws {IMAGE_SIZE}×{IMAGE_SIZE} sprites; use --image-size {IMAGE_SIZE} or dcgan")
        self.latent_size = config.latent
        self.generator = FastGenerator(config.latent, channels, config.feature_maps)
        self.discriminator = SelfSupervisedDiscriminator(channels, config.feature_maps)
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)
        self.keep_moving_average()
        self.augment_discriminator_inputs()

    def train_step(self, batch, step, progress):
        config = self.config
        real, _ = as_images(batch)
        fake = self.generator(self.noise(real.shape[0], device=real.device))

        real_scores, reconstruction = self.discriminator(real, True)
        fake_scores, _ = self.discriminator(fake.detach())
        hinge = F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
        assert reconstruction is not None
        d_loss = hinge + config.lambda_reconstruction * reconstruction
        self.optimize("discriminator", d_loss)

        with frozen(self.discriminator):
            scores, _ = self.discriminator(fake)
        g_adversarial = -scores.mean()
        g_loss = config.lambda_adversarial * g_adversarial
        self.optimize("generator", g_loss)
        losses = {"discriminator/hinge": hinge.item(), "discriminator/reconstruction": reconstruction.item(),
                  "discriminator/total": d_loss.item(), "discriminator/real-score": real_scores.mean().item(),
                  "discriminator/fake-score": fake_scores.mean().item(),
                  "generator/adversarial": g_adversarial.item(), "generator/total": g_loss.item()}
        losses.update(self.update_moving_average(step))
        return losses
