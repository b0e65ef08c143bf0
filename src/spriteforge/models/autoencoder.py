"""Convolutional autoencoder (TinyHero notebook 5), the clean-up projection of `spriteforge denoise`.

Architecture (related systems §1.5): the encoder is the DCGAN discriminator trunk (4×4 stride-2
convs, LeakyReLU 0.2, BatchNorm from the second block, dropout after the first and third) followed by
conv 4×4 → 64 (BatchNorm, LeakyReLU) → Linear → sigmoid, so the latent code lies in (0, 1)^latent;
the decoder is the DCGAN generator (code → 4×4 → … → image, BatchNorm + ReLU, tanh). Loss: MSE
between the reconstruction and the clean input in [-1, 1]. Every view of every character is one
training image. With `--noise-std σ` it is a denoising autoencoder: the input gets Gaussian noise
(clamped back to [-1, 1], so it is still a valid image), the target stays the clean sprite.

Notebook 6 passed GAN samples through this autoencoder as a projection onto the sprites it learned;
`spriteforge denoise` does that to any sprite or sample.

Fixed relative to the notebook:
* the DCGAN initialisation is applied (the notebook defined it and never called it);
* the learning rate decays ×0.995 per epoch as a schedule (`--lr-decay per-epoch`); the notebook
  re-created the optimiser every epoch, which also threw away Adam's moment estimates;
* reconstructions are measured on validation and test characters, not only on the training batch;
* RGBA, checkpoints, exact resume, previews and TensorBoard like every SpriteForge model.

Sampling: a sigmoid code need not be uniform over (0, 1)^latent, so rather than assume U(0, 1),
`LatentPrior` keeps the mean and covariance of the training codes (fitted at every evaluation, in eval
mode), and `sample`/`noise` draw from that Gaussian, clamped to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spriteforge import distributed
from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel
from spriteforge.models.dcgan import DCDiscriminator, DCGenerator, dcgan_init
from spriteforge.models.views import as_images
from spriteforge.options import Config

CHUNK = 256
PREVIEW_NOISE_SEED = 7


class SpriteEncoder(DCDiscriminator):
    """image → code in (0, 1)^latent: the DCGAN discriminator trunk, conv 4×4 → 64, Linear, sigmoid."""

    def __init__(self, channels: int, image_size: int, feature_maps: int, dropout: float, latent: int):
        super().__init__(channels, image_size, feature_maps, dropout)
        self.head = nn.Sequential(nn.Conv2d(self.width, 64, 4, 1, 0, bias=False), nn.BatchNorm2d(64),
                                  nn.LeakyReLU(0.2, True), nn.Flatten(), nn.Linear(64, latent), nn.Sigmoid())
        dcgan_init(self.head)

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.head(self.body(image))


class LatentPrior(nn.Module):
    """A Gaussian over the codes of the training images (buffers only; saved with the weights)."""

    def __init__(self, latent: int):
        super().__init__()
        self.mean: torch.Tensor
        self.scale: torch.Tensor
        self.count: torch.Tensor
        self.register_buffer("mean", torch.full((latent,), 0.5))
        self.register_buffer("scale", torch.eye(latent) * (1 / 12) ** 0.5)  # Cholesky factor of the covariance
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # codes of the last fit (0: never fitted)

    @torch.no_grad()
    def fit(self, codes: torch.Tensor) -> None:
        codes = codes.double()
        mean = codes.mean(0)
        centred = codes - mean
        covariance = centred.T @ centred / max(1, len(codes) - 1)
        covariance += 1e-6 * torch.eye(len(mean), dtype=covariance.dtype, device=covariance.device)  # full rank with few codes
        self.mean.copy_(mean)
        self.scale.copy_(torch.linalg.cholesky(covariance))
        self.count.fill_(len(codes))

    def draw(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` codes ~ N(mean, covariance), clamped to the sigmoid's range [0, 1] (on the CPU)."""
        if int(self.count) == 0:
            raise SpriteForgeError("this autoencoder's latent prior has not been fitted yet (it is fitted at every evaluation); "
                                   "train at least one step")
        standard = torch.randn(count, len(self.mean), generator=generator)
        return (self.mean.cpu() + standard @ self.scale.cpu().T).clamp(0, 1)


