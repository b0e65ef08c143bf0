"""FastGAN (small-data sampler): shapes, the self-supervised discriminator, training, resume, the CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.fastgan import quarters
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_cli import run_cli
from test_stargan import _state, tiny_data

FASTGAN = model_class("fastgan")


def make(**given):
    config = resolve("fastgan", FASTGAN.uses, FASTGAN.defaults, {"feature_maps": 4, "latent": 16, **given})
    return FASTGAN(config, 4, 4, 64)


def test_widths_shapes_ranges_and_refusals():
    model = make(feature_maps=16, latent=128)
    generator = model.generator
    assert [generator.to8[1].in_channels, generator.to16[1].in_channels, generator.to32[1].in_channels,
            generator.to64[1].in_channels, generator.to_image[0].in_channels] == [256, 128, 64, 32, 16]
    images = model.eval().sample(model.noise(3, torch.Generator().manual_seed(0)))
    assert images.shape == (3, 4, 64, 64) and images.abs().max() <= 1
    scores, reconstruction = model.discriminator(images)
    assert scores.shape == (3,) and reconstruction is None
    with pytest.raises(SpriteForgeError, match="--image-size 32: fastgan draws 64"):
        FASTGAN(resolve("fastgan", FASTGAN.uses, FASTGAN.defaults, {}), 4, 4, 32)
    with pytest.raises(SpriteForgeError, match="--label-smoothing not used by fastgan"):
        resolve("fastgan", FASTGAN.uses, FASTGAN.defaults, {"label_smoothing": 0.1})
    assert model.config.diff_augment == "color,translation" and model.config.no_aug  # D is augmented, the data is not


def test_quarters_are_the_four_corners_in_reading_order():
    images = torch.arange(2 * 3 * 8 * 8.0).reshape(2, 3, 8, 8)
    parts = quarters(images)
    assert parts.shape == (2, 4, 3, 4, 4)
    corners = [images[..., :4, :4], images[..., :4, 4:], images[..., 4:, :4], images[..., 4:, 4:]]
    assert all(torch.equal(parts[:, index], corner) for index, corner in enumerate(corners))


def test_discriminator_reconstructs_real_sprites_and_its_loss_falls():
    torch.manual_seed(0)
    model = make(lr=1e-3, diff_augment="none")
    batch = torch.from_numpy(tiny_data(size=64).train.images[:4]).float().movedim(-1, -3) / 127.5 - 1
    losses = [model.train_step(batch, step, 0.0) for step in range(12)]
    reconstruction = [values["discriminator/reconstruction"] for values in losses]
    total = [values["discriminator/total"] for values in losses]
    assert np.mean(reconstruction[-3:]) < 0.8 * np.mean(reconstruction[:3])
    assert np.mean(total[-3:]) < np.mean(total[:3])
    _, loss = model.discriminator(batch.flatten(0, 1), True)
    loss.backward()  # the decoders and the trunk both learn from it
    assert model.discriminator.whole[-2].weight.grad.abs().sum() > 0 and model.discriminator.to16[0].weight_orig.grad.abs().sum() > 0


def _trainer(tmp_path, name, **given):
    config = resolve("fastgan", FASTGAN.uses, FASTGAN.defaults, {"steps": 4, "evaluate_steps": 2, "batch": 2, "feature_maps": 4,
                                                                 "latent": 8, "test_images": 0, "log_folder": str(tmp_path),
                                                                 "run_string": name, **given})
    return Trainer(config, data=tiny_data(size=64))


def test_resume_is_bit_identical_augmentation_and_moving_average_included(tmp_path):
    straight = _trainer(tmp_path, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data(size=64))
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert any("generator_ema" in key for key in a)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_train_then_sample_pixel_art_through_the_cli(tmp_path):
    result = run_cli("train", "fastgan", "--dataset", "synthetic", "--steps", 2, "--evaluate-steps", 2, "--batch", 2,
                     "--feature-maps", 4, "--latent", 8, "--test-images", 0, "--log-folder", tmp_path / "out",
                     "--run-string", "cli", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "fastgan" / "playground" / "cli"
    result = run_cli("sample", run, "-n", 4, "--colours", 8, "--out", tmp_path / "grid.png", "--separate")
    assert result.returncode == 0, result.stderr
    sprite = np.asarray(Image.open(tmp_path / "grid-000.png"))
    assert sprite.shape == (64, 64, 4) and set(np.unique(sprite[..., 3])) <= {0, 255}
    assert len(np.unique(sprite[sprite[..., 3] > 0][:, :3], axis=0)) <= 8
