"""CycleGAN: pictures (domain A, `--domain-a FOLDER`) ↔ pixel art (domain B, `--dataset`), unpaired.

As the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix, related systems §4):
* two ResNet generators, A→B and B→A: reflection-pad + 7×7 conv (ngf = `--feature-maps`, 64), two
  stride-2 3×3 convs (2·ngf, 4·ngf), `--generator-blocks` residual blocks (9; reflection padding,
  InstanceNorm, ReLU, no dropout), two stride-2 3×3 transposed convs back, reflection-pad + 7×7 conv,
  tanh. Any image size divisible by 4;
* two unconditional 70×70 PatchGANs (the pix2pix zoo's `PatchDiscriminator`, ndf = `--feature-maps`):
  one tells real pixel art from G_AB(A), the other real pictures from G_BA(B);
* LSGAN (MSE to 1 / 0); generators: adversarial + λ·(|G_BA(G_AB(a)) − a| + |G_AB(G_BA(b)) − b|) +
  λidentity·λ·(|G_AB(b) − b| + |G_BA(a) − a|), λ = `--lambda-reconstruction` 10, λidentity 0.5;
  the discriminators: ½(MSE(D(real), 1) + MSE(D(fake from the image pool), 0));
* an image pool of 50 generated images per discriminator (`--pool-size`); generators updated jointly
  first (one Adam over both), then both discriminators (one Adam); Adam 2e-4, β1 0.5; learning rate
  constant for the first half, then linear to 0 (`--lr-decay constant-then-linear`, the reference's
  n_epochs = n_epochs_decay).

Differences, all deliberate: images are RGBA (alpha is a fourth channel on both sides; RGB pictures get
alpha 255; `--output-channels 3` composites on white), InstanceNorm is affine (SpriteForge's
GroupNorm form; convs before it have no bias, so each normalised channel adds one parameter), the
default batch is 1 as in the paper, and the pool's draws come from the step's seed, with the pool saved
in checkpoints, so resume is bit-exact.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import frozen, init_normal, instance_norm, total
from spriteforge.models.pix2pix import PatchDiscriminator
from spriteforge.options import BY_NAME, Config, option_name

SIZE_MULTIPLE = 4
MIN_IMAGE_SIZE = 24
"""The PatchGAN's three halvings and two 4×4 stride-1 convs leave no patch below 24 px."""


