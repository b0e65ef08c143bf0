"""Samplers on small data: differentiable augmentation, pixel-art output by construction, four-view sheets."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge import api
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.diffaugment import augment_discriminator, diff_augment, parse_policy
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_cli import assert_clean_error, run_cli
from test_stargan import _state, tiny_data

POLICY = ("color", "translation", "cutout")


def sprites(count=6, size=16):
    """RGBA sprites in [-1, 1] with binary alpha: an opaque square of random colours on transparent."""
    torch.manual_seed(0)
    images = torch.full((count, 4, size, size), -1.0)
    images[:, :, 4:12, 4:12] = torch.rand(count, 4, 8, 8) * 2 - 1
    images[:, 3, 4:12, 4:12] = 1.0
    return images


def test_policies_parse_and_unknown_names_are_refused():
    assert parse_policy("none") == () and parse_policy("") == ()
    assert parse_policy("color, translation,cutout") == POLICY
    with pytest.raises(SpriteForgeError, match="unknown operation 'colour'"):
        parse_policy("colour")
    with pytest.raises(SpriteForgeError, match="diff-augment"):
        resolve_model("dcgan", diff_augment="flip")


def test_augmentation_keeps_alpha_binary_and_changes_each_image_differently():
    images = sprites()
    torch.manual_seed(1)
    out = diff_augment(images, POLICY)
    assert out.shape == images.shape
    assert set(out[:, 3].unique().tolist()) <= {-1.0, 1.0}  # colour never touches alpha; fills are transparent
    transparent = out[:, 3] == -1
    assert (out[:, :3].permute(1, 0, 2, 3)[:, transparent] == -1).all()  # shifted-in and cut-out pixels are transparent black
    assert not torch.equal(out, images)
    moved = [not torch.equal(out[i, 3], out[0, 3]) for i in range(1, len(out))]
    assert any(moved)  # each image draws its own shift and hole


def test_translation_moves_whole_pixels():
    images = sprites(count=64)
    torch.manual_seed(2)
    out = diff_augment(images, ("translation",))
    for before, after in zip(images, out):  # the opaque square keeps its size unless it went past the border
        assert (after[3] == 1).sum() <= (before[3] == 1).sum()
        rows = (after[3] == 1).any(1).nonzero().flatten()
        assert len(rows) == 0 or (rows.max() - rows.min() + 1) <= 8


def test_gradients_flow_through_every_operation():
    images = sprites().requires_grad_(True)
    torch.manual_seed(3)
    diff_augment(images, POLICY).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def resolve_model(name, **given):
    cls = model_class(name)
    config = resolve(name, cls.uses, cls.defaults, {"feature_maps": 8, "latent": 8, **given})
    return cls(config, 4, 4, 16 if name != "biggan" else 64)


@pytest.mark.parametrize("name", ["dcgan", "cdcgan", "wgan-gp"])
def test_the_discriminator_sees_augmented_images_only_while_training(name):
    model = resolve_model(name, diff_augment="translation,cutout")
    seen = []
    model.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()), prepend=False)
    images = sprites()
    model.train()
    model.discriminator(images)
    assert not torch.equal(seen[-1], images)
    model.eval()
    model.discriminator(images)
    assert torch.equal(seen[-1], images)
    assert resolve_model(name).diff_augment_policy == ()


def test_augmented_training_resumes_bit_identically(tmp_path):
    def trainer(name):
        cls = model_class("dcgan")
        config = resolve("dcgan", cls.uses, cls.defaults, {"steps": 4, "evaluate_steps": 2, "batch": 2, "image_size": 32, "feature_maps": 8,
                                                           "latent": 8, "diff_augment": "color,translation,cutout",
                                                           "log_folder": str(tmp_path), "run_string": name})
        return Trainer(config, data=tiny_data())

    straight = trainer("straight")
    straight.run()
    interrupted = trainer("interrupted")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


@pytest.fixture(scope="module")
def sampler_run(tmp_path_factory):
    """A 64-px dcgan (tiny widths) trained two steps on synthetic data: the default imputer's size and views."""
    out = tmp_path_factory.mktemp("sampler")
    result = run_cli("train", "dcgan", "--steps", 2, "--evaluate-steps", 2, "--batch", 2, "--feature-maps", 4, "--latent", 8,
                     "--diff-augment", "color,translation,cutout", "--log-folder", out, "--run-string", "r", cwd=out)
    assert result.returncode == 0, result.stderr
    return out / "dcgan" / "playground" / "r"


def opaque_colours(image):
    return {tuple(c) for c in image[image[..., 3] == 255][:, :3].tolist()}


