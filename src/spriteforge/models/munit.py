"""MUNIT: per-view content and style codes; a view is drawn from another view's content and a style (§4.6).

Every view d has a content encoder, a style encoder, an AdaIN decoder and a multi-scale LSGAN
discriminator. A training step encodes each view of the batch, reconstructs it (`--lambda-l1`), draws
every view d from the content of another view (one random cyclic shift of the views per step) with a
style sampled from N(0, I), fools view d's discriminator with it (`--lambda-adversarial`), re-encodes it
to recover that content and style (`--lambda-latent-reconstruction`) and, with
`--lambda-cyclic-reconstruction` > 0, decodes the recovered content back into the source view with the
source's own style. Terms are summed over the views, like the original's per-view objectives.

What is fixed or made explicit relative to the original:
* the style used at inference is a choice: `encoded` (default) is the original's, the **target** view's
  style encoder applied to the **source** image; `sampled` draws it from N(0, I) (`translate --style`,
  `--styles K` for K variations);
* the cycle pairs each re-encoded content with the view it came from (the original gathered it with the
  forward shift instead of its inverse, which pairs the wrong views unless the shift is 2 of 4);
* the gradient of every term reaches every network it depends on (the original gave view d's
  objective only to view d's own encoders and decoder, so a content encoder never learned from the
  translations made out of its code);
* `--lambda-regularization` is the effective coefficient of Σw² over all generator kernels (the
  original's Keras regularisers applied 1e-4·Σw² to the decoders, hidden in the layers);
* training-time L1 uses distinct characters (the original repeated one) and runs in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import frozen, total
from spriteforge.models.evaluation import test_image_grid
from spriteforge.models.munit_blocks import (
    STYLE_SIZE, ContentEncoder, Decoder, MultiScaleDiscriminator, StyleEncoder, kernel_squares, lsgan_loss, per_domain,
)
from spriteforge.models.views import best_sources, one_view_missing
from spriteforge.options import Config


class StyleGenerator(nn.Module):
    """A generator with a style code: per view a style encoder and a decoder (MUNIT's and ReMIC's)."""

    style_encoders: nn.ModuleList
    decoders: nn.ModuleList


class MunitGenerator(StyleGenerator):
    """Everything `translate` needs: per view a content encoder, a style encoder and a decoder."""

    def __init__(self, channels: int, domains: int, width: int):
        super().__init__()
        self.content_encoders = nn.ModuleList(ContentEncoder(channels, width) for _ in range(domains))
        self.style_encoders = nn.ModuleList(StyleEncoder(channels, width) for _ in range(domains))
        self.decoders = nn.ModuleList(Decoder(channels, width) for _ in range(domains))


class MUNIT(SpriteModel):
    name = "munit"
    style_size = STYLE_SIZE
    uses = frozenset({
        "feature-maps", "discriminator-scales", "adv", "lambda-adversarial", "lambda-l1", "lambda-latent-reconstruction",
        "lambda-cyclic-reconstruction", "lambda-regularization",
    })
    # The reference's MUNIT experiments: MUNIT's loss weights (image 10, latent 1, no cycle), the Keras
    # regularisers' 1e-4 as the effective L2 coefficient, lr 1e-4 halved every 30k steps, batch 16.
    defaults = {
        "feature-maps": 64, "discriminator-scales": 3, "lambda-adversarial": 1.0, "lambda-l1": 10.0,
        "lambda-latent-reconstruction": 1.0, "lambda-cyclic-reconstruction": 0.0, "lambda-regularization": 1e-4,
        "lr": 1e-4, "lr-decay": "step", "batch": 16,
    }

    generator: StyleGenerator
    discriminator: nn.ModuleList

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        super().__init__(config, domain_count, channels, image_size)
        if config.adv != "lsgan":
            raise SpriteForgeError(f"--adv {config.adv}: {self.name} trains with the lsgan loss only (r3gan is not implemented for it)")
        if image_size < 16:
            raise SpriteForgeError(f"{self.name} needs --image-size 16 or more (its style encoders halve it 4 times), not {image_size}")
        if config.lambda_regularization < 0:
            raise SpriteForgeError(f"--lambda-regularization must not be negative, got {config.lambda_regularization}")
        self.generator = self.build_generator(channels, domain_count, config.feature_maps)
        self.discriminator = nn.ModuleList(
            MultiScaleDiscriminator(channels, config.feature_maps, config.discriminator_scales, image_size) for _ in range(domain_count)
        )
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)

    @property
    def munit_generator(self) -> MunitGenerator:
        """The generator with one content encoder per view (MUNIT's own; ReMIC overrides what reads it)."""
        assert isinstance(self.generator, MunitGenerator)
        return self.generator

    def build_generator(self, channels: int, domains: int, width: int) -> StyleGenerator:
        return MunitGenerator(channels, domains, width)

    # -- training ------------------------------------------------------------------------------------
    def train_step(self, batch, step, progress):
        config = self.config
        generator = self.munit_generator
        domains = batch.shape[1]
        images = batch.transpose(0, 1)  # [D, B, C, H, W]
        shift = int(torch.randint(1, domains, ()))
        source = [(d - shift) % domains for d in range(domains)]  # view d is drawn from view source[d]
        random_styles = distributed.shard(torch.randn(domains, distributed.global_count(batch.shape[0]), STYLE_SIZE, device=batch.device), dim=1)

        contents = [generator.content_encoders[d](images[d]) for d in range(domains)]
        styles = [generator.style_encoders[d](images[d]) for d in range(domains)]
        reconstructed = [generator.decoders[d](contents[d], styles[d]) for d in range(domains)]
        translated = [generator.decoders[d](contents[source[d]], random_styles[d]) for d in range(domains)]
        recoded_contents = [generator.content_encoders[d](translated[d]) for d in range(domains)]
        recoded_styles = [generator.style_encoders[d](translated[d]) for d in range(domains)]

        with frozen(self.discriminator):
            adversarial = [lsgan_loss(self.discriminator[d](translated[d]), 1.0) for d in range(domains)]
        reconstruction = [(reconstructed[d] - images[d]).abs().mean() for d in range(domains)]
        content = [(recoded_contents[d] - contents[source[d]]).abs().mean() for d in range(domains)]
        style = [(recoded_styles[d] - random_styles[d]).abs().mean() for d in range(domains)]
        terms = {"adversarial": adversarial, "l1": reconstruction, "content": content, "style": style}
        g_loss = (config.lambda_adversarial * sum(adversarial) + config.lambda_l1 * sum(reconstruction)
                  + config.lambda_latent_reconstruction * (sum(content) + sum(style)))
        if config.lambda_cyclic_reconstruction > 0:  # back into the source view, with the source's own style
            cycled = [generator.decoders[source[d]](recoded_contents[d], styles[source[d]]) for d in range(domains)]
            terms["cyclic"] = [(cycled[d] - images[source[d]]).abs().mean() for d in range(domains)]
            g_loss = g_loss + config.lambda_cyclic_reconstruction * sum(terms["cyclic"])
        return self.update(g_loss, terms, images, translated)

    def update(self, g_loss, terms: dict[str, list[torch.Tensor]], real: torch.Tensor, fake: list[torch.Tensor],
               real_weights: torch.Tensor | None = None) -> dict[str, float]:
        """Add the L2 term and update the generator; then update the discriminators on the same images.

        `terms` are logged as their mean over the views; D is LSGAN per view (real [D, B, …] → 1, `fake`
        [D × B, …] → 0), `real_weights` [D, B] leaving real views out of it (ReMIC's hidden views).
        """
        config = self.config
        domains = len(fake)
        result = {f"generator/{name}": (total(values) / domains).item() for name, values in terms.items()}
        if config.lambda_regularization > 0:
            regularization = kernel_squares(self.generator)
            g_loss = g_loss + config.lambda_regularization * regularization
            result["generator/regularization"] = regularization.item()
        result["generator/total"] = self.optimize("generator", g_loss)

        real_terms = [lsgan_loss(self.discriminator[d](real[d]), 1.0, None if real_weights is None else real_weights[d]) for d in range(domains)]
        fake_terms = [lsgan_loss(self.discriminator[d](fake[d].detach()), 0.0) for d in range(domains)]
        d_loss = total(real_terms) + total(fake_terms)
        result.update({"discriminator/real": (total(real_terms) / domains).item(), "discriminator/fake": (total(fake_terms) / domains).item(),
                       "discriminator/total": self.optimize("discriminator", d_loss)})
        return result

    # -- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def impute(self, views, available, target, style: torch.Tensor | None = None):
        """Draw each target from its best given view's content (mirror pose first) and a style: by default the
        target view's style encoder applied to that source image (the original's choice), else `style`
        ([1 or B, 8], e.g. sampled from N(0, I))."""
        rows = torch.arange(len(views), device=views.device)
        source = best_sources(available, target, self.domain_count)
        images = views[rows, source]
        content = per_domain(self.munit_generator.content_encoders, source, images)
        if style is None:
            style = per_domain(self.generator.style_encoders, target, images)
        return per_domain(self.generator.decoders, target, content, style.to(views).expand(len(views), -1))

    def test_images(self, character, device):
        """The source × target grid with the encoded style, and again with styles sampled from N(0, I)."""
        generator = torch.Generator().manual_seed(0)
        sampled = torch.randn(1, STYLE_SIZE, generator=generator).to(device)
        return {"": test_image_grid(self, character, device), "_sampled-style": test_image_grid(WithStyle(self, sampled), character, device)}

    @torch.no_grad()
    def debug_discriminator(self, batch):
        """Finest-scale LSGAN maps of real and drawn targets; example i draws view i mod D from the others."""
        rows, target, available = one_view_missing(batch)
        real, fake = batch[rows, target], self.impute(batch, available, target)
        finest = lambda images: torch.stack([self.discriminator[t](image[None])[0][0] for image, t in zip(images, target.tolist())])
        return [real, fake, finest(real), finest(fake)]


class WithStyle:
    """A style model seen through `impute(views, available, target)` with one fixed style (for picture grids)."""

    def __init__(self, model: MUNIT, style: torch.Tensor):
        self.model, self.style = model, style

    def can_impute(self, available, target):
        return self.model.can_impute(available, target)

    def impute(self, views, available, target):
        return self.model.impute(views, available, target, style=self.style)
