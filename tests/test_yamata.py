"""YamataGAN (the joint 4-view model): architecture sizes from its description, given views passing
through, each loss term on known answers, a discriminator that really trains, learning on a fixed
batch, refusals, resume bit-identity with L1 evaluation, and the CLI (train, translate from 1 and 2 views)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models import yamata as yamata_module
from spriteforge.models.blocks import SelfAttention, parameter_count
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer
from spriteforge.translation import translate_files

from test_cli import main_ok, run_cli
from test_stargan import _state, tiny_data

YAMATA = model_class("yamata")


def make(size=32, **given):
    config = resolve("yamata", YAMATA.uses, YAMATA.defaults, {"steps": 100, **given})
    return YAMATA(config, 4, 4, size)


def sprites(count=2, size=32):
    return torch.from_numpy(tiny_data(size=size).train.images[:count]).float().movedim(-1, -3) / 127.5 - 1


def generator_parameters(capacity, size, channels=4, domains=4, latent=128):
    """The generator's size from its description (widths 16c·(1, 2, 4, 8)), counted independently."""
    conv = lambda cin, cout, k=3: cin * cout * k * k  # bias-free convs before InstanceNorm
    norm = lambda c: 2 * c
    residual = lambda c: 2 * (conv(c, c) + norm(c))
    attention = lambda c: 2 * (c * max(1, c // 8) + max(1, c // 8)) + c * c + c + 1
    w = [16 * capacity * 2**level for level in range(4)]
    total = conv(domains * (channels + 1), w[0], 7) + norm(w[0]) + residual(w[0])
    for level in (1, 2):
        total += conv(w[level - 1], w[level]) + norm(w[level]) + residual(w[level]) + attention(w[level])
    cells = (size // 8) ** 2
    total += conv(w[2], w[3]) + norm(w[3]) + latent * w[3] * cells + w[3] * cells
    total += conv(2 * w[3], w[3]) + norm(w[3]) + residual(w[3]) + attention(w[3])
    for level in (2, 1, 0):
        total += conv(w[level + 1] + w[level], w[level]) + norm(w[level]) + residual(w[level]) + (attention(w[level]) if level else 0)
    return total + domains * (conv(w[0], w[0]) + norm(w[0]) + conv(w[0], channels, 7) + channels)


def test_parameter_counts_and_shapes():
    for capacity in (1, 2):
        assert parameter_count(make(size=64, capacity=capacity).generator) == generator_parameters(capacity, 64)
    assert parameter_count(make(size=64).generator) == 2_155_685
    assert parameter_count(make(size=64, capacity=4).generator) == generator_parameters(4, 64) == 21_435_989
    assert parameter_count(make(size=32, latent=16).generator) == generator_parameters(1, 32, latent=16)
    model = make(size=64)
    # pix2pix's PatchGAN with the tuple (4 views × 4 channels) and 4 mask planes as input.
    assert parameter_count(model.discriminator) == 2_770_753 + (20 - 8) * 64 * 16
    views = torch.rand(3, 4, 4, 64, 64) * 2 - 1
    available = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool)
    drawn = model.generator(views, available, torch.randn(3, 128))
    assert drawn.shape == (3, 4, 4, 64, 64) and drawn.abs().max() <= 1
    assert model.discriminator(*yamata_module.tuple_input(views, available)).shape == (3, 1, 6, 6)
    assert YAMATA.evaluation_given_views == 3


def test_drawing_runs_the_same_network_as_training():
    """Without gradients on a CPU the four heads run as one grouped network and attention in query blocks:
    the same function as the plain path, with a trained-looking γ so attention counts."""
    torch.manual_seed(0)
    model = make(size=32)
    for block in model.generator.modules():
        if isinstance(block, SelfAttention):
            block.gamma.data.fill_(0.5)
    for head in model.generator.heads:  # different heads, so a mixed-up head order shows
        nn.init.normal_(head[1].weight, 1.0, 0.3)
    views, available, noise = torch.rand(3, 4, 4, 32, 32) * 2 - 1, torch.tensor([[0, 0, 1, 0], [1, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool), torch.randn(3, 128)
    trained = model.generator(views, available, noise)
    with torch.inference_mode():
        torch.testing.assert_close(model.generator(views, available, noise), trained.detach(), rtol=1e-4, atol=1e-5)


def test_self_attention_starts_as_identity_and_mixes_positions():
    block = SelfAttention(16)
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(block(x), x)  # γ = 0 at init
    with torch.no_grad():
        block.gamma.fill_(1.0)
    changed = x.clone()
    changed[:, :, 3, 3] += 5.0
    assert not torch.allclose(block(changed)[:, :, 0, 0], block(x)[:, :, 0, 0])  # a far position is seen


def test_given_views_pass_through_and_missing_views_are_never_read():
    model = make().eval()
    views = sprites(3)
    available = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool)
    everything = model.impute_all(views, available)
    assert everything.shape == views.shape
    assert torch.equal(everything[available], views[available])  # the given views, unchanged
    assert not torch.allclose(everything[~available], views[~available])
    scrambled = torch.where(available[:, :, None, None, None], views, torch.rand_like(views))
    assert torch.equal(model.impute_all(scrambled, available), everything)  # what is missing is never read
    target = torch.tensor([2, 1, 2])  # a given view, a missing one, a missing one
    out = model.impute(views, available, target)
    assert torch.equal(out[0], views[0, 2]) and torch.equal(out[1:], everything[[1, 2], [1, 2]])
    assert torch.equal(model.impute(views, available, target), out)  # one fixed noise draw: reproducible
    noisy = model.impute_all(views, available, noise=torch.randn(3, 128) * 3)
    assert not torch.equal(noisy, everything) and torch.equal(noisy[available], views[available])  # z is used
    with pytest.raises(SpriteForgeError, match="give at least one view"):
        model.impute(views, torch.zeros(3, 4, dtype=torch.bool), target)


class FixedOutput(nn.Module):
    """A stand-in generator whose drawing is a learnable tensor (known L1 values)."""

    def __init__(self, image):
        super().__init__()
        self.image = nn.Parameter(image.clone())

    def forward(self, views, available, noise):
        return self.image


def test_loss_terms_on_known_answers(monkeypatch):
    torch.manual_seed(0)
    model = make(lambda_l1_given=2.0, lambda_adversarial=0.5)
    batch = sprites(2)
    offsets = torch.tensor([0.1, 0.2, 0.3, 0.4])[None, :, None, None, None]
    model.generator = FixedOutput(batch + offsets)
    model.make_optimizer("generator", model.generator, model.config.lr)
    kept = torch.tensor([[True, False, True, False], [False, False, True, True]])
    monkeypatch.setattr(yamata_module, "sample_kept_views", lambda *args: kept)
    seen = []  # (inputs, output) of every D call: real tuple, composite (D step), composite (G step)
    hook = model.discriminator.register_forward_hook(lambda module, inputs, output: seen.append(
        ([t.detach().clone() for t in inputs], output.detach().clone())))
    result = model.train_step(batch, 0, 0.0)
    hook.remove()
    assert result["generator/l1"] == pytest.approx((0.2 + 0.4 + 0.1 + 0.2) / 4, abs=1e-6)  # missing views only
    assert result["generator/l1-given"] == pytest.approx((0.1 + 0.3 + 0.3 + 0.4) / 4, abs=1e-6)
    assert result["generator/missing-views"] == 2.0
    assert result["generator/total"] == pytest.approx(
        0.5 * result["generator/adversarial"] + 100 * result["generator/l1"] + 2 * result["generator/l1-given"], rel=1e-6)
    assert result["discriminator/total"] == pytest.approx(0.5 * (result["discriminator/real"] + result["discriminator/fake"]))
    # D saw the real tuple, then the composite (given views real, missing ones drawn) twice, always with the mask.
    ((real, real_mask), real_logits), ((fake, fake_mask), fake_logits), ((fake_again, _), g_logits) = seen  # forward(image, condition)
    planes = kept[:, :, None, None].float().expand(-1, -1, 32, 32)
    assert torch.equal(real_mask, planes) and torch.equal(fake_mask, planes)
    composite = torch.where(kept[:, :, None, None, None], batch, batch + offsets).flatten(1, 2)
    assert torch.equal(real, batch.flatten(1, 2)) and torch.allclose(fake, composite) and torch.equal(fake, fake_again)
    # Vanilla GAN on the patch logits: BCE(real, 1), BCE(fake, 0); G's term BCE(fake, 1) under the updated D.
    assert result["discriminator/real"] == pytest.approx(F.softplus(-real_logits).mean().item(), rel=1e-5)
    assert result["discriminator/fake"] == pytest.approx(F.softplus(fake_logits).mean().item(), rel=1e-5)
    assert result["generator/adversarial"] == pytest.approx(F.softplus(-g_logits).mean().item(), rel=1e-5)
    assert not torch.equal(g_logits, fake_logits)  # D was updated in between


def test_the_discriminator_trains():
    torch.manual_seed(0)
    model = make()
    batch = sprites(2)
    before = {name: p.clone() for name, p in model.discriminator.named_parameters()}
    generator_before = {name: p.clone() for name, p in model.generator.named_parameters()}
    first = model.train_step(batch, 0, 0.0)
    assert all(p.requires_grad for p in model.discriminator.parameters())
    assert all(not torch.equal(before[name], p) for name, p in model.discriminator.named_parameters() if p.dim() > 1)
    assert any(not torch.equal(generator_before[name], p) for name, p in model.generator.named_parameters())
    # With the generator frozen, D faces one kind of fake: its loss must fall and it must tell them apart.
    for group in model.optimizers["generator"].param_groups:
        group["lr"] = 0.0
    totals = [model.train_step(batch, step, 0.0)["discriminator/total"] for step in range(1, 13)]
    assert np.mean(totals[-4:]) < 0.5 * first["discriminator/total"], (first, totals)
    model.eval()
    available = torch.tensor([[True, False, True, True], [False, True, True, True]])
    composite = model.impute_all(batch, available)
    with torch.no_grad():
        real = model.discriminator(*yamata_module.tuple_input(batch, available)).mean()
        fake = model.discriminator(*yamata_module.tuple_input(composite, available)).mean()
    assert real > fake + 1.0  # logits


def test_adversarial_gradient_reaches_the_generator_only():
    torch.manual_seed(0)
    model = make(lambda_l1=0.0)
    for group in model.optimizers["discriminator"].param_groups:
        group["lr"] = 0.0  # D still steps with lr 0: its weights must not move at all
    d_before = {name: p.clone() for name, p in model.discriminator.named_parameters()}
    g_before = {name: p.clone() for name, p in model.generator.named_parameters()}
    result = model.train_step(sprites(2), 0, 0.0)
    assert result["generator/total"] == pytest.approx(result["generator/adversarial"])
    assert all(torch.equal(d_before[name], p) for name, p in model.discriminator.named_parameters())
    assert any(not torch.equal(g_before[name], p) for name, p in model.generator.heads.named_parameters(prefix="heads"))


def test_l1_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(lr=5e-3, input_dropout="none")
    batch = sprites(2)
    l1 = [model.train_step(batch, step, step / 10)["generator/l1"] for step in range(10)]
    assert np.mean(l1[-3:]) < 0.9 * np.mean(l1[:3]) and l1[-1] < l1[0], l1


@pytest.mark.parametrize(("strategy", "progress", "missing"), [("none", 0.5, 1.0), ("curriculum", 0.2, 2.0), ("curriculum", 0.4, 3.0)])
def test_input_dropout_decides_how_many_views_are_missing(strategy, progress, missing):
    torch.manual_seed(0)
    model = make(input_dropout=strategy)
    assert model.train_step(sprites(2), 0, progress)["generator/missing-views"] == missing


def test_refusals():
    for flag in ("lambda_domain", "lambda_gp", "lambda_ssim", "palette_quantization", "lambda_l1_backward", "source"):
        with pytest.raises(SpriteForgeError, match="not used by yamata"):
            make(**{flag: True if flag == "palette_quantization" else ("front" if flag == "source" else 1.0)})
    with pytest.raises(SpriteForgeError, match="divisible by 8"):
        make(size=36)
    with pytest.raises(SpriteForgeError, match="--lambda-l1-given must not be negative"):
        make(lambda_l1_given=-1.0)
    with pytest.raises(SpriteForgeError, match="not used by collagan"):
        resolve("collagan", model_class("collagan").uses, {}, {"lambda_l1_given": 1.0})


def _trainer(tmp_path, name, **given):
    config = resolve("yamata", YAMATA.uses, YAMATA.defaults,
                     {"steps": 4, "evaluate_steps": 2, "batch": 2, "image_size": 32, "log_folder": str(tmp_path),
                      "run_string": name, "callback_evaluate_l1": True, "callback_debug_discriminator": True,
                      "lambda_l1_given": 1.0, **given})
    return Trainer(config, data=tiny_data())


def test_resume_is_bit_identical_and_l1_evaluation_works(tmp_path):
    straight = _trainer(tmp_path, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    assert resumed.state.step == 2
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert straight.state.best_step == resumed.state.best_step
    summary = json.loads((resumed.run_dir / "summary.json").read_text())
    assert 0 < summary["validation_l1"] < 2 and 0 < summary["test_l1"] < 2
    assert {"l1/train", "l1/validation", "l1/test"} <= summary["last_evaluation"].keys()
    assert (resumed.run_dir / "checkpoints" / "best.safetensors").is_file()
    names = sorted(p.name for p in (resumed.run_dir / "test-images").glob("0000_*.png"))
    assert [n.split("_")[1] for n in names] == ["missing-1", "missing-2", "missing-3"]
    assert (resumed.run_dir / "discriminated-images" / "discriminated_test_at_step_4.png").is_file()


def test_cli_train_then_translate_from_one_and_two_views(tmp_path):
    """Train on a folder of the built-in synthetic characters; draw three views from one, two from two."""
    out = tmp_path / "out"
    assert main_ok(["data", "synth", "--out", str(tmp_path / "demo"), "--count", "8", "--seed", "1", "--image-size", "32"])
    result = run_cli("train", "yamata", "--dataset", tmp_path / "demo", "--steps", 2, "--batch", 2, "--image-size", 32,
                     "--input-dropout", "original", "--callback-evaluate-l1", "--log-folder", out, "--run-string", "quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "yamata" / "playground" / "quick"
    assert f"generator: {generator_parameters(1, 32):,} parameters" in (run / "model-description.txt").read_text()
    assert json.loads((run / "summary.json").read_text())["validation_l1"] > 0
    front, left = (tmp_path / "demo" / "test" / name / "0.png" for name in ("2-front", "1-left"))
    result = run_cli("translate", run, "--front", front, "--out", tmp_path / "one.png", "--separate")
    assert result.returncode == 0, result.stderr
    one = np.array(Image.open(tmp_path / "one.png"))
    assert one.shape == (32, 128, 4) and np.array_equal(one[:, 64:96], imageio.load_rgba(front, 32))
    assert set(np.unique(one[..., 3])) <= {0, 255}  # drawn alpha binarised
    assert (tmp_path / "one-back.png").is_file()
    (tmp_path / "db.hex").write_text("#000000\n#ffffff\n#ff0000\n")  # two views given, a forced palette, indexed PNG
    translate_files(run, {"front": front, "left": left}, tmp_path / "two.png", palette_from=tmp_path / "db.hex", indexed=True)
    two = Image.open(tmp_path / "two.png")
    assert two.mode == "P"
    rgba = np.array(two.convert("RGBA"))
    assert rgba.shape == (32, 128, 4) and rgba[..., 3].any() and not rgba[..., 3].all()
    opaque = {tuple(c) for c in rgba[rgba[..., 3] == 255][:, :3]}
    assert opaque <= {(0, 0, 0), (255, 255, 255), (255, 0, 0)}
