"""Conditional DCGAN: new characters drawn in a chosen view (TinyHero notebook 4, with its gap closed).

Architecture (related systems §1.4): a trainable `nn.Embedding(views, --embedding)` is concatenated
to z and fed to the DCGAN generator; the DCGAN discriminator trunk gets a second head that classifies
the view (conv 4×4 → 64, BatchNorm, LeakyReLU, Linear → one logit per view).

Fixed relative to the notebook:
* the view head gives logits and the cross-entropy works on them (the notebook applied it to
  sigmoid outputs);
* the generator is also trained to have its fakes classified as the view it was asked for (AC-GAN,
  weight --lambda-domain); in the notebook only D learned the view on real images, so nothing made G
  obey the label. `view_accuracy` measures whether it does.
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
from spriteforge.models.blocks import frozen
from spriteforge.models.dcgan import DCGAN, DCDiscriminator, DCGenerator, dcgan_init
from spriteforge.models.views import as_images
from spriteforge.options import Config


class ViewGenerator(DCGenerator):
    """(z [B, latent], view [B]) → image: the view's trainable embedding is concatenated to z."""

    def __init__(self, latent: int, channels: int, image_size: int, feature_maps: int, views: int, embedding: int):
        super().__init__(latent, channels, image_size, feature_maps, condition=embedding)
        self.embed = nn.Embedding(views, embedding)

    def forward(self, noise: torch.Tensor, views: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(noise, self.embed(views))


class ViewDiscriminator(DCDiscriminator):
    """image → (real/fake logit [B], view logits [B, views]) from one shared trunk."""

    def __init__(self, channels: int, image_size: int, feature_maps: int, dropout: float, views: int):
        super().__init__(channels, image_size, feature_maps, dropout)
        self.view_head = nn.Sequential(nn.Conv2d(self.width, 64, 4, 1, 0, bias=False), nn.BatchNorm2d(64),
                                       nn.LeakyReLU(0.2, True), nn.Flatten(), nn.Linear(64, views))
        dcgan_init(self.view_head)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(image)
        return self.head(features).flatten(), self.view_head(features)


def round_robin(count: int, views: int, device="cpu") -> torch.Tensor:
    return distributed.global_rows(count, device) % views


def view_labels(views, count: int, view_count: int, device) -> torch.Tensor:
    """The `count` view indices to draw (round-robin if None), checked to lie in [0, view_count)."""
    if views is None:
        return round_robin(count, view_count, device)
    views = torch.as_tensor(views, device=device).long()
    if views.shape != (count,) or views.min() < 0 or views.max() >= view_count:
        raise SpriteForgeError(f"views must be {count} indices in [0, {view_count})")
    return views


class ConditionalDCGAN(DCGAN):
    name = "cdcgan"
    uses = frozenset({"latent", "diff-augment", "feature-maps", "embedding", "label-smoothing", "d-dropout", "d-steps",
                      "lambda-adversarial", "lambda-domain", "ema-decay"})
    # The notebook: latent 40, embedding 10, 64 feature maps, lr_D 4e-4 / lr_G 1e-4, 100 images a batch
    # (25 characters × 4 views). --lambda-domain weighs the view cross-entropy of D (real) and G (fake).
    defaults = {"latent": 40, "embedding": 10, "feature-maps": 64, "lr": 1e-4, "ttur": 4.0, "batch": 25,
                "lr-decay": "none", "d-steps": 1, "lambda-domain": 1.0, "ema-decay": 0.0}

    @classmethod
    def accepts_single_folder(cls) -> bool:
        """No: a single folder of images has one class, and a view classifier over one class learns nothing."""
        return False

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        SpriteModel.__init__(self, config, domain_count, channels, image_size)
        if not 0 <= config.label_smoothing < 0.5:
            raise SpriteForgeError(f"--label-smoothing must be in [0, 0.5), got {config.label_smoothing}")
        if not 0 <= config.d_dropout < 1:
            raise SpriteForgeError(f"--d-dropout must be in [0, 1), got {config.d_dropout}")
        self.latent_size = config.latent
        self.view_count = domain_count
        self.generator = ViewGenerator(config.latent, channels, image_size, config.feature_maps, domain_count, config.embedding)
        self.discriminator = ViewDiscriminator(channels, image_size, config.feature_maps, config.d_dropout, domain_count)
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)
        self.keep_moving_average()
        self.augment_discriminator_inputs()

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        """Images for the latent vectors in the given views (round-robin over the views if None)."""
        return self.drawing_generator(noise, view_labels(views, len(noise), self.view_count, noise.device))

    def train_step(self, batch, step, progress):
        config = self.config
        real, views = as_images(batch)
        count = real.shape[0]
        fake = self.generator(self.noise(count, device=real.device), views)

        real_scores, real_logits = self.discriminator(real)
        fake_scores, _ = self.discriminator(fake.detach())
        d_adversarial = (F.binary_cross_entropy_with_logits(real_scores, self._labels(count, True, real.device))
                         + F.binary_cross_entropy_with_logits(fake_scores, self._labels(count, False, real.device)))
        d_domain = F.cross_entropy(real_logits, views)
        d_loss = d_adversarial + config.lambda_domain * d_domain
        self.optimize("discriminator", d_loss)
        losses = {"discriminator/adversarial": d_adversarial.item(), "discriminator/domain": d_domain.item(),
                  "discriminator/total": d_loss.item(), "discriminator/real-score": real_scores.mean().item(),
                  "discriminator/fake-score": fake_scores.mean().item(),
                  "discriminator/real-view-accuracy": (real_logits.argmax(1) == views).float().mean().item()}
        if step % config.d_steps:
            return losses

        with frozen(self.discriminator):
            scores, logits = self.discriminator(fake)
        g_adversarial = F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
        g_domain = F.cross_entropy(logits, views)  # AC-GAN: the fake must be seen as the view it was asked for
        g_loss = config.lambda_adversarial * g_adversarial + config.lambda_domain * g_domain
        self.optimize("generator", g_loss)
        losses.update({"generator/adversarial": g_adversarial.item(), "generator/domain": g_domain.item(),
                       "generator/total": g_loss.item(),
                       "generator/fake-view-accuracy": (logits.argmax(1) == views).float().mean().item()})
        losses.update(self.update_moving_average(step // config.d_steps))
        return losses

    # -- pictures -----------------------------------------------------------------------------------
    def _rows_per_view(self, columns: int, seed: int, device) -> list[list[np.ndarray]]:
        """One row per view, the same `columns` latent vectors in every row (so a column is one character)."""
        noise = self.noise(columns, torch.Generator().manual_seed(seed), device)
        rows = []
        for view in range(self.view_count):
            views = torch.full((columns,), view, device=device)
            rows.append(list(imageio.to_uint8(self.sample(noise, views))))
        return rows

    def preview(self, train_views, test_views, device) -> np.ndarray:
        """Fixed noise drawn in each view (a row per view), then a row of real characters' views."""
        reals = imageio.to_uint8(train_views.flatten(0, 1)[:8])
        return imageio.grid(self._rows_per_view(8, 0, device) + [list(reals)])

    def final_images(self, test_views, device) -> dict[str, np.ndarray]:
        return {"samples": imageio.grid(self._rows_per_view(8, 1, device) + self._rows_per_view(8, 2, device))}


@torch.no_grad()
def view_accuracy(model: ConditionalDCGAN, count: int, classifier=None, seed: int = 0) -> float:
    """Share of `count` samples (views round-robin) classified as the view they were asked for.

    `classifier` maps images to view logits; by default the model's own discriminator view head.
    Both networks run in eval mode (restored afterwards). The D head needs the trained model itself:
    `load_for_inference` restores only the generator. After short runs the D head in eval mode (BN
    running statistics) judged fakes at chance while it scored them right in train mode, so prefer an
    independent classifier (`train_view_classifier` on real characters).
    """
    judge = classifier if classifier is not None else (lambda images: model.discriminator(images)[1])
    device = next(model.generator.parameters()).device
    modes = [(module, module.training) for module in (model.generator, model.discriminator)]
    if isinstance(classifier, nn.Module):
        modes.append((classifier, classifier.training))
    for module, _ in modes:
        module.eval()
    try:
        noise = model.noise(count, torch.Generator().manual_seed(seed), device)
        views = round_robin(count, model.view_count, device)
        predicted = judge(model.sample(noise, views)).argmax(1)
    finally:
        for module, training in modes:
            module.train(training)
    return (predicted == views).float().mean().item()


class ViewClassifier(nn.Module):
    """A small independent view classifier (3 stride-2 convs, global mean, linear) → view logits."""

    def __init__(self, channels: int, views: int, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(cin, out, 3, 2, 1), nn.LeakyReLU(0.2, True)]
            cin = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, views)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images).mean((2, 3)))


def train_view_classifier(characters: torch.Tensor, steps: int = 200, batch: int = 64, seed: int = 0) -> ViewClassifier:
    """Fit a `ViewClassifier` on real characters [N, D, C, H, W] in [-1, 1] (every view one image)."""
    images, views = as_images(characters)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = ViewClassifier(images.shape[1], characters.shape[1]).to(images.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3)
    for _ in range(steps):
        pick = torch.randint(len(images), (min(batch, len(images)),), generator=generator).to(images.device)
        loss = F.cross_entropy(classifier(images[pick]), views[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return classifier.eval()
