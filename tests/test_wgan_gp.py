"""WGAN-GP (critic without BatchNorm, gradient penalty, critic steps)."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.blocks import gradient_penalty
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_cli import assert_clean_error, run_cli
from test_stargan import _state, tiny_data

WGANGP = model_class("wgan-gp")


def make(size=32, **given):
    config = resolve("wgan-gp", WGANGP.uses, WGANGP.defaults, {"feature_maps": 8, **given})
    return WGANGP(config, 4, 4, size)


def test_defaults_shapes_ranges_and_no_batchnorm():
    config = resolve("wgan-gp", WGANGP.uses, WGANGP.defaults, {})
    assert (config.d_steps, config.lambda_gp, config.beta1, config.beta2, config.lr) == (5, 10.0, 0.0, 0.9, 1e-4)
    for norm in ("layer", "instance", "none"):
        model = make(critic_norm=norm)
        kinds = {type(layer) for layer in model.discriminator.modules()}
        assert torch.nn.BatchNorm2d not in kinds and torch.nn.Dropout not in kinds
        images = model.eval().sample(model.noise(3))
        assert images.shape == (3, 4, 32, 32) and images.abs().max() <= 1
        assert model.discriminator(images)[0].shape == (3,)
    with pytest.raises(SpriteForgeError, match="unconditional"):
        make().sample(torch.randn(1, 84), torch.tensor([2]))


def test_unused_flags_are_rejected():
    with pytest.raises(SpriteForgeError, match="--label-smoothing not used by wgan-gp"):
        resolve("wgan-gp", WGANGP.uses, WGANGP.defaults, {"label_smoothing": 0.1})
    with pytest.raises(SpriteForgeError, match="--critic-norm"):
        resolve("wgan-gp", WGANGP.uses, WGANGP.defaults, {"critic_norm": "batch"})


@pytest.mark.parametrize("weights", [[3.0, 4.0], [0.6, 0.8], [0.0, 0.0]])
def test_gradient_penalty_of_a_linear_critic(weights):
    """D(x) = w·x has gradient w everywhere, so the penalty is (‖w‖ − 1)² at any interpolate."""
    w = torch.zeros(1, 2, 2)
    w.view(-1)[:2] = torch.tensor(weights)  # w as a [C, H, W] image
    critic = lambda x, _: ((x * w).flatten(1).sum(1), None)
    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    expected = (torch.tensor(weights).norm() - 1) ** 2
    assert gradient_penalty(critic, real, fake, None).item() == pytest.approx(expected.item(), abs=1e-6)


def test_critic_steps_and_penalty_in_the_loss():
    torch.manual_seed(0)
    model = make(d_steps=3)
    batch = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    first = model.train_step(batch, 0, 0.0)
    assert "generator/total" in first and first["discriminator/gradient-penalty"] > 0
    assert first["discriminator/total"] == pytest.approx(-first["discriminator/wasserstein"] + 10 * first["discriminator/gradient-penalty"], rel=1e-5)
    assert "generator/total" not in model.train_step(batch, 1, 0.0)  # critic only
    assert "generator/total" not in model.train_step(batch, 2, 0.0)
    assert "generator/total" in model.train_step(batch, 3, 0.0)


def _trainer(tmp_path, name, **given):
    config = resolve("wgan-gp", WGANGP.uses, WGANGP.defaults, {"steps": 4, "evaluate_steps": 2, "batch": 2, "image_size": 32,
                                                               "feature_maps": 8, "d_steps": 2, "log_folder": str(tmp_path),
                                                               "run_string": name, **given})
    return Trainer(config, data=tiny_data())


def test_resume_is_bit_identical(tmp_path):
    straight = _trainer(tmp_path, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert (resumed.run_dir / "test-images" / "samples_at_step_4.png").is_file()


def test_train_then_sample_through_the_cli(tmp_path):
    result = run_cli("train", "wgan-gp", "--steps", 3, "--evaluate-steps", 3, "--batch", 2, "--image-size", 32, "--feature-maps", 8,
                     "--latent", 16, "--log-folder", tmp_path / "out", "--run-string", "cli", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "wgan-gp" / "playground" / "cli"
    assert (run / "previews" / "step_000003.png").is_file()
    result = run_cli("sample", run, "-n", 4, "--seed", 1, "--out", tmp_path / "grid.png")
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / "grid.png")).shape[-1] == 4
    assert_clean_error(run_cli("sample", run, "--view", "front", "--out", tmp_path / "v.png"), "unconditional")


def test_moving_average_follows_the_generator_steps_only():
    model = make(ema_decay=0.5, d_steps=2)
    batch = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    assert "generator/ema-decay" not in model.train_step(batch, 1, 0.0)  # a critic-only step
    assert model.train_step(batch, 2, 0.0)["generator/ema-decay"] == pytest.approx(min(0.5, 2 / 11))  # update n = 1
