"""Pix2Pix baseline: U-Net and PatchGAN shapes and sizes, the view pair, refusals, CLI, resume."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.blocks import parameter_count
from spriteforge.models.pix2pix import DOWN_WIDTHS, UP_WIDTHS
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from conftest import write_split_folder
from test_cli import assert_clean_error, run_cli
from test_stargan import _state, tiny_data

PIX2PIX = model_class("pix2pix")


def make(size=64, **given):
    config = resolve("pix2pix", PIX2PIX.uses, PIX2PIX.defaults, given)
    return PIX2PIX(config, 4, 4, size)


def unet_parameters(channels=4):
    """The U-Net's size from its widths (§4.9 gives the widths, no count): bias-free convs + norm affines."""
    total, cin = 0, channels
    for index, width in enumerate(DOWN_WIDTHS):
        total += cin * width * 16 + (2 * width if 0 < index < len(DOWN_WIDTHS) - 1 else 0)
        cin = width
    skips = list(reversed(DOWN_WIDTHS[:-1])) + [0]
    for width, skip in zip(UP_WIDTHS, skips):
        total += cin * width * 16 + 2 * width
        cin = width + skip
    return total + cin * channels * 16 + channels


def test_parameter_counts_and_shapes():
    model = make()
    assert parameter_count(model.generator) == unet_parameters() == 29_374_212
    assert parameter_count(model.discriminator) == 2_770_753
    assert (model.source, model.target) == (2, 3)  # front → right by default
    images = torch.rand(3, 4, 4, 64, 64) * 2 - 1
    assert model.discriminator(images[:, 0], images[:, 1]).shape == (3, 1, 6, 6)  # 70×70 patches
    available = torch.tensor([[0, 0, 1, 0], [1, 0, 1, 0], [0, 1, 1, 0]], dtype=torch.bool)
    out = model.eval().impute(images, available, torch.tensor([3, 3, 3]))
    assert out.shape == (3, 4, 64, 64) and out.abs().max() <= 1
    assert torch.equal(out, model.impute(images, available, torch.tensor([3, 3, 3])))  # eval mode: no dropout


def test_impute_refuses_other_pairs():
    model = make(source="left", target="back").eval()
    images = torch.rand(2, 4, 4, 64, 64) * 2 - 1
    with pytest.raises(SpriteForgeError, match="only draws the back view from the left view"):
        model.impute(images, torch.tensor([[0, 1, 0, 0]] * 2, dtype=torch.bool), torch.tensor([3, 0]))
    with pytest.raises(SpriteForgeError, match="give --left"):
        model.impute(images, torch.tensor([[0, 0, 1, 0]] * 2, dtype=torch.bool), torch.tensor([0, 0]))
    assert model.can_impute(torch.tensor([[0, 1, 0, 0], [1, 0, 1, 1]], dtype=torch.bool), torch.tensor([0, 0])).tolist() == [True, False]


def test_bad_flags_are_refused():
    with pytest.raises(SpriteForgeError, match="not used by pix2pix"):
        make(lambda_gp=10.0)
    with pytest.raises(SpriteForgeError, match="not used by pix2pix"):
        make(capacity=2)
    with pytest.raises(SpriteForgeError, match="--target up: not one of the views back, left, front, right"):
        make(target="up")
    with pytest.raises(SpriteForgeError, match="both 'front'"):
        make(target="front")
    with pytest.raises(SpriteForgeError, match="divisible by 64"):
        make(size=32)
    with pytest.raises(SpriteForgeError, match="not used by stargan-paired"):
        resolve("stargan-paired", model_class("stargan-paired").uses, {}, {"source": "front"})


def test_l1_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make()
    batch = torch.from_numpy(tiny_data(size=64).train.images[:4]).float().movedim(-1, -3) / 127.5 - 1
    losses = [model.train_step(batch, step, 0.0)["generator/l1"] for step in range(8)]
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])


def _trainer(tmp_path, name, **given):
    config = resolve("pix2pix", PIX2PIX.uses, PIX2PIX.defaults,
                     {"steps": 4, "evaluate_steps": 2, "log_folder": str(tmp_path), "run_string": name,
                      "callback_evaluate_l1": True, "target": "left", **given})
    return Trainer(config, data=tiny_data(size=64))


