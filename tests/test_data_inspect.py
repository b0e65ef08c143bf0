"""`data inspect`'s view alignment: which column move of a mirrored view matches another, on known answers."""

import numpy as np

from spriteforge.data.inspect import alignment_lines, mirrored_alignment


def _opaque(rng, height, width):
    image = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    image[..., 3] = 255
    return image


def test_mirrored_alignment_finds_the_move_and_mirrors_exactly():
    """A view symmetric about the image's centre matches itself in place; one symmetric about the column
    right of it, moved one column right; a back drawn two columns left of the mirrored front, −2. Clear
    pixels count as equal whatever their RGB, and the same views seen in a mirror give the opposite move."""
    rng = np.random.default_rng(0)
    half = _opaque(rng, 6, 4)
    centred = np.concatenate([half, half[:, ::-1]], 1)  # 8 wide, symmetric about 3.5
    about_four = np.concatenate([_opaque(rng, 6, 5), np.zeros((6, 3, 4), np.uint8)], 1)
    about_four[:, 5:] = about_four[:, 1:4][:, ::-1]  # column 4 + k = column 4 − k: symmetric about 4
    back = np.zeros_like(centred)
    back[:, :6] = centred[:, ::-1][:, 2:]  # the front mirrored, moved two columns left
    back[..., :3][back[..., 3] == 0] = 77  # clear pixels with some RGB: still clear
    fronts = np.stack([centred, about_four, centred])
    onto = np.stack([centred, about_four, back])
    found = mirrored_alignment(fronts, onto)
    assert found.tolist() == [0, 1, -2]
    assert mirrored_alignment(fronts[:, :, ::-1], onto[:, :, ::-1]).tolist() == [0, -1, 2]
    noise = rng.integers(0, 2, (200, 6, 8, 4), dtype=np.uint8) * 255  # random pictures: ties either way
    other = rng.integers(0, 2, (200, 6, 8, 4), dtype=np.uint8) * 255
    assert np.array_equal(mirrored_alignment(noise[:, :, ::-1], other[:, :, ::-1]), -mirrored_alignment(noise, other))


def test_alignment_lines_count_characters_per_move_for_four_views_only():
    rng = np.random.default_rng(1)
    half = _opaque(rng, 4, 3)
    centred = np.concatenate([half, half[:, ::-1]], 1)
    characters = np.stack([np.stack([centred] * 4)] * 3)  # [3, D, H, W, 4]: every view symmetric, in place
    lines = alignment_lines(characters, ["back", "left", "front", "right"])
    assert len(lines) == 4 and lines[0].startswith("  alignment (train)")
    assert lines[1].split()[-5:] == ["0", "0", "3", "0", "0"]
    assert alignment_lines(characters[:, :1], ["image"]) == []