class ReflectResidualBlock(nn.Module):
    """CycleGAN's residual block: reflect-pad, 3×3 conv, norm, ReLU, reflect-pad, 3×3 conv, norm, + input."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=False), instance_norm(width), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=False), instance_norm(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """The reference's resnet_9blocks / resnet_6blocks generator; image [B, C, H, W] → [B, C, H, W] in [-1, 1]."""

    def __init__(self, channels: int, width: int = 64, blocks: int = 9):
        super().__init__()

        def conv(cin: int, cout: int, kernel: int, stride: int = 1, transposed: bool = False) -> list[nn.Module]:
            layer: nn.Module
            if transposed:
                layer = nn.ConvTranspose2d(cin, cout, kernel, stride, padding=1, output_padding=1, bias=False)
            else:
                layer = nn.Conv2d(cin, cout, kernel, stride, padding=0 if kernel == 7 else 1, bias=False)
            return [layer, instance_norm(cout), nn.ReLU()]

        self.layers = nn.Sequential(
            nn.ReflectionPad2d(3), *conv(channels, width, 7),
            *conv(width, 2 * width, 3, 2), *conv(2 * width, 4 * width, 3, 2),
            *[ReflectResidualBlock(4 * width) for _ in range(blocks)],
            *conv(4 * width, 2 * width, 3, 2, transposed=True), *conv(2 * width, width, 3, 2, transposed=True),
            nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh(),
        )
        init_normal(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class ImagePool(nn.Module):
    """The reference's history of generated images (Shrivastava et al.): the discriminator sees old fakes too.

    Until full, every image is stored and returned. Then each image is, with probability ½, swapped for
    a random stored one (which is returned in its place), else returned as is. The stored images are
    buffers, so checkpoints keep them; the draws use the global RNG, which the engine seeds per step.
    """

    def __init__(self, size: int, channels: int, image_size: int):
        super().__init__()
        self.size = size
        self.images: torch.Tensor
        self.count: torch.Tensor
        self.register_buffer("images", torch.zeros(size, channels, image_size, image_size))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"size={self.size}"

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        returned = []
        for image in images.detach():
            count = int(self.count)
            if count < self.size:
                self.images[count] = image
                self.count += 1
                returned.append(image)
            elif float(torch.rand(())) > 0.5:
                slot = int(torch.randint(self.size, ()))
                returned.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.stack(returned)


def check_image_size(image_size: int) -> None:
    if image_size % SIZE_MULTIPLE or image_size < MIN_IMAGE_SIZE:
        raise SpriteForgeError(f"cyclegan needs --image-size divisible by {SIZE_MULTIPLE} and at least {MIN_IMAGE_SIZE} (its PatchGAN), not {image_size}")


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean (D(x) − 1)² for real targets, D(x)² for fake ones."""
    return F.mse_loss(scores, torch.ones_like(scores) if real else torch.zeros_like(scores))


class CycleGAN(SpriteModel):
    name = "cyclegan"
    uses = frozenset({"domain-a", "generator-blocks", "feature-maps", "pool-size", "lambda-reconstruction", "lambda-identity",
                      "lambda-adversarial"})
    # The reference's defaults (§4.2, §4.3): lr 2e-4, batch 1, ngf = ndf = 64, 9 blocks, λ 10, identity 0.5, pool 50.
    defaults = {"lr": 2e-4, "batch": 1, "feature-maps": 64, "generator-blocks": 9, "pool-size": 50,
                "lambda-reconstruction": 10.0, "lambda-identity": 0.5}
    inference_networks = ("generator_ab", "generator_ba")
    size_multiple = SIZE_MULTIPLE

    data_kind = "unpaired-pictures"

    @classmethod
    def check_data_config(cls, config: Config) -> None:
        check_image_size(config.image_size)

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        super().__init__(config, domain_count, channels, image_size)
        check_image_size(image_size)
        if domain_count != 2:
            raise SpriteForgeError(f"cyclegan translates between 2 domains (pictures, pixel art), not {domain_count}")
        for flag, value, low in (("generator-blocks", config.generator_blocks, 1), ("pool-size", config.pool_size, 0)):
            if value < low:
                raise SpriteForgeError(f"--{flag} must be at least {low}, got {value}")
        for flag in ("lambda_reconstruction", "lambda_identity"):
            if config[flag] < 0:
                raise SpriteForgeError(f"--{option_name(flag)} must not be negative, got {config[flag]}")
        if config.validation_fraction != BY_NAME["validation-fraction"].default:
            raise SpriteForgeError("--validation-fraction not used by cyclegan (nothing is selected on validation); remove it")
        for flag, why in (("callback_evaluate_l1", "there is no true pixel-art version of a picture to compare with (pix2pix-pairs has one)"),
                          ("callback_evaluate_fid", "it is not computed for picture → pixel-art models yet")):
            if config.get(flag):
                raise SpriteForgeError(f"--{option_name(flag)} does not apply to cyclegan: {why}; watch the previews")
        width, blocks = config.feature_maps, config.generator_blocks
        self.generator_ab = ResnetGenerator(channels, width, blocks)
        self.generator_ba = ResnetGenerator(channels, width, blocks)
        self.discriminator_b = PatchDiscriminator(channels, conditional=False, width=width)
        self.discriminator_a = PatchDiscriminator(channels, conditional=False, width=width)
        self.pool_b = ImagePool(config.pool_size, channels, image_size)
        self.pool_a = ImagePool(config.pool_size, channels, image_size)
        self.make_optimizer("generators", nn.ModuleList([self.generator_ab, self.generator_ba]), config.lr)
        self.make_optimizer("discriminators", nn.ModuleList([self.discriminator_b, self.discriminator_a]), config.lr * config.ttur)

    # -- training ---------------------------------------------------------------------------------
    def generator_losses(self, real_a: torch.Tensor, real_b: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Every generator term (weighted, as in the total) and the two fakes (G_AB(a), G_BA(b))."""
        config = self.config
        cycle_weight, identity_weight = config.lambda_reconstruction, config.lambda_identity * config.lambda_reconstruction
        fake_b, fake_a = self.generator_ab(real_a), self.generator_ba(real_b)
        terms = {
            "adversarial_ab": config.lambda_adversarial * lsgan(self.discriminator_b(fake_b), True),
            "adversarial_ba": config.lambda_adversarial * lsgan(self.discriminator_a(fake_a), True),
            "cycle_a": cycle_weight * (self.generator_ba(fake_b) - real_a).abs().mean(),
            "cycle_b": cycle_weight * (self.generator_ab(fake_a) - real_b).abs().mean(),
        }
        if identity_weight > 0:  # a pixel-art image should pass G_AB unchanged (and a picture G_BA)
            terms["identity_ab"] = identity_weight * (self.generator_ab(real_b) - real_b).abs().mean()
            terms["identity_ba"] = identity_weight * (self.generator_ba(real_a) - real_a).abs().mean()
        return terms, fake_b, fake_a

    def train_step(self, batch, step, progress):
        real_a, real_b = batch[:, 0], batch[:, 1]
        with frozen(self.discriminator_b, self.discriminator_a):
            terms, fake_b, fake_a = self.generator_losses(real_a, real_b)
        g_loss = total(list(terms.values()))
        self.optimize("generators", g_loss)

        d_b = 0.5 * (lsgan(self.discriminator_b(real_b), True) + lsgan(self.discriminator_b(self.pool_b.query(fake_b)), False))
        d_a = 0.5 * (lsgan(self.discriminator_a(real_a), True) + lsgan(self.discriminator_a(self.pool_a.query(fake_a)), False))
        self.optimize("discriminators", d_b + d_a)
        losses = {f"generator/{name}": value.item() for name, value in terms.items()}
        losses.update({"generator/total": g_loss.item(), "discriminator/pixel-art": d_b.item(), "discriminator/pictures": d_a.item(),
                       "discriminator/total": (d_b + d_a).item()})
        return losses

    # -- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def stylize(self, pictures: torch.Tensor) -> torch.Tensor:
        """Pictures [N, C, H, W] in [-1, 1] (H, W divisible by 4) → pixel art, same shape."""
        return self.generator_ab(pictures)

    @torch.no_grad()
    def _row(self, pair: torch.Tensor) -> list[np.ndarray]:
        """A, G_AB(A), G_BA(G_AB(A)), then B, G_BA(B), G_AB(G_BA(B)) for one [2, C, H, W] pair."""
        a, b = pair[0:1], pair[1:2]
        fake_b, fake_a = self.generator_ab(a), self.generator_ba(b)
        images = [a, fake_b, self.generator_ba(fake_b), b, fake_a, self.generator_ab(fake_a)]
        return [imageio.to_uint8(image)[0] for image in images]

    def preview(self, train_views, test_views, device):
        pairs = torch.cat([train_views, test_views]).to(device)
        return imageio.grid([self._row(pair) for pair in pairs])

    def test_images(self, character, device):
        return {"": imageio.grid([self._row(character.to(device))])}

    @torch.no_grad()
    def debug_discriminator(self, batch):
        """The pixel-art discriminator on real pixel art and on pictures turned into pixel art."""
        real, fake = batch[:, 1], self.generator_ab(batch[:, 0])
        return [real, fake, self.discriminator_b(real), self.discriminator_b(fake)]
