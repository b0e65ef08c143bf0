"""DCGAN (new characters from noise) and `spriteforge sample`."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_cli import assert_clean_error, run_cli
from test_stargan import _state, tiny_data

DCGAN = model_class("dcgan")


def make(size=32, **given):
    config = resolve("dcgan", DCGAN.uses, DCGAN.defaults, given)
    return DCGAN(config, 4, 4, size)


def test_tinyhero_widths_shapes_and_ranges():
    model = make(size=64)
    widths = [layer.out_channels for layer in model.generator.layers if isinstance(layer, torch.nn.ConvTranspose2d)]
    assert widths == [384, 192, 96, 48, 4]  # the notebook's 84 → 384@4 … 48@32 → image, with RGBA out
    images = model.eval().sample(model.noise(5))
    assert images.shape == (5, 4, 64, 64) and images.abs().max() <= 1
    scores, _ = model.discriminator(images)
    assert scores.shape == (5,)
    assert make(size=32).sample(torch.randn(2, 84)).shape == (2, 4, 32, 32)
    with pytest.raises(SpriteForgeError, match="power of two"):
        make(size=48)


def test_unused_flags_and_bad_values_are_rejected():
    with pytest.raises(SpriteForgeError, match="--lambda-l1 not used by dcgan"):
        resolve("dcgan", DCGAN.uses, DCGAN.defaults, {"lambda_l1": 1.0})
    with pytest.raises(SpriteForgeError, match="label-smoothing"):
        make(label_smoothing=0.7)
    with pytest.raises(SpriteForgeError, match="unconditional"):
        make().sample(torch.randn(1, 84), torch.tensor([2]))


def test_soft_labels_stay_inside_zero_one():
    model = make(label_smoothing=0.2)
    real, fake = model._labels(1000, True, "cpu"), model._labels(1000, False, "cpu")
    assert 0.8 <= real.min() and real.max() <= 1 and 0 <= fake.min() and fake.max() <= 0.2


def test_discriminator_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(d_steps=1000, lr=5e-4)  # the generator updates at step 0 only, then the critic learns alone
    batch = torch.from_numpy(tiny_data().train.images[:4]).float().movedim(-1, -3) / 127.5 - 1
    losses = [model.train_step(batch, step, 0.0)["discriminator/total"] for step in range(10)]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_wasserstein_is_really_used():
    model = make(loss="wasserstein")
    batch = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    losses = model.train_step(batch, 0, 0.0)
    assert all(p.abs().max() <= 0.01 for p in model.discriminator.parameters())  # clipped critic
    assert losses["generator/adversarial"] == pytest.approx(-losses["discriminator/fake-score"], abs=1.0)


def _trainer(tmp_path, name, **given):
    config = resolve("dcgan", DCGAN.uses, DCGAN.defaults, {"steps": 4, "evaluate_steps": 2, "batch": 2, "image_size": 32,
                                                           "log_folder": str(tmp_path), "run_string": name, **given})
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


def test_l1_evaluation_is_refused_for_a_sampler(tmp_path):
    with pytest.raises(SpriteForgeError, match="draws new characters"):
        _trainer(tmp_path, "l1", callback_evaluate_l1=True)


def test_train_then_sample_through_the_cli(tmp_path):
    result = run_cli("train", "dcgan", "--steps", 3, "--evaluate-steps", 3, "--batch", 2, "--image-size", 32, "--feature-maps", 8,
                     "--latent", 16, "--log-folder", tmp_path / "out", "--run-string", "cli", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "dcgan" / "playground" / "cli"
    assert (run / "previews" / "step_000003.png").is_file()
    result = run_cli("sample", run, "-n", 6, "--seed", 3, "--out", tmp_path / "grid.png", "--separate", "--scale", 2)
    assert result.returncode == 0, result.stderr
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape[-1] == 4 and set(np.unique(grid[..., 3])) <= {0, 255}  # alpha binarised
    assert len(list(tmp_path.glob("grid-*.png"))) == 6
    again = run_cli("sample", run, "-n", 6, "--seed", 3, "--out", tmp_path / "again.png")
    assert again.returncode == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "again.png")), np.asarray(Image.open(tmp_path / "grid.png"))[::2, ::2])
    strip = run_cli("sample", run, "-n", 5, "--interpolate", "--out", tmp_path / "strip.png")
    assert strip.returncode == 0, strip.stderr
    height, width = np.asarray(Image.open(tmp_path / "strip.png")).shape[:2]
    assert width > 4 * height  # one row of five
    assert_clean_error(run_cli("sample", run, "--view", "front", "--out", tmp_path / "v.png"), "unconditional")
    front = tmp_path / "grid-000.png"
    assert_clean_error(run_cli("translate", run, "--front", front, "--out", tmp_path / "s.png"), "spriteforge sample")


def test_moving_average_of_the_generator_draws_and_resumes(tmp_path):
    assert make().config.ema_decay == 0 and not hasattr(make(), "generator_ema")  # the notebook had none
    with pytest.raises(SpriteForgeError, match="--ema-decay must be in"):
        make(ema_decay=1.0)
    straight = _trainer(tmp_path, "ema-straight", ema_decay=0.9)
    straight.run()
    model = straight.model
    live, average = dict(model.generator.named_parameters()), dict(model.generator_ema.named_parameters())
    assert any(not torch.equal(live[key], average[key]) for key in live)  # an average, not a copy
    assert "generator_ema" in model.inference_networks
    noise = model.noise(3, torch.Generator().manual_seed(0))
    model.eval()
    assert torch.equal(model.sample(noise), model.generator_ema(noise))
    interrupted = _trainer(tmp_path, "ema-interrupted", ema_decay=0.9)
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert any("generator_ema" in key for key in a) and all(torch.equal(a[key], b[key]) for key in a)


def test_moving_average_draws_with_batchnorm_statistics_of_its_own():
    """The average's BatchNorm statistics are recomputed for its weights (standing statistics), not the live G's."""
    from spriteforge.models.base import STANDING_LATENTS

    torch.manual_seed(0)
    model = make(ema_decay=0.5, lr=2e-3, feature_maps=8, latent=8)
    batch = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    for step in range(4):
        model.train_step(batch, step, 0.0)
    average = model.generator_ema
    stale = {name: value.clone() for name, value in average.named_buffers()}
    latents = model.noise(STANDING_LATENTS, torch.Generator().manual_seed(5))
    with torch.no_grad():
        population = average.train()(latents)  # every layer normalised by the statistics of these 512 latents
    rng = torch.get_rng_state()
    model.eval()
    drawn = model.sample(latents)
    assert torch.equal(torch.get_rng_state(), rng)  # its latents come from a private generator
    assert any(not torch.equal(stale[name], value) for name, value in average.named_buffers() if "running" in name)
    with torch.no_grad():
        recalibrated = (drawn - population).abs().mean()
        for name, value in average.named_buffers():
            value.copy_(stale[name])
        stale_error = (average.eval()(latents) - population).abs().mean()
    assert recalibrated < 0.02 and recalibrated < stale_error / 3, (recalibrated, stale_error)
    calls = []
    model.standing_statistics = lambda network: calls.append(network)  # computed once per averaging step, not per draw
    model.sample(latents[:2])
    assert calls == []
    model.train_step(batch, 4, 0.0)
    model.sample(latents[:2])
    assert len(calls) == 1