def corrupt(images: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images plus Gaussian noise of σ `std` (all channels), clamped back to [-1, 1]."""
    if std <= 0:
        return images
    noise = torch.randn(images.shape, generator=generator).to(images.device) if generator is not None else distributed.randn(images.shape[0], *images.shape[1:], device=images.device, dtype=images.dtype)
    return (images + std * noise).clamp(-1, 1)


class AutoEncoder(SpriteModel):
    name = "autoencoder"
    inference_networks = ("encoder", "decoder", "prior")
    uses = frozenset({"latent", "feature-maps", "encoder-dropout", "noise-std"})
    # The notebook: latent 40, 64 feature maps, Adam 1e-4 (0.5, 0.999), 100 images a batch
    # (25 characters × 4 views), lr × 0.995 after every epoch.
    defaults = {"latent": 40, "feature-maps": 64, "lr": 1e-4, "batch": 25, "lr-decay": "per-epoch", "lr-epoch-decay": 0.995}

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        super().__init__(config, domain_count, channels, image_size)
        if not 0 <= config.encoder_dropout < 1:
            raise SpriteForgeError(f"--encoder-dropout must be in [0, 1), got {config.encoder_dropout}")
        if config.noise_std < 0:
            raise SpriteForgeError(f"--noise-std must be at least 0, got {config.noise_std}")
        if config.ttur != 1.0:
            raise SpriteForgeError("--ttur sets the discriminator's learning rate; the autoencoder has no discriminator, remove it")
        if config.callback_debug_discriminator:
            raise SpriteForgeError("--callback-debug-discriminator: the autoencoder has no discriminator, remove it")
        self.latent_size = config.latent
        self.noise_std = config.noise_std
        self.encoder = SpriteEncoder(channels, image_size, config.feature_maps, config.encoder_dropout, config.latent)
        self.decoder = DCGenerator(config.latent, channels, image_size, config.feature_maps)
        self.prior = LatentPrior(config.latent)
        self.make_optimizer("autoencoder", nn.ModuleList([self.encoder, self.decoder]), config.lr)

    # -- use ----------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """encode → decode, in chunks (the caller chooses train or eval mode)."""
        return torch.cat([self(images[start : start + CHUNK]) for start in range(0, len(images), CHUNK)]) if len(images) else images

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.encoder(images[start : start + CHUNK]) for start in range(0, len(images), CHUNK)])

    def noise(self, count: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        """Codes drawn from the fitted prior (what `spriteforge sample` decodes)."""
        return self.prior.draw(count, generator).to(device)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        if views is not None:
            raise SpriteForgeError("this model is unconditional: it cannot draw a chosen view (train cdcgan for --view)")
        return self.decoder(noise)

    # -- training -----------------------------------------------------------------------------------
    def train_step(self, batch, step, progress):
        clean, _ = as_images(batch)
        reconstruction = self(corrupt(clean, self.noise_std))
        loss = F.mse_loss(reconstruction, clean)
        self.optimize("autoencoder", loss)
        return {"autoencoder/total": loss.item(), "autoencoder/l1": (reconstruction.detach() - clean).abs().mean().item()}

    # -- evaluation ---------------------------------------------------------------------------------
    @property
    def evaluates_l1(self) -> bool:
        return True

    def evaluation_l1(self, characters, device, seed=0) -> float:
        """`--callback-evaluate-l1`: mean |reconstruction − sprite| of clean inputs (every view, RGBA in [-1, 1])."""
        images = as_images(characters)[0].to(device)
        return (self.reconstruct(images) - images).abs().mean().item() if len(images) else float("nan")

    @torch.no_grad()
    def on_evaluation(self, characters, device) -> dict[str, float]:
        """Fit the latent prior on the training codes; reconstruction (and denoising) errors of validation and test."""
        train = as_images(characters("train"))[0].to(device)
        self.prior.fit(self.encode(train))
        metrics = {}
        for split in ("validation", "test"):
            images = as_images(characters(split))[0].to(device)
            if not len(images):
                continue
            error = self.reconstruct(images) - images
            metrics[f"reconstruction-mse/{split}"] = error.pow(2).mean().item()
            metrics[f"reconstruction-l1/{split}"] = error.abs().mean().item()
            if self.noise_std > 0:
                noisy = corrupt(images, self.noise_std, torch.Generator().manual_seed(PREVIEW_NOISE_SEED))
                metrics[f"denoising-mse/{split}"] = (self.reconstruct(noisy) - images).pow(2).mean().item()
                metrics[f"noisy-input-mse/{split}"] = (noisy - images).pow(2).mean().item()
        return metrics

    # -- pictures -----------------------------------------------------------------------------------
    def _comparison_rows(self, characters: torch.Tensor, device) -> list[list[np.ndarray]]:
        """Rows of images: the sprites, their reconstructions and, when denoising, noisy inputs and their outputs."""
        images = as_images(characters)[0].to(device)
        rows = [images, self.reconstruct(images)]
        if self.noise_std > 0:
            noisy = corrupt(images, self.noise_std, torch.Generator().manual_seed(PREVIEW_NOISE_SEED))
            rows += [noisy, self.reconstruct(noisy)]
        return [list(imageio.to_uint8(row)) for row in rows]

    def preview(self, train_views, test_views, device) -> np.ndarray:
        """Train then test characters: input / reconstruction (/ noisy / denoised) rows, then 12 prior samples."""
        rows = self._comparison_rows(train_views, device) + self._comparison_rows(test_views, device)
        if int(self.prior.count):
            rows.append(list(imageio.to_uint8(self.sample(self.noise(len(rows[0]), torch.Generator().manual_seed(0), device)))))
        return imageio.grid(rows)

    def final_images(self, test_views, device) -> dict[str, np.ndarray]:
        """`reconstructions-NN`: ten test characters a file, one column per image (rows as the preview); `samples`: 64 decoded prior codes."""
        images = {}
        for index, start in enumerate(range(0, len(test_views), 10)):
            images[f"reconstructions-{index:02d}"] = imageio.grid(self._comparison_rows(test_views[start : start + 10], device))
        fakes = imageio.to_uint8(self.sample(self.noise(64, torch.Generator().manual_seed(1), device)))
        images["samples"] = imageio.grid([list(fakes[start : start + 8]) for start in range(0, 64, 8)])
        return images
