"""Building blocks shared by the models: norms, initialisation, residual blocks, condition maps, weight averages."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spriteforge import distributed
from spriteforge.devices import full_precision


def drawing_on_cpu(x: torch.Tensor) -> bool:
    """Whether the hand-written drawing paths below apply: no gradient, a CPU tensor, and not being traced
    (an exported graph needs the plain ops: the fast paths write into views and decide from the data)."""
    return not torch.is_grad_enabled() and x.device.type == "cpu" and not torch.jit.is_tracing()


class InstanceGroupNorm(nn.GroupNorm):
    """GroupNorm with one group per channel (InstanceNorm with affine parameters), safe on channels-last maps.

    Why: on a CPU, torch 2.13's GroupNorm on a channels-last map cancels catastrophically when a channel's
    mean is large against its spread, as a one-pass E[x²] − E[x]² variance does (pytorch/pytorch#40302;
    mean 100, std 0.1: errors of 134 against 2·10⁻⁴ channels-first). Drawing runs the large maps
    channels-last, so there the mean is taken first and the variance of the centred values after;
    elsewhere it is GroupNorm itself.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not drawing_on_cpu(input) or input.dim() != 4 or self.num_groups != self.num_channels or input.is_contiguous() \
                or not input.is_contiguous(memory_format=torch.channels_last):
            return super().forward(input)
        count, channels, height, width = input.shape
        pixels = input.permute(0, 2, 3, 1).reshape(count, height * width, channels)  # a view of the channels-last memory
        centred = pixels - pixels.mean(1, keepdim=True)
        scale = (centred.square().mean(1, keepdim=True) + self.eps).rsqrt()
        if self.affine:
            return torch.addcmul(self.bias, centred, scale * self.weight).view(count, height, width, channels).permute(0, 3, 1, 2)
        return (centred * scale).view(count, height, width, channels).permute(0, 3, 1, 2)


def instance_norm(channels: int, eps: float = 1e-5) -> nn.GroupNorm:
    """InstanceNorm with affine parameters, written as GroupNorm(groups = channels) like the original."""
    return InstanceGroupNorm(channels, channels, eps=eps, affine=True)


def init_layers(module: nn.Module, init_weight) -> None:
    """`init_weight` (in place) on every conv / linear kernel, zeros for biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            init_weight(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) for every conv / linear kernel, zeros for biases (the original's initialiser)."""
    init_layers(module, lambda weight: nn.init.normal_(weight, 0.0, std))


def init_glorot(module: nn.Module) -> None:
    """Glorot-uniform kernels, zero biases: Keras' defaults, which the original's Keras CollaGAN used.

    Under N(0, 0.02) CollaGAN's bias-free 1×1 tanh head (16 inputs at capacity 1) starts drawing
    ≈ 0, mid-grey, and Adam at lr 1e-4 moves it slowly: on rm2k the training L1 was still 0.86 after
    150 steps, against 0.52 with this initialiser.
    """
    init_layers(module, nn.init.xavier_uniform_)


