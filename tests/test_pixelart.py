"""Pixel-art clean-up (`spriteforge pixelate`): grid snapping, palettes, alpha, clean-up, export, bad input."""

import os
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from spriteforge import imageio, pixelart, pixelating
from spriteforge.data.synthetic import generate_characters
from spriteforge.errors import SpriteForgeError

SPRITES = generate_characters(2, seed=7, size=32).reshape(-1, 32, 32, 4)  # 8 sprites, binary alpha


def opaque_colours(rgba):
    return {tuple(c) for c in rgba[rgba[..., 3] == 255][:, :3].tolist()}


def smooth_photo(height, width, seed=0):
    """A photo-like picture: smooth gradients plus noise, thousands of colours, no pixel grid."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rgb = np.stack([np.sin(6 * x + 1) * 100 + 128, np.cos(5 * y) * 100 + 128, (x + y) * 120], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    return np.dstack([rgb, np.full((height, width), 255, np.uint8)])


# -- grid -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", range(2, 9))
def test_grid_detection_recovers_upscaled_sprites_exactly(factor):
    for index, sprite in enumerate(SPRITES[:4]):
        lead = (index * 3) % factor  # offsets 0 .. factor-1; trailing partial cells are padding too
        upscaled = np.pad(imageio.upscale(sprite, factor), ((lead, factor - 1), (factor - 1 - lead, lead), (0, 0)))
        grid = pixelart.detect_grid(upscaled)
        assert grid == pixelart.Grid(factor, factor - 1 - lead, lead)
        assert np.array_equal(pixelart.sample_grid(upscaled, grid), sprite)


@pytest.mark.parametrize("factor", [2, 3, 5, 8])
def test_grid_detection_ignores_a_few_noisy_pixels(factor):
    rng = np.random.default_rng(factor)
    sprite = SPRITES[5]
    upscaled = np.pad(imageio.upscale(sprite, factor), ((1, 0), (0, 0), (0, 0)))
    for y, x in rng.integers(0, upscaled.shape[0] - 1, (3, 2)):
        upscaled[y, x] = (255, 0, 255, 255)
    grid = pixelart.detect_grid(upscaled)
    assert grid is not None and grid.cell == factor and grid.offset_y == 1 % factor
    assert np.array_equal(pixelart.sample_grid(upscaled, grid), sprite)


def test_native_sprites_and_photos_have_no_grid():
    assert all(pixelart.detect_grid(sprite) is None for sprite in SPRITES)
    assert pixelart.detect_grid(smooth_photo(128, 128)) is None
    assert pixelart.detect_grid(np.zeros((64, 64, 4), np.uint8)) is None


def test_downscale_keeps_aspect_and_never_blends_flat_colours():
    picture = imageio.upscale(SPRITES[0], 3)[:, :90]  # 96x90 is not an integer multiple of 64
    small = pixelart.downscale(picture, 64)
    assert small.shape == (64, 60, 4)
    assert opaque_colours(small) <= opaque_colours(picture)  # mode, not bilinear: no new colours
    assert set(np.unique(small[..., 3])) <= {0, 255}
    wide = pixelart.downscale(smooth_photo(100, 300), 64)
    assert wide.shape == (21, 64, 4)
    assert pixelart.downscale(SPRITES[0], 64).shape == (32, 32, 4)  # never enlarged


def test_pixelate_uses_the_grid_when_there_is_one():
    result = pixelart.pixelate(imageio.upscale(SPRITES[1], 4), size=16, colours=64)
    assert result.grid == pixelart.Grid(4, 0, 0)
    assert np.array_equal(result.image, SPRITES[1])  # ≤ 64 colours already: unchanged


# -- palette --------------------------------------------------------------------------------------
@pytest.mark.parametrize("colours", [2, 8, 16, 32])
def test_quantisation_limits_the_distinct_opaque_colours(colours):
    photo = smooth_photo(64, 64)
    assert len(opaque_colours(photo)) > 1000
    image, palette = pixelart.quantize(photo, colours)
    assert len(opaque_colours(image)) <= colours
    assert opaque_colours(image) <= {tuple(c) for c in palette.tolist()}
    again, _ = pixelart.quantize(photo, colours)
    assert np.array_equal(image, again)  # fixed seed: deterministic


def test_quantisation_keeps_a_small_palette_exactly():
    image, palette = pixelart.quantize(SPRITES[2], 64)
    assert np.array_equal(image, SPRITES[2]) and len(palette) == len(opaque_colours(SPRITES[2]))


def test_lab_conversion_matches_known_values():
    lab = pixelart.rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], np.uint8))
    assert np.allclose(lab[0], [100, 0, 0], atol=0.05) and np.allclose(lab[1], 0, atol=1e-6)
    assert np.allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)


def test_given_palette_from_png_and_hex_file(tmp_path):
    colours = np.array([[20, 12, 28], [68, 36, 52], [133, 149, 161], [222, 238, 214], [210, 125, 44]], np.uint8)
    swatch = np.zeros((2, 8, 4), np.uint8)
    swatch[0, :5, :3], swatch[0, :5, 3] = colours, 255  # row 1 transparent: not part of the palette
    imageio.save_png(swatch, tmp_path / "palette.png")
    (tmp_path / "palette.hex").write_text("; a comment\n" + "\n".join("#%02x%02x%02x" % tuple(c) for c in colours[:3]) + "\n"
                                          + "\n".join("%02X%02X%02X" % tuple(c) for c in colours[3:]) + "\n\n")
    for name in ("palette.png", "palette.hex"):
        palette = pixelart.read_palette(tmp_path / name)
        assert np.array_equal(palette, colours)
        result = pixelart.pixelate(smooth_photo(200, 160), size=48, palette=palette)
        assert result.image.shape == (48, 38, 4)
        assert opaque_colours(result.image) <= {tuple(c) for c in colours.tolist()}
    (tmp_path / "bad.hex").write_text("#123456\nnavy\n")
    with pytest.raises(SpriteForgeError, match=r"bad.hex:2: 'navy' is not a hex colour"):
        pixelart.read_palette(tmp_path / "bad.hex")


# -- alpha and background -------------------------------------------------------------------------
def test_alpha_is_binarised_and_transparent_pixels_zeroed():
    rng = np.random.default_rng(3)
    picture = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    binary = pixelart.binarize_alpha(picture)
    assert set(np.unique(binary[..., 3])) == {0, 255}
    assert np.array_equal(binary[..., 3] == 255, picture[..., 3] >= 128)
    assert (binary[binary[..., 3] == 0] == 0).all()
    result = pixelart.pixelate(picture, size=20)
    assert set(np.unique(result.image[..., 3])) <= {0, 255} and (result.image[result.image[..., 3] == 0] == 0).all()


def test_background_auto_removes_the_border_colour_only_where_connected():
    picture = np.full((20, 20, 4), 255, np.uint8)  # white, opaque
    picture[5:15, 5:15, :3] = (200, 40, 40)
    picture[9, 9, :3] = 255  # a white eye inside the figure
    cleared = pixelart.remove_background(picture)
    assert (cleared[:5] == 0).all() and (cleared[:, 15:] == 0).all()
    assert (cleared[9, 9] == 255).all() and (cleared[5:15, 5:15, 3] == 255).all()
    busy = smooth_photo(20, 20)
    assert np.array_equal(pixelart.remove_background(busy), busy)


# -- clean-up -------------------------------------------------------------------------------------
def test_clean_pixels_removes_specks_fills_pinholes_keeps_eyes():
    red, black = (200, 0, 0, 255), (0, 0, 0, 255)
    picture = np.zeros((9, 9, 4), np.uint8)
    picture[2:7, 2:7] = red
    picture[3, 3] = black  # an eye: a single pixel of another colour inside the figure
    picture[5, 5] = 0  # a pinhole
    picture[0, 8] = black  # a stray speck, no opaque neighbour
    picture[8, 0] = red  # another, in the corner
    cleaned = pixelart.clean_pixels(picture)
    expected = np.zeros_like(picture)
    expected[2:7, 2:7] = red
    expected[3, 3] = black
    assert np.array_equal(cleaned, expected)


def test_outline_surrounds_the_silhouette_in_the_darkest_colour():
    picture = np.zeros((5, 5, 4), np.uint8)
    picture[2, 2] = (250, 200, 100, 255)
    picture[2, 3] = (30, 20, 10, 255)
    outlined = pixelart.add_outline(picture, pixelart.darkest(np.array([[250, 200, 100], [30, 20, 10]], np.uint8)))
    ring = [(1, 2), (1, 3), (3, 2), (3, 3), (2, 1), (2, 4)]
    for y, x in ring:
        assert tuple(outlined[y, x]) == (30, 20, 10, 255)
    assert (outlined[..., 3] == 255).sum() == 2 + len(ring)  # 4-adjacent only: corners stay empty


# -- export ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1, 3])
def test_indexed_png_round_trip(tmp_path, scale):
    result = pixelart.pixelate(smooth_photo(96, 96), size=32, colours=12)
    image = result.image.copy()
    image[:4] = 0  # some transparency
    path = imageio.save_indexed_png(image, tmp_path / "sprite.png", scale=scale, palette=result.palette)
    with Image.open(path) as png:
        assert png.mode == "P" and png.info.get("transparency") == 0
        assert np.array_equal(np.array(png.getpalette()[3:3 + 3 * len(result.palette)]).reshape(-1, 3), result.palette)
    assert np.array_equal(imageio.load_rgba(path), imageio.upscale(image, scale))


def test_indexed_png_rejects_colours_outside_the_palette(tmp_path):
    with pytest.raises(SpriteForgeError, match="outside the palette"):
        imageio.save_indexed_png(SPRITES[0], tmp_path / "x.png", palette=np.array([[1, 2, 3]], np.uint8))


def test_pixelate_file_writes_a_lossless_png(tmp_path):
    imageio.save_png(SPRITES[3], tmp_path / "big.png", scale=6)
    result = pixelating.pixelate_file(tmp_path / "big.png", tmp_path / "out.png", scale=2)
    assert np.array_equal(imageio.load_rgba(tmp_path / "out.png"), imageio.upscale(result.image, 2))
    assert np.array_equal(result.image, pixelart.quantize(SPRITES[3], 16)[0])


# -- bad input ------------------------------------------------------------------------------------
def test_palette_grey_and_16_bit_inputs_load_as_rgba(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(SPRITES[0][..., :3].copy()).quantize(16).save(tmp_path / "palette.png", transparency=0)
    for name in ("grey.png", "deep.png"):
        image, factor = imageio.load_image(tmp_path / name)
        assert factor == 1 and np.array_equal(image[..., 0], grey) and (image[..., 3] == 255).all()
    image, _ = imageio.load_image(tmp_path / "palette.png")
    assert image.shape == (32, 32, 4) and set(np.unique(image[..., 3])) <= {0, 255}


def test_large_sides_are_reduced_without_blending(tmp_path):
    picture = np.zeros((40, 5000, 4), np.uint8)
    picture[:, ::2] = (255, 0, 0, 255)
    picture[:, 1::2] = (0, 0, 255, 255)
    imageio.save_png(picture, tmp_path / "long.png")
    image, factor = imageio.load_image(tmp_path / "long.png")
    assert factor == 2 and image.shape == (20, 2500, 4) and opaque_colours(image) <= {(255, 0, 0), (0, 0, 255)}
    result = pixelating.pixelate_file(tmp_path / "long.png", tmp_path / "out.png", size=100)
    assert result.describe().startswith("5000x40 (read at 1/2") and result.image.shape[1] == 100


def huge_png_header(path, width=40000, height=40000):
    """A valid little PNG whose header claims a gigantic size (a decompression bomb in miniature)."""
    imageio.save_png(np.zeros((4, 4, 4), np.uint8), path)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:17 + 12])  # b"IHDR" + 13 bytes
    ihdr = ihdr[:4] + struct.pack(">II", width, height) + ihdr[12:]
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))


def test_bad_inputs_raise_one_clear_error(tmp_path):
    huge_png_header(tmp_path / "huge.png")
    imageio.save_png(smooth_photo(64, 64), tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:2000])
    (tmp_path / "notes.png").write_text("not an image\n")
    start = time.perf_counter()
    for name, fragment in (("huge.png", "too large to decode safely"), ("cut.png", "not a readable image"),
                           ("notes.png", "not a readable image"), ("missing.png", "file not found")):
        with pytest.raises(SpriteForgeError) as error:
            imageio.load_image(tmp_path / name)
        message = str(error.value)
        assert name in message and fragment in message and "\n" not in message
    assert time.perf_counter() - start < 5


# -- command line ---------------------------------------------------------------------------------
def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spriteforge", *map(str, args)], cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)


def test_cli_pixelate(tmp_path):
    imageio.save_png(SPRITES[4], tmp_path / "upscaled.png", scale=5)
    result = run_cli("pixelate", tmp_path / "upscaled.png", "--out", tmp_path / "sprite.png", "--colors", 8, "--indexed", "--outline", "--scale", 2)
    assert result.returncode == 0, result.stderr
    assert "pixel grid 5px" in result.stderr
    with Image.open(tmp_path / "sprite.png") as png:
        assert png.mode == "P" and png.size == (64, 64)
    sprite = imageio.load_rgba(tmp_path / "sprite.png")[::2, ::2]
    assert len(opaque_colours(sprite)) <= 8 and set(np.unique(sprite[..., 3])) <= {0, 255}

    imageio.save_png(smooth_photo(120, 200), tmp_path / "photo.png")
    result = run_cli("pixelate", tmp_path / "photo.png", "--out", tmp_path / "small.png", "--size", 40, "--colors", 4, "--background", "auto")
    assert result.returncode == 0, result.stderr
    small = imageio.load_rgba(tmp_path / "small.png")
    assert small.shape == (24, 40, 4) and len(opaque_colours(small)) <= 4


@pytest.mark.parametrize("kind", ["not-an-image", "truncated", "huge"])
def test_cli_pixelate_bad_input_is_one_line(tmp_path, kind):
    path = tmp_path / "input.png"
    if kind == "not-an-image":
        path.write_text("hello")
    elif kind == "truncated":
        imageio.save_png(smooth_photo(64, 64), path)
        path.write_bytes(path.read_bytes()[:1500])
    else:
        huge_png_header(path)
    result = run_cli("pixelate", path, "--out", tmp_path / "out.png")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(path) in lines[0], result.stderr
    assert not (tmp_path / "out.png").exists()
