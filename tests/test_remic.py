"""ReMIC: the reference architecture's sizes, hidden views never read and never called real, the
input-dropout sampler, learning on a fixed batch, resume bit-identity and the CLI end to end (1–3 views).

Networks run at a reduced --feature-maps (the same architecture, a fraction of the widths)."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.views import dropout_probabilities
from spriteforge.models.munit_blocks import ContentEncoder, Decoder, StyleEncoder, lsgan_loss
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from conftest import write_split_folder
from test_cli import main_ok, run_cli
from test_munit import build_on_meta, count_on_cpu, parameter_count, run_and_resume
from test_stargan import tiny_data

REMIC = model_class("remic")
SMALL = {"feature_maps": 4, "discriminator_scales": 2}


def make(size=32, **given):
    config = resolve("remic", REMIC.uses, REMIC.defaults, {"steps": 100, **SMALL, **given})
    return REMIC(config, 4, 4, size)


def sprites(count=2, size=32):
    return torch.from_numpy(tiny_data(size=size).train.images[:count]).float().movedim(-1, -3) / 127.5 - 1


def test_parameter_counts_of_the_reference_architecture():
    # --feature-maps 64: the unified content encoder reads 4 stacked RGBA views (16 channels); each style
    # encoder is MUNIT's plus 4 residual blocks at 256 without normalisation; decoders and the 3-scale
    # discriminators are MUNIT's (6,876,100 and 8,274,243 per view).
    assert parameter_count(ContentEncoder, 16, 64) == 5_429_120
    assert parameter_count(StyleEncoder, 4, 64, residual_blocks=4) == 7_486_664
    full = build_on_meta(REMIC)  # the default model: generator 62,880,176, discriminators 33,096,972 (model-description.txt)
    assert count_on_cpu(full.generator) == 62_880_176 == 5_429_120 + 4 * (7_486_664 + 6_876_100)
    assert count_on_cpu(full.discriminator) == 33_096_972
    small = make(size=64)
    assert parameter_count(small.generator) == (parameter_count(ContentEncoder, 16, 4)
                                                + 4 * (parameter_count(StyleEncoder, 4, 4, 4) + parameter_count(Decoder, 4, 4)))
    assert REMIC.defaults["lambda-cyclic-reconstruction"] == 100.0 and REMIC.defaults["input-dropout"] == "original"


def test_impute_reads_only_the_given_views():
    torch.manual_seed(0)
    model = make().eval()
    views = torch.rand(3, 4, 4, 32, 32) * 2 - 1
    available = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool)  # 1, 2 and 3 views given
    target = torch.tensor([0, 1, 2])
    out = model.impute(views, available, target)
    assert out.shape == (3, 4, 32, 32) and out.abs().max() <= 1
    changed = torch.where(available[:, :, None, None, None], views, torch.rand_like(views))
    assert torch.equal(model.impute(changed, available, target), out)  # what is hidden is never read
    sampled = model.impute(views, available, target, style=torch.randn(1, 8))
    assert sampled.shape == out.shape and not torch.allclose(sampled, out)
    assert model.can_impute(available, target).all() and REMIC.evaluation_given_views == 3
    available, target = model.evaluation_cases(5, 4, seed=0)
    assert (available.sum(1) == 3).all()


def test_unused_flags_are_refused():
    for flag, value in (("lambda_kl", 0.01), ("lambda_gp", 1.0), ("palette_quantization", True), ("capacity", 2), ("lambda_palette", 1.0)):
        with pytest.raises(SpriteForgeError, match="not used by remic"):
            make(**{flag: value})
    with pytest.raises(SpriteForgeError, match="--adv r3gan: remic trains with the lsgan loss only"):
        make(adv="r3gan")


@pytest.mark.parametrize("strategy", ["none", "original", "conservative"])
def test_hidden_views_follow_the_input_dropout_table(strategy):
    torch.manual_seed(1)
    model = make(input_dropout=strategy)
    kept = model.hide_views(20000, "cpu", 0.5)
    hidden = 4 - kept.sum(1)
    assert hidden.min() >= 1 and hidden.max() <= 3
    frequencies = [(hidden == k).float().mean().item() for k in (1, 2, 3)]
    assert frequencies == pytest.approx(list(dropout_probabilities(strategy, 0.5)), abs=0.015)
    singles = kept[hidden == 3]  # one view given: each of the four equally often
    if len(singles) > 1000:
        assert (singles.float().mean(0) - 0.25).abs().max() < 0.03


def test_hidden_views_are_not_real_for_the_discriminator():
    """The original fed the zero image of every hidden view to the discriminator as real; here they are left out."""
    torch.manual_seed(0)
    model = make()
    batch = sprites(2)
    kept = torch.tensor([[True, False, True, False], [False, False, True, True]])
    model.hide_views = lambda count, device, progress: kept
    seen = {}
    original = model.update

    def spy(g_loss, terms, real, fake, real_weights=None):
        seen.update(real=real, weights=real_weights)
        return original(g_loss, terms, real, fake, real_weights)

    model.update = spy
    result = model.train_step(batch, 0, 0.0)
    assert torch.equal(seen["weights"], kept.t().float()) and torch.equal(seen["real"], batch.transpose(0, 1))
    # With those weights, a hidden view's image cannot change the real term; a given one does.
    discriminator = model.discriminator[1]  # view 1 (left) is hidden in both examples
    real = batch[:, 1]
    assert lsgan_loss(discriminator(real), 1.0, kept[:, 1].float()).item() == 0.0
    other = model.discriminator[2]  # view 2 (front) is given in both
    assert lsgan_loss(other(real), 1.0, kept[:, 2].float()).item() > 0.0
    assert np.isfinite(result["generator/l1"]) and result["discriminator/total"] > 0


def test_losses_fall_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(lr=1e-3)
    batch = sprites(2)
    history = [model.train_step(batch, step, 0.0) for step in range(6)]
    reconstruction = [h["generator/reconstruction"] for h in history]
    assert np.mean(reconstruction[-2:]) < 0.7 * np.mean(reconstruction[:2])
    assert {"generator/consistency", "generator/content", "generator/style", "generator/adversarial", "generator/l1"} <= history[0].keys()


def _trainer(tmp_path, name, **given):
    config = resolve("remic", REMIC.uses, REMIC.defaults,
                     {"steps": 2, "evaluate_steps": 1, "batch": 2, "image_size": 32, "log_folder": str(tmp_path), "run_string": name,
                      "callback_evaluate_l1": True, "input_dropout": "curriculum", "lambda_regularization": 1e-4, **SMALL, **given})
    return Trainer(config, data=tiny_data())


def test_resume_is_bit_identical(tmp_path):
    straight, resumed = run_and_resume(lambda name: _trainer(tmp_path, name, callback_debug_discriminator=True))
    assert (resumed.run_dir / "discriminated-images" / "discriminated_train_at_step_2.png").is_file()
    assert (resumed.run_dir / "previews" / "step_000002.png").is_file()
    assert all(np.isfinite(straight.state.history[-1][f"l1/{split}"]) for split in ("train", "validation", "test"))
    names = sorted(p.name for p in (resumed.run_dir / "test-images").glob("0000_*.png"))
    assert [n.split("_")[1] for n in names] == ["missing-1", "missing-2", "missing-3"]


def test_cli_train_then_translate_from_one_to_three_views(tmp_path):
    sprites_folder = write_split_folder(tmp_path / "sprites", size=32)
    out = tmp_path / "out"
    result = run_cli("train", "remic", "--dataset", sprites_folder, "--steps", 2, "--batch", 2, "--image-size", 32, "--feature-maps", 4,
                     "--discriminator-scales", 2, "--input-dropout", "conservative", "--save-model", "--callback-evaluate-l1",
                     "--log-folder", out, "--run-string", "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "remic" / "playground" / "r"
    assert (run / "models" / "generator.safetensors").is_file() and (run / "summary.json").is_file()
    paths = {name: sprites_folder / "test" / f"{index}-{name}" / "0.png" for index, name in enumerate(("back", "left", "front", "right"))}
    for given in (["front"], ["front", "left"], ["back", "left", "right"]):
        sheet_path = tmp_path / f"{len(given)}.png"
        flags = [part for name in given for part in (f"--{name}", str(paths[name]))]
        assert main_ok(["translate", str(run / "models" / "generator.safetensors"), *flags, "--out", str(sheet_path)])
        sheet = np.array(Image.open(sheet_path))
        assert sheet.shape == (32, 128, 4)
        for index, name in enumerate(("back", "left", "front", "right")):
            if name in given:
                assert np.array_equal(sheet[:, 32 * index : 32 * index + 32], imageio.load_rgba(paths[name], 32))
    assert main_ok(["translate", str(run), "--front", str(paths["front"]), "--out", str(tmp_path / "k.png"), "--styles", "2"])
    assert np.array(Image.open(tmp_path / "k.png")).shape == (64, 128, 4)
