"""CycleGAN (pictures ↔ pixel art, unpaired): reference sizes and defaults, losses, image pool, folders, resume, CLI."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from torch import nn

from spriteforge import imageio
from spriteforge.data.pictures import fit_picture, load_unpaired, native_pixel_art
from spriteforge.data.synthetic import generate_characters
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.blocks import parameter_count
from spriteforge.models.cyclegan import ImagePool, ResnetGenerator
from spriteforge.models.pix2pix import PatchDiscriminator
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer, learning_rate_factor

from test_cli import assert_clean_error, run_cli
from test_stargan import _state

CYCLEGAN = model_class("cyclegan")
TINY = {"feature_maps": 4, "generator_blocks": 1}


def write_pictures(folder: Path, count: int = 5, seed: int = 3, factor: int = 4) -> Path:
    """The procedural A domain: synthetic sprites upscaled ×factor and blurred (no pixel grid left);
    odd ones saved as RGB JPEGs (no alpha), one of them not square."""
    views = generate_characters(max(1, count // 4 + 1), seed=seed, size=32).reshape(-1, 32, 32, 4)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        picture = Image.fromarray(imageio.upscale(views[index], factor), "RGBA").filter(ImageFilter.GaussianBlur(factor / 2))
        if index % 2:
            picture = picture.convert("RGB")
            if index == 1:
                picture = picture.crop((0, 8, picture.width, picture.height - 8))  # landscape
            picture.save(folder / f"{index}.jpg", quality=90)
        else:
            picture.save(folder / f"{index}.png")
    return folder


def write_pixel_art(folder: Path, count: int = 6, seed: int = 5, size: int = 32, names=None) -> Path:
    """B: native synthetic sprites, one of them upscaled ×2 (to be snapped back)."""
    views = generate_characters(max(1, count // 4 + 1), seed=seed, size=size).reshape(-1, size, size, 4)
    for index in range(count):
        sprite = imageio.upscale(views[index], 2) if index == 1 else views[index]
        imageio.save_png(sprite, folder / f"{names[index] if names else index}.png")
    return folder


def make(size=32, channels=4, **given):
    config = resolve("cyclegan", CYCLEGAN.uses, CYCLEGAN.defaults, {**TINY, **given})
    torch.manual_seed(0)
    return CYCLEGAN(config, 2, channels, size)


def reference_resnet_parameters(channels: int, blocks: int, width: int = 64) -> int:
    """junyanz's resnet_Nblocks with InstanceNorm (biased convs, no affine), from its layer list."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout
    return (conv(channels, width, 7) + conv(width, 2 * width, 3) + conv(2 * width, 4 * width, 3)
            + blocks * 2 * conv(4 * width, 4 * width, 3) + conv(4 * width, 2 * width, 3) + conv(2 * width, width, 3)
            + conv(width, channels, 7))


# -- architecture, defaults, flags ------------------------------------------------------------------
def normalised_channels(blocks: int, width: int = 64) -> int:
    """Our InstanceNorm is affine and the convs before it have no bias: one more parameter per normalised channel."""
    return width * (1 + 2 + 4) + blocks * 2 * 4 * width + width * (2 + 1)


def test_parameter_counts_match_the_reference():
    assert reference_resnet_parameters(3, 9) == 11_378_179 and reference_resnet_parameters(3, 6) == 7_837_699  # the reference's printed sizes
    for blocks in (9, 6):
        assert parameter_count(ResnetGenerator(3, 64, blocks)) == reference_resnet_parameters(3, blocks) + normalised_channels(blocks)
    assert parameter_count(PatchDiscriminator(3, conditional=False)) == 2_764_737 + 128 + 256 + 512  # reference "basic" D: 2.765 M
    assert parameter_count(ResnetGenerator(4, 64, 9)) == reference_resnet_parameters(4, 9) + normalised_channels(9)  # RGBA in and out
    model = make(feature_maps=8, generator_blocks=3)
    expected = reference_resnet_parameters(4, 3, 8) + normalised_channels(3, 8)
    assert parameter_count(model.generator_ab) == parameter_count(model.generator_ba) == expected
    assert parameter_count(model.discriminator_b) == parameter_count(PatchDiscriminator(4, conditional=False, width=8))


