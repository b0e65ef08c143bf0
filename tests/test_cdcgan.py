"""Conditional DCGAN (view-conditioned new characters) and `spriteforge sample --view`."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.cdcgan import view_accuracy
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_cli import run_cli
from test_stargan import _state, tiny_data

CDCGAN = model_class("cdcgan")


def make(size=32, **given):
    config = resolve("cdcgan", CDCGAN.uses, CDCGAN.defaults, {"feature_maps": 8, **given})
    return CDCGAN(config, 4, 4, size)


def test_notebook_defaults_shapes_and_ranges():
    config = resolve("cdcgan", CDCGAN.uses, CDCGAN.defaults, {})
    assert (config.latent, config.embedding, config.feature_maps, config.lr, config.lr * config.ttur) == (40, 10, 64, 1e-4, 4e-4)
    model = CDCGAN(config, 4, 4, 64)
    first = model.generator.layers[0]
    assert first.in_channels == 50 and model.generator.embed.weight.requires_grad  # z 40 + embedding 10
    images = model.eval().sample(model.noise(5), torch.tensor([0, 1, 2, 3, 2]))
    assert images.shape == (5, 4, 64, 64) and images.abs().max() <= 1
    scores, logits = model.discriminator(images)
    assert scores.shape == (5,) and logits.shape == (5, 4)
    small = make()
    assert small.eval().sample(small.noise(6)).shape == (6, 4, 32, 32)  # views round-robin when none given
    with pytest.raises(SpriteForgeError, match="indices"):
        small.sample(small.noise(2), torch.tensor([0, 4]))


def test_unused_flags_are_rejected():
    with pytest.raises(SpriteForgeError, match="--loss not used by cdcgan"):
        resolve("cdcgan", CDCGAN.uses, CDCGAN.defaults, {"loss": "wasserstein"})
    with pytest.raises(SpriteForgeError, match="--lambda-gp not used by cdcgan"):
        resolve("cdcgan", CDCGAN.uses, CDCGAN.defaults, {"lambda_gp": 1.0})
    with pytest.raises(SpriteForgeError, match="--embedding must be at least 1"):
        make(embedding=0)


def test_generator_loss_includes_the_view_classification():
    torch.manual_seed(0)
    batch = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    losses = make(lambda_domain=3.0).train_step(batch, 0, 0.0)
    assert losses["generator/domain"] > 0
    assert losses["generator/total"] == pytest.approx(losses["generator/adversarial"] + 3 * losses["generator/domain"], rel=1e-5)
    assert losses["discriminator/total"] == pytest.approx(losses["discriminator/adversarial"] + 3 * losses["discriminator/domain"], rel=1e-5)
    # the classification term reaches G: with only that term, G's gradient is not zero
    model = make(lambda_adversarial=0.0)
    model.train_step(batch, 0, 0.0)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.embed.parameters())


def test_view_accuracy_mechanics():
    model = make()
    perfect = lambda images: torch.nn.functional.one_hot(torch.arange(len(images)) % 4, 4).float()
    assert view_accuracy(model, 12, classifier=perfect) == 1.0
    always_back = lambda images: torch.nn.functional.one_hot(torch.zeros(len(images), dtype=torch.long), 4).float()
    assert view_accuracy(model, 12, classifier=always_back) == pytest.approx(0.25)
    model.train()
    own = view_accuracy(model, 8)  # the model's own D view head
    assert 0 <= own <= 1 and model.generator.training and model.discriminator.training  # modes restored
    assert view_accuracy(model, 8) == own  # fixed seed → same samples


def _trainer(tmp_path, name, **given):
    config = resolve("cdcgan", CDCGAN.uses, CDCGAN.defaults, {"steps": 4, "evaluate_steps": 2, "batch": 2, "image_size": 32,
                                                              "feature_maps": 8, "log_folder": str(tmp_path), "run_string": name,
                                                              **given})
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


def test_train_then_sample_a_view_through_the_cli(tmp_path):
    result = run_cli("train", "cdcgan", "--steps", 3, "--evaluate-steps", 3, "--batch", 2, "--image-size", 32, "--feature-maps", 8,
                     "--latent", 16, "--log-folder", tmp_path / "out", "--run-string", "cli", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "cdcgan" / "playground" / "cli"
    preview = np.asarray(Image.open(run / "previews" / "step_000003.png"))
    result = run_cli("sample", run, "-n", 4, "--view", "front", "--seed", 3, "--out", tmp_path / "front.png", "--separate")
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("front-*.png"))) == 4
    assert np.asarray(Image.open(tmp_path / "front.png")).shape[-1] == 4
    back = run_cli("sample", run, "-n", 4, "--view", "back", "--seed", 3, "--out", tmp_path / "back.png")
    assert back.returncode == 0, back.stderr
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), np.asarray(Image.open(tmp_path / "front.png")))
    assert preview.shape[0] > preview.shape[1] / 2  # five rows (a row per view, then reals) of eight


def test_independent_view_classifier_learns_real_views():
    from spriteforge.models.cdcgan import train_view_classifier

    characters = torch.rand(6, 4, 4, 32, 32) * 0.2 - 1  # dark noise; view k is marked by a bright quadrant k
    for view, (row, column) in enumerate([(0, 0), (0, 16), (16, 0), (16, 16)]):
        characters[:, view, :, row : row + 16, column : column + 16] += 1.5
    classifier = train_view_classifier(characters, steps=60, batch=20)
    images, views = characters.flatten(0, 1), torch.arange(4).repeat(len(characters))
    with torch.no_grad():
        assert (classifier(images).argmax(1) == views).float().mean() >= 0.9
    assert 0 <= view_accuracy(make(), 8, classifier=classifier) <= 1


def test_moving_average_draws_the_asked_views():
    model = make(ema_decay=0.5)
    model.train_step(torch.rand(2, 4, 4, 32, 32) * 2 - 1, 0, 0.0)
    model.eval()
    noise, views = model.noise(4, torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3])
    assert torch.equal(model.sample(noise, views), model.generator_ema(noise, views))
    assert not torch.equal(model.sample(noise, views), model.generator(noise, views))