def test_samples_are_pixel_art_by_construction(sampler_run):
    model = api.load_model(sampler_run)
    raw = model.sample_arrays(6, seed=1, colours=0, binary_alpha=False)
    snapped = model.sample_arrays(6, seed=1, colours=8)
    assert not set(np.unique(raw[..., 3])) <= {0, 255}  # the generator's own alpha is soft
    for image in snapped:
        assert set(np.unique(image[..., 3])) <= {0, 255} and len(opaque_colours(image)) <= 8
    assert np.array_equal(snapped, model.sample_arrays(6, seed=1, colours=8))  # deterministic
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    forced = model.sample_arrays(4, seed=1, palette=palette)
    assert all(opaque_colours(image) <= {(0, 0, 0), (255, 0, 0), (0, 0, 255)} for image in forced)
    with pytest.raises(SpriteForgeError, match="colours must be"):
        model.sample_arrays(2, colours=300)
    with pytest.raises(SpriteForgeError, match="soft alpha"):
        model.sample_arrays(2, binary_alpha=False, colours=8)


def test_cli_sample_colours_flag(sampler_run, tmp_path):
    result = run_cli("sample", sampler_run, "-n", 4, "--colours", 5, "--out", tmp_path / "g.png", "--separate")
    assert result.returncode == 0, result.stderr
    for path in sorted(tmp_path.glob("g-*.png")):
        image = np.asarray(Image.open(path))
        assert len(opaque_colours(image)) <= 5 and set(np.unique(image[..., 3])) <= {0, 255}
    assert_clean_error(run_cli("sample", sampler_run, "--out", tmp_path / "g.gif"), "name it g.png")
    assert_clean_error(run_cli("sample", sampler_run, "--out", tmp_path / "h.png", "--colours", 300), "300")
    assert_clean_error(run_cli("sample", sampler_run, "--imputer", sampler_run, "--out", tmp_path / "h.png"), "only applies with --sheet")


def test_sheets_complete_new_characters_in_every_view(sampler_run, tmp_path):
    result = run_cli("sample", sampler_run, "--sheet", "-n", 3, "--seed", 2, "--out", tmp_path / "sheet.png", "--separate")
    assert result.returncode == 0, result.stderr
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (3 * 64, 4 * 64, 4) and set(np.unique(sheet[..., 3])) <= {0, 255}
    assert len(list(tmp_path.glob("sheet-*.png"))) == 3
    sampler, imputer = api.load_model(sampler_run), api.load_model("default")
    from spriteforge.sampling import new_characters

    characters, placed = new_characters(sampler, imputer, 3, seed=2)
    samples = sampler.sample_arrays(3, seed=2)
    for character, view, sample in zip(characters, placed, samples):
        assert np.array_equal(character[view], sample)  # the sample is kept exactly where the classifier put it
    assert np.array_equal(np.concatenate([np.concatenate(list(c), axis=1) for c in characters]), sheet)
    assert_clean_error(run_cli("sample", sampler_run, "--sheet", "--interpolate", "--out", tmp_path / "x.png"), "does not apply to --sheet")
    assert_clean_error(run_cli("sample", sampler_run, "--sheet", "--imputer", sampler_run, "--out", tmp_path / "x.png"),
                       "draws new characters, not missing views")


def test_packing_a_sampler_keeps_its_moving_average(tmp_path):
    """`models pack` ships the averaged generator (what draws) of a sampler trained with --ema-decay."""
    from spriteforge.cli import main
    from spriteforge.inference import load_for_inference
    from spriteforge.training import checkpoint as ckpt

    cls = model_class("dcgan")
    config = resolve("dcgan", cls.uses, cls.defaults, {"steps": 2, "evaluate_steps": 2, "batch": 2, "image_size": 32, "feature_maps": 8,
                                                       "latent": 8, "ema_decay": 0.9, "log_folder": str(tmp_path), "run_string": "ema"})
    trainer = Trainer(config, data=tiny_data())
    trainer.run()
    packed = tmp_path / "sampler.safetensors"
    try:
        main(["models", "pack", str(trainer.run_dir), str(packed)])
    except SystemExit as exit:
        assert exit.code in (0, None)
    tensors, _ = ckpt.read_checkpoint(packed)
    assert any(key.startswith("network/generator_ema/") for key in tensors)
    model, _ = load_for_inference(packed)
    live = trainer.model.generator_ema.state_dict()
    for key, value in model.generator_ema.state_dict().items():
        assert torch.allclose(value.float(), live[key].float().half().float())