def test_shapes_any_size_divisible_by_four():
    model = make()
    for height, width in ((32, 32), (44, 28), (64, 96)):
        pictures = torch.rand(2, 4, height, width) * 2 - 1
        out = model.stylize(pictures)
        assert out.shape == pictures.shape and out.abs().max() <= 1
    assert model.discriminator_b(torch.rand(3, 4, 32, 32)).shape == (3, 1, 2, 2)
    assert model.discriminator_b(torch.rand(1, 4, 70, 70)).shape == (1, 1, 6, 6)  # one score per 70×70-pixel patch, 6×6 of them


def test_reference_defaults():
    config = make().config
    assert (config.lr, config.beta1, config.beta2, config.batch) == (2e-4, 0.5, 0.999, 1)
    assert (config.feature_maps, config.generator_blocks, config.pool_size) == (4, 1, 50)
    assert (config.lambda_reconstruction, config.lambda_identity, config.lambda_adversarial) == (10.0, 0.5, 1.0)
    defaults = resolve("cyclegan", CYCLEGAN.uses, CYCLEGAN.defaults, {})
    assert (defaults.feature_maps, defaults.generator_blocks) == (64, 9)
    # constant-then-linear: n_epochs at the full rate, then n_epochs_decay linearly to zero
    assert config.lr_decay == "constant-then-linear"
    assert [learning_rate_factor(config.lr_decay, step, 100) for step in (0, 49, 50, 75, 100)] == [1.0, 1.0, 1.0, 0.5, 0.0]


def test_unused_and_bad_flags_are_refused():
    for flag in ("lambda_gp", "capacity", "source", "lambda_l1", "palette_quantization"):
        with pytest.raises(SpriteForgeError, match="not used by cyclegan"):
            make(**{flag: {"lambda_gp": 1.0, "capacity": 2, "source": "left", "lambda_l1": 1.0, "palette_quantization": True}[flag]})
    for name in ("pix2pix", "stargan-paired", "dcgan"):
        with pytest.raises(SpriteForgeError, match=f"--domain-a not used by {name}"):
            resolve(name, model_class(name).uses, {}, {"domain_a": "pictures"})
    with pytest.raises(SpriteForgeError, match="--pool-size not used by pix2pix-pairs"):
        resolve("pix2pix-pairs", model_class("pix2pix-pairs").uses, {}, {"pool_size": 3})
    with pytest.raises(SpriteForgeError, match="divisible by 4 and at least 24"):
        make(size=20)
    with pytest.raises(SpriteForgeError, match="--generator-blocks must be at least 1"):
        make(generator_blocks=0)
    with pytest.raises(SpriteForgeError, match="--pool-size must be at least 0"):
        make(pool_size=-1)
    with pytest.raises(SpriteForgeError, match="--lambda-identity must not be negative"):
        make(lambda_identity=-0.5)
    with pytest.raises(SpriteForgeError, match="--callback-evaluate-l1 does not apply to cyclegan"):
        make(callback_evaluate_l1=True)
    with pytest.raises(SpriteForgeError, match="--validation-fraction not used by cyclegan"):
        make(validation_fraction=0.2)


# -- losses ---------------------------------------------------------------------------------------
def test_cycle_and_identity_losses_vanish_for_identity_generators():
    model = make()
    real_a, real_b = torch.rand(2, 4, 32, 32) * 2 - 1, torch.rand(2, 4, 32, 32) * 2 - 1
    terms, _, _ = model.generator_losses(real_a, real_b)
    assert all(terms[name].item() > 0 for name in ("cycle_a", "cycle_b", "identity_ab", "identity_ba"))
    model.generator_ab, model.generator_ba = nn.Identity(), nn.Identity()
    terms, fake_b, fake_a = model.generator_losses(real_a, real_b)
    assert torch.equal(fake_b, real_a) and torch.equal(fake_a, real_b)
    assert all(terms[name].item() == 0 for name in ("cycle_a", "cycle_b", "identity_ab", "identity_ba"))
    assert terms["adversarial_ab"].item() > 0
    # the weights are the reference's: cycle λ, identity 0.5·λ
    class Mirror(nn.Module):
        def forward(self, images):
            return images.flip(-1)

    model.generator_ab, model.generator_ba = Mirror(), Mirror()  # G_BA(G_AB(a)) = a, but G_AB(b) ≠ b
    terms, _, _ = model.generator_losses(real_a, real_b)
    assert terms["cycle_a"].item() == 0 and terms["cycle_b"].item() == 0
    assert terms["identity_ab"].item() == pytest.approx(5.0 * (real_b.flip(-1) - real_b).abs().mean().item(), rel=1e-6)
    assert "identity_ab" not in make(lambda_identity=0.0).generator_losses(real_a, real_b)[0]


