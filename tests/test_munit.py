"""MUNIT: the reference architecture's sizes, the style source at inference, each loss term, learning on a
fixed batch, resume bit-identity and the CLI end to end (`translate --styles K`).

Networks run at a reduced --feature-maps (the architecture is the same, the widths a fraction) so the
file takes seconds on a CPU."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.blocks import parameter_count as count_on_cpu
from spriteforge.models.munit_blocks import (
    ContentEncoder, Decoder, MultiScaleDiscriminator, StyleEncoder, discriminator_patch_sizes, kernel_squares, lsgan_loss,
)
from spriteforge.options import resolve
from spriteforge.training import checkpoint as ckpt
from spriteforge.training.engine import Trainer
from spriteforge.translation import translate_files

from conftest import write_split_folder
from test_cli import assert_clean_error, main_ok, run_cli
from test_stargan import _state, tiny_data

MUNIT = model_class("munit")
SMALL = {"feature_maps": 4, "discriminator_scales": 2}


def parameter_count(network_or_class, *args, **kwargs) -> int:
    """Parameters of a network, or of `class(*args)` built on the meta device (no memory, no time)."""
    if isinstance(network_or_class, type):
        with torch.device("meta"):
            network_or_class = network_or_class(*args, **kwargs)
    return count_on_cpu(network_or_class)


def build_on_meta(model_class, **given):
    """The model with its default options at 64×64 RGBA, on the meta device (shapes only)."""
    with torch.device("meta"):
        return model_class(resolve(model_class.name, model_class.uses, model_class.defaults, given), 4, 4, 64)


def make(size=32, **given):
    config = resolve("munit", MUNIT.uses, MUNIT.defaults, {"steps": 100, **SMALL, **given})
    return MUNIT(config, 4, 4, size)


def sprites(count=2, size=32):
    return torch.from_numpy(tiny_data(size=size).train.images[:count]).float().movedim(-1, -3) / 127.5 - 1


def test_parameter_counts_of_the_reference_architecture():
    # --feature-maps 64 (the default), 64×64 RGBA, per view: content encoder 7×7 64, 4×4/2 128 and 256,
    # 4 residual blocks at 256; style encoder 64…256 + 8-d projection; decoder MLP 8→256→256→4096 + 4 AdaIN
    # blocks + 5×5 convs 128, 64 + 7×7 conv; each of 3 discriminator scales 64…512.
    assert parameter_count(ContentEncoder, 4, 64) == 5_391_488
    assert parameter_count(StyleEncoder, 4, 64) == 2_768_072
    assert parameter_count(Decoder, 4, 64) == 6_876_100
    assert parameter_count(MultiScaleDiscriminator, 4, 64, 3, 64) == 8_274_243
    # the default model, four views: generator 60,142,640 and discriminators 33,096,972 (model-description.txt)
    full = build_on_meta(MUNIT)
    assert count_on_cpu(full.generator) == 60_142_640 == 4 * (5_391_488 + 2_768_072 + 6_876_100)
    assert count_on_cpu(full.discriminator) == 33_096_972 == 4 * 8_274_243
    small = make(size=64)
    assert parameter_count(small.generator) == 4 * sum(parameter_count(net, 4, 4) for net in (ContentEncoder, StyleEncoder, Decoder))


def test_shapes_and_patch_sizes():
    assert discriminator_patch_sizes(64, 3) == [5, 3, 2] and discriminator_patch_sizes(32, 2) == [3, 2]
    with pytest.raises(SpriteForgeError, match="use at most 2 scales"):
        discriminator_patch_sizes(32, 3)
    with pytest.raises(SpriteForgeError, match="--discriminator-scales 4"):
        make(size=64, discriminator_scales=4)
    with pytest.raises(SpriteForgeError, match="--image-size 16 or more"):
        make(size=12, discriminator_scales=1)
    model = make(size=64, discriminator_scales=3).eval()
    images = torch.rand(3, 4, 64, 64) * 2 - 1
    content = model.generator.content_encoders[0](images)
    style = model.generator.style_encoders[0](images)
    assert content.shape == (3, 16, 16, 16) and style.shape == (3, 8)  # 4·width channels at ¼ size; 8-d style
    out = model.generator.decoders[1](content, style)
    assert out.shape == (3, 4, 64, 64) and out.abs().max() <= 1
    assert [m.shape for m in model.discriminator[0](images)] == [(3, 1, 5, 5), (3, 1, 3, 3), (3, 1, 2, 2)]


def test_impute_style_source_is_explicit():
    torch.manual_seed(0)
    model = make().eval()
    views = torch.rand(2, 4, 4, 32, 32) * 2 - 1
    available = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    target = torch.tensor([3, 2])  # right from left (the mirror pose is preferred over front); front from back
    out = model.impute(views, available, target)
    generator = model.generator
    with torch.no_grad():  # encoded style = the TARGET view's style encoder applied to the SOURCE image
        expected = torch.cat([
            generator.decoders[3](generator.content_encoders[1](views[:1, 1]), generator.style_encoders[3](views[:1, 1])),
            generator.decoders[2](generator.content_encoders[0](views[1:, 0]), generator.style_encoders[2](views[1:, 0])),
        ])
    assert torch.allclose(out, expected, atol=1e-6)
    changed = views.clone()
    changed[0, 2], changed[1, 1:] = 0.5, -0.5  # views that were not the chosen source are never read
    assert torch.equal(model.impute(changed, available, target), out)
    sampled = torch.randn(1, 8)
    with_style = model.impute(views, available, target, style=sampled)
    assert not torch.allclose(with_style, out)
    with torch.no_grad():
        assert torch.allclose(with_style[:1], generator.decoders[3](generator.content_encoders[1](views[:1, 1]), sampled), atol=1e-6)


def test_unused_flags_and_r3gan_are_refused():
    for flag, value in (("lambda_gp", 10.0), ("lambda_kl", 0.1), ("capacity", 2), ("input_dropout", "original"), ("lambda_domain", 1.0)):
        with pytest.raises(SpriteForgeError, match="not used by munit"):
            make(**{flag: value})
    with pytest.raises(SpriteForgeError, match="--adv r3gan: munit trains with the lsgan loss only"):
        make(adv="r3gan")


def test_lsgan_loss_known_answers():
    maps = [torch.full((2, 1, 3, 3), 0.5), torch.tensor([0.0, 2.0]).reshape(2, 1, 1, 1)]
    assert lsgan_loss(maps, 1.0).item() == pytest.approx(0.25 + (1 + 1) / 2)  # Σ over scales of the mean
    assert lsgan_loss(maps, 0.0).item() == pytest.approx(0.25 + (0 + 4) / 2)
    weights = torch.tensor([0.0, 1.0])  # only the second example counts
    assert lsgan_loss(maps, 0.0, weights).item() == pytest.approx(0.25 + 4)
    assert lsgan_loss(maps, 0.0, torch.zeros(2)).item() == 0.0


def test_regularization_is_the_effective_coefficient():
    batch = sprites()
    totals = {}
    for coefficient in (0.0, 1e-3):
        torch.manual_seed(0)
        model = make(lambda_regularization=coefficient)
        squares = kernel_squares(model.generator).item()
        result = model.train_step(batch, 0, 0.0)
        totals[coefficient] = result["generator/total"]
    assert "generator/regularization" in result and result["generator/regularization"] == pytest.approx(squares, rel=1e-6)
    assert totals[1e-3] - totals[0.0] == pytest.approx(1e-3 * squares, rel=1e-4)
    assert MUNIT.defaults["lambda-regularization"] == 1e-4  # the original's Keras regularisers on the decoders


def test_losses_fall_on_a_fixed_batch_and_the_cycle_is_optional():
    torch.manual_seed(0)
    model = make(lr=1e-3, lambda_cyclic_reconstruction=1.0)
    batch = sprites(2)
    history = [model.train_step(batch, step, 0.0) for step in range(6)]
    l1 = [h["generator/l1"] for h in history]
    assert np.mean(l1[-2:]) < 0.7 * np.mean(l1[:2])
    assert history[-1]["generator/cyclic"] < history[0]["generator/cyclic"]
    assert {"generator/adversarial", "generator/content", "generator/style", "discriminator/real", "discriminator/fake"} <= history[0].keys()
    assert "generator/cyclic" not in make().train_step(batch, 0, 0.0)  # λcyclic 0 (the default): no cycle decode


def _trainer(tmp_path, name, **given):
    config = resolve("munit", MUNIT.uses, MUNIT.defaults,
                     {"steps": 2, "evaluate_steps": 1, "batch": 2, "image_size": 32, "log_folder": str(tmp_path), "run_string": name,
                      "callback_evaluate_l1": True, "lambda_cyclic_reconstruction": 1.0, **SMALL, **given})
    return Trainer(config, data=tiny_data())


def run_and_resume(make_trainer):
    """Train `make_trainer(name)` 2 steps straight, and 1 step + resume 1; the weights and optimiser states
    must be bit-identical, and so must the best step. Returns the straight and the resumed trainer."""
    straight = make_trainer("straight")
    straight.run()
    interrupted = make_trainer("interrupted")
    interrupted.run(stop_at=1)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    assert resumed.state.step == 1
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert straight.state.best_step == resumed.state.best_step
    return straight, resumed


def test_resume_is_bit_identical(tmp_path):
    straight, _ = run_and_resume(lambda name: _trainer(tmp_path, name, callback_debug_discriminator=True))
    assert (straight.run_dir / "discriminated-images" / "discriminated_test_at_step_2.png").is_file()
    preview = np.array(Image.open(straight.run_dir / "previews" / "step_000002.png"))
    assert preview.shape[1] > 8 * 32  # the real views, then each view drawn from the others
    history = straight.state.history[-1]
    assert all(np.isfinite(history[f"l1/{split}"]) for split in ("train", "validation", "test"))
    names = sorted(p.name for p in (straight.run_dir / "test-images").glob("0000*.png"))
    assert [n.rsplit("_at_step_", 1)[0] for n in names] == ["0000", "0000_sampled-style"]
    grid = np.array(Image.open(straight.run_dir / "test-images" / names[0]))
    assert grid.shape[0] > 5 * 32  # scale 2: the real views, then one row per source view


def test_evaluation_gives_one_view():
    available, target = make().evaluation_cases(6, 4, seed=0)
    assert (available.sum(1) == 1).all() and not available[torch.arange(6), target].any()


def _stargan_checkpoint(path):
    stargan = model_class("stargan-paired")
    config = resolve("stargan-paired", stargan.uses, stargan.defaults, {"image_size": 32})
    return ckpt.save_checkpoint(path, stargan(config, 4, 4, 32), 0, include_training_state=False, networks=("generator",))


def test_cli_train_then_translate_style_variations(tmp_path, capsys):
    sprites_folder = write_split_folder(tmp_path / "sprites", size=32)
    out = tmp_path / "out"
    result = run_cli("train", "munit", "--dataset", sprites_folder, "--steps", 2, "--batch", 2, "--image-size", 32, "--feature-maps", 4,
                     "--discriminator-scales", 2, "--lambda-cyclic-reconstruction", 1, "--log-folder", out, "--run-string", "m", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "munit" / "playground" / "m"
    assert "generator: " in (run / "model-description.txt").read_text()
    front = sprites_folder / "test" / "2-front" / "0.png"
    given = imageio.load_rgba(front, 32)

    assert main_ok(["translate", str(run), "--front", str(front), "--out", str(tmp_path / "one.png")])
    assert main_ok(["translate", str(run), "--front", str(front), "--out", str(tmp_path / "again.png")])
    one = np.array(Image.open(tmp_path / "one.png"))
    assert one.shape == (32, 128, 4) and np.array_equal(one, np.array(Image.open(tmp_path / "again.png")))  # K = 1: deterministic

    assert main_ok(["translate", str(run), "--front", str(front), "--out", str(tmp_path / "k.png"), "--styles", "3", "--separate"])
    sheet = np.array(Image.open(tmp_path / "k.png"))
    assert sheet.shape == (96, 128, 4)
    assert np.array_equal(sheet[:32], one)  # row 1: the encoded style, as with K = 1
    assert all(np.array_equal(sheet[32 * k : 32 * k + 32, 64:96], given) for k in range(3))  # the given view in every row
    assert not np.array_equal(sheet[32:64], sheet[64:96])  # two sampled styles, two drawings
    assert np.array_equal(np.array(Image.open(tmp_path / "k-3-back.png")), sheet[64:96, :32])
    assert main_ok(["translate", str(run), "--front", str(front), "--out", str(tmp_path / "s.png"), "--styles", "2", "--style", "sampled", "--seed", "0"])
    sampled = np.array(Image.open(tmp_path / "s.png"))
    assert np.array_equal(sampled[:32], sheet[32:64])  # the same seed, the same first sampled style

    capsys.readouterr()
    assert not main_ok(["translate", str(run), "--front", str(front), "--out", str(tmp_path / "x.png"), "--seed", "3"])
    assert "--seed only seeds sampled styles" in capsys.readouterr().err
    stargan = _stargan_checkpoint(tmp_path / "stargan.safetensors")
    with pytest.raises(SpriteForgeError, match="--styles: stargan-paired has no style code"):
        translate_files(stargan, {"front": front}, tmp_path / "x.png", styles=2)
    with pytest.raises(SpriteForgeError, match="--style: stargan-paired has no style code"):
        translate_files(stargan, {"front": front}, tmp_path / "x.png", style_source="sampled")
    assert not (tmp_path / "x.png").exists()
    assert_clean_error(run_cli("translate", stargan, "--front", front, "--out", tmp_path / "x.png", "--styles", 2), "has no style code")
