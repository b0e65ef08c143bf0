"""DCGAN: brand-new characters from noise (the TinyHero "modified DCGAN", with its flaws fixed).

Every view of every training character is one training image, so any paired dataset (or the
built-in synthetic set) trains it. Architecture (related systems §1.3): transposed convs doubling
4×4 up to the image size, BatchNorm + ReLU, tanh; the discriminator mirrors it with LeakyReLU 0.2,
dropout after its first and third blocks, BatchNorm from the second block.

Fixed relative to the TinyHero notebook:
* soft labels stay inside [0, 1] (real ~ U[1 − s, 1], fake ~ U[0, s]; the notebook used real
  targets up to 1.05, which BCE is not defined for), and the loss works on logits (stable BCE);
* `--loss wasserstein` really trains a WGAN (critic without sigmoid, weights clipped to ±0.01, the
  critic stepped `--d-steps` times per generator step); the notebook defined it and never used it;
* nothing is lost: checkpoints, preview grids and TensorBoard like every SpriteForge model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spriteforge import distributed
from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import frozen
from spriteforge.models.views import as_images
from spriteforge.options import Config

WEIGHT_CLIP = 0.01


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN tutorial's initialisation: convs N(0, 0.02), BatchNorm γ ~ N(1, 0.02), β = 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def doublings(image_size: int) -> int:
    """Number of ×2 stages between the 4×4 seed and the image (64 → 4)."""
    stages = int(round(math.log2(image_size / 4))) if image_size >= 8 else 0
    if image_size < 16 or 4 * 2**stages != image_size:
        raise SpriteForgeError(f"--image-size {image_size}: DCGAN needs a power of two of at least 16 (e.g. 32, 64, 128)")
    return stages


class DCGenerator(nn.Module):
    """z [B, latent] (+ an optional condition vector) → image [B, C, H, W] in [-1, 1]."""

    def __init__(self, latent: int, channels: int, image_size: int, feature_maps: int, condition: int = 0):
        super().__init__()
        stages = doublings(image_size)
        width = feature_maps * 2 ** (stages - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent + condition, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, noise: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            noise = torch.cat([noise, condition], dim=1)
        return self.layers(noise[:, :, None, None])


class DCDiscriminator(nn.Module):
    """image → (real/fake logit [B], features [B, width, 4, 4]); dropout after blocks 1 and 3.

    `norm` is the normalisation from the second block on: "batch" (DCGAN), or for a WGAN-GP critic,
    whose penalty is per sample, "layer" (GroupNorm with one group), "instance" or "none".
    """

    def __init__(self, channels: int, image_size: int, feature_maps: int, dropout: float, norm: str = "batch"):
        super().__init__()
        stages = doublings(image_size)
        layers: list[nn.Module] = []
        cin, width = channels, feature_maps
        for index in range(stages):
            layers.append(nn.Conv2d(cin, width, 4, 2, 1, bias=norm == "none"))
            if index > 0 and norm != "none":
                norms: dict[str, Callable[[int], nn.Module]] = {
                    "batch": nn.BatchNorm2d, "layer": lambda w: nn.GroupNorm(1, w), "instance": lambda w: nn.GroupNorm(w, w)}
                layers.append(norms[norm](width))
            layers.append(nn.LeakyReLU(0.2, True))
            if index in (0, 2) and dropout > 0:
                layers.append(nn.Dropout(dropout))
            cin, width = width, width * 2
        self.body = nn.Sequential(*layers)
        self.head: nn.Module = nn.Conv2d(cin, 1, 4, 1, 0, bias=False)  # the autoencoder's encoder replaces it
        self.width = cin
        dcgan_init(self)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(image)
        return self.head(features).flatten(), features


class DCGAN(SpriteModel):
    name = "dcgan"
    uses = frozenset({"latent", "diff-augment", "feature-maps", "loss", "label-smoothing", "d-dropout", "d-steps", "lambda-adversarial", "ema-decay"})
    # TinyHero's notebook: latent 84, base width 48, lr 2e-4, 64 images a batch (16 characters × 4 views);
    # no moving average of G (the notebook had none; --ema-decay 0.999 turns one on).
    defaults = {"latent": 84, "feature-maps": 48, "lr": 2e-4, "batch": 16, "lr-decay": "none", "d-steps": 1, "ema-decay": 0.0}

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        super().__init__(config, domain_count, channels, image_size)
        if not 0 <= config.label_smoothing < 0.5:
            raise SpriteForgeError(f"--label-smoothing must be in [0, 0.5), got {config.label_smoothing}")
        if not 0 <= config.d_dropout < 1:
            raise SpriteForgeError(f"--d-dropout must be in [0, 1), got {config.d_dropout}")
        self.latent_size = config.latent
        self.generator = DCGenerator(config.latent, channels, image_size, config.feature_maps)
        self.discriminator = DCDiscriminator(channels, image_size, config.feature_maps, config.d_dropout)
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)
        self.keep_moving_average()
        self.augment_discriminator_inputs()

    # -- sampling -----------------------------------------------------------------------------------
    def noise(self, count: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        if generator is None:  # training: each example's latent is the one a one-process run draws (see distributed)
            return distributed.randn(count, self.latent_size).to(device)
        return torch.randn(count, self.latent_size, generator=generator).to(device)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """Images for the given latent vectors; an unconditional model refuses a view."""
        if views is not None:
            raise SpriteForgeError("this model is unconditional: it cannot draw a chosen view (train cdcgan for --view)")
        return self.drawing_generator(noise)

    # -- training -----------------------------------------------------------------------------------
    def _labels(self, count: int, real: bool, device) -> torch.Tensor:
        smoothing = self.config.label_smoothing
        spread = distributed.rand(count, device=device) * smoothing
        return 1.0 - spread if real else spread

    def train_step(self, batch, step, progress):
        config = self.config
        real, _ = as_images(batch)
        count = real.shape[0]
        wasserstein = config.loss == "wasserstein"
        fake = self.generator(self.noise(count, device=real.device))

        real_scores, _ = self.discriminator(real)
        fake_scores, _ = self.discriminator(fake.detach())
        if wasserstein:
            d_loss = fake_scores.mean() - real_scores.mean()
        else:
            d_loss = (F.binary_cross_entropy_with_logits(real_scores, self._labels(count, True, real.device))
                      + F.binary_cross_entropy_with_logits(fake_scores, self._labels(count, False, real.device)))
        self.optimize("discriminator", d_loss)
        if wasserstein:
            with torch.no_grad():
                for parameter in self.discriminator.parameters():
                    parameter.clamp_(-WEIGHT_CLIP, WEIGHT_CLIP)
        losses = {"discriminator/total": d_loss.item(),
                  "discriminator/real-score": real_scores.mean().item(), "discriminator/fake-score": fake_scores.mean().item()}
        if step % config.d_steps:
            return losses

        with frozen(self.discriminator):
            scores, _ = self.discriminator(fake)
        g_adversarial = -scores.mean() if wasserstein else F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
        g_loss = config.lambda_adversarial * g_adversarial
        self.optimize("generator", g_loss)
        losses.update({"generator/adversarial": g_adversarial.item(), "generator/total": g_loss.item()})
        losses.update(self.update_moving_average(step // config.d_steps))
        return losses

    # -- pictures -----------------------------------------------------------------------------------
    def preview(self, train_views, test_views, device) -> np.ndarray:
        """A fixed-noise grid (the same 32 latent vectors at every preview), then 8 real images."""
        generator = torch.Generator().manual_seed(0)
        fakes = imageio.to_uint8(self.sample(self.noise(32, generator, device)))
        reals = imageio.to_uint8(train_views.flatten(0, 1)[:8])
        rows = [list(fakes[start : start + 8]) for start in range(0, 32, 8)] + [list(reals)]
        return imageio.grid(rows)

    def final_images(self, test_views, device) -> dict[str, np.ndarray]:
        generator = torch.Generator().manual_seed(1)
        fakes = imageio.to_uint8(self.sample(self.noise(64, generator, device)))
        return {"samples": imageio.grid([list(fakes[start : start + 8]) for start in range(0, 64, 8)])}

    @torch.no_grad()
    def debug_discriminator(self, batch):
        real, _ = as_images(batch[:2])
        fake = self.sample(self.noise(len(real), device=batch.device))
        real_scores, _ = self.discriminator(real)
        fake_scores, _ = self.discriminator(fake)
        return [real, fake, real_scores[:, None, None, None], fake_scores[:, None, None, None]]
