"""WGAN-GP: new characters from noise with a Lipschitz critic kept in line by a gradient penalty.

Generator: the DCGAN generator. Critic: the DCGAN discriminator without BatchNorm (the penalty is
per sample, and BatchNorm makes a sample's score depend on the batch — Gulrajani et al. 2017), with
LayerNorm by default (--critic-norm layer | instance | none), no dropout, a raw linear score.
Losses (related systems §2.4): critic = mean D(fake) − mean D(real) + λ_GP · mean (‖∇D(x̂)‖₂ − 1)² at
random real/fake interpolates x̂; generator = −mean D(G(z)), stepped once every --d-steps critic steps.
Adam lr 1e-4, betas (0, 0.9), 5 critic steps, λ_GP 10 as in GAN Pokémon's config.

Fixed relative to GAN Pokémon's trainer: the critic ends in a free linear score (theirs had LeakyReLU,
a mean and another LeakyReLU after the last conv), and the trainer runs (theirs referenced an
undefined `real_data`).
"""

from __future__ import annotations

import torch

from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import frozen, gradient_penalty
from spriteforge.models.dcgan import DCGAN, DCDiscriminator, DCGenerator
from spriteforge.models.views import as_images
from spriteforge.options import Config


class WGANGP(DCGAN):
    name = "wgan-gp"
    uses = frozenset({"latent", "diff-augment", "feature-maps", "critic-norm", "d-steps", "lambda-gp", "lambda-adversarial", "ema-decay"})
    defaults = {"latent": 84, "feature-maps": 48, "lr": 1e-4, "beta1": 0.0, "beta2": 0.9, "batch": 16,
                "lr-decay": "none", "d-steps": 5, "lambda-gp": 10.0, "critic-norm": "layer", "ema-decay": 0.0}

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        SpriteModel.__init__(self, config, domain_count, channels, image_size)
        self.latent_size = config.latent
        self.generator = DCGenerator(config.latent, channels, image_size, config.feature_maps)
        self.discriminator = DCDiscriminator(channels, image_size, config.feature_maps, 0.0, norm=config.critic_norm)
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)
        self.keep_moving_average()
        self.augment_discriminator_inputs()

    def critic(self, images: torch.Tensor, condition=None) -> tuple[torch.Tensor, None]:
        """The critic's score in the (scores, extra) form `gradient_penalty` expects."""
        return self.discriminator(images)[0], None

    def train_step(self, batch, step, progress):
        config = self.config
        real, _ = as_images(batch)
        count = real.shape[0]
        fake = self.generator(self.noise(count, device=real.device))

        real_scores, _ = self.discriminator(real)
        fake_scores, _ = self.discriminator(fake.detach())
        wasserstein = real_scores.mean() - fake_scores.mean()
        penalty = gradient_penalty(self.critic, real, fake.detach(), None)
        d_loss = -wasserstein + config.lambda_gp * penalty
        self.optimize("discriminator", d_loss)
        losses = {"discriminator/total": d_loss.item(), "discriminator/wasserstein": wasserstein.item(),
                  "discriminator/gradient-penalty": penalty.item(),
                  "discriminator/real-score": real_scores.mean().item(), "discriminator/fake-score": fake_scores.mean().item()}
        if step % config.d_steps:
            return losses

        with frozen(self.discriminator):
            scores, _ = self.discriminator(fake)
        g_adversarial = -scores.mean()
        g_loss = config.lambda_adversarial * g_adversarial
        self.optimize("generator", g_loss)
        losses.update({"generator/adversarial": g_adversarial.item(), "generator/total": g_loss.item()})
        losses.update(self.update_moving_average(step // config.d_steps))
        return losses
