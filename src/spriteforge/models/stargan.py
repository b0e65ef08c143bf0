"""Paired StarGAN: one generator for every (source → target) pose pair, WGAN-GP + domain classifier.

Architecture and losses follow the original system (§4.1 of the reference), with its quirks fixed:
* the real and fake pairs the conditional discriminator compares are symmetric: (real target | source)
  against (generated target | source); the original conditioned the fake on a different image;
* the gradient penalty interpolates between the real target and the fake (not source ↔ fake);
* λgp defaults to 10 (the original's code silently changed it to 0, which is no WGAN-GP at all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import ResidualBlock, SmallMapConv2d, frozen, gradient_penalty, init_normal, instance_norm, tiled_one_hot
from spriteforge.models.views import best_sources
from spriteforge.options import Config


class StarGenerator(nn.Module):
    """7×7 conv, two stride-2 downs, 6 residual blocks, two transposed-conv ups, 7×7 conv + tanh."""

    def __init__(self, channels: int, domains: int, capacity: int, source_aware: bool):
        super().__init__()
        width = 64 * capacity
        in_channels = channels + domains * (2 if source_aware else 1)

        def down(cin: int, cout: int, kernel: int, stride: int, padding: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), instance_norm(cout), nn.ReLU()]

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), instance_norm(cout), nn.ReLU()]

        self.layers = nn.Sequential(
            *down(in_channels, width, 7, 1, 3),
            *down(width, 2 * width, 4, 2, 1),
            *down(2 * width, 4 * width, 4, 2, 1),
            *[ResidualBlock(4 * width) for _ in range(6)],
            *up(4 * width, 2 * width),
            *up(2 * width, width),
            nn.Conv2d(width, channels, 7, 1, 3, bias=False),
            nn.Tanh(),
        )
        self.domains = domains
        self.source_aware = source_aware
        init_normal(self)

    def forward(self, image: torch.Tensor, target: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        size = image.shape[-2:]
        parts = [image, tiled_one_hot(target, self.domains, size)]
        if self.source_aware:
            assert source is not None, "a source-domain-aware generator needs the source domains"
            parts.append(tiled_one_hot(source, self.domains, size))
        return self.layers(torch.cat(parts, dim=1))


class StarDiscriminator(nn.Module):
    """Five 4×4 stride-2 convs (128…2048), a 3×3 patch head and a domain-logit head; no norm."""

    def __init__(self, channels: int, domains: int, image_size: int, conditional: bool):
        super().__init__()
        layers, cin = [], channels * (2 if conditional else 1)
        for width in (128, 256, 512, 1024, 2048):
            layers += [SmallMapConv2d(cin, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.01)]
            cin = width
        self.body = nn.Sequential(*layers)
        remaining = image_size // 32
        self.patch = SmallMapConv2d(cin, 1, 3, 1, 1, bias=False)
        self.classes = SmallMapConv2d(cin, domains, remaining, bias=False)
        self.conditional = conditional
        init_normal(self)

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None):
        if self.conditional:
            assert condition is not None, "a conditional discriminator needs the source image"
            image = torch.cat([image, condition], dim=1)
        features = self.body(image)
        return self.patch(features), self.classes(features).flatten(1)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    return (images[..., 1:, :] - images[..., :-1, :]).abs().mean() + (images[..., :, 1:] - images[..., :, :-1]).abs().mean()


class PairedStarGAN(SpriteModel):
    name = "stargan-paired"
    uses = frozenset({
        "generator", "capacity", "conditional-discriminator", "source-domain-aware-generator", "sampler",
        "lambda-l1", "lambda-domain", "lambda-reconstruction", "lambda-gp", "lambda-tv", "lambda-adversarial",
        "d-steps",
    })
    # The SBGames'24 baseline (§4.1) except capacity, which is 1 so it trains on a CPU (4 in the paper).
    defaults = {
        "generator": "resnet", "capacity": 1, "conditional-discriminator": True,
        "source-domain-aware-generator": True, "lambda-l1": 100.0, "lambda-domain": 1.0,
        "lambda-reconstruction": 10.0, "lambda-gp": 10.0, "lr": 2e-4, "d-steps": 1,
    }

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        super().__init__(config, domain_count, channels, image_size)
        if config.generator not in ("resnet", ""):
            raise SpriteForgeError(f"--generator {config.generator}: StarGAN's generator is always 'resnet'")
        if image_size % 32:
            raise SpriteForgeError("StarGAN needs --image-size divisible by 32 (its discriminator halves it 5 times)")
        self.generator = StarGenerator(channels, domain_count, config.capacity, config.source_domain_aware_generator)
        self.discriminator = StarDiscriminator(channels, domain_count, image_size, config.get("conditional_discriminator", False))
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)

    def sample_pairs(self, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.sampler == "single-target":
            pair = torch.randint(self.domain_count, (2,))
            source, target = pair[0].repeat(batch_size), pair[1].repeat(batch_size)
        else:
            source = distributed.randint(0, self.domain_count, batch_size)
            target = distributed.randint(0, self.domain_count, batch_size)
        return source.to(device), target.to(device)

    def train_step(self, batch, step, progress):
        config = self.config
        rows = torch.arange(batch.shape[0], device=batch.device)
        source_domain, target_domain = self.sample_pairs(batch.shape[0], batch.device)
        source, target = batch[rows, source_domain], batch[rows, target_domain]
        condition = source if config.conditional_discriminator else None
        fake = self.generator(source, target_domain, source_domain)
        # The real pair and the fake pair share the same condition; the real target carries its own label.
        losses = self.update_critic(target, target_domain, fake, condition)
        if step % config.d_steps:
            return losses
        losses.update(self.update_generator(source, source_domain, fake, target_domain, condition, target))
        return losses

    def update_critic(self, real, real_domain, fake, condition) -> dict[str, float]:
        """One WGAN-GP critic step: real vs fake scores, the real image's domain, GP on real ↔ fake."""
        config = self.config
        # one pass over real and fake (D has no batch statistics): its 2048-channel layer reads its weights and
        # builds their gradient once instead of twice
        both = None if condition is None else torch.cat([condition, condition])
        scores, logits = self.discriminator(torch.cat([real, fake.detach()]), both)
        (real_scores, fake_scores), real_logits = scores.split(len(real)), logits[: len(real)]
        d_adversarial = fake_scores.mean() - real_scores.mean()
        d_domain = F.binary_cross_entropy_with_logits(real_logits, F.one_hot(real_domain, self.domain_count).float())
        d_loss = d_adversarial + config.lambda_domain * d_domain
        losses = {"discriminator/adversarial": d_adversarial.item(), "discriminator/domain": d_domain.item()}
        if config.lambda_gp > 0:
            penalty = gradient_penalty(self.discriminator, real, fake.detach(), condition)
            d_loss = d_loss + config.lambda_gp * penalty
            losses["discriminator/gradient-penalty"] = penalty.item()
        self.optimize("discriminator", d_loss)
        losses["discriminator/total"] = d_loss.item()
        return losses

    def update_generator(self, source, source_domain, fake, target_domain, condition, target=None) -> dict[str, float]:
        """Fool the critic, be classified as the target, cycle back to the source [, match the target]."""
        config = self.config
        with frozen(self.discriminator):
            fake_scores, fake_logits = self.discriminator(fake, condition)
        g_adversarial = -fake_scores.mean()
        g_domain = F.binary_cross_entropy_with_logits(fake_logits, F.one_hot(target_domain, self.domain_count).float())
        g_loss = config.lambda_adversarial * g_adversarial + config.lambda_domain * g_domain
        losses = {"generator/adversarial": g_adversarial.item(), "generator/domain": g_domain.item()}
        if target is not None:
            g_l1 = (fake - target).abs().mean()
            g_loss = g_loss + config.lambda_l1 * g_l1
            losses["generator/l1"] = g_l1.item()
        cycled = self.generator(fake, source_domain, target_domain)
        g_reconstruction = (cycled - source).abs().mean()
        g_loss = g_loss + config.lambda_reconstruction * g_reconstruction
        losses["generator/reconstruction"] = g_reconstruction.item()
        if config.lambda_tv > 0:
            tv = total_variation(fake)
            g_loss = g_loss + config.lambda_tv * tv
            losses["generator/total-variation"] = tv.item()
        self.optimize("generator", g_loss)
        losses["generator/total"] = g_loss.item()
        return losses

    def choose_sources(self, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The best available single source for each target (mirror pose first)."""
        return best_sources(available, target, self.domain_count)

    @torch.no_grad()
    def impute(self, views, available, target):
        source_domain = self.choose_sources(available, target)
        rows = torch.arange(views.shape[0], device=views.device)
        return self.generator(views[rows, source_domain], target, source_domain)

    @torch.no_grad()
    def debug_discriminator(self, batch):
        """Critic scores of real and generated targets; example i targets view i mod domains (stargan-unpaired
        too: its discriminator is never conditional, so `condition` is None there)."""
        rows = torch.arange(batch.shape[0], device=batch.device)
        target_domain = rows % self.domain_count
        everything = torch.ones(batch.shape[:2], dtype=torch.bool, device=batch.device)
        source_domain = self.choose_sources(everything.index_put((rows, target_domain), torch.tensor(False)), target_domain)
        source, target = batch[rows, source_domain], batch[rows, target_domain]
        condition = source if self.config.conditional_discriminator else None
        fake = self.generator(source, target_domain, source_domain)
        real_scores, _ = self.discriminator(target, condition)
        fake_scores, _ = self.discriminator(fake, condition)
        return [target, fake, real_scores, fake_scores]