def test_cycle_loss_falls_on_a_fixed_batch():
    model = make(feature_maps=8, generator_blocks=2, lr=1e-3)
    pictures = torch.from_numpy(generate_characters(1, seed=1, size=32)[0]).float().movedim(-1, -3) / 127.5 - 1
    batch = torch.stack([pictures[:2], pictures[2:]], dim=1)  # [2, 2, C, H, W]
    cycles = []
    for step in range(10):
        torch.manual_seed(step)
        losses = model.train_step(batch, step, 0.0)
        cycles.append(losses["generator/cycle_a"] + losses["generator/cycle_b"])
        assert all(np.isfinite(value) for value in losses.values())
    assert np.mean(cycles[-2:]) < 0.7 * np.mean(cycles[:2])


# -- image pool -------------------------------------------------------------------------------------
def test_image_pool_keeps_a_history():
    torch.manual_seed(0)
    pool = ImagePool(3, 1, 2)
    first = torch.arange(3.0)[:, None, None, None].expand(3, 1, 2, 2)
    assert torch.equal(pool.query(first), first)  # filling: every image returned as is and stored
    assert int(pool.count) == 3 and torch.equal(pool.images, first)
    returned_from_history = 0
    for round_ in range(200):
        new = torch.full((1, 1, 2, 2), 10.0 + round_)
        before = pool.images.clone()
        out = pool.query(new)
        if torch.equal(out, new):
            assert torch.equal(pool.images, before)  # not stored
        else:
            returned_from_history += 1
            assert any(torch.equal(out[0], image) for image in before)  # an older fake comes back …
            assert any(torch.equal(new[0], image) for image in pool.images)  # … and the new one takes its slot
    assert 70 < returned_from_history < 130  # probability ½
    passthrough = ImagePool(0, 1, 2)
    assert torch.equal(passthrough.query(first), first) and passthrough.images.numel() == 0
    assert set(pool.state_dict()) == {"images", "count"}  # saved with the checkpoint: resume continues the same history


# -- folders ----------------------------------------------------------------------------------------
def test_pictures_are_fitted_and_pixel_art_is_kept_exact(tmp_path):
    photo = np.zeros((40, 80, 4), np.uint8)
    photo[..., :3], photo[..., 3] = 200, 255
    fitted, placement = fit_picture(photo, 32)
    assert fitted.shape == (32, 32, 4) and (placement.height, placement.width, placement.top) == (16, 32, 8)
    assert (fitted[8:24, :, 3] == 255).all() and not fitted[:8].any() and not fitted[24:].any()  # transparent bars
    sprite = generate_characters(1, seed=2, size=32)[0, 2]
    assert np.array_equal(native_pixel_art(sprite, 32, Path("s.png"))[0], sprite)
    snapped, was_snapped = native_pixel_art(imageio.upscale(sprite, 3), 32, Path("s.png"))
    assert was_snapped and np.array_equal(snapped, sprite)  # upscaled art back at one pixel per art pixel
    small, _ = native_pixel_art(sprite[:, :16], 32, Path("s.png"))
    assert np.array_equal(small[:, 8:24], sprite[:, :16]) and not small[:, :8].any()  # centred, not resampled
    with pytest.raises(SpriteForgeError, match="s.png: pixel art larger than --image-size 16"):
        native_pixel_art(sprite, 16, Path("s.png"))


def _config(tmp_path, **given):
    return resolve("cyclegan", CYCLEGAN.uses, CYCLEGAN.defaults,
                   {"domain_a": str(tmp_path / "A"), "dataset": [str(tmp_path / "B")], "image_size": 32, **TINY, **given})


