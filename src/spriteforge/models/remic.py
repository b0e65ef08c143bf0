"""ReMIC: MUNIT with one content encoder over all views, so any 1–3 given views can draw the others (§4.7).

One unified content encoder reads the four views stacked on channels (missing views are zeros); each
view keeps its own style encoder (MUNIT's, plus 4 un-normalised residual blocks), AdaIN decoder and
multi-scale LSGAN discriminator (the blocks of `munit_blocks`). A training step hides 1–3 views per
character with the `--input-dropout` sampler (CollaGAN's), encodes the content of the rest, and decodes
all four views twice:
* with each view's own encoded style: L1 to the views that were given (`--lambda-l1`, image consistency);
* with styles sampled from N(0, I): L1 to **all four** real views, the hidden ones included
  (`--lambda-cyclic-reconstruction`, 100 in the baseline: the term that teaches imputation); the
  unified encoder must find the same content in these four decodes (content consistency) and each
  style encoder the sampled style (style consistency, both `--lambda-latent-reconstruction`); they are
  the fakes of the adversarial term (`--lambda-adversarial`).
Terms are summed over the views, like the original's per-view objectives (the shared content term in each).

Fixed relative to the original:
* a view the model was not given is left out of its discriminator's real term: the original fed the
  zero image of every hidden view to the discriminator as a "real" sprite;
* image consistency is the mean over the given views only (the original averaged in the zeros of the
  hidden ones, shrinking the term by the share of hidden views);
* `--lambda-regularization` is the effective coefficient of Σw² over all generator kernels (the
  original multiplied it by the Keras regularisers' 1e-4);
* `--lambda-kl` and `--lambda-gp` are refused: the original's ReMIC never used a KL term, and a gradient
  penalty only belonged to its untested r3gan loss.
The input-dropout sampler is CollaGAN's, so `curriculum` ends in `balanced` (the original ReMIC's ended
in `original`).
"""

from __future__ import annotations

import torch
from torch import nn

from spriteforge import distributed
from spriteforge.models.blocks import frozen
from spriteforge.models.evaluation import missing_views_grid
from spriteforge.models.views import sample_kept_views
from spriteforge.models.munit import MUNIT, StyleGenerator
from spriteforge.models.munit_blocks import STYLE_SIZE, ContentEncoder, Decoder, StyleEncoder, lsgan_loss, per_domain

STYLE_RESIDUAL_BLOCKS = 4


class RemicGenerator(StyleGenerator):
    """Everything `translate` needs: the unified content encoder, per view a style encoder and a decoder."""

    def __init__(self, channels: int, domains: int, width: int):
        super().__init__()
        self.content_encoder = ContentEncoder(domains * channels, width)
        self.style_encoders = nn.ModuleList(StyleEncoder(channels, width, STYLE_RESIDUAL_BLOCKS) for _ in range(domains))
        self.decoders = nn.ModuleList(Decoder(channels, width) for _ in range(domains))

    def content(self, visible: torch.Tensor) -> torch.Tensor:
        """[B, D, C, H, W] with hidden views zeroed → the shared content code."""
        return self.content_encoder(visible.flatten(1, 2))


