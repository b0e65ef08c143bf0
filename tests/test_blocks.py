"""Shared building blocks: the frozen-network context, the small-map convolution, self-attention and the instance norm."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spriteforge.models.blocks import (PointwiseConv2d, SelfAttention, SmallMapConv2d, first_argmax, frozen, half_size_mean,
                                      instance_norm, upsample_concat)


def test_frozen_network_passes_gradients_through_but_keeps_none():
    generator, critic, other = nn.Linear(3, 3), nn.Linear(3, 1), nn.Linear(3, 1)
    critic.bias.requires_grad_(False)  # a parameter frozen before stays frozen after
    with frozen(critic, other):
        (critic(generator(torch.ones(2, 3))) + other(generator(torch.ones(2, 3)))).sum().backward()
    assert generator.weight.grad is not None and generator.weight.grad.abs().sum() > 0
    assert critic.weight.grad is None and other.weight.grad is None and other.weight.requires_grad
    assert critic.weight.requires_grad and not critic.bias.requires_grad


def test_frozen_restores_on_error():
    critic = nn.Linear(3, 1)
    try:
        with frozen(critic):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert critic.weight.requires_grad


@pytest.mark.parametrize("in_channels, out_channels, kernel, stride, padding, size, bias", [
    (64, 96, 4, 2, 1, 2, False),   # 2² → 1²: the GEMM path, where most taps see only padding
    (32, 48, 4, 2, 1, 8, True),    # 8² → 4²: still the GEMM path (16 outputs)
    (96, 1, 3, 1, 1, 1, True),     # a 3×3 head on a 1² map
    (8, 16, 3, 1, 1, 16, True),    # 16² outputs: nn.Conv2d's own path
])
def test_small_map_conv_is_the_same_function_as_conv2d(in_channels, out_channels, kernel, stride, padding, size, bias):
    torch.manual_seed(0)
    reference = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=bias)
    fast = SmallMapConv2d(in_channels, out_channels, kernel, stride, padding, bias=bias)
    fast.load_state_dict(reference.state_dict())  # same keys and shapes: checkpoints stay interchangeable
    x = torch.randn(3, in_channels, size, size, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    reference.double(), fast.double()
    expected, got = reference(x), fast(y)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)
    upstream = torch.randn_like(expected)
    expected.backward(upstream), got.backward(upstream)
    torch.testing.assert_close(y.grad, x.grad)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad)
    # twice differentiable, as the gradient penalty needs
    (gradient,) = torch.autograd.grad(fast(y).square().sum(), y, create_graph=True)
    gradient.square().sum().backward()


def test_self_attention_matches_scaled_dot_product_attention():
    torch.manual_seed(0)
    block = SelfAttention(16).double()
    block.gamma.data.fill_(0.7)
    x = torch.randn(9, 16, 8, 8, dtype=torch.float64)  # 9 sprites: the last slice of 4 is short
    flat = lambda t: t.flatten(2).transpose(1, 2)
    mixed = F.scaled_dot_product_attention(flat(block.query(x)), flat(block.key(x)), flat(block.value(x)))
    torch.testing.assert_close(block(x), x + 0.7 * mixed.transpose(1, 2).reshape(x.shape))
    big = torch.randn(5, 16, 16, 12, dtype=torch.float64)  # 192 positions: drawing's query blocks of 128 end short
    mixed = F.scaled_dot_product_attention(flat(block.query(big)), flat(block.key(big)), flat(block.value(big)))
    with torch.inference_mode():  # drawing's path: blocks of queries
        torch.testing.assert_close(block(big), big + 0.7 * mixed.transpose(1, 2).reshape(big.shape))


@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_conv_draws_as_conv2d_and_trains_through_conv2d(bias):
    torch.manual_seed(0)
    pointwise, reference = PointwiseConv2d(32, 52, 1, bias=bias), nn.Conv2d(32, 52, 1, bias=bias)
    reference.load_state_dict(pointwise.state_dict())
    assert list(pointwise.state_dict()) == list(reference.state_dict())
    x = torch.randn(3, 32, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(pointwise(x), reference(x), rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        torch.testing.assert_close(pointwise(x), reference(x), rtol=1e-5, atol=1e-5)
        wide = x.contiguous(memory_format=torch.channels_last)  # drawing hands it channels-last maps
        torch.testing.assert_close(pointwise(wide), reference(x), rtol=1e-5, atol=1e-5)
    x.requires_grad_()
    pointwise(x).square().sum().backward()
    grad = x.grad.clone()
    x.grad = None
    reference(x).square().sum().backward()
    torch.testing.assert_close(grad, x.grad)  # with gradients it is nn.Conv2d's own path: identical
    assert torch.equal(pointwise.weight.grad, reference.weight.grad)


def test_first_argmax_is_argmax_ties_and_minus_infinity_included():
    torch.manual_seed(0)
    values = torch.randint(0, 4, (3, 4, 10, 5, 6)).float()  # many ties: the first maximum wins, as in argmax
    values[:, :, 3] = float("-inf")
    values[0, 0, :, 0, 0] = float("-inf")  # all masked: index 0, as argmax gives
    for dim in (0, 1, 2, 4):
        assert torch.equal(first_argmax(values, dim), values.argmax(dim))


@pytest.mark.parametrize("layout, x_layout", [(torch.contiguous_format,) * 2, (torch.channels_last,) * 2,
                                               (torch.channels_last, torch.contiguous_format)])
def test_drawing_shortcuts_give_the_values_of_the_plain_ops(layout, x_layout):
    """half_size_mean is avg_pool2d and upsample_concat is interpolate + cat, bit for bit, in either memory
    layout (the skip's; the map upsampled may be in the other, as when the turnaround model's channels-first
    16² level joins its channels-last 32² skip) and with gradients (where both fall back to the plain ops)."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, 6).contiguous(memory_format=x_layout)
    skip = torch.randn(3, 2, 16, 12).contiguous(memory_format=layout)
    with torch.inference_mode():
        assert torch.equal(half_size_mean(x), F.avg_pool2d(x, 2))
        joined = upsample_concat(x, skip)
        assert torch.equal(joined, torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1))
        assert joined.is_contiguous(memory_format=layout)
    x.requires_grad_()
    half_size_mean(x).square().sum().backward()
    grad = x.grad.clone()
    x.grad = None
    F.avg_pool2d(x, 2).square().sum().backward()
    assert torch.equal(grad, x.grad)


def test_instance_norm_on_channels_last_maps_does_not_cancel():
    """Drawing runs 64² maps channels-last, where torch's own CPU GroupNorm computes E[x²] − E[x]² and a
    channel with mean 100 and spread 0.1 came out off by 134. The instance norm's drawing path agrees with
    a float64 GroupNorm there to the input's float32 rounding, and with its own channels-first path."""
    torch.manual_seed(0)
    norm = instance_norm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(3, 6, 16, 16, dtype=torch.float64)
    x[:, 0] = x[:, 0] * 0.1 + 100
    x[:, 1] = x[:, 1] * 1e-3 - 5
    exact = F.group_norm(x, 6, norm.weight.double(), norm.bias.double(), norm.eps)
    with torch.no_grad():
        drawn = norm(x.float().contiguous(memory_format=torch.channels_last))
        plain = norm(x.float())
    assert drawn.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(drawn.double(), exact, rtol=0, atol=2e-3)
    torch.testing.assert_close(drawn, plain, rtol=0, atol=2e-3)
    trained = norm(x.float().contiguous(memory_format=torch.channels_last))  # with gradients: GroupNorm itself
    assert trained.requires_grad
