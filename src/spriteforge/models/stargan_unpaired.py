"""Unpaired StarGAN: the original StarGAN recipe, where no character is seen in two poses at once.

Same generator, critic and gradient penalty as the paired model (§4.1 of the reference); what differs:
* the real sample the critic sees in the target pose belongs to *another* character of the batch, so
  nothing pairs the generated image with a real one and there is no L1 to a target;
* the critic is updated every step, the generator every `--d-steps` steps (5, the original's default);
* the critic's domain classifier learns the real image's **own** domain (the target pose it was drawn
  from). The original labelled the real target image with the *source* domain, training the classifier
  to call every pose by the wrong name (reference §9 item 7);
* the gradient penalty interpolates real ↔ fake in the target pose (the original: source ↔ fake), and
  λgp defaults to 10 (the original's code had silently set it to 0);
* the critic is never conditioned on the source image (a conditional critic would be given an
  unrelated character next to the real target, which it could tell apart from the fake pair).
"""

from __future__ import annotations

import torch

from spriteforge.errors import SpriteForgeError
from spriteforge.models.stargan import PairedStarGAN
from spriteforge.options import Config


class UnpairedStarGAN(PairedStarGAN):
    name = "stargan-unpaired"
    uses = frozenset({
        "generator", "capacity", "source-domain-aware-generator", "sampler", "lambda-domain",
        "lambda-reconstruction", "lambda-gp", "lambda-tv", "lambda-adversarial", "d-steps",
    })
    # The original's unpaired defaults (lr 1e-4, d-steps 5, λdomain 1, λreconstruction 10) with λgp 10.
    defaults = {
        "generator": "resnet", "capacity": 1, "source-domain-aware-generator": True, "lambda-domain": 1.0,
        "lambda-reconstruction": 10.0, "lambda-gp": 10.0, "lr": 1e-4, "d-steps": 5,
    }

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        if config.batch < 2:
            raise SpriteForgeError("stargan-unpaired needs --batch 2 or more: its real targets come from other characters of the batch")
        super().__init__(config, domain_count, channels, image_size)

    def train_step(self, batch, step, progress):
        rows = torch.arange(batch.shape[0], device=batch.device)
        others = rows.roll(1)  # a different character for every example (batch ≥ 2)
        source_domain, target_domain = self.sample_pairs(batch.shape[0], batch.device)
        source, real = batch[rows, source_domain], batch[others, target_domain]
        fake = self.generator(source, target_domain, source_domain)
        losses = self.update_critic(real, target_domain, fake, None)
        if step % self.config.d_steps:
            return losses
        losses.update(self.update_generator(source, source_domain, fake, target_domain, None))
        return losses