def test_unpaired_folders(tmp_path):
    write_pictures(tmp_path / "A", count=5)
    write_pixel_art(tmp_path / "B", count=7)
    data = load_unpaired(_config(tmp_path), "cyclegan")
    assert (len(data.a["train"]), len(data.a["test"]), len(data.b["train"]), len(data.b["test"])) == (4, 1, 6, 1)
    assert data.snapped == 1 and "1 snapped to their pixel grid" in data.describe()
    assert len(data.train) == 6 and data.train[[0, 6]].shape == (2, 2, 32, 32, 4)
    first = data.batch_images(0, 3, seed=1)
    assert first.shape == (3, 2, 32, 32, 4) and first.dtype == torch.uint8
    assert torch.equal(first, data.batch_images(0, 3, seed=1))  # a pure function of (seed, step)
    epoch_a = torch.cat([data.batch_images(step, 1, seed=1)[:, 0] for step in range(4)])
    assert sorted(image.sum().item() for image in epoch_a) == sorted(torch.from_numpy(data.a["train"]).flatten(1).sum(1).tolist())
    pictures = np.concatenate([data.a["train"], data.a["test"]])
    opaque = [image for image in pictures if (image[2:30, :, 3] == 255).all()]  # the RGB JPEGs: alpha 255 …
    assert len(opaque) == 2 and sum(not image[:2].any() and not image[30:].any() for image in opaque) == 1  # … 128x112 → 32x28, bars
    (tmp_path / "A" / "notes.txt").write_text("x")
    with pytest.raises(SpriteForgeError, match="notes.txt: not a picture"):
        load_unpaired(_config(tmp_path), "cyclegan")
    with pytest.raises(SpriteForgeError, match="cyclegan needs --domain-a FOLDER"):
        load_unpaired(_config(tmp_path, domain_a=""), "cyclegan")
    with pytest.raises(SpriteForgeError, match="no such folder of pictures"):
        load_unpaired(_config(tmp_path, domain_a=str(tmp_path / "missing")), "cyclegan")


def test_named_datasets_give_every_view_as_pixel_art(tmp_path):
    write_pictures(tmp_path / "A", count=3)
    sprites = tmp_path / "sprites"
    from conftest import write_split_folder

    write_split_folder(sprites, train=3, test=1, size=32)
    data = load_unpaired(_config(tmp_path, dataset=[str(sprites)]), "cyclegan")
    assert (len(data.b["train"]), len(data.b["test"])) == (12, 4)  # 3 characters × 4 views; validation not carved


# -- resume and CLI ---------------------------------------------------------------------------------
def _trainer(tmp_path, name, **given):
    config = _config(tmp_path, steps=4, evaluate_steps=2, log_folder=str(tmp_path / "out"), run_string=name, batch=2, pool_size=3, **given)
    return Trainer(config)


def test_resume_is_bit_identical(tmp_path):
    write_pictures(tmp_path / "A", count=4)
    write_pixel_art(tmp_path / "B", count=5)
    straight = _trainer(tmp_path, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir)
    assert resumed.state.step == 2
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and "pool_b.images" in a
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert int(straight.model.pool_b.count) == 3  # full after 4 steps of 2 fakes


def test_cli_train_then_stylize(tmp_path):
    write_pictures(tmp_path / "A", count=4)
    write_pixel_art(tmp_path / "B", count=4)
    out = tmp_path / "out"
    result = run_cli("train", "cyclegan", "--domain-a", tmp_path / "A", "--dataset", tmp_path / "B", "--image-size", 32,
                     "--feature-maps", 4, "--generator-blocks", 1, "--steps", 2, "--evaluate-steps", 2, "--save-model",
                     "--callback-debug-discriminator", "--log-folder", out, "--run-string", "c", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "cyclegan" / "playground" / "c"
    description = (run / "model-description.txt").read_text()
    assert "generator_ab:" in description and "pool_b: 0 parameters" in description
    preview = np.array(Image.open(run / "previews" / "step_000002.png"))
    # 3 train + 1 test rows (4 pictures and 4 sprites split 3/1) of A, G_AB(A), cycled A, B, G_BA(B), cycled B
    assert preview.shape == ((2 + 34 * 4) * 2, (2 + 34 * 6) * 2, 4)
    assert (run / "models" / "generator.safetensors").is_file() and list((run / "discriminated-images").glob("*.png"))
    picture = tmp_path / "A" / "0.png"
    result = run_cli("stylize", run, picture, "--out", tmp_path / "sprite.png", "--size", 24, "--colors", 6, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sprite = np.array(Image.open(tmp_path / "sprite.png"))
    assert sprite.shape == (24, 24, 4)
    assert set(np.unique(sprite[..., 3])) <= {0, 255}
    assert len(np.unique(sprite[sprite[..., 3] == 255][:, :3], axis=0)) <= 6
    assert "generator run at 32x32" in result.stderr
    assert_clean_error(run_cli("translate", run, "--front", picture, "--out", tmp_path / "x.png", cwd=tmp_path),
                       "a cyclegan model turns pictures into pixel art; use `spriteforge stylize`")
    result = run_cli("train", "cyclegan", "--domain-a", tmp_path / "A", "--dataset", tmp_path / "A", "--image-size", 32, cwd=tmp_path)
    assert_clean_error(result, "pixel art larger than --image-size 32 and has no pixel grid")
