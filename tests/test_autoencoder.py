"""The convolutional autoencoder (TinyHero notebook 5) and `spriteforge denoise`."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge import imageio
from spriteforge.cli import main
from spriteforge.denoising import denoise_files
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.autoencoder import LatentPrior, corrupt
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer, learning_rate_factor

from conftest import random_sprite
from test_cli import main_ok, run_cli
from test_stargan import _state, tiny_data

AE = model_class("autoencoder")


def make(size=32, channels=4, **given):
    config = resolve("autoencoder", AE.uses, AE.defaults, given)
    return AE(config, 4, channels, size)


def as_batch(characters: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(characters).float().movedim(-1, -3) / 127.5 - 1


def test_notebook_architecture_shapes_and_latent_range():
    model = make(size=64).eval()
    assert (model.config.latent, model.config.feature_maps, model.config.lr, model.config.batch) == (40, 64, 1e-4, 25)
    assert (model.config.lr_decay, model.config.lr_epoch_decay) == ("per-epoch", 0.995)
    convs = [m.out_channels for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [64, 128, 256, 512, 64]  # the DCGAN discriminator trunk, then conv 4×4 → 64
    assert isinstance(model.encoder.head[-1], torch.nn.Sigmoid) and model.encoder.head[-2].out_features == 40
    widths = [m.out_channels for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert widths == [512, 256, 128, 64, 4]  # the DCGAN generator from the 40-d code, RGBA out
    images = torch.rand(3, 4, 64, 64) * 2 - 1
    codes = model.encoder(images)
    assert codes.shape == (3, 40) and codes.min() > 0 and codes.max() < 1
    out = model.reconstruct(images)
    assert out.shape == images.shape and out.abs().max() <= 1
    rgb = make(size=32, channels=3, feature_maps=8, latent=5).eval()
    assert rgb.reconstruct(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(SpriteForgeError, match="power of two"):
        make(size=48)


def test_dcgan_initialisation_is_applied():
    """The notebook defined the DCGAN init and never applied it; here every conv/linear is N(0, 0.02)."""
    model = make(size=64)
    for layer in list(model.encoder.modules()) + list(model.decoder.modules()):
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)) and layer.weight.numel() > 1000:
            assert layer.weight.std().item() == pytest.approx(0.02, rel=0.15)  # PyTorch's default init differs widely
        if isinstance(layer, torch.nn.BatchNorm2d):
            assert (layer.weight - 1).abs().max() < 0.1 and not layer.bias.any()


def test_unused_flags_and_bad_values_are_rejected():
    for flag, value in (("lambda_l1", 1.0), ("d_dropout", 0.3), ("label_smoothing", 0.1), ("capacity", 2)):
        with pytest.raises(SpriteForgeError, match=f"--{flag.replace('_', '-')} not used by autoencoder"):
            resolve("autoencoder", AE.uses, AE.defaults, {flag: value})
    with pytest.raises(SpriteForgeError, match="no discriminator"):
        make(ttur=2.0)
    with pytest.raises(SpriteForgeError, match="no discriminator"):
        make(callback_debug_discriminator=True)
    with pytest.raises(SpriteForgeError, match="noise-std"):
        make(noise_std=-0.1)
    with pytest.raises(SpriteForgeError, match="encoder-dropout"):
        make(encoder_dropout=1.0)
    with pytest.raises(SpriteForgeError, match="only with --lr-decay per-epoch"):
        make(lr_decay="none", lr_epoch_decay=0.9)
    with pytest.raises(SpriteForgeError, match="unconditional"):
        make().sample(torch.rand(1, 40), torch.tensor([2]))


def test_mse_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(feature_maps=8, lr=1e-3)
    batch = as_batch(tiny_data().train.images[:4])
    losses = [model.train_step(batch, step, 0.0)["autoencoder/total"] for step in range(30)]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_denoising_beats_the_noisy_input_after_training():
    """A denoising run on a tiny fixed set must bring noisy sprites closer to the clean ones than the
    noisy input itself is; the untrained model does not (so the assertion can fail)."""
    torch.manual_seed(0)
    model = make(size=16, feature_maps=8, latent=16, lr=2e-3, noise_std=0.5)
    batch = as_batch(tiny_data(size=16, count=8).train.images)
    images = batch.flatten(0, 1)
    noisy = corrupt(images, 0.5, torch.Generator().manual_seed(1))
    noisy_error = (noisy - images).pow(2).mean().item()
    assert (model.eval().reconstruct(noisy) - images).pow(2).mean().item() > noisy_error
    model.train()
    for step in range(150):
        torch.manual_seed(step)
        model.train_step(batch, step, 0.0)
    denoised_error = (model.eval().reconstruct(noisy) - images).pow(2).mean().item()
    assert denoised_error < 0.75 * noisy_error


def test_corruption_is_gaussian_and_stays_in_range():
    images = torch.zeros(4, 4, 32, 32)
    noisy = corrupt(images, 0.3, torch.Generator().manual_seed(0))
    assert noisy.abs().max() <= 1 and (noisy - images).std().item() == pytest.approx(0.3, rel=0.05)
    assert corrupt(images, 0.0) is images


def test_latent_prior_fits_the_codes_and_draws_inside_the_cube():
    prior = LatentPrior(3)
    with pytest.raises(SpriteForgeError, match="not been fitted"):
        prior.draw(2)
    generator = torch.Generator().manual_seed(0)
    codes = torch.tensor([0.3, 0.6, 0.5]) + torch.randn(4000, 3, generator=generator) * torch.tensor([0.05, 0.1, 0.02])
    prior.fit(codes)
    draws = prior.draw(4000, torch.Generator().manual_seed(1))
    assert draws.min() >= 0 and draws.max() <= 1 and int(prior.count) == 4000
    assert torch.allclose(draws.mean(0), torch.tensor([0.3, 0.6, 0.5]), atol=0.01)
    assert torch.allclose(draws.std(0), torch.tensor([0.05, 0.1, 0.02]), rtol=0.08)
    assert torch.equal(prior.draw(3, torch.Generator().manual_seed(2)), prior.draw(3, torch.Generator().manual_seed(2)))


def test_per_epoch_decay_is_a_schedule_that_keeps_adams_moments():
    assert [learning_rate_factor("per-epoch", step, 100, 3, 0.5) for step in (0, 2, 3, 5, 6)] == [1, 1, 0.5, 0.5, 0.25]
    assert learning_rate_factor("none", 50, 100, 3, 0.5) == 1.0  # the factor only applies to per-epoch


def _trainer(tmp_path, name, steps=5, **given):
    # 5 train characters, batch 2 → 3 steps an epoch: 5 steps cross an epoch boundary of the ×0.5 schedule
    config = resolve("autoencoder", AE.uses, AE.defaults,
                     {"steps": steps, "evaluate_steps": 2, "batch": 2, "image_size": 32, "feature_maps": 8, "latent": 6,
                      "noise_std": 0.3, "lr_epoch_decay": 0.5, "log_folder": str(tmp_path), "run_string": name, **given})
    return Trainer(config, data=tiny_data())


def test_resume_is_bit_identical_and_evaluation_is_logged(tmp_path):
    straight = _trainer(tmp_path, "straight")
    straight.run()
    optimizer = straight.model.optimizers["autoencoder"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5)  # last step (4) is in epoch 1
    assert all(int(state["step"]) == 5 for state in optimizer.state.values())  # moments never reset
    interrupted = _trainer(tmp_path, "interrupted")
    interrupted.run(stop_at=3)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert int(resumed.model.prior.count) == 5 * 4  # fitted on the train characters' views at the last evaluation
    summary = json.loads((resumed.run_dir / "summary.json").read_text())["last_evaluation"]
    for name in ("reconstruction-mse", "reconstruction-l1", "denoising-mse", "noisy-input-mse"):
        for split in ("validation", "test"):
            assert 0 <= summary[f"{name}/{split}"] < 4, name
    names = sorted(path.name for path in (resumed.run_dir / "test-images").iterdir())
    assert names == ["reconstructions-00_at_step_5.png", "samples_at_step_5.png"]
    preview = np.asarray(Image.open(resumed.run_dir / "previews" / "step_000005.png"))
    assert preview.shape[0] == 2 * (9 * 34 + 2)  # 4 rows per split (input, reconstruction, noisy, denoised) + samples, ×2


def test_l1_evaluation_selects_on_reconstruction(tmp_path):
    trainer = _trainer(tmp_path, "l1", steps=2, callback_evaluate_l1=True)
    trainer.run()
    summary = json.loads((trainer.run_dir / "summary.json").read_text())
    images = trainer.evaluation_set(trainer.data.validation)
    assert (trainer.run_dir / "checkpoints" / "best.safetensors").is_file()
    assert summary["validation_l1"] == pytest.approx(trainer.model.evaluation_l1(images, "cpu"), rel=1e-5)


# -- spriteforge denoise -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short autoencoder run trained through the CLI (32×32, tiny widths)."""
    root = tmp_path_factory.mktemp("ae")
    result = run_cli("train", "autoencoder", "--steps", 3, "--evaluate-steps", 3, "--batch", 2, "--image-size", 32, "--feature-maps", 8,
                     "--latent", 8, "--noise-std", 0.2, "--lr", 1e-3, "--log-folder", root / "out", "--run-string", "cli", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "out" / "autoencoder" / "playground" / "cli"


@pytest.fixture
def sprites(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "sprites"
    for index in range(3):
        imageio.save_png(random_sprite(rng, 32), folder / f"hero{index}.png")
    soft = random_sprite(rng, 32)
    soft[soft[..., 3] == 255, 3] = 200
    imageio.save_png(soft, tmp_path / "soft.png")
    return folder


def _colours(image):
    return {tuple(c) for c in image[image[..., 3] > 0][:, :3]}


def test_denoise_files_keep_pixel_art(run, sprites, tmp_path):
    written = denoise_files(run, [sprites], tmp_path / "clean", scale=2, compare=tmp_path / "compare.png")
    assert [path.name for path in written] == ["hero0.png", "hero1.png", "hero2.png", "compare.png"]
    out = np.asarray(Image.open(tmp_path / "clean" / "hero0.png"))
    assert out.shape == (64, 64, 4) and np.array_equal(out[::2, ::2], out[1::2, 1::2])  # nearest-neighbour ×2
    assert set(np.unique(out[..., 3])) <= {0, 255}  # the input's alpha was binary
    assert np.asarray(Image.open(tmp_path / "compare.png")).shape == (2 * (2 * 34 + 2), 2 * (3 * 34 + 2), 4)
    soft = denoise_files(run, [tmp_path / "soft.png"], tmp_path / "soft-out.png")[0]
    assert not set(np.unique(np.asarray(Image.open(soft))[..., 3])) <= {0, 255}  # soft alpha stays soft
    source = imageio.load_rgba(sprites / "hero1.png")
    kept = imageio.load_rgba(denoise_files(run, [sprites / "hero1.png"], tmp_path / "kept.png", input_palette=True)[0])
    assert _colours(kept) <= _colours(source)
    palette = np.array([[255, 0, 0], [0, 0, 255], [250, 250, 250]], np.uint8)
    (tmp_path / "palette.hex").write_text("\n".join("#%02x%02x%02x" % tuple(c) for c in palette))
    forced = imageio.load_rgba(denoise_files(run, [sprites / "hero1.png"], tmp_path / "forced.png", palette_from=tmp_path / "palette.hex")[0])
    assert _colours(forced) <= {tuple(c) for c in palette.tolist()}
    reduced = imageio.load_rgba(denoise_files(run, [sprites / "hero1.png"], tmp_path / "reduced.png", colours=3)[0])
    assert len(_colours(reduced)) <= 3 and set(np.unique(reduced[..., 3])) <= {0, 255}


def _one_line_error(capsys, argv, *fragments):
    with pytest.raises(SystemExit) as exit:
        main([str(arg) for arg in argv])
    assert exit.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_denoise_bad_inputs_are_one_line_errors(run, sprites, tmp_path, capsys):
    corrupt_png = tmp_path / "corrupt.png"
    corrupt_png.write_bytes((sprites / "hero0.png").read_bytes()[:60])
    big = tmp_path / "big.png"
    imageio.save_png(np.zeros((64, 64, 4), np.uint8), big)
    out = tmp_path / "out"
    _one_line_error(capsys, ["denoise", run, sprites / "hero0.png", corrupt_png, "--out", out], "corrupt.png", "not a readable PNG")
    _one_line_error(capsys, ["denoise", run, big, "--out", out], "big.png", "64x64", "32x32", "never resized")
    _one_line_error(capsys, ["denoise", run, tmp_path / "missing.png", "--out", out], "missing.png", "not found")
    _one_line_error(capsys, ["denoise", run, sprites, "--out", sprites], "would overwrite the input")
    _one_line_error(capsys, ["denoise", run, sprites, "--out", tmp_path / "one.png"], "3 inputs need a folder")
    _one_line_error(capsys, ["denoise", run, sprites, "--out", out, "--input-palette", "--colors", 4], "choose one of")
    _one_line_error(capsys, ["denoise", run, sprites, "--out", out, "-n", 4], "-n only applies with --from-sample")
    _one_line_error(capsys, ["denoise", run, "--out", out], "give the sprites to clean")
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"not a checkpoint at all")
    _one_line_error(capsys, ["denoise", foreign, sprites, "--out", out], "not a SpriteForge checkpoint")
    assert not out.exists()  # nothing written by any failed call


def test_denoise_generated_samples_and_refuse_other_models(run, tmp_path, capsys):
    """Notebook 6 in one command, from a DCGAN run; sample from the autoencoder's prior; a DCGAN is no denoiser."""
    dcgan = model_class("dcgan")
    config = resolve("dcgan", dcgan.uses, dcgan.defaults, {"steps": 1, "evaluate_steps": 1, "batch": 2, "image_size": 32, "feature_maps": 8,
                                                           "latent": 8, "log_folder": str(tmp_path / "out"), "run_string": "gan"})
    gan = Trainer(config, data=tiny_data())
    gan.run()
    gan_run = gan.run_dir
    result = run_cli("denoise", run, "--from-sample", gan_run, "-n", 5, "--seed", 2, "--out", tmp_path / "cleaned", "--colors", 6)
    assert result.returncode == 0, result.stderr
    cleaned = sorted((tmp_path / "cleaned").glob("sample-*.png"))
    raw = sorted((tmp_path / "cleaned" / "raw").glob("sample-*.png"))
    assert len(cleaned) == len(raw) == 5 and (tmp_path / "cleaned" / "raw" / "sample.png").is_file()
    assert all(len(_colours(imageio.load_rgba(path))) <= 6 for path in cleaned)
    assert main_ok(["sample", str(run), "-n", "4", "--seed", "1", "--out", str(tmp_path / "prior.png")])
    assert np.asarray(Image.open(tmp_path / "prior.png")).shape == (2 * 34 + 2, 2 * 34 + 2, 4)
    capsys.readouterr()
    _one_line_error(capsys, ["denoise", gan_run, raw[0], "--out", tmp_path / "x.png"], "'dcgan' model", "spriteforge train autoencoder")
    _one_line_error(capsys, ["denoise", run, "--from-sample", run.parent, "--out", tmp_path / "y"], "no checkpoint")
