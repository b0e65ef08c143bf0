"""BigGAN and Deep-BigGAN: class-conditional new characters (the class is the view), of any W×H.

The image size is derived, not given: width = --base-width × 2^--upsample-layers and height =
--base-height × 2^--upsample-layers (4 × 3 × 2⁵ = 128×96), for any number of layers. A single folder
of images is one class. Architecture (related systems §3.3, Brock et al. 2019):

* **G** (`biggan`): z is split into upsample-layers + 1 chunks; chunk 0 → spectral-norm linear →
  16·f × base; then one residual up-block per layer (conditional BatchNorm, ReLU, nearest ×2, 3×3
  convs, 1×1 skip), widths halving to f at the image (f = --feature-maps, at most 16·f); each block's
  BatchNorm gain (centred at 1) and bias are linear maps of [its z chunk ‖ the shared class
  embedding] (--embedding). Self-attention at half the image size; BatchNorm, ReLU, 3×3 conv, tanh.
* **G** (`deep-biggan`): [z ‖ embedding] conditions every block; two bottleneck blocks per layer
  (1×1 conv reducing 4×, two 3×3, 1×1 expand; the skip keeps the first channels), the second one
  up-sampling.
* **D**: residual down-blocks (average pooling) from f to 16·f with self-attention after the first,
  ReLU, global sum pooling, a linear score plus the projection ⟨class embedding, features⟩. Deep: a 3×3
  conv, then two bottleneck blocks per layer (the skip grows by concatenating a 1×1 conv's channels).
* Every conv and linear is spectrally normalised (eps 1e-4) and orthogonally initialised.

Training: hinge loss; D updated on real and generated images with the batch's views, then G with fresh
z (every --d-steps D updates); G's loss adds --lambda-orthogonal × Σ‖W Wᵀ ⊙ (1 − I)‖²_F over its
weights; an exponential moving average of G (--ema-decay) draws previews, FID samples and `sample`,
with z from a normal truncated to |z| ≤ --truncation (the truncation trick; never in training).

Fixed relative to Fast-Image-Gans: the generator loss is −D(G(z)) (it used ReLU(1 − D(G(z))), which
gives no gradient from samples D already likes); any number of up-sampling layers (it had only 5, or
5–6 for deep-biggan); self-attention compares each image's queries with its own keys (it reshaped
the keys from a [channels, batch, …] layout, mixing the images of a batch); D's first block does not
apply ReLU to the image (that discarded every negative pixel value in the residual branch); the
orthogonal penalty is the paper's (squared norm, every weight of G but the embedding, filters as rows;
it used the unsquared norm of convs only); EMA weights, spectral-norm vectors and optimiser states are
checkpointed, so resume is exact.

Kept on purpose: fake images use the real batch's views. Every SpriteForge batch holds each view of
each character once, so those labels are exactly the uniform view distribution BigGAN samples from.
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from spriteforge import distributed
from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel, defaults_from_file
from spriteforge.models.blocks import frozen
from spriteforge.models.cdcgan import view_labels
from spriteforge.models.views import as_images
from spriteforge.models.losses import hinge_discriminator_loss, hinge_generator_loss, orthogonal_regularization
from spriteforge.options import Config, option_name

SPECTRAL_EPS = 1e-4
MAX_SIDE = 4096


def spectral(layer: nn.Conv2d | nn.Linear | nn.Embedding) -> nn.Module:
    """Orthogonal initialisation, then spectral normalisation of the layer's weight."""
    nn.init.orthogonal_(layer.weight)
    return spectral_norm(layer, eps=SPECTRAL_EPS)


def conv(cin: int, cout: int, kernel: int, bias: bool = True) -> nn.Module:
    return spectral(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias))


