"""Unpaired StarGAN: architecture, the corrected real-domain label, d-steps, CLI, resume."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.blocks import parameter_count
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from conftest import write_split_folder
from test_cli import run_cli
from test_stargan import _state, tiny_data

UNPAIRED = model_class("stargan-unpaired")


def make(size=32, **given):
    config = resolve("stargan-unpaired", UNPAIRED.uses, UNPAIRED.defaults, given)
    return UNPAIRED(config, 4, 4, size)


def test_parameter_counts_and_shapes():
    model = make(size=64)
    assert parameter_count(model.generator) == pytest.approx(8.45e6, rel=0.002)  # same generator as paired
    assert parameter_count(model.discriminator) == 44_623_872  # unconditional critic: 4 input channels
    assert model.discriminator.conditional is False
    model = make()
    images = torch.rand(3, 4, 4, 32, 32) * 2 - 1
    available = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool)
    out = model.eval().impute(images, available, torch.tensor([0, 1, 2]))
    assert out.shape == (3, 4, 32, 32) and out.abs().max() <= 1
    scores, logits = model.discriminator(images[:, 0])
    assert scores.shape == (3, 1, 1, 1) and logits.shape == (3, 4)


def test_unused_flags_and_batch_of_one_are_refused():
    for flag in ("lambda_l1", "conditional_discriminator", "source"):
        with pytest.raises(SpriteForgeError, match="not used by stargan-unpaired"):
            make(**{flag: 1.0 if flag == "lambda_l1" else ("front" if flag == "source" else True)})
    with pytest.raises(SpriteForgeError, match="--batch 2 or more"):
        make(batch=1)


def test_real_sample_is_another_character_with_its_own_domain():
    torch.manual_seed(3)
    model = make()
    batch = torch.rand(4, 4, 4, 32, 32) * 2 - 1
    seen = {}
    original = model.update_critic

    def spy(real, real_domain, fake, condition):
        seen.update(real=real, domain=real_domain.clone(), condition=condition)
        return original(real, real_domain, fake, condition)

    model.update_critic = spy
    torch.manual_seed(7)
    source_domain, target_domain = model.sample_pairs(4, "cpu")
    torch.manual_seed(7)
    losses = model.train_step(batch, 0, 0.0)
    assert torch.equal(seen["domain"], target_domain)  # labelled with the pose it shows (the original: the source's)
    assert torch.equal(seen["real"], batch[torch.arange(4).roll(1), target_domain])  # another character: unpaired
    assert seen["condition"] is None and "generator/l1" not in losses


def test_generator_every_d_steps_by_default():
    assert make().config.d_steps == 5  # the original's default
    model = make(d_steps=2, lambda_gp=0.0)  # (no penalty: only the schedule is under test, faster)
    batch = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    losses = [model.train_step(batch, step, 0.0) for step in range(3)]
    assert ["generator/total" in step for step in losses] == [True, False, True]
    assert all("discriminator/total" in step for step in losses)  # the critic: every step


def test_losses_fall_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(lr=5e-4, d_steps=1)
    batch = torch.from_numpy(tiny_data().train.images[:4]).float().movedim(-1, -3) / 127.5 - 1
    history = [model.train_step(batch, step, 0.0) for step in range(4)]
    reconstruction = [h["generator/reconstruction"] for h in history]
    critic = [h["discriminator/total"] for h in history]
    assert np.mean(reconstruction[-2:]) < 0.8 * np.mean(reconstruction[:2])
    assert np.mean(critic[-2:]) < np.mean(critic[:2])


def _trainer(tmp_path, name, **given):
    config = resolve("stargan-unpaired", UNPAIRED.uses, UNPAIRED.defaults,
                     {"steps": 3, "evaluate_steps": 2, "image_size": 32, "log_folder": str(tmp_path), "run_string": name,
                      "callback_evaluate_l1": True, "d_steps": 2, **given})
    return Trainer(config, data=tiny_data())


def test_resume_is_bit_identical(tmp_path):
    straight = _trainer(tmp_path, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=1)  # stops between two generator updates (steps 0 and 2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    assert resumed.state.step == 1
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert straight.state.best_step == resumed.state.best_step


def test_cli_train_then_translate(tmp_path):
    sprites = write_split_folder(tmp_path / "sprites", size=32)
    out = tmp_path / "out"
    result = run_cli("train", "stargan-unpaired", "--dataset", sprites, "--steps", 2, "--image-size", 32, "--d-steps", 2,
                     "--log-folder", out, "--run-string", "u", "--callback-evaluate-l1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "stargan-unpaired" / "playground" / "u"
    assert (run / "checkpoints" / "latest.safetensors").is_file() and (run / "summary.json").is_file()
    front = sprites / "test" / "2-front" / "0.png"
    result = run_cli("translate", run, "--front", front, "--out", tmp_path / "sheet.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert np.array(Image.open(tmp_path / "sheet.png")).shape == (32, 128, 4)
