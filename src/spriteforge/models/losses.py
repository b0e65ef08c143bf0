"""Differentiable losses shared by the models: Gaussian SSIM, log-chroma histograms, palettes, hinge, orthogonality."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


# -- SSIM -------------------------------------------------------------------------------------------
def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    line = torch.exp(-(coords**2) / (2 * sigma**2))
    line = line / line.sum()
    return (line[:, None] * line[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Single-scale SSIM per image ([N, C, H, W] → [N]), Gaussian window, every channel, valid borders.

    Written here (not torchmetrics) so it is differentiable and runs on any device inside a loss;
    same constants as tf.image.ssim, which the original used (images in [-1, 1] ≡ [0, 2], max 2).
    """
    channels = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    kernel = _gaussian_window(window, sigma, channels, x.device, x.dtype)
    blur = lambda t: F.conv2d(t, kernel, groups=channels)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    structure = (2 * cov + c2) / (var_x + var_y + c2)
    return (luminance * structure).flatten(1).mean(1)


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−log((1 + SSIM)/2) per image: 0 for identical images, large as SSIM → −1 (CollaGAN's form)."""
    return -torch.log(((1 + ssim(x, y)) / 2).clamp_min(1e-6))


# -- vanilla GAN ------------------------------------------------------------------------------------
def bce_discriminator_terms(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE(real, 1) and BCE(fake, 0) on logits; D's objective is their half-sum (pix2pix's convention)."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)),
            F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def bce_generator_term(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss BCE(fake, 1)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# -- HistoGAN log-chroma histograms ----------------------------------------------------------------
HISTOGRAM_BINS = 64
HISTOGRAM_BOUNDARY = 3.0
HISTOGRAM_SIGMA = 0.02
_EPS = 1e-6


def log_chroma_histogram(images: torch.Tensor, bins: int = HISTOGRAM_BINS) -> torch.Tensor:
    """[N, C≥3, H, W] in [-1, 1] → [N, 3, bins, bins] RGB-uv histograms summing to 1 (HistoGAN).

    For each channel c the pixel lands at (log c − log o1, log c − log o2) with an inverse-quadratic
    kernel, weighted by its intensity √(R² + G² + B²), so transparent (black) pixels barely count.
    """
    rgb = ((images[:, :3] + 1) / 2).clamp(0, 1).flatten(2) + _EPS  # [N, 3, P]
    log_rgb = torch.log(rgb)
    intensity = torch.sqrt((rgb**2).sum(1))  # [N, P]
    centres = torch.linspace(-HISTOGRAM_BOUNDARY, HISTOGRAM_BOUNDARY, bins, device=images.device, dtype=images.dtype)
    kernel = lambda t: 1.0 / (1.0 + ((t.unsqueeze(-1) - centres) / HISTOGRAM_SIGMA) ** 2)  # [N, P, bins]
    histograms = []
    for channel in range(3):
        others = [c for c in range(3) if c != channel]
        u = log_rgb[:, channel] - log_rgb[:, others[0]]
        v = log_rgb[:, channel] - log_rgb[:, others[1]]
        histograms.append((intensity.unsqueeze(-1) * kernel(u)).transpose(1, 2) @ kernel(v))
    stacked = torch.stack(histograms, dim=1)
    return stacked / stacked.flatten(1).sum(1).clamp_min(_EPS)[:, None, None, None]


def histogram_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Batch mean of the Hellinger distance (1/√2)·‖√H_real − √H_fake‖₂ between the histograms."""
    h_fake, h_real = log_chroma_histogram(fake), log_chroma_histogram(real)
    difference = torch.sqrt(h_real + 1e-12) - torch.sqrt(h_fake + 1e-12)
    return (difference.flatten(1).norm(dim=1) / math.sqrt(2)).mean()


# -- palettes ----------------------------------------------------------------------------------------
def palettes_of(views: torch.Tensor, available: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique RGBA colours of each character's available views: ([B, K, C] in [-1, 1], valid [B, K]).

    Colours are rounded to uint8 levels exactly as images are saved (`imageio.to_uint8`: round, and a
    fully transparent pixel is (0, 0, 0, 0)); empty slots are never looked at, so their grey is not a
    colour (both were bugs of the original).
    """
    levels = torch.round((views.detach().clamp(-1, 1) + 1) * 127.5).to(torch.int64)  # [B, D, C, H, W]
    channels = levels.shape[2]
    if channels == 4:
        levels = levels * (levels[:, :, 3:4] > 0)
    weights = torch.tensor([256**k for k in reversed(range(channels))], device=views.device)
    codes = (levels * weights[:, None, None]).sum(2)  # [B, D, H, W]
    uniques = [codes[row][available[row]].unique() for row in range(codes.shape[0])]
    size = max(1, max(len(u) for u in uniques))
    palette = torch.zeros(len(uniques), size, channels, device=views.device, dtype=views.dtype)
    valid = torch.zeros(len(uniques), size, dtype=torch.bool, device=views.device)
    for row, code in enumerate(uniques):
        digits = torch.stack([(code // w) % 256 for w in weights], dim=-1)
        palette[row, : len(code)] = digits.to(views.dtype) / 127.5 - 1
        valid[row, : len(code)] = True
    return palette, valid


def palette_distances(images: torch.Tensor, palette: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Squared distances [B, P, K] of every pixel to every palette colour (+inf for padding)."""
    pixels = images.flatten(2).transpose(1, 2).float()  # [B, P, C]; float32 under autocast: fp16 distances / T overflow
    distances = torch.cdist(pixels, palette.float()) ** 2
    return distances.masked_fill(~valid[:, None, :], float("inf"))


def palette_assignment(images, palette, valid, temperature: float) -> torch.Tensor:
    """softmax(−‖x − p‖² / T) over each character's colours: [B, P, K]."""
    return torch.softmax(-palette_distances(images, palette, valid) / max(temperature, 1e-8), dim=-1)


def quantize(images: torch.Tensor, palette, valid, temperature: float, hard: bool) -> torch.Tensor:
    """Soft palette mixing (differentiable, training) or the exact nearest colour (inference)."""
    if hard:
        nearest = palette_distances(images, palette, valid).argmin(-1)  # [B, P]
        pixels = torch.gather(palette, 1, nearest.unsqueeze(-1).expand(-1, -1, palette.shape[-1]))
    else:
        pixels = palette_assignment(images, palette, valid, temperature) @ palette
    return pixels.transpose(1, 2).reshape(images.shape)


def palette_coverage_loss(images, palette, valid, temperature: float) -> torch.Tensor:
    """Mean over colours and batch of max(0, 1 − Σ_pixels P(colour)): pushes every colour to be used."""
    usage = palette_assignment(images, palette, valid, temperature).sum(1)  # [B, K]
    shortfall = F.relu(1 - usage) * valid
    return (shortfall.sum(1) / valid.sum(1).clamp_min(1)).mean()


# -- hinge GAN loss and orthogonal regularisation (BigGAN) ------------------------------------------
def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """mean ReLU(1 − D(x)) + mean ReLU(1 + D(G(z))): D stops pushing a score once it is past the margin."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """−mean D(G(z)), the generator side of the hinge GAN (Lim & Ye; SAGAN; BigGAN).

    Not ReLU(1 − D(G(z))) as Fast-Image-Gans had it: that hinge gives G no gradient from the
    samples D already scores above 1, so G stops improving exactly the images D likes.
    """
    return -fake_scores.mean()


def orthogonal_regularization(weights) -> torch.Tensor:
    """Σ ‖W Wᵀ ⊙ (1 − I)‖²_F over the weights (BigGAN's R_β without β): filters pushed to be orthogonal.

    Each weight is a matrix of its output filters (rows). When there are more rows than columns the
    same value comes from the small Gram matrix, ‖W Wᵀ‖²_F = ‖Wᵀ W‖²_F, minus the diagonal Σ‖wᵢ‖⁴,
    so a 24576 × 256 linear layer never builds a 24576² matrix.
    """
    terms = []
    for weight in weights:
        matrix = weight.flatten(1)
        if matrix.shape[0] <= matrix.shape[1]:
            gram = matrix @ matrix.t()
            terms.append((gram - torch.diag_embed(torch.diagonal(gram))).pow(2).sum())
        else:
            terms.append((matrix.t() @ matrix).pow(2).sum() - matrix.pow(2).sum(1).pow(2).sum())
    return torch.stack(terms).sum() if terms else torch.zeros(())