class SmallMapConv2d(nn.Conv2d):
    """A Conv2d that runs as one matmul over its unfolded patches when its output map is tiny (≤ 4×4, on CPU).

    Why: oneDNN's CPU kernels for a few output pixels and thousands of channels (the discriminators' last
    4×4 stride-2 convs: 512 → 1024 → 2048 channels at 4², 2² or 1²) reach under 10 % of the matmul peak,
    and they took a third to a half of a StarGAN or CollaGAN training step; the same arithmetic as
    im2col + one GEMM runs 2–3.5× faster there (forward + backward; at 8² outputs the GEMM loses).
    Same parameters and state-dict keys as nn.Conv2d; the same function up to float rounding. Larger
    maps, other devices and unusual settings take nn.Conv2d's path.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (input.device.type != "cpu" or input.dim() != 4 or self.groups != 1 or self.padding_mode != "zeros"
                or isinstance(self.padding, str) or self.dilation != (1, 1)):
            return super()._conv_forward(input, weight, bias)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        rows, columns = (input.shape[2] + 2 * ph - kh) // sh + 1, (input.shape[3] + 2 * pw - kw) // sw + 1
        if rows * columns > 16:
            return super()._conv_forward(input, weight, bias)
        patches = F.unfold(input, self.kernel_size, padding=self.padding, stride=self.stride)  # [B, C·kh·kw, L]
        # 2-D operands, so forward and backward are plain GEMMs (a 3-D input would broadcast the weight to a bmm)
        out = F.linear(patches.transpose(1, 2).reshape(-1, patches.shape[1]), weight.flatten(1), bias)  # [B·L, out]
        return out.view(input.shape[0], rows * columns, -1).transpose(1, 2).reshape(input.shape[0], -1, rows, columns)


class PointwiseConv2d(nn.Conv2d):
    """A 1×1 Conv2d that, when drawing on a CPU (no gradient), runs as one matmul over the pixels.

    Why: oneDNN runs a 1×1 conv from few channels to a few dozen (the turnaround model's head, 32 → 52
    channels on 64² maps) at under 10 % of the matmul peak; as W·X over [C, H·W] it is 2× faster. With
    gradients nn.Conv2d stays (its backward beats the matmul's there). Same parameters and state-dict
    keys as nn.Conv2d; the same function up to float rounding.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if not drawing_on_cpu(input) or input.dim() != 4 or self.kernel_size != (1, 1) \
                or self.stride != (1, 1) or self.padding != (0, 0) or self.groups != 1:
            return super()._conv_forward(input, weight, bias)
        count, channels, height, width = input.shape
        pixels, kernel = input.reshape(count, channels, height * width), weight.flatten(1)
        out = input.new_empty(count, kernel.shape[0], height * width)
        for image in range(count):  # one matmul per image into its rows: a broadcast matmul copies its result
            torch.mm(kernel, pixels[image], out=out[image])
        if bias is not None:
            out += bias[:, None]
        return out.view(count, -1, height, width)


def half_size_mean(x: torch.Tensor) -> torch.Tensor:
    """F.avg_pool2d(x, 2), the same values: on a CPU the mean of each 2×2 block as three strided adds.

    Why: oneDNN-less avg_pool2d ran [32, 16, 64, 64] in 7.7 ms on one thread, the adds in 1.8 ms; the sum
    is taken in avg_pool2d's order and ×0.25 is exact, so the result is bit for bit the same.
    """
    if x.device.type != "cpu" or torch.jit.is_tracing() or x.dim() != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        return F.avg_pool2d(x, 2)
    count, channels, height, width = x.shape
    blocks = x.view(count, channels, height // 2, 2, width // 2, 2)
    total = blocks[:, :, :, 0, :, 0] + blocks[:, :, :, 0, :, 1]
    total = total + blocks[:, :, :, 1, :, 0]
    total = total + blocks[:, :, :, 1, :, 1]
    return total * 0.25


def upsample_concat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """cat([nearest ×2 upsampling of x, skip], channels): a U-Net decoder's input.

    Why: on a CPU without gradients, F.interpolate(mode="nearest") copies its input and its output
    once more (22 ms for [32, 32, 32, 32] → 64², against 6 ms for the same pixels written by one
    broadcast copy), and the concatenation copies everything again; here each pixel is written once,
    straight into the concatenated map. The copy reads x in the output's layout (a channels-last output
    from a channels-first x: x is converted first, a quarter of the pixels; 2.1× faster for [32, 64, 16, 16]),
    and a channels-first output is written a row at a time, every other row copied from the one above
    (its innermost run is then a whole row, not 2 values: 1.9× faster for [32, 128, 8, 8]).
    The same values; with gradients it is F.interpolate + cat.
    """
    if not drawing_on_cpu(x) or x.dim() != 4:
        return torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1)
    count, channels, height, width = x.shape
    wide = skip.dim() == 4 and not skip.is_contiguous() and skip.is_contiguous(memory_format=torch.channels_last)
    layout = torch.channels_last if wide else torch.contiguous_format
    out = torch.empty(count, channels + skip.shape[1], 2 * height, 2 * width, dtype=x.dtype, device=x.device, memory_format=layout)
    if wide:
        x = x.contiguous(memory_format=torch.channels_last)
        out[:, :channels].view(count, channels, height, 2, width, 2).copy_(x[:, :, :, None, :, None].expand(-1, -1, -1, 2, -1, 2))
    else:
        rows = out[:, :channels].view(count, channels, height, 2, 2 * width)
        rows[:, :, :, 0].view(count, channels, height, width, 2).copy_(x[..., None].expand(-1, -1, -1, -1, 2))
        rows[:, :, :, 1] = rows[:, :, :, 0]
    out[:, channels:] = skip
    return out


def first_argmax(values: torch.Tensor, dim: int) -> torch.Tensor:
    """torch.argmax over a short dimension (the first index of the maximum, as argmax gives), 2–3× faster on CPU.

    Why: argmax over the 10 candidates of [B, 4, 10, 64, 64] logits took 64 ms of the turnaround model's
    370 ms for 32 characters; a running maximum over the dimension's slices reads memory in order.
    """
    slices = values.unbind(dim)
    best, index = slices[0].clone(), torch.zeros(slices[0].shape, dtype=torch.long, device=values.device)
    for position, candidate in enumerate(slices[1:], start=1):
        better = candidate > best
        best = torch.where(better, candidate, best)
        index.masked_fill_(better, position)
    return index


def reaches_border(clear: torch.Tensor) -> torch.Tensor:
    """[..., H, W] bool: the pixels of `clear` joined to the image border by a 4-connected path within `clear`
    (flood fill from the border). The transparent pixels it does not reach are enclosed holes: drawing fills
    excess ones (turnaround), the evaluation counts them.

    Why bit rows: a row of up to 64 pixels is one 64-bit word, so a fill along the rows runs through a
    whole straight stretch of clear pixels in 6 word operations (shifts by 1, 2, 4, …, 32, each step
    allowed only through clear bits), and one along the columns through 6 shifted copies of the rows.
    Rounds of the four directions repeat until nothing changes (one per turn of the longest winding
    path). About 8× faster than growing bool maps a pixel a step, which cost 0.6 ms of a capacity-1
    turnaround's 16 ms per drawn character. Wider maps take that pixel-a-step fill."""
    height, width = clear.shape[-2:]
    if width > 64 or clear.numel() == 0:
        return grow_to_border(clear)
    rows = np.packbits(clear.cpu().numpy(), axis=-1, bitorder="little")
    rows = np.pad(rows, [(0, 0)] * (rows.ndim - 1) + [(0, 8 - rows.shape[-1])])
    open_bits = rows.view(np.uint64)[..., 0]  # [..., H]: bit x of row y is pixel (y, x)
    edge = np.uint64(2**width - 1)
    border = np.full(height, np.uint64(1) | np.uint64(1) << np.uint64(width - 1))
    border[[0, -1]] = edge
    reached = open_bits & border
    while True:
        before = reached
        for shift in (np.left_shift, np.right_shift):  # along the rows, both ways
            reached = fill_bits(reached, open_bits, lambda bits, k: shift(bits, np.uint64(k)))
        for direction in (1, -1):  # along the columns, both ways
            reached = fill_bits(reached, open_bits, lambda bits, k: shift_rows(bits, k * direction))
        if np.array_equal(reached, before):
            break
    pixels = np.unpackbits(reached[..., None].view(np.uint8), axis=-1, count=width, bitorder="little")
    return torch.from_numpy(pixels.view(bool)).to(clear.device)


def fill_bits(reached: np.ndarray, open_bits: np.ndarray, shift) -> np.ndarray:
    """Kogge–Stone occluded fill: `reached` grown in one direction (`shift(bits, k)` moves bits k pixels
    that way) as far as runs of `open_bits` go, in log₂(64) steps."""
    through = open_bits
    for k in (1, 2, 4, 8, 16, 32):
        reached = reached | (through & shift(reached, k))
        through = through & shift(through, k)
    return reached


def shift_rows(bits: np.ndarray, k: int) -> np.ndarray:
    """[..., H] rows moved k rows down (k > 0) or up, zeros shifted in."""
    moved = np.zeros_like(bits)
    if k > 0:
        moved[..., k:] = bits[..., :-k]
    elif k < 0:
        moved[..., :k] = bits[..., -k:]
    return moved


def grow_to_border(clear: torch.Tensor) -> torch.Tensor:
    """`reaches_border` one pixel a step: the border's clear pixels grown within `clear` until nothing changes."""
    reached = torch.zeros_like(clear)
    reached[..., 0, :] = clear[..., 0, :]
    reached[..., -1, :] = clear[..., -1, :]
    reached[..., :, 0] |= clear[..., :, 0]
    reached[..., :, -1] |= clear[..., :, -1]
    while True:
        before = reached.clone()
        for _ in range(8):
            grown = reached.clone()
            grown[..., 1:, :] |= reached[..., :-1, :]
            grown[..., :-1, :] |= reached[..., 1:, :]
            grown[..., :, 1:] |= reached[..., :, :-1]
            grown[..., :, :-1] |= reached[..., :, 1:]
            reached = grown & clear
        if torch.equal(reached, before):
            return reached


def speck_pixels(solid: torch.Tensor) -> torch.Tensor:
    """[..., H, W] bool: the pixels of `solid` in an 8-connected component of `solid` of one or two pixels,
    a stray speck detached from the figure (drawing removes excess ones, the evaluation counts them).

    Without labelling: a pixel with no solid 8-neighbour is a one-pixel component; a pixel with exactly one
    solid neighbour whose own neighbour count is one is half of a two-pixel component."""
    def around(mask: torch.Tensor) -> torch.Tensor:  # per pixel: how many of its 8 neighbours are in `mask`
        padded = F.pad(mask.to(torch.uint8), (1, 1, 1, 1))
        height, width = mask.shape[-2:]
        count = torch.zeros_like(padded[..., 1:-1, 1:-1])
        for dy in range(3):
            for dx in range(3):
                if dy != 1 or dx != 1:
                    count += padded[..., dy : dy + height, dx : dx + width]
        return count

    neighbours = around(solid)
    lonely = solid & (neighbours == 1)
    return solid & ((neighbours == 0) | (lonely & (around(lonely) == 1)))


class ResidualBlock(nn.Module):
    """conv-norm-LeakyReLU-conv-norm + identity, no activation after the add (StarGAN's block)."""

    def __init__(self, channels: int, slope: float = 0.3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            instance_norm(channels),
            nn.LeakyReLU(slope),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def tiled_one_hot(labels: torch.Tensor, classes: int, size: tuple[int, ...]) -> torch.Tensor:
    """[B] class indices → [B, classes, H, W] one-hot planes, the usual way to condition a conv net."""
    one_hot = F.one_hot(labels, classes).to(torch.float32)
    return one_hot[:, :, None, None].expand(-1, -1, *size)


def total(terms: Sequence[torch.Tensor]) -> torch.Tensor:
    """The sum of one or more loss terms, t0 + t1 + … (`sum` would start from the int 0 and type as int or tensor)."""
    return sum(terms[1:], terms[0])


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    """WGAN-GP: mean (‖∇D(x̂)‖₂ − 1)² at random interpolations x̂ between real and fake images."""
    alpha = distributed.rand(real.shape[0], 1, 1, 1, device=real.device)
    with full_precision(real):  # the double backward in fp16 overflows: float32 even under --precision 16-mixed
        mixed = (alpha * real.float() + (1 - alpha) * fake.float()).requires_grad_(True)
        scores, _ = critic(mixed, None if condition is None else condition.float())
        (gradients,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
        return ((gradients.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class SelfAttention(nn.Module):
    """SAGAN self-attention: every position mixes the values of all positions, x + γ·attention(x).

    Queries and keys are 1×1 convs to C/8 channels, values a 1×1 conv to C (as in SAGAN); logits are
    scaled by 1/√(C/8) for stable softmaxes at init. γ starts at 0, so a fresh block is the identity
    and the network learns how much long-range mixing (e.g. matching a far-away view slot) to use.
    """

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 8)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = lambda t: t.flatten(2).transpose(1, 2)  # [B, HW, C']
        query, key, value = flat(self.query(x)), flat(self.key(x)), flat(self.value(x))
        if x.device.type != "cpu":
            mixed = F.scaled_dot_product_attention(query, key, value)
        elif not drawing_on_cpu(x):
            # Queries and values differ in width, so CPU attention takes PyTorch's reference path, which also
            # scans the [B, HW, HW] weights for fully masked rows. Plain softmax(QKᵀ/√d)·V in slices of
            # 4 sprites keeps those weights in cache: 1.7× faster at 32×32 positions (the same function).
            scale = query.shape[-1] ** -0.5
            mixed = torch.cat([torch.bmm(q * scale, k.transpose(1, 2)).softmax(-1) @ v
                               for q, k, v in zip(query.split(4), key.split(4), value.split(4))])
        else:  # drawing: 4 sprites × 128 queries at a time, each block's weights [4, 128, HW] stay in cache (1.4×)
            query, keys = query * query.shape[-1] ** -0.5, key.transpose(1, 2)
            mixed = value.new_empty(value.shape)
            for first in range(0, len(query), 4):
                rows = slice(first, first + 4)
                for start in range(0, query.shape[1], 128):
                    block = slice(start, start + 128)
                    torch.bmm(torch.bmm(query[rows, block], keys[rows]).softmax(-1), value[rows], out=mixed[rows, block])
        return x + self.gamma * mixed.transpose(1, 2).reshape(x.shape)


@contextmanager
def frozen(*networks: nn.Module):
    """Score with `networks` while their weights take no gradient: the generator's step back-propagates
    through the discriminator into the generator only, and the discriminator's .grad stays untouched."""
    parameters = [p for network in networks for p in network.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield networks
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


@torch.no_grad()
def update_moving_average(average: nn.Module, live: nn.Module, decay: float, updates: int) -> float:
    """One step of an exponential moving average of `live`'s weights kept in `average` (same architecture).

    The decay used is min(decay, (1 + updates) / (10 + updates)), `updates` being the number of earlier
    averaging steps (torch-ema's default, the library of the BigGAN seed): early on the average follows
    the live weights, so previews of a short run are not the initial noise. Buffers (BatchNorm
    statistics, spectral-norm vectors) are copied, not averaged. Returns the decay used.
    """
    used = min(decay, (1 + updates) / (10 + updates))
    for kept, current in zip(average.parameters(), live.parameters()):
        kept.mul_(used).add_(current, alpha=1 - used)
    for kept_buffer, current_buffer in zip(average.buffers(), live.buffers()):
        kept_buffer.copy_(current_buffer)
    return used

