import signal

import numpy as np
import pytest
import torch

from spriteforge.data.folders import CharacterSet
from spriteforge.data.loading import SpriteData
from spriteforge.models import model_class
from spriteforge.models.blocks import parameter_count
from spriteforge.options import resolve
from spriteforge.training import checkpoint as ckpt
from spriteforge import imageio
from spriteforge.training.engine import Interrupted, Trainer

from conftest import random_sprite

STARGAN = model_class("stargan-paired")


def make(size=64, **given):
    config = resolve("stargan-paired", STARGAN.uses, STARGAN.defaults, given)
    return STARGAN(config, 4, 4, size)


def tiny_data(size=32, count=8):
    rng = np.random.default_rng(0)
    images = np.stack([np.stack([random_sprite(rng, size) for _ in range(4)]) for _ in range(count)])
    part = lambda a, b: CharacterSet(images[a:b], [str(i) for i in range(a, b)])
    return SpriteData(part(0, 5), part(5, 6), part(6, 8), ("back", "left", "front", "right"), ["test"])


def test_parameter_counts_match_the_reference():
    model = make()
    assert parameter_count(model.generator) == pytest.approx(8.45e6, rel=0.002)
    assert parameter_count(model.discriminator) == pytest.approx(44.6e6, rel=0.002)
    assert parameter_count(make(capacity=2).generator) == pytest.approx(33.7e6, rel=0.003)


def test_shapes_and_ranges():
    model = make(size=32)
    images = torch.rand(3, 4, 4, 32, 32) * 2 - 1
    target = torch.tensor([0, 1, 2])
    available = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool)
    out = model.eval().impute(images, available, target)
    assert out.shape == (3, 4, 32, 32) and out.abs().max() <= 1
    assert model.choose_sources(available, target).tolist() == [2, 3, 0]  # mirror/opposite pose preferred
    scores, logits = model.discriminator(images[:, 0], images[:, 1])
    assert scores.shape == (3, 1, 1, 1) and logits.shape == (3, 4)


def test_l1_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(size=32, lr=5e-4)
    batch = torch.from_numpy(tiny_data().train.images[:4]).float().movedim(-1, -3) / 127.5 - 1
    losses = [model.train_step(batch, step, 0.0)["generator/l1"] for step in range(12)]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


def test_d_steps_skips_generator_updates():
    model = make(size=32, d_steps=2)
    batch = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    assert "generator/total" in model.train_step(batch, 0, 0.0)
    assert "generator/total" not in model.train_step(batch, 1, 0.0)


def _trainer(tmp_path, name, **given):
    config = resolve("stargan-paired", STARGAN.uses, STARGAN.defaults,
                     {"steps": 4, "evaluate_steps": 2, "image_size": 32, "log_folder": str(tmp_path), "run_string": name,
                      "callback_evaluate_l1": True, **given})
    return Trainer(config, data=tiny_data())


def _state(trainer):
    weights = {f"{n}.{k}": v.clone() for n, net in trainer.model.networks().items() for k, v in net.state_dict().items()}
    for name, optimizer in trainer.model.optimizers.items():
        for index, values in optimizer.state_dict()["state"].items():
            weights.update({f"{name}.{index}.{k}": torch.as_tensor(v).clone() for k, v in values.items()})
    return weights


def test_resume_is_bit_identical(tmp_path):
    straight = _trainer(tmp_path, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=2)
    assert interrupted.state.step == 2 and not (interrupted.run_dir / "test-images").exists()
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    assert resumed.state.step == 2
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert straight.state.best_step == resumed.state.best_step
    assert (resumed.run_dir / "test-images").is_dir() and (resumed.run_dir / "checkpoints" / "best.safetensors").is_file()


