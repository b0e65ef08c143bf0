"""Shared building blocks: the frozen-network context and the one-call optimiser step."""

import torch
from torch import nn

from spriteforge.models.blocks import frozen


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