def test_resume_is_bit_identical(tmp_path):
    straight = _trainer(tmp_path, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data(size=64))
    assert resumed.state.step == 2
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert straight.state.best_step == resumed.state.best_step
    assert len(list((resumed.run_dir / "test-images").glob("*.png"))) == 2


def test_cli_train_then_translate(tmp_path):
    sprites = write_split_folder(tmp_path / "sprites")
    out = tmp_path / "out"
    result = run_cli("train", "pix2pix", "--dataset", sprites, "--source", "left", "--target", "right", "--steps", 2,
                     "--batch", 2, "--log-folder", out, "--run-string", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "pix2pix" / "playground" / "p"
    assert "generator: 29,374,212 parameters" in (run / "model-description.txt").read_text()
    left = sprites / "test" / "1-left" / "0.png"
    result = run_cli("translate", run, "--left", left, "--out", tmp_path / "sheet.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sheet = np.array(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (64, 256, 4)
    assert not sheet[:, :64].any() and not sheet[:, 128:192].any()  # back, front: not this pair's views, transparent
    assert np.array_equal(sheet[:, 64:128], np.array(Image.open(left).convert("RGBA")))  # the given view, kept
    front = sprites / "test" / "2-front" / "0.png"
    assert_clean_error(run_cli("translate", run, "--front", front, "--out", tmp_path / "x.png", cwd=tmp_path),
                       "only draws the right view from the left view")


def test_translate_with_a_folder_of_pair_models(tmp_path):
    from spriteforge.training import checkpoint as ckpt
    from spriteforge.translation import translate_files

    sprites = write_split_folder(tmp_path / "sprites", train=1, test=1)
    torch.manual_seed(0)
    for run, (source, target), file in (("a", ("front", "right"), "checkpoints/best.safetensors"),
                                        ("b", ("left", "back"), "models/generator.safetensors")):
        ckpt.save_checkpoint(tmp_path / "pairs" / run / file, make(source=source, target=target), 1,
                             include_training_state=False, networks=("generator",))
    view = lambda name: sprites / "test" / f"{['back', 'left', 'front', 'right'].index(name)}-{name}" / "0.png"
    translate_files(tmp_path / "pairs", {"front": view("front"), "left": view("left")}, tmp_path / "both.png")
    sheet = np.array(Image.open(tmp_path / "both.png"))
    assert sheet.shape == (64, 256, 4)
    translate_files(tmp_path / "pairs", {"front": view("front")}, tmp_path / "one.png")
    one = np.array(Image.open(tmp_path / "one.png"))
    assert not one[:, :64].any() and np.array_equal(one[:, 192:], sheet[:, 192:])  # back needs left; right from front
    with pytest.raises(SpriteForgeError, match="no pix2pix model here draws the left view"):
        translate_files(tmp_path / "pairs", {"back": view("back")}, tmp_path / "x.png")


def test_cli_target_all_trains_every_pair_and_continues(tmp_path):
    sprites = write_split_folder(tmp_path / "sprites", train=2, test=1)
    out = tmp_path / "out"
    command = ("train", "pix2pix", "--dataset", sprites, "--source", "front", "--target", "all", "--steps", 1,
               "--batch", 1, "--log-folder", out, "--run-string", "p")
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = out / "pix2pix" / "playground"
    assert sorted(run.name for run in folder.iterdir()) == ["p-front-back", "p-front-left", "p-front-right"]
    assert all((run / "summary.json").is_file() for run in folder.iterdir())
    assert "source = \"front\"" in (folder / "p-front-left" / "configuration.toml").read_text()
    again = run_cli(*command, cwd=tmp_path)  # the same command: nothing left to train
    assert again.returncode == 0 and again.stderr.count("already trained") == 3, again.stderr
    front = sprites / "test" / "2-front" / "0.png"
    result = run_cli("translate", folder, "--front", front, "--out", tmp_path / "sheet.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sheet = np.array(Image.open(tmp_path / "sheet.png"))
    assert all(sheet[:, 64 * view:64 * (view + 1)].any() for view in (0, 1, 3))  # every missing view drawn
    assert_clean_error(run_cli("train", "pix2pix", "--dataset", sprites, "--source", "side", "--target", "all",
                               "--log-folder", out, cwd=tmp_path), "--source side: not one of the views")