@pytest.fixture
def sigint_handled():
    """Ctrl-C as in a terminal, also when the tests themselves run with SIGINT ignored (`cmd &`)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_finishes_the_step_saves_and_resumes_exactly(tmp_path, monkeypatch, number, sigint_handled):
    straight = _trainer(tmp_path, "straight", steps=5, evaluate_steps=100)
    straight.run()
    interrupted = _trainer(tmp_path, "interrupt", steps=5, evaluate_steps=100)
    original = interrupted.model.train_step

    def signal_during_third(batch, step, progress):
        if step == 2:
            signal.raise_signal(number)  # arrives while the step runs: the step still completes
        return original(batch, step, progress)

    monkeypatch.setattr(interrupted.model, "train_step", signal_during_third)
    handler_before = signal.getsignal(number)
    with pytest.raises(Interrupted) as stopped:
        interrupted.run()
    assert signal.getsignal(number) is handler_before  # the loop's handler is gone again
    assert stopped.value.saved and stopped.value.step == 3
    _, meta = ckpt.read_checkpoint(interrupted.run_dir / "checkpoints" / "latest.safetensors")
    assert meta["step"] == 3
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, sigint_handled):
    trainer = _trainer(tmp_path, "twice", steps=5, evaluate_steps=100, checkpoint_steps=1)
    original = trainer.model.train_step

    def two_signals_during_third(batch, step, progress):
        if step == 2:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # the second one raises here, half-way through the step
        return original(batch, step, progress)

    monkeypatch.setattr(trainer.model, "train_step", two_signals_during_third)
    with pytest.raises(Interrupted) as stopped:
        trainer.run()
    assert not stopped.value.saved and stopped.value.step == 2
    _, meta = ckpt.read_checkpoint(trainer.run_dir / "checkpoints" / "latest.safetensors")
    assert meta["step"] == 2  # the half-done step was not saved over it


def test_checkpoint_of_another_model_or_file_is_refused(tmp_path):
    trainer = _trainer(tmp_path, "foreign")
    trainer.run(stop_at=1)
    trainer.save_latest()
    path = trainer.run_dir / "checkpoints" / "latest.safetensors"
    other = make(size=32, capacity=2)
    tensors, _ = ckpt.read_checkpoint(path)
    with pytest.raises(Exception, match="weights do not fit the generator"):
        ckpt.load_weights(other, tensors, path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(Exception, match="not a SpriteForge checkpoint"):
        ckpt.read_checkpoint(junk)


def test_rgb_training(tmp_path):
    trainer = _trainer(tmp_path, "rgb", output_channels=3, input_channels=3, steps=1, callback_evaluate_l1=False)
    trainer.run()
    assert trainer.model.generator.layers[0].in_channels == 3 + 8
    batch = trainer.batch(0)
    assert batch.shape[2] == 3 and batch.max() <= 1
    assert (trainer.run_dir / "test-images").is_dir()


def test_test_images_flag_sets_how_many_characters_are_drawn(tmp_path):
    from tiny_runs import tiny_run

    one = tiny_run(tmp_path / "one", "stargan-paired", size=32, test_images=1)
    assert sorted(path.name for path in (one / "test-images").glob("*.png")) == ["0000_at_step_2.png"]
    none = tiny_run(tmp_path / "none", "stargan-paired", size=32, test_images=0)
    assert not (none / "test-images").exists()
    every = tiny_run(tmp_path / "every", "stargan-paired", size=32, test_images=50)  # more than the split: all of it
    assert len(list((every / "test-images").glob("*.png"))) == 2


def test_test_image_grid_draws_every_view_from_each_single_view():
    from spriteforge.models.evaluation import test_image_grid

    model = make().eval()
    character = torch.rand(4, 4, 64, 64) * 2 - 1
    grid = test_image_grid(model, character, "cpu")
    with torch.no_grad():
        only_left = torch.tensor([[False, True, False, False]])
        back_from_left = imageio.to_uint8(model.impute(character[None], only_left, torch.tensor([0])))[0]
    cell = lambda row, column: grid[2 + row * 66 : 2 + row * 66 + 64, 2 + column * 66 : 2 + column * 66 + 64]
    assert grid.shape[:2] == (5 * 66 + 2, 4 * 66 + 2)
    assert np.array_equal(cell(0, 2), imageio.to_uint8(character)[2])  # first row: the real views
    assert np.abs(cell(2, 0).astype(int) - back_from_left.astype(int)).max() <= 1  # row 1 + source: drawn from the left view