def linear(cin: int, cout: int) -> nn.Module:
    return spectral(nn.Linear(cin, cout))


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def truncated_normal(shape, truncation: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """N(0, 1) restricted to [−t, t] by inverting the CDF (t ≤ 0: untruncated); reproducible with `generator`."""
    if truncation <= 0:
        return torch.randn(shape, generator=generator)
    low = torch.special.ndtr(torch.tensor(-float(truncation)))
    uniform = low + (1 - 2 * low) * torch.rand(shape, generator=generator)
    return torch.special.ndtri(uniform).clamp(-truncation, truncation)


def level_widths(width: int, layers: int) -> list[int]:
    """Widths after each up-sampling layer: halving to `width` at the image, at most 16 × width."""
    return [width * min(16, 2 ** (layers - 1 - level)) for level in range(layers)]


def latent_chunks(latent: int, parts: int) -> list[int]:
    """Sizes of `parts` nearly equal chunks of z (BigGAN's hierarchical latent)."""
    return [latent // parts + (1 if index < latent % parts else 0) for index in range(parts)]


# -- layers -----------------------------------------------------------------------------------------
class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain (1 + γ(c)) and bias β(c) are linear maps of the condition vector c."""

    def __init__(self, channels: int, condition: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.project = linear(condition, 2 * channels)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gain, bias = self.project(condition)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + gain) + bias


class SelfAttention(nn.Module):
    """SAGAN's non-local block as in BigGAN: x + γ·o(softmax(θ(x)ᵀ φ(x)) g(x)), γ learned from 0.

    Keys and values are max-pooled 2×2 when the map allows it (4× less work, as BigGAN).
    """

    def __init__(self, channels: int):
        super().__init__()
        inner, values = max(1, channels // 8), max(1, channels // 2)
        self.query, self.key = conv(channels, inner, 1), conv(channels, inner, 1)
        self.value, self.out = conv(channels, values, 1), conv(values, channels, 1)
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count, _, height, width = x.shape
        keys, values = self.key(x), self.value(x)
        if height % 2 == 0 and width % 2 == 0:
            keys, values = F.max_pool2d(keys, 2), F.max_pool2d(values, 2)
        queries = self.query(x).flatten(2)  # [B, c/8, HW]
        weights = torch.softmax(queries.transpose(1, 2) @ keys.flatten(2), dim=-1)  # [B, HW, N]: each query sums to 1
        attended = (values.flatten(2) @ weights.transpose(1, 2)).view(count, -1, height, width)
        return x + self.gain * self.out(attended)


class UpBlock(nn.Module):
    """BigGAN's residual up-block: CBN-ReLU-up-conv3, CBN-ReLU-conv3; skip: up, 1×1 conv."""

    def __init__(self, cin: int, cout: int, condition: int):
        super().__init__()
        self.norm1, self.conv1 = ConditionalBatchNorm(cin, condition), conv(cin, cout, 3, bias=False)
        self.norm2, self.conv2 = ConditionalBatchNorm(cout, condition), conv(cout, cout, 3)
        self.skip = conv(cin, cout, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = self.conv1(upsample(F.relu(self.norm1(x, condition))))
        h = self.conv2(F.relu(self.norm2(h, condition)))
        return self.skip(upsample(x)) + h


class DeepUpBlock(nn.Module):
    """Deep-BigGAN's bottleneck up-block: CBN-ReLU before a 1×1 (÷4), two 3×3 and a 1×1 conv to cout;
    up-sampling (if any) before the first 3×3; the skip keeps the first cout ≤ cin channels."""

    def __init__(self, cin: int, cout: int, condition: int, grows: bool):
        super().__init__()
        if cout > cin:
            raise ValueError("a deep up-block cannot widen")
        inner = max(1, cin // 4)
        self.cout, self.grows = cout, grows
        self.norms = nn.ModuleList(ConditionalBatchNorm(c, condition) for c in (cin, inner, inner, inner))
        self.convs = nn.ModuleList([conv(cin, inner, 1, bias=False), conv(inner, inner, 3, bias=False),
                                    conv(inner, inner, 3, bias=False), conv(inner, cout, 1)])

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        h = x
        for index, (norm, layer) in enumerate(zip(self.norms, self.convs)):
            h = F.relu(norm(h, condition))
            if index == 1 and self.grows:
                h = upsample(h)
            h = layer(h)
        skip = x[:, : self.cout]
        return (upsample(skip) if self.grows else skip) + h


class DownBlock(nn.Module):
    """BigGAN's residual down-block: (ReLU)-conv3-ReLU-conv3-pool; skip: 1×1 conv, pool.
    The first block gets the image itself, so it has no ReLU in front."""

    def __init__(self, cin: int, cout: int, pool: bool, preactivate: bool):
        super().__init__()
        self.conv1, self.conv2, self.skip = conv(cin, cout, 3), conv(cout, cout, 3), conv(cin, cout, 1)
        self.pool, self.preactivate = pool, preactivate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x) if self.preactivate else x)))
        skip = self.skip(x)
        return (F.avg_pool2d(skip, 2) + F.avg_pool2d(h, 2)) if self.pool else skip + h


