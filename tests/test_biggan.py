"""BigGAN and Deep-BigGAN: the image-size rule, hinge and orthogonal losses, EMA, truncation, parameter
counts, layered configuration, exact resume and the CLI (`train`, `sample --view/--truncation/--interpolate`)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge.cli import main
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import load_for_inference
from spriteforge.models import model_class
from spriteforge.models.biggan import BigDiscriminator, BigGenerator, truncated_normal
from spriteforge.models.blocks import parameter_count, update_moving_average
from spriteforge.models.losses import hinge_discriminator_loss, hinge_generator_loss, orthogonal_regularization
from spriteforge.options import read_toml, resolve
from spriteforge.sampling import sample_files
from spriteforge.training import checkpoint as ckpt
from spriteforge.training.engine import Trainer

from conftest import write_split_folder
from test_cli import run_cli
from test_single_folder import write_single_folder
from test_stargan import _state, tiny_data

TINY = {"feature_maps": 4, "latent": 16, "embedding": 8}


def configure(name="biggan", **given):
    cls = model_class(name)
    return resolve(name, cls.uses, cls.defaults, given, cls.refuses)


def make(name="biggan", classes=4, channels=4, **given):
    return model_class(name)(configure(name, **{**TINY, "upsample_layers": 2, **given}), classes, channels)


# -- configuration ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, latent", [("biggan", 120), ("deep-biggan", 128)])
def test_the_seeds_defaults_come_from_the_defaults_file(name, latent):
    config = configure(name)
    assert (config.lr, config.lr * config.ttur, config.beta1, config.beta2) == (5e-5, 2e-4, 0.0, 0.999)
    assert (config.latent, config.feature_maps, config.embedding) == (latent, 32, 128)
    assert (config.ema_decay, config.lambda_orthogonal, config.truncation, config.lr_decay) == (0.9999, 1e-4, 0.5, "none")
    assert model_class(name).data_size(config) == (64, 64) and "image_size" not in config


def test_layering_defaults_file_then_user_toml_then_command_line(tmp_path):
    folder = write_single_folder(tmp_path / "frames", count=4, size=(8, 8))
    user = tmp_path / "mine.toml"
    user.write_text('lr = 1e-4\nbatch = 3\ntruncation = 0.7\nfeature-maps = 4\nlatent = 8\nembedding = 4\nupsample-layers = 1\n'
                    'base-width = 4\nbase-height = 4\n')
    assert main_runs(["train", "biggan", "--config", str(user), "--batch", "2", "--steps", "1", "--dataset", str(folder),
                      "--log-folder", str(tmp_path / "out"), "--run-string", "layers"])
    saved = read_toml(tmp_path / "out" / "biggan" / "playground" / "layers" / "configuration.toml")
    assert saved["lr"] == 1e-4 and saved["truncation"] == 0.7  # the user's file over the defaults file
    assert saved["batch"] == 2  # the command line over the user's file
    assert saved["ttur"] == 4.0 and saved["ema_decay"] == 0.9999 and saved["beta1"] == 0.0  # the defaults file over the option table
    assert "image_size" not in saved


def main_runs(argv) -> bool:
    try:
        main(argv)
    except SystemExit as exit:
        return exit.code in (0, None)
    return True


# -- the image-size rule ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, base, layers", [("biggan", (4, 3), 1), ("biggan", (4, 3), 2), ("biggan", (2, 2), 3),
                                                ("deep-biggan", (4, 3), 2), ("deep-biggan", (3, 5), 1)])
def test_shapes_and_ranges_follow_base_times_two_to_the_layers(name, base, layers):
    model = make(name, base_width=base[0], base_height=base[1], upsample_layers=layers)
    expected = (base[1] * 2**layers, base[0] * 2**layers)
    assert model.image_size == expected
    images = model.eval().sample(model.noise(5))
    assert images.shape == (5, 4, *expected) and images.abs().max() <= 1
    assert model.discriminator(images, torch.tensor([0, 1, 2, 3, 0])).shape == (5,)
    rgb = make(name, channels=3, classes=1, base_width=base[0], base_height=base[1], upsample_layers=layers)
    assert rgb.eval().sample(rgb.noise(2)).shape == (2, 3, *expected)


def test_bad_sizes_and_values_are_one_line_errors(capsys):
    assert not main_runs(["train", "biggan", "--image-size", "32"])
    assert capsys.readouterr().err.strip().startswith("error: --image-size not used by biggan: its images are --base-width x 2^--upsample-layers")
    with pytest.raises(SpriteForgeError, match="--upsample-layers must be at least 1"):
        make(upsample_layers=0)
    with pytest.raises(SpriteForgeError, match="would draw 8192x8192"):
        make(upsample_layers=11)
    with pytest.raises(SpriteForgeError, match="--latent 2 is too small: .* 3 chunks"):
        make(latent=2)
    make("deep-biggan", latent=2)  # deep-biggan does not split z
    with pytest.raises(SpriteForgeError, match="--ema-decay must be in"):
        make(ema_decay=1.0)
    with pytest.raises(SpriteForgeError, match="--truncation and --lambda-orthogonal must not be negative"):
        make(truncation=-0.5)
    with pytest.raises(SpriteForgeError, match="--label-smoothing not used by deep-biggan"):
        configure("deep-biggan", label_smoothing=0.1)
    with pytest.raises(SpriteForgeError, match="views must be 2 indices in \\[0, 4\\)"):
        make().sample(torch.zeros(2, 16), torch.tensor([0, 4]))


# -- parameter counts -------------------------------------------------------------------------------
def test_deep_biggan_matches_the_reference_parameter_counts(monkeypatch):
    """The seed's run Deep-biggan-bs64-ch128 (128×96 RGB, 20 classes, z 128, ngf = ndf = 128): its
    architecture.txt lists G 48,046,532 and D 32,583,618 parameters."""
    monkeypatch.setattr(torch.nn.init, "orthogonal_", lambda tensor, *args, **kwargs: tensor)  # the count does not need it
    generator = BigGenerator(128, 3, 20, 128, (3, 4), 5, 128, deep=True)
    discriminator = BigDiscriminator(3, 20, 128, 5, deep=True)
    assert (parameter_count(generator), parameter_count(discriminator)) == (48_046_532, 32_583_618)


def test_biggan_parameter_count_layer_by_layer():
    """biggan at f = 2, 4:3 with 3 layers, z 8 (chunks 2 each), embedding 4, 4 classes, RGBA, counted by hand."""
    f, e, classes, c = 2, 4, 4, 4
    sn_conv = lambda cin, cout, k, bias=True: cin * cout * k * k + (cout if bias else 0)
    cbn = lambda channels, condition: condition * 2 * channels + 2 * channels
    attention = lambda ch: sn_conv(ch, ch // 8 or 1, 1) * 2 + sn_conv(ch, ch // 2, 1) + sn_conv(ch // 2, ch, 1) + 1
    up = lambda cin, cout, cond: cbn(cin, cond) + sn_conv(cin, cout, 3, False) + cbn(cout, cond) + sn_conv(cout, cout, 3) + sn_conv(cin, cout, 1)
    widths = [4 * f, 2 * f, f]
    generator = classes * e + (2 * 16 * f * 12 + 16 * f * 12) + up(16 * f, widths[0], 2 + e) + up(widths[0], widths[1], 2 + e) \
        + up(widths[1], widths[2], 2 + e) + attention(widths[1]) + 2 * f + sn_conv(f, c, 3)
    down = lambda cin, cout: sn_conv(cin, cout, 3) + sn_conv(cout, cout, 3) + sn_conv(cin, cout, 1)
    discriminator = down(c, f) + attention(f) + down(f, 2 * f) + down(2 * f, 4 * f) + down(4 * f, 4 * f) + 4 * f + 1 + classes * 4 * f
    model = make(feature_maps=f, latent=8, embedding=e, base_width=4, base_height=3, upsample_layers=3)
    assert (parameter_count(model.generator), parameter_count(model.discriminator)) == (generator, discriminator)
    assert parameter_count(model.generator_ema) == generator


def test_self_attention_keeps_the_images_of_a_batch_apart():
    from spriteforge.models.biggan import SelfAttention

    torch.manual_seed(0)
    attention = SelfAttention(16).eval()
    x = torch.randn(3, 16, 4, 6)
    assert torch.equal(attention(x), x)  # the gain starts at 0: an identity until it is learned
    with torch.no_grad():
        attention.gain.fill_(1.0)
    together, alone = attention(x), attention(x[1:2])
    assert not torch.allclose(together, x) and torch.allclose(together[1:2], alone, atol=1e-6)


# -- losses, EMA, truncation ------------------------------------------------------------------------
def test_hinge_losses_on_a_known_case():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0], requires_grad=True)
    # ReLU(1 − real) = 0, 0.5, 2 → 5/6; ReLU(1 + fake) = 0, 1, 2 → 1
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(5 / 6 + 1)
    loss = hinge_generator_loss(fake)
    assert loss.item() == pytest.approx(1 / 3)
    loss.backward()
    assert torch.allclose(fake.grad, torch.full((3,), -1 / 3))  # −D(G(z)): a gradient even where D(G(z)) > 1


def test_orthogonal_regulariser_on_a_known_case():
    w = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # W Wᵀ = [[2, 1], [1, 1]]: two off-diagonal ones
    assert orthogonal_regularization([w]).item() == pytest.approx(2.0)
    assert orthogonal_regularization([torch.eye(3), torch.randn(4, 1, 1, 1) * 0]).item() == pytest.approx(0.0)
    tall = torch.randn(50, 3, 1, 1)  # more filters than inputs: computed from the small Gram matrix
    gram = tall.flatten(1) @ tall.flatten(1).t()
    assert orthogonal_regularization([tall]).item() == pytest.approx((gram - torch.diag(torch.diag(gram))).pow(2).sum().item(), rel=1e-4)
    model = make()
    names = [name for name, p in model.generator.named_parameters() if any(p is w for w in model.orthogonal_weights())]
    assert names and not any(name.startswith("embed") for name in names) and all("original" in name for name in names)
    losses = model.train_step(torch.rand(2, 4, 4, 16, 16) * 2 - 1, 0, 0.0)
    assert losses["generator/total"] == pytest.approx(losses["generator/adversarial"] + 1e-4 * losses["generator/orthogonal"], rel=1e-5)


@pytest.mark.parametrize("name", ["biggan", "deep-biggan"])
def test_discriminator_loss_falls_on_a_fixed_batch(name):
    torch.manual_seed(0)
    model = make(name, d_steps=1000, lr=1e-3, ttur=1.0)  # G updates at step 0 only, then D learns alone
    batch = torch.from_numpy(tiny_data(size=16).train.images[:2]).float().movedim(-1, -3) / 127.5 - 1
    losses = [model.train_step(batch, step, 0.0)["discriminator/total"] for step in range(12)]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_moving_average_on_a_known_case():
    live, average = torch.nn.BatchNorm1d(2), torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        live.weight.fill_(1.0), average.weight.fill_(0.0)
        live.running_mean.fill_(5.0)
    assert update_moving_average(average, live, 0.9999, updates=0) == pytest.approx(0.1)  # warm-up: (1 + 0) / (10 + 0)
    assert torch.allclose(average.weight, torch.full((2,), 0.9)) and torch.equal(average.running_mean, live.running_mean)
    assert update_moving_average(average, live, 0.5, updates=1000) == 0.5
    assert torch.allclose(average.weight, torch.full((2,), 0.95))
    model = make()
    before = {n: p.clone() for n, p in model.generator_ema.named_parameters()}
    losses = model.train_step(torch.rand(2, 4, 4, 16, 16) * 2 - 1, 0, 0.0)
    assert losses["generator/ema-decay"] == pytest.approx(0.1)
    for name, value in model.generator.named_parameters():
        assert torch.allclose(dict(model.generator_ema.named_parameters())[name], 0.1 * before[name] + 0.9 * value.detach(), atol=1e-6)
    assert not hasattr(make(ema_decay=0.0), "generator_ema")


def test_truncated_normal_latents():
    bounded = truncated_normal((4000,), 0.5, torch.Generator().manual_seed(0))
    assert bounded.abs().max() <= 0.5 and bounded.std() > 0.25  # N(0, 1) on [−½, ½] has std ≈ 0.28
    assert torch.equal(bounded, truncated_normal((4000,), 0.5, torch.Generator().manual_seed(0)))
    assert truncated_normal((4000,), 0.0, torch.Generator().manual_seed(0)).abs().max() > 2.5  # 0 = untruncated
    model = make(truncation=0.25)
    assert model.noise(100).abs().max() <= 0.25 and model.noise(100, truncation=2.0).abs().max() > 0.25


# -- training -------------------------------------------------------------------------------------
def _trainer(tmp_path, name, run, **given):
    config = configure(name, **{**TINY, "upsample_layers": 2, "steps": 4, "evaluate_steps": 2, "batch": 2,
                                "log_folder": str(tmp_path), "run_string": run, **given})
    return Trainer(config, data=tiny_data(size=16))


@pytest.mark.parametrize("name", ["biggan", "deep-biggan"])
def test_resume_is_bit_identical_moving_average_included(tmp_path, name):
    straight = _trainer(tmp_path, name, "straight")
    straight.run()
    interrupted = _trainer(tmp_path, name, "interrupted")
    interrupted.run(stop_at=2)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data(size=16))
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert any(key.startswith("generator_ema.") for key in a) and any("_u" in key for key in a)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert (resumed.run_dir / "test-images" / "samples_at_step_4.png").is_file()


def test_fid_callback_scores_the_averaged_generators_samples(tmp_path):
    from spriteforge.data.folders import SINGLE_DOMAIN, CharacterSet
    from spriteforge.data.loading import SpriteData
    from spriteforge.evaluation import inception

    if not inception.weights_available():
        pytest.skip(f"FID Inception weights not installed ({inception.INSTALL_HINT})")
    images = tiny_data(size=16).train.images[:, :1]  # one class: 5 single images
    part = lambda a, b: CharacterSet(images[a:b], [str(i) for i in range(a, b)])
    data = SpriteData(part(0, 3), part(3, 3), part(3, 5), (SINGLE_DOMAIN,), ["test"])
    config = configure(**{**TINY, "upsample_layers": 2, "steps": 1, "evaluate_steps": 1, "batch": 2, "callback_evaluate_fid": True,
                          "log_folder": str(tmp_path), "run_string": "fid"})
    trainer = Trainer(config, data=data)
    assert trainer.model.view_count == 1
    record = trainer.run().history[-1]
    assert np.isfinite(record["fid/train"]) and record["fid/train"] > 0 and np.isfinite(record["kid/test"])
    assert json.loads((trainer.run_dir / "summary.json").read_text())["last_evaluation"]["fid/train"] == record["fid/train"]


def test_truncation_is_refused_for_models_without_it(tmp_path):
    from spriteforge.models.dcgan import DCGAN

    cls = model_class("dcgan")
    model = DCGAN(resolve("dcgan", cls.uses, cls.defaults, {"feature_maps": 4, "latent": 8, "image_size": 16}), 4, 4, 16)
    path = ckpt.save_checkpoint(tmp_path / "dcgan.safetensors", model, 0)
    with pytest.raises(SpriteForgeError, match="--truncation: dcgan draws from an untruncated normal"):
        sample_files(path, tmp_path / "grid.png", count=2, truncation=0.5)


# -- the command line -------------------------------------------------------------------------------
def test_biggan_trains_and_samples_views_through_the_cli(tmp_path):
    sprites = write_split_folder(tmp_path / "sprites", train=4, test=2, size=16)
    result = run_cli("train", "biggan", "--dataset", sprites, "--steps", 2, "--evaluate-steps", 2, "--batch", 2,
                     "--feature-maps", 4, "--latent", 16, "--embedding", 8, "--upsample-layers", 2,
                     "--log-folder", tmp_path / "out", "--run-string", "cli", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "biggan" / "playground" / "cli"
    assert (run / "previews" / "step_000002.png").is_file()
    result = run_cli("sample", run, "-n", 4, "--view", "front", "--seed", 3, "--truncation", 0.5, "--out", tmp_path / "front.png", "--separate")
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("front-*.png"))) == 4
    drawn = lambda name, **options: np.asarray(Image.open(sample_files(run, tmp_path / name, **{"count": 4, "seed": 3, **options})[0]))
    same = drawn("default.png", view="front")  # no --truncation: the model's own 0.5
    assert np.array_equal(same, np.asarray(Image.open(tmp_path / "front.png")))
    assert not np.array_equal(same, drawn("wide.png", view="front", truncation=2.0))
    assert not np.array_equal(same, drawn("back.png", view="back"))
    strip = drawn("strip.png", count=5, interpolate=True, truncation=1.0)
    assert strip.shape[1] > 4 * strip.shape[0]  # one row of five
    model, _ = load_for_inference(run)
    assert model.drawing_generator is model.generator_ema
    with pytest.raises(SpriteForgeError, match="--truncation must be 0"):
        sample_files(run, tmp_path / "x.png", truncation=-1.0)
    from spriteforge.evaluating import evaluate_location

    with pytest.raises(SpriteForgeError, match="biggan draws new characters: only fid, kid, palette apply"):
        evaluate_location(str(run), selected=("l1",))
    report, _, _ = evaluate_location(str(run), selected=("palette",))
    assert report["view_conditional"] and report["truncation"] == 0.5
    assert {"all", "front"} <= set(report["systems"]["biggan"]) and report["systems"]["biggan"]["front"]["images"] == 2


def test_deep_biggan_trains_on_a_4_3_folder_through_the_cli(tmp_path):
    folder = write_single_folder(tmp_path / "frames", count=6)
    result = run_cli("train", "deep-biggan", "--dataset", folder, "--steps", 2, "--evaluate-steps", 2, "--batch", 2,
                     "--feature-maps", 4, "--latent", 16, "--embedding", 8, "--base-width", 4, "--base-height", 3,
                     "--upsample-layers", 2, "--save-model", "--log-folder", tmp_path / "out", "--run-string", "cli", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "deep-biggan" / "playground" / "cli"
    result = run_cli("sample", run / "models" / "generator.safetensors", "-n", 4, "--out", tmp_path / "grid.png")
    assert result.returncode == 0, result.stderr
    result = run_cli("evaluate", run, "--metrics", "palette", "--split", "train")  # a 4:3 single folder: one class, no views
    assert result.returncode == 0, result.stderr
    assert "| deep-biggan | all |" in result.stdout
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (2 + 2 * 14, 2 + 2 * 18, 4)  # 2×2 tiles of 16×12, 2-pixel padding
    with pytest.raises(SpriteForgeError, match="--view: this model was trained on a single folder"):
        sample_files(run, tmp_path / "v.png", view="front")
