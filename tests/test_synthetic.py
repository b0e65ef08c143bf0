"""The built-in procedural dataset: shape, determinism, pixel-art rules and view coherence."""

from __future__ import annotations

import time

import numpy as np
import pytest

from spriteforge.data.synthetic import VIEWS, generate_characters

BACK, LEFT, FRONT, RIGHT = range(4)
N = 200


@pytest.fixture(scope="module")
def chars() -> np.ndarray:
    return generate_characters(N, seed=7)


def _colours(images: np.ndarray) -> set[int]:
    """Distinct opaque RGBA colours (each packed into one integer) in any stack of RGBA images."""
    pixels = np.ascontiguousarray(images).reshape(-1, 4)
    packed = pixels.view(np.uint32)[:, 0]
    return set(np.unique(packed[pixels[:, 3] > 0]).tolist())


def _bboxes(chars: np.ndarray):
    """Per character and view: top, bottom, left, right (inclusive) of the opaque pixels."""
    opaque = chars[..., 3] > 0
    rows, cols = opaque.any(axis=3), opaque.any(axis=2)
    first = lambda m: m.argmax(axis=-1)  # noqa: E731
    last = lambda m: m.shape[-1] - 1 - m[..., ::-1].argmax(axis=-1)  # noqa: E731
    return first(rows), last(rows), first(cols), last(cols)


def test_views_order():
    assert VIEWS == ("back", "left", "front", "right")


@pytest.mark.parametrize("size", [32, 48, 64, 128])
def test_shape_and_dtype(size):
    x = generate_characters(3, seed=1, size=size)
    assert x.shape == (3, 4, size, size, 4)
    assert x.dtype == np.uint8


def test_zero_count():
    assert generate_characters(0).shape == (0, 4, 64, 64, 4)


def test_deterministic_and_seed_dependent():
    a = generate_characters(20, seed=3)
    assert a.tobytes() == generate_characters(20, seed=3).tobytes()
    b = generate_characters(20, seed=4)
    differs = [(a[i] != b[i]).any() for i in range(20)]
    assert all(differs)


@pytest.mark.parametrize("size", [32, 64])
def test_character_does_not_depend_on_count(size):
    np.testing.assert_array_equal(generate_characters(10, seed=5, size=size)[:5],
                                  generate_characters(5, seed=5, size=size))


@pytest.mark.parametrize("size", [32, 64, 128])
def test_binary_alpha_and_clean_transparency(size):
    x = generate_characters(40, seed=2, size=size)
    alpha = x[..., 3]
    assert set(np.unique(alpha).tolist()) <= {0, 255}
    assert not x[alpha == 0][:, :3].any(), "fully transparent pixels must be (0, 0, 0, 0)"
    assert (alpha == 255).any(axis=(2, 3)).all(), "every view needs opaque pixels"


def test_palette_per_character(chars):
    for i, c in enumerate(chars):
        palette = _colours(c)
        assert 6 <= len(palette) <= 14, f"character {i} uses {len(palette)} colours"
        for v in range(4):
            assert _colours(c[v]) <= palette
    # Palettes really are drawn per character.
    assert len({frozenset(_colours(c)) for c in chars[:50]}) == 50


def test_resized_views_use_the_same_palette():
    big = generate_characters(12, seed=9)
    for size in (32, 128):
        other = generate_characters(12, seed=9, size=size)
        for i in range(12):
            assert _colours(other[i]) <= _colours(big[i])


@pytest.mark.parametrize("size", [32, 48, 64, 128])
def test_left_is_mirrored_right(size):
    x = generate_characters(30, seed=11, size=size)
    np.testing.assert_array_equal(x[:, LEFT], x[:, RIGHT, :, ::-1])
    assert all((c[RIGHT] != c[FRONT]).any() for c in x), "the side view is a profile, not the front"


def test_front_differs_from_back(chars):
    for i, c in enumerate(chars):
        assert (c[FRONT] != c[BACK]).any(), f"character {i}: front and back are identical"


def test_front_is_asymmetric(chars):
    asymmetric = [(c[FRONT] != c[FRONT, :, ::-1]).any() for c in chars]
    assert np.mean(asymmetric) >= 0.8


def test_asymmetric_items_switch_sides_between_front_and_back(chars):
    # The body is symmetric, so the back's silhouette is the front's mirrored: an item in the
    # right hand is on the image's left in front and on the image's right from behind.
    front, back = chars[:, FRONT, :, :, 3] > 0, chars[:, BACK, :, :, 3] > 0
    mirrored = (front != back[:, :, ::-1]).sum(axis=(1, 2))
    unmirrored = (front != back).sum(axis=(1, 2))
    assert (mirrored <= unmirrored).all()
    lopsided = (front != front[:, :, ::-1]).any(axis=(1, 2))
    assert lopsided.mean() >= 0.5
    assert (mirrored[lopsided] < unmirrored[lopsided]).all()


def test_sprite_placement_and_size(chars):
    top, bottom, left, right = _bboxes(chars)
    height, width = bottom - top + 1, right - left + 1
    centre = (left + right) / 2
    assert height.min() >= 36 and height.max() <= 50
    assert width[:, [BACK, FRONT]].min() >= 20 and width[:, [BACK, FRONT]].max() <= 32
    assert width[:, [LEFT, RIGHT]].min() >= 12 and width[:, [LEFT, RIGHT]].max() <= 32
    assert bottom.min() >= 56 and bottom.max() <= 62, "feet stand low on the canvas"
    assert np.abs(centre - 31.5).max() <= 4, "sprites are horizontally centred"
    # The same character keeps its height in every view; characters differ from one another.
    assert (height == height[:, :1]).all()
    assert len(np.unique(height[:, FRONT])) >= 8
    assert len(np.unique(width[:, FRONT])) >= 6


@pytest.mark.parametrize("size", [0, 16, 40, 63, 65, 100, 544, 1024, -64])
def test_unsupported_size_raises(size):
    with pytest.raises(ValueError, match="size"):
        generate_characters(2, size=size)


@pytest.mark.parametrize("kwargs", [{"count": -1}, {"count": 2, "seed": -3}, {"count": 2.0},
                                    {"count": 2, "size": 64.0}, {"count": True}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        generate_characters(**kwargs)


def test_fast_enough():
    generate_characters(2)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        generate_characters(400, seed=0)
        best = min(best, time.perf_counter() - start)
    assert best < 2.0, f"400 characters took {best:.2f} s"


@pytest.mark.parametrize("size", [20, 36])
def test_train_on_an_unsupported_synthetic_size_is_one_line(tmp_path, size):
    from test_cli import assert_clean_error, run_cli

    result = run_cli("train", "stargan-paired", "--image-size", size, "--steps", 1, "--log-folder", tmp_path, cwd=tmp_path)
    assert_clean_error(result, f"drawn at 32 to 512 px (a multiple of 16), not {size}")