class ReMIC(MUNIT):
    name = "remic"
    evaluation_given_views = 3  # as collagan: training-time L1 of the two multi-view models is comparable
    uses = frozenset({
        "feature-maps", "discriminator-scales", "adv", "input-dropout", "lambda-adversarial", "lambda-l1",
        "lambda-latent-reconstruction", "lambda-cyclic-reconstruction", "lambda-regularization",
    })
    # The evaluated January-2025 baseline: batch 16, lr 1e-4 constant, 3 scales, `original` input dropout,
    # λ image consistency 10, latent 1, image reconstruction 100; λregularization 0.001 × Keras' 1e-4.
    defaults = {
        "feature-maps": 64, "discriminator-scales": 3, "input-dropout": "original", "lambda-adversarial": 1.0,
        "lambda-l1": 10.0, "lambda-latent-reconstruction": 1.0, "lambda-cyclic-reconstruction": 100.0,
        "lambda-regularization": 1e-7, "lr": 1e-4, "lr-decay": "none", "batch": 16,
    }

    @property
    def remic_generator(self) -> RemicGenerator:
        """The generator with one content encoder for all views."""
        assert isinstance(self.generator, RemicGenerator)
        return self.generator

    def build_generator(self, channels: int, domains: int, width: int) -> StyleGenerator:
        return RemicGenerator(channels, domains, width)

    def hide_views(self, count: int, device, progress: float) -> torch.Tensor:
        """[B, D] bool, True = given: 1–3 views hidden per character with the --input-dropout probabilities.

        CollaGAN's sampler hides a target and k − 1 others; a uniformly random target makes the hidden set
        a uniformly random k-subset, which is what ReMIC needs.
        """
        anchor = distributed.randint(0, self.domain_count, count, device=device)
        return sample_kept_views(anchor, self.domain_count, self.config.input_dropout, progress)

    def train_step(self, batch, step, progress):
        config = self.config
        generator = self.remic_generator
        count, domains = batch.shape[:2]
        kept = self.hide_views(count, batch.device, progress)
        weights = kept.t().to(batch.dtype)  # [D, B]
        images = batch.transpose(0, 1)
        visible = batch * kept[:, :, None, None, None]
        random_styles = distributed.shard(torch.randn(domains, distributed.global_count(count), STYLE_SIZE, device=batch.device), dim=1)

        content = generator.content(visible)
        styles = [generator.style_encoders[d](visible[:, d]) for d in range(domains)]
        decoded = [generator.decoders[d](content, styles[d]) for d in range(domains)]
        randomised = [generator.decoders[d](content, random_styles[d]) for d in range(domains)]
        recoded_content = generator.content(torch.stack(randomised, dim=1))
        recoded_styles = [generator.style_encoders[d](randomised[d]) for d in range(domains)]

        with frozen(self.discriminator):
            adversarial = [lsgan_loss(self.discriminator[d](randomised[d]), 1.0) for d in range(domains)]
        consistency = [((decoded[d] - images[d]).abs().flatten(1).mean(1) * weights[d]).sum() / distributed.count_per_rank(weights[d].sum()).clamp_min(1)
                       for d in range(domains)]
        errors = torch.stack([(randomised[d] - images[d]).abs().flatten(1).mean(1) for d in range(domains)])  # [D, B]
        reconstruction = list(errors.mean(1))
        content_term = (recoded_content - content).abs().mean()
        style = [(recoded_styles[d] - random_styles[d]).abs().mean() for d in range(domains)]
        g_loss = (config.lambda_adversarial * sum(adversarial) + config.lambda_l1 * sum(consistency)
                  + config.lambda_latent_reconstruction * (domains * content_term + sum(style))
                  + config.lambda_cyclic_reconstruction * sum(reconstruction))
        terms = {"adversarial": adversarial, "consistency": consistency, "style": style, "reconstruction": reconstruction}
        # generator/l1: the imputation error itself, on the hidden views (drawn with sampled styles)
        logged = {"generator/content": content_term.item(), "generator/l1": errors[weights == 0].mean().item()}
        return {**logged, **self.update(g_loss, terms, images, randomised, real_weights=weights)}

    # -- inference -----------------------------------------------------------------------------------
    @torch.no_grad()
    def impute(self, views, available, target, style: torch.Tensor | None = None):
        """Draw each target from the content of all given views and a style: by default the target view's
        style encoder applied to its (empty) slot, as the original evaluated, else `style` ([1 or B, 8])."""
        rows = torch.arange(len(views), device=views.device)
        visible = views * available[:, :, None, None, None].to(views.dtype)
        content = self.remic_generator.content(visible)
        if style is None:
            style = per_domain(self.generator.style_encoders, target, visible[rows, target])
        return per_domain(self.generator.decoders, target, content, style.to(views).expand(len(views), -1))

    def test_images(self, character, device):
        """Grids for 1, 2 and 3 missing views: per row the given views, the generated ones, the truth."""
        return {f"_missing-{missing}": missing_views_grid(self, character, device, missing) for missing in range(1, character.shape[0])}
