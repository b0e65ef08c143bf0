import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError


def test_rgba_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    image[..., 3] = np.where(image[..., 3] > 128, 255, 0)
    image[image[..., 3] == 0] = 0
    path = imageio.save_png(image, tmp_path / "a.png")
    loaded = imageio.load_rgba(path, 64)
    assert np.array_equal(loaded, image)
    tensor = imageio.to_tensor(loaded)
    assert tensor.shape == (4, 64, 64) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(imageio.to_uint8(tensor), image)


def test_transparent_pixels_become_zero(tmp_path):
    image = np.full((8, 8, 4), 200, np.uint8)
    image[:4, :, 3] = 0  # transparent but with colour stored
    Image.fromarray(image, "RGBA").save(tmp_path / "t.png")
    loaded = imageio.load_rgba(tmp_path / "t.png", 8)
    assert (loaded[:4] == 0).all() and (loaded[4:] == 200).all()


def test_palette_image_keeps_transparency(tmp_path):
    palette_image = Image.new("P", (8, 8), 0)
    palette_image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette_image.paste(1, (0, 0, 4, 8))
    palette_image.info["transparency"] = 0
    palette_image.save(tmp_path / "p.png", transparency=0)
    loaded = imageio.load_rgba(tmp_path / "p.png", 8)
    assert (loaded[:, :4] == [255, 0, 0, 255]).all()
    assert (loaded[:, 4:] == 0).all()


def test_grey_and_16_bit_images(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(tmp_path / "g.png")
    assert (imageio.load_rgba(tmp_path / "g.png", 8) == [77, 77, 77, 255]).all()
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "g16.png")
    loaded = imageio.load_rgba(tmp_path / "g16.png", 8)
    assert (loaded == [255, 255, 255, 255]).all()
    Image.fromarray(np.full((8, 8, 2), [90, 0], np.uint8), "LA").save(tmp_path / "la.png")
    assert (imageio.load_rgba(tmp_path / "la.png", 8) == 0).all()


def test_wrong_size_truncated_and_not_png_are_clear_errors(tmp_path):
    imageio.save_png(np.zeros((32, 32, 4), np.uint8), tmp_path / "small.png")
    with pytest.raises(SpriteForgeError, match=r"small\.png: image is 32x32 but 64x64"):
        imageio.load_rgba(tmp_path / "small.png", 64)
    good = imageio.save_png(np.full((64, 64, 4), 255, np.uint8), tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(SpriteForgeError, match=r"cut\.png: not a readable PNG"):
        imageio.load_rgba(tmp_path / "cut.png", 64)
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(SpriteForgeError, match=r"text\.png"):
        imageio.load_rgba(tmp_path / "text.png", 64)
    with pytest.raises(SpriteForgeError, match="not found"):
        imageio.load_rgba(tmp_path / "missing.png")


def test_huge_image_is_refused_without_decoding(tmp_path):
    Image.new("L", (5000, 5000)).save(tmp_path / "huge.png")
    with pytest.raises(SpriteForgeError, match="far larger than a sprite"):
        imageio.load_rgba(tmp_path / "huge.png", 64)


def test_three_channels_put_transparent_on_white():
    image = np.zeros((2, 2, 4), np.uint8)
    image[0, 0] = [10, 20, 30, 255]
    tensor = imageio.to_tensor(image, channels=3)
    assert tensor.shape == (3, 2, 2)
    assert torch.allclose(tensor[:, 1, 1], torch.ones(3))
    assert np.array_equal(imageio.to_uint8(tensor)[0, 0], [10, 20, 30, 255])


def test_upscale_is_nearest_neighbour():
    image = np.arange(16, dtype=np.uint8).reshape(2, 2, 4)
    big = imageio.upscale(image, 3)
    assert big.shape == (6, 6, 4)
    assert np.array_equal(big[::3, ::3], image) and len(np.unique(big.reshape(-1, 4), axis=0)) == 4


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with imageio.atomic_write(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_refusals_of_folders_name_what_to_give_in_plain_words(tmp_path):
    from spriteforge.errors import SpriteForgeError
    for call, expected in [(lambda: imageio.load_rgba(tmp_path), "is a folder; give a PNG image"),
                           (lambda: imageio.require_regular_file(tmp_path, "a checkpoint file"), "is a folder; give a checkpoint file")]:
        with pytest.raises(SpriteForgeError) as raised:
            call()
        assert str(raised.value).endswith(expected) and "a a " not in str(raised.value)