class DeepDownBlock(nn.Module):
    """Deep-BigGAN's bottleneck down-block: ReLU before a 1×1 (to cout/4), two 3×3, pool, 1×1 to cout;
    the skip is the (pooled) input, widened by concatenating a 1×1 conv's cout − cin channels."""

    def __init__(self, cin: int, cout: int, pool: bool):
        super().__init__()
        inner = max(1, cout // 4)
        self.convs = nn.ModuleList([conv(cin, inner, 1), conv(inner, inner, 3), conv(inner, inner, 3), conv(inner, cout, 1)])
        self.widen = conv(cin, cout - cin, 1) if cout > cin else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for index, layer in enumerate(self.convs):
            h = F.relu(h)
            if index == 3 and self.pool:
                h = F.avg_pool2d(h, 2)
            h = layer(h)
        skip = F.avg_pool2d(x, 2) if self.pool else x
        if self.widen is not None:
            skip = torch.cat([skip, self.widen(skip)], dim=1)
        return skip + h


# -- networks ---------------------------------------------------------------------------------------
class BigGenerator(nn.Module):
    """(z [B, latent], class [B]) → image [B, C, base_h·2^L, base_w·2^L] in [-1, 1]."""

    def __init__(self, latent: int, channels: int, classes: int, width: int, base: tuple[int, int], layers: int,
                 embedding: int, deep: bool):
        super().__init__()
        self.base, self.deep, self.top = base, deep, 16 * width
        self.embed = nn.Embedding(classes, embedding)
        nn.init.orthogonal_(self.embed.weight)
        widths = level_widths(width, layers)
        self.blocks = nn.ModuleList()
        previous = self.top
        if deep:
            self.chunks = [latent]
            condition = latent + embedding
            for level_width in widths:
                self.blocks.append(DeepUpBlock(previous, previous, condition, grows=False))
                self.blocks.append(DeepUpBlock(previous, level_width, condition, grows=True))
                previous = level_width
            self.attention_after = 2 * layers - 3  # after the block that reaches half the image size
            linear_input = latent + embedding
        else:
            self.chunks = latent_chunks(latent, layers + 1)
            for index, level_width in enumerate(widths):
                self.blocks.append(UpBlock(previous, level_width, self.chunks[index + 1] + embedding))
                previous = level_width
            self.attention_after = layers - 2
            linear_input = self.chunks[0]
        self.linear = linear(linear_input, self.top * base[0] * base[1])
        self.attention = SelfAttention(widths[layers - 2] if layers >= 2 else self.top)
        self.out_norm = nn.BatchNorm2d(width)
        self.out_conv = conv(width, channels, 3)

    def forward(self, noise: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(classes)
        if self.deep:
            conditions = [torch.cat([noise, embedded], dim=1)] * len(self.blocks)
            h = self.linear(conditions[0])
        else:
            parts = noise.split(self.chunks, dim=1)
            conditions = [torch.cat([part, embedded], dim=1) for part in parts[1:]]
            h = self.linear(parts[0])
        h = h.view(len(noise), self.top, *self.base)
        if self.attention_after < 0:
            h = self.attention(h)
        for index, (block, condition) in enumerate(zip(self.blocks, conditions)):
            h = block(h, condition)
            if index == self.attention_after:
                h = self.attention(h)
        return torch.tanh(self.out_conv(F.relu(self.out_norm(h))))


class BigDiscriminator(nn.Module):
    """(image, class) → score [B]: ψ(φ(x)) + ⟨embed(class), φ(x)⟩ (the projection discriminator)."""

    def __init__(self, channels: int, classes: int, width: int, layers: int, deep: bool):
        super().__init__()
        blocks: list[nn.Module] = [conv(channels, width, 3)] if deep else []
        previous = width if deep else channels
        for level in range(layers):
            if deep:
                level_width = width * min(16, 2 ** (level + 1))
                blocks += [DeepDownBlock(previous, level_width, pool=True), DeepDownBlock(level_width, level_width, pool=False)]
            else:
                level_width = width * min(16, 2**level)
                blocks.append(DownBlock(previous, level_width, pool=True, preactivate=level > 0))
            if level == 0:  # attention at half the image size
                blocks.append(SelfAttention(level_width))
            previous = level_width
        if not deep:
            blocks.append(DownBlock(previous, previous, pool=False, preactivate=True))
        self.blocks = nn.Sequential(*blocks)
        self.score = linear(previous, 1)
        self.embed = spectral(nn.Embedding(classes, previous))

    def forward(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        features = F.relu(self.blocks(images)).sum(dim=(2, 3))  # global sum pooling
        return self.score(features).flatten() + (self.embed(classes) * features).sum(1)


# -- the models -------------------------------------------------------------------------------------
class BigGAN(SpriteModel):
    name = "biggan"
    deep = False
    truncates = True
    uses = frozenset({"latent", "diff-augment", "feature-maps", "embedding", "d-steps", "base-width", "base-height", "upsample-layers",
                      "lambda-orthogonal", "ema-decay", "truncation"})
    defaults = defaults_from_file("biggan")
    refuses = {"image-size": "its images are --base-width x 2^--upsample-layers wide and --base-height x 2^--upsample-layers "
                             "high (4, 4, 4 draw 64x64; 4, 3, 5 draw 128x96); set those instead"}

    @classmethod
    def data_size(cls, config: Config) -> tuple[int, int]:
        """(height, width) = (base-height, base-width) × 2^upsample-layers."""
        for key in ("base_width", "base_height", "upsample_layers"):
            if config[key] < 1:
                raise SpriteForgeError(f"--{option_name(key)} must be at least 1, got {config[key]}")
        height, width = config.base_height << config.upsample_layers, config.base_width << config.upsample_layers
        if max(height, width) > MAX_SIDE:
            raise SpriteForgeError(f"{cls.name} would draw {width}x{height} images (base x 2^{config.upsample_layers}); "
                                   f"lower --upsample-layers or the base (at most {MAX_SIDE} a side)")
        return height, width

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int | tuple[int, int] | None = None):
        super().__init__(config, domain_count, channels, self.data_size(config))
        layers = config.upsample_layers
        if not self.deep and config.latent < layers + 1:
            raise SpriteForgeError(f"--latent {config.latent} is too small: biggan splits z into upsample-layers + 1 = {layers + 1} chunks")
        if config.truncation < 0 or config.lambda_orthogonal < 0:
            raise SpriteForgeError("--truncation and --lambda-orthogonal must not be negative")
        self.latent_size = config.latent
        self.view_count = domain_count
        base = (config.base_height, config.base_width)
        self.generator = BigGenerator(config.latent, channels, domain_count, config.feature_maps, base, layers,
                                      config.embedding, self.deep)
        self.discriminator = BigDiscriminator(channels, domain_count, config.feature_maps, layers, self.deep)
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)
        self.keep_moving_average()
        self.augment_discriminator_inputs()

    # -- sampling -----------------------------------------------------------------------------------
    def noise(self, count: int, generator: torch.Generator | None = None, device="cpu", truncation: float | None = None) -> torch.Tensor:
        """Latents to draw from: N(0, I) truncated to |z| ≤ t (t = --truncation unless given; 0 = untruncated)."""
        truncation = self.config.truncation if truncation is None else truncation
        return truncated_normal((count, self.latent_size), truncation, generator).to(device)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """Images for the latents in the given classes (views; round-robin if None)."""
        return self.drawing_generator(noise, view_labels(views, len(noise), self.view_count, noise.device))

    # -- training -----------------------------------------------------------------------------------
    def orthogonal_weights(self) -> list[torch.Tensor]:
        """G's matrices the orthogonal penalty applies to: every weight but the class embedding."""
        return [p for name, p in self.generator.named_parameters() if p.ndim >= 2 and not name.startswith("embed.")]

    def train_step(self, batch, step, progress):
        config = self.config
        real, views = as_images(batch)
        count = len(real)
        with torch.no_grad():
            fake = self.generator(distributed.randn(count, self.latent_size, device=real.device), views)
        scores = self.discriminator(torch.cat([real, fake]), torch.cat([views, views]))
        real_scores, fake_scores = scores[:count], scores[count:]
        d_loss = hinge_discriminator_loss(real_scores, fake_scores)
        self.optimize("discriminator", d_loss)
        losses = {"discriminator/total": d_loss.item(), "discriminator/real-score": real_scores.mean().item(),
                  "discriminator/fake-score": fake_scores.mean().item()}
        if step % config.d_steps:
            return losses

        fake = self.generator(distributed.randn(count, self.latent_size, device=real.device), views)
        with frozen(self.discriminator):
            g_adversarial = hinge_generator_loss(self.discriminator(fake, views))
        orthogonal = orthogonal_regularization(self.orthogonal_weights()) if config.lambda_orthogonal > 0 else torch.zeros((), device=real.device)
        g_loss = g_adversarial + config.lambda_orthogonal * orthogonal
        self.optimize("generator", g_loss)
        losses.update({"generator/adversarial": g_adversarial.item(), "generator/orthogonal": orthogonal.item(),
                       "generator/total": g_loss.item()})
        losses.update(self.update_moving_average(step // config.d_steps))
        return losses

    # -- pictures -----------------------------------------------------------------------------------
    def _rows(self, columns: int, seed: int, device) -> list[list[np.ndarray]]:
        """Fixed latents, one row per view (a column is one character); four rows for a single class."""
        generator = torch.Generator().manual_seed(seed)
        if self.view_count == 1:
            images = imageio.to_uint8(self.sample(self.noise(4 * columns, generator, device)))
            return [list(images[start : start + columns]) for start in range(0, 4 * columns, columns)]
        noise = self.noise(columns, generator, device)
        return [list(imageio.to_uint8(self.sample(noise, torch.full((columns,), view, device=device))))
                for view in range(self.view_count)]

    def preview(self, train_views, test_views, device) -> np.ndarray:
        """The same latents at every preview, drawn per view by the averaged G, then 8 real images."""
        reals = imageio.to_uint8(train_views.flatten(0, 1)[:8])
        return imageio.grid(self._rows(8, 0, device) + [list(reals)])

    def final_images(self, test_views, device) -> dict[str, np.ndarray]:
        return {"samples": imageio.grid(self._rows(8, 1, device) + self._rows(8, 2, device))}

    @torch.no_grad()
    def debug_discriminator(self, batch):
        real, views = as_images(batch[:2])
        fake = self.sample(self.noise(len(real), device=batch.device), views)
        real_scores, fake_scores = self.discriminator(real, views), self.discriminator(fake, views)
        return [real, fake, real_scores[:, None, None, None], fake_scores[:, None, None, None]]


class DeepBigGAN(BigGAN):
    name = "deep-biggan"
    deep = True
    defaults = defaults_from_file("deep-biggan")
