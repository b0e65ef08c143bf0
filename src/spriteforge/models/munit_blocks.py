"""MUNIT building blocks shared by `munit` and `remic` (§4.6–4.7 of the reference).

At `--feature-maps 64` (the default) the widths are the reference's: encoders and decoders at 64, 128
and 256 channels, a 16×16×256 content code for 64×64 sprites, an 8-d style code, and discriminator
scales of 64…512 channels. Every width is a multiple of `--feature-maps`, so tests can run the same
architecture at a fraction of the cost. Convolutions pad by reflection, as in MUNIT.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.models.blocks import instance_norm, total

STYLE_SIZE = 8
"""Length of a style code (MUNIT's default, the reference's too)."""
RESIDUAL_BLOCKS = 4
"""Residual blocks in the content encoder, the decoder and (ReMIC) the style encoder."""


def reflect_conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias, padding_mode="reflect")


def init_he(module: nn.Module) -> None:
    """He-normal kernels for convolutions (the reference's initialiser), Glorot for dense layers, zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        elif isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def kernel_squares(module: nn.Module) -> torch.Tensor:
    """Σw² over every conv and dense kernel: the L2 weight-decay term (its coefficient is the effective one)."""
    squares = [(layer.weight**2).sum() for layer in module.modules() if isinstance(layer, (nn.Conv2d, nn.Linear))]
    return total(squares)


class ResidualBlock(nn.Module):
    """Two reflect-padded 3×3 convs (no bias), ReLU between, identity added; InstanceNorm after each conv
    when `norm` (content encoder) or none at all (ReMIC's style encoder)."""

    def __init__(self, channels: int, norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = [reflect_conv(channels, channels, 3, padding=1, bias=False)]
        layers += [instance_norm(channels)] if norm else []
        layers += [nn.ReLU(), reflect_conv(channels, channels, 3, padding=1, bias=False)]
        layers += [instance_norm(channels)] if norm else []
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ContentEncoder(nn.Module):
    """7×7 conv w, two 4×4 stride-2 convs to 2w and 4w (InstanceNorm, ReLU), 4 residual blocks: a code at ¼ size.

    `in_channels` is one image's channels for MUNIT and the four views stacked (16) for ReMIC.
    """

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        layers, cin = [], in_channels
        for cout, kernel, stride, padding in ((width, 7, 1, 3), (2 * width, 4, 2, 1), (4 * width, 4, 2, 1)):
            layers += [reflect_conv(cin, cout, kernel, stride, padding, bias=False), instance_norm(cout), nn.ReLU()]
            cin = cout
        layers += [ResidualBlock(cin) for _ in range(RESIDUAL_BLOCKS)]
        self.layers = nn.Sequential(*layers)
        init_he(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.layers(image)


class StyleEncoder(nn.Module):
    """7×7 conv w, four 4×4 stride-2 convs (2w, 4w, 4w, 4w), no normalisation, [residual blocks], global
    average pool, 1×1 projection to the 8-d style. ReMIC adds 4 un-normalised residual blocks before the pool."""

    def __init__(self, in_channels: int, width: int, residual_blocks: int = 0):
        super().__init__()
        layers, cin = [reflect_conv(in_channels, width, 7, padding=3), nn.ReLU()], width
        for cout in (2 * width, 4 * width, 4 * width, 4 * width):
            layers += [reflect_conv(cin, cout, 4, 2, 1), nn.ReLU()]
            cin = cout
        layers += [ResidualBlock(cin, norm=False) for _ in range(residual_blocks)]
        self.layers = nn.Sequential(*layers)
        self.project = nn.Linear(cin, STYLE_SIZE)
        init_he(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.project(self.layers(image).mean((2, 3)))


def adaptive_instance_norm(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each channel of each image, then scale and shift it by values computed from the style."""
    mean = x.mean((2, 3), keepdim=True)
    variance = x.var((2, 3), keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(variance + eps) * scale[:, :, None, None] + bias[:, :, None, None]


class AdaINResidualBlock(nn.Module):
    """A residual block whose two norms take their scale and bias from the style (4·channels numbers)."""

    def __init__(self, channels: int):
        super().__init__()
        self.first = reflect_conv(channels, channels, 3, padding=1, bias=False)
        self.second = reflect_conv(channels, channels, 3, padding=1, bias=False)
        self.channels = channels

    def forward(self, x: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        scale1, bias1, scale2, bias2 = parameters.split(self.channels, dim=1)
        y = F.relu(adaptive_instance_norm(self.first(x), scale1, bias1))
        return x + adaptive_instance_norm(self.second(y), scale2, bias2)


class Decoder(nn.Module):
    """Style → MLP (4w, 4w) → AdaIN parameters of 4 residual blocks at 4w; two nearest ×2 upsamplings with
    5×5 convs (2w, w; no LayerNorm, as the reference); 7×7 conv + tanh."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.blocks = nn.ModuleList(AdaINResidualBlock(4 * width) for _ in range(RESIDUAL_BLOCKS))
        self.mlp = nn.Sequential(
            nn.Linear(STYLE_SIZE, 4 * width), nn.ReLU(), nn.Linear(4 * width, 4 * width), nn.ReLU(),
            nn.Linear(4 * width, RESIDUAL_BLOCKS * 4 * 4 * width),
        )
        self.upsample = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), reflect_conv(4 * width, 2 * width, 5, padding=2), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), reflect_conv(2 * width, width, 5, padding=2), nn.ReLU(),
            reflect_conv(width, channels, 7, padding=3), nn.Tanh(),
        )
        init_he(self)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        parameters = self.mlp(style).chunk(len(self.blocks), dim=1)
        x = content
        for block, block_parameters in zip(self.blocks, parameters):
            x = block(x, block_parameters)
        return self.upsample(x)


def discriminator_patch_sizes(image_size: int, scales: int) -> list[int]:
    """Side of each scale's score map; refuses scale counts the image is too small for.

    Each scale runs four reflect-padded (2) 4×4 stride-2 convs (n → n/2 + 1, needs n ≥ 3); between
    scales the image is 3×3 average-pooled with stride 2. 64×64 with 3 scales gives 5, 3 and 2.
    """
    if scales < 1:
        raise SpriteForgeError(f"--discriminator-scales must be at least 1, got {scales}")
    sizes, side = [], image_size
    for scale in range(scales):
        n = side
        for _ in range(4):
            if n < 3:
                raise SpriteForgeError(f"--discriminator-scales {scales}: at --image-size {image_size} scale {scale + 1} is too small "
                                       f"for its convolutions; use at most {scale} scales")
            n = n // 2 + 1
        sizes.append(n)
        side = (side - 3) // 2 + 1
    return sizes


class MultiScaleDiscriminator(nn.Module):
    """`scales` identical PatchGANs (4×4 stride-2 convs w, 2w, 4w, 8w with LeakyReLU 0.2, 1×1 conv → 1), the
    image 3×3 average-pooled between scales; returns one LSGAN score map per scale."""

    def __init__(self, channels: int, width: int, scales: int, image_size: int):
        super().__init__()
        self.patch_sizes = discriminator_patch_sizes(image_size, scales)
        self.scales = nn.ModuleList()
        for _ in range(scales):
            layers, cin = [], channels
            for cout in (width, 2 * width, 4 * width, 8 * width):
                layers += [reflect_conv(cin, cout, 4, 2, 2), nn.LeakyReLU(0.2)]
                cin = cout
            head = nn.Conv2d(cin, 1, 1)
            for layer in layers:
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, 0.0, 0.02)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)
            init_he(head)
            self.scales.append(nn.Sequential(*layers, head))
        self.pool = nn.AvgPool2d(3, stride=2)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for index, scale in enumerate(self.scales):
            if index:
                image = self.pool(image)
            maps.append(scale(image))
        return maps


def lsgan_loss(maps: list[torch.Tensor], label: float, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over scales of the mean (D(x) − label)²; with `weights` [B] a weighted mean over examples
    (ReMIC masks out the views it did not see), 0 when every weight is 0."""
    terms = []
    for scores in maps:
        per_example = ((scores - label) ** 2).flatten(1).mean(1)
        terms.append(per_example.mean() if weights is None else (per_example * weights).sum() / distributed.count_per_rank(weights.sum()).clamp_min(1))
    return total(terms)


def per_domain(networks: nn.ModuleList, domain: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """Apply `networks[domain[i]]` to row i of the inputs (one call per distinct domain)."""
    output: torch.Tensor | None = None
    for value in domain.unique().tolist():
        rows = (domain == value).nonzero().squeeze(1)
        result = networks[value](*(tensor[rows] for tensor in inputs))
        if output is None:
            output = result.new_empty((len(domain), *result.shape[1:]))
        output[rows] = result
    assert output is not None, "per_domain needs at least one row"
    return output
