import torch

from spriteforge.data.augment import Augmentation, rotate_hue, translate


def character(seed=0):
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (4, 3, 16, 16), generator=generator).float()
    alpha = (torch.rand(4, 1, 16, 16, generator=generator) > 0.5).float() * 255
    return torch.cat([rgb * (alpha > 0), alpha], dim=1)


def test_hue_rotation_keeps_alpha_and_transparent_black():
    views = character()
    rotated = rotate_hue(views, 0.3)
    assert torch.equal(rotated[:, 3], views[:, 3])
    assert (rotated[:, :3][views[:, 3:4].expand(-1, 3, -1, -1) == 0] == 0).all()
    assert not torch.equal(rotated, views)
    assert torch.allclose(rotate_hue(rotated, -0.3), views, atol=2)


def test_augmentation_is_shared_by_the_views():
    one = character()[0:1]
    views = one.repeat(4, 1, 1, 1).unsqueeze(0)  # four identical views
    for seed in range(10):
        out = Augmentation()(views, torch.Generator().manual_seed(seed))[0]
        assert all(torch.equal(out[0], out[d]) for d in range(4))


def test_translation_fills_transparent_and_moves_alpha_with_colour():
    views = character()
    moved = translate(views, 3, -2)
    assert torch.equal(moved[:, :, 3:, :-2], views[:, :, :-3, 2:])
    assert (moved[:, :, :3] == 0).all() and (moved[:, :, :, -2:] == 0).all()


def test_switches_and_probability():
    batch = character().unsqueeze(0).repeat(8, 1, 1, 1, 1)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(Augmentation(hue=False, translation=False)(batch, generator), batch)
    assert torch.equal(Augmentation(probability=0.0)(batch, generator), batch)
    hue_only = Augmentation(translation=False)(batch, generator)
    assert torch.equal(hue_only[:, :, 3], batch[:, :, 3])  # no translation: alpha never moves
    changed = [not torch.equal(a, b) for a, b in zip(Augmentation()(batch, torch.Generator().manual_seed(1)), batch)]
    assert 3 <= sum(changed) <= 8
