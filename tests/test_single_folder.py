"""The single-folder dataset: one folder of images of one size (non-square, RGB, palette, grey) as one class."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.data.folders import SINGLE_DOMAIN, read_folder, read_single_folder
from spriteforge.data.inspect import inspect_source
from spriteforge.data.loading import load_data, load_splits
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from conftest import random_sprite, write_split_folder


def write_single_folder(folder, count=10, size=(12, 16), seed=0):
    """`count` RGBA sprites of size (height, width), cropped from square random sprites."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        sprite = random_sprite(rng, max(size))[: size[0], : size[1]]
        Image.fromarray(sprite, "RGBA").save(folder / f"{index}.png")
    return folder


def test_modes_are_converted_and_the_shape_kept(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    rgb = np.arange(12 * 16 * 3, dtype=np.uint8).reshape(12, 16, 3)
    Image.fromarray(rgb, "RGB").save(folder / "a-rgb.png")
    palette = Image.new("P", (16, 12), 1)
    palette.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(folder / "b-palette.png", transparency=0)
    Image.new("L", (16, 12), 77).save(folder / "c-grey.png")
    Image.fromarray(np.zeros((12, 16, 4), np.uint8), "RGBA").save(folder / "d-empty.png")
    images = read_single_folder(folder)
    assert images.images.shape == (4, 1, 12, 16, 4) and images.names[0] == "mixed/a-rgb"
    assert np.array_equal(images.images[0, 0, ..., :3], rgb) and (images.images[0, 0, ..., 3] == 255).all()
    assert tuple(images.images[1, 0, 5, 5]) == (200, 10, 20, 255) and tuple(images.images[1, 0, 0, 0]) == (0, 0, 0, 0)
    assert (images.images[2, 0] == [77, 77, 77, 255]).all()
    assert read_single_folder(folder, (12, 16)).images.shape[2:4] == (12, 16)


def test_bad_files_are_named(tmp_path):
    folder = write_single_folder(tmp_path / "frames", count=4)
    Image.new("RGBA", (16, 16)).save(folder / "odd.png")
    with pytest.raises(SpriteForgeError, match=r"odd\.png: image is 16x16 but the other images of frames are 16x12 \(e\.g\. 0\.png\)"):
        read_single_folder(folder)
    (folder / "odd.png").unlink()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(SpriteForgeError, match=r"notes\.txt: not an image"):
        read_single_folder(folder)
    (folder / "notes.txt").unlink()
    Image.new("RGB", (16, 12)).save(folder / "photo.jpg")
    with pytest.raises(SpriteForgeError, match=r"photo\.jpg: JPEG is lossy"):
        read_single_folder(folder)
    (folder / "photo.jpg").unlink()
    data = (folder / "1.png").read_bytes()
    (folder / "1.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    with pytest.raises(SpriteForgeError, match=r"1\.png: not a readable PNG"):
        read_single_folder(folder)
    (folder / "1.png").write_bytes(b"not an image at all")
    with pytest.raises(SpriteForgeError, match=r"1\.png: not a readable image"):
        read_single_folder(folder)


def test_the_model_size_must_match_with_the_flags_that_would(tmp_path):
    folder = write_single_folder(tmp_path / "frames", count=3)
    with pytest.raises(SpriteForgeError, match="are 16x12 but the model draws 64x64; .*--base-width 4 --base-height 3 --upsample-layers 2"):
        read_single_folder(folder, 64)
    square = write_single_folder(tmp_path / "square", count=3, size=(48, 48))
    with pytest.raises(SpriteForgeError, match="are 48x48 but the model draws 64x64; pass --image-size 48"):
        read_single_folder(square, 64)
    with pytest.raises(SpriteForgeError, match="dataset 'rm2k' has 64x64 images; .*--base-width 4 --base-height 4 --upsample-layers 4"):
        load_splits("rm2k", image_size=(96, 128))
    with pytest.raises(SpriteForgeError, match="the synthetic dataset is square"):
        load_splits("synthetic", image_size=(12, 16))
    with pytest.raises(SpriteForgeError, match="the synthetic dataset is drawn at 32 to 512 px"):
        load_splits("synthetic", image_size=16)


def test_load_data_splits_one_domain_and_refuses_pooling_and_domains(tmp_path):
    folder = write_single_folder(tmp_path / "frames", count=20)
    data = load_data([str(folder)], image_size=(12, 16), seed=1)
    assert data.domains == (SINGLE_DOMAIN,)
    assert (len(data.train), len(data.validation), len(data.test)) == (15, 2, 3)
    assert data.train.images.shape[1:] == (1, 12, 16, 4)
    assert read_folder(folder, ("back", "left", "front", "right"), (12, 16), seed=1)["test"].names == data.test.names
    paired = write_split_folder(tmp_path / "paired", size=16)
    square = write_single_folder(tmp_path / "square", count=6, size=(16, 16))
    with pytest.raises(SpriteForgeError, match="square is a single folder of images .* cannot be pooled with .*paired"):
        load_data([str(square), str(paired)], image_size=16)
    with pytest.raises(SpriteForgeError, match="drop --domains"):
        load_data([str(folder)], image_size=(12, 16), domains=("n", "e", "s", "w"))


def test_inspect_reports_a_single_folder_at_its_own_size(tmp_path):
    folder = write_single_folder(tmp_path / "frames", count=5)
    report, preview = inspect_source(str(folder), ("back", "left", "front", "right"), image_size=None, preview=str(tmp_path / "p.png"))
    assert "image  colours/image" in report and preview.is_file()


def _trainer(tmp_path, model, folder, **given):
    cls = model_class(model)
    config = resolve(model, cls.uses, cls.defaults, {"steps": 1, "evaluate_steps": 1, "batch": 2, "dataset": [str(folder)],
                                                     "log_folder": str(tmp_path / "out"), "run_string": model, **given}, cls.refuses)
    return Trainer(config)


@pytest.mark.parametrize("model", ["dcgan", "wgan-gp"])
def test_square_samplers_train_on_a_single_folder(tmp_path, model):
    folder = write_single_folder(tmp_path / "square", count=6, size=(16, 16))
    trainer = _trainer(tmp_path, model, folder, image_size=16, feature_maps=4, latent=8)
    assert trainer.model.domain_count == 1
    trainer.run()
    assert (trainer.run_dir / "test-images" / "samples_at_step_1.png").is_file()


@pytest.mark.parametrize("model", ["cdcgan", "stargan-paired", "collagan"])
def test_view_models_refuse_a_single_folder(tmp_path, model):
    folder = write_single_folder(tmp_path / "square", count=4, size=(32, 32))
    with pytest.raises(SpriteForgeError, match=f"{model} needs characters with views, but .*square is a single folder"):
        _trainer(tmp_path, model, folder, image_size=32)


def test_biggan_draws_the_folders_4_3_shape(tmp_path):
    folder = write_single_folder(tmp_path / "frames", count=6)
    trainer = _trainer(tmp_path, "biggan", folder, base_width=4, base_height=3, upsample_layers=2, feature_maps=4, latent=8,
                       embedding=4, callback_debug_discriminator=True)
    trainer.run()
    assert trainer.model.sample(trainer.model.noise(3)).shape == (3, 4, 12, 16)
    assert (trainer.run_dir / "discriminated-images" / "discriminated_train_at_step_1.png").is_file()
    with pytest.raises(SpriteForgeError, match="are 16x12 but the model draws 16x16; .*--base-width 4 --base-height 3"):
        _trainer(tmp_path, "biggan", folder, base_width=4, base_height=4, upsample_layers=2, run_string="wrong")
    assert torch.equal(trainer.model.sample(trainer.model.noise(2, torch.Generator().manual_seed(0))),
                       trainer.model.sample(trainer.model.noise(2, torch.Generator().manual_seed(0))))
