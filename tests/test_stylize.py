"""pix2pix on paired picture / pixel-art folders, and `spriteforge stylize` (model + pixel-art clean-up)."""

import numpy as np
import pytest
from PIL import Image

from spriteforge import imageio
from spriteforge.data.pictures import load_pairs
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.models.blocks import parameter_count
from spriteforge.options import resolve
from spriteforge.stylize import stylize_files
from spriteforge.training import checkpoint as ckpt
from spriteforge.training.engine import training_data

from test_cli import assert_clean_error, run_cli
from test_cyclegan import make as make_cyclegan, write_pictures, write_pixel_art
from test_pixelart import huge_png_header, smooth_photo

PAIRS = model_class("pix2pix-pairs")


def opaque_colours(rgba):
    return {tuple(c) for c in rgba[rgba[..., 3] == 255][:, :3].tolist()}


def pairs_config(tmp_path, **given):
    return resolve("pix2pix-pairs", PAIRS.uses, PAIRS.defaults,
                   {"domain_a": str(tmp_path / "A"), "dataset": [str(tmp_path / "B")], **given})


def write_pairs(tmp_path, count=6):
    write_pictures(tmp_path / "A", count=count, factor=8)  # 256-px pictures of 32-px sprites …
    write_pixel_art(tmp_path / "B", count=count, size=32)  # … and the same names as pixel art (one upscaled ×2)


# -- pix2pix-pairs ----------------------------------------------------------------------------------
def test_paired_folders(tmp_path):
    write_pairs(tmp_path, count=7)
    data = load_pairs(pairs_config(tmp_path), "pix2pix-pairs")
    assert data.domains == ("pictures", "pixel-art")
    assert (len(data.train), len(data.validation), len(data.test)) == (5, 1, 1)  # 6/1 split, the last train pair validates
    assert data.train.images.shape == (5, 2, 64, 64, 4)
    for images, name in zip(data.train.images, data.train.names):
        art = imageio.load_rgba(tmp_path / "B" / f"{name.split('/')[-1]}.png")
        if art.shape[0] == 64:  # the upscaled one comes back at one pixel per art pixel
            art = art[::2, ::2]
        assert np.array_equal(images[1, 16:48, 16:48], art) and not images[1, :16].any()  # exact, centred
    (tmp_path / "B" / "3.png").unlink()
    with pytest.raises(SpriteForgeError, match=r"3\.jpg: no pixel-art image named '3'"):
        load_pairs(pairs_config(tmp_path), "pix2pix-pairs")
    imageio.save_png(np.zeros((8, 8, 4), np.uint8), tmp_path / "B" / "3.png")
    imageio.save_png(np.zeros((8, 8, 4), np.uint8), tmp_path / "B" / "3.gif")
    with pytest.raises(SpriteForgeError, match="has the same name; pairs match by file name"):
        load_pairs(pairs_config(tmp_path), "pix2pix-pairs")
    with pytest.raises(SpriteForgeError, match="pix2pix-pairs needs --dataset FOLDER"):
        load_pairs(pairs_config(tmp_path, dataset=["rm2k"]), "pix2pix-pairs")


def test_pix2pix_pairs_model_and_flags(tmp_path):
    config = pairs_config(tmp_path)
    model = PAIRS(config, 2, 4, 64)
    pix2pix = model_class("pix2pix")(resolve("pix2pix", model_class("pix2pix").uses, {}, {}), 4, 4, 64)
    assert (model.source, model.target) == (0, 1)
    assert parameter_count(model.generator) == parameter_count(pix2pix.generator)  # the zoo's networks, unchanged
    assert parameter_count(model.discriminator) == parameter_count(pix2pix.discriminator)
    assert (config.lambda_l1, config.lr) == (100.0, 2e-4)
    for flag, value in (("source", "left"), ("feature_maps", 8), ("generator_blocks", 3)):
        with pytest.raises(SpriteForgeError, match=f"not used by pix2pix-pairs"):
            pairs_config(tmp_path, **{flag: value})
    with pytest.raises(SpriteForgeError, match="divisible by 64"):
        training_data(PAIRS, pairs_config(tmp_path, image_size=32))


def test_cli_train_pairs_then_stylize_a_folder(tmp_path):
    write_pairs(tmp_path, count=5)
    out = tmp_path / "out"
    result = run_cli("train", "pix2pix-pairs", "--domain-a", tmp_path / "A", "--dataset", tmp_path / "B", "--steps", 2, "--batch", 2,
                     "--evaluate-steps", 2, "--callback-evaluate-l1", "--log-folder", out, "--run-string", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "pix2pix-pairs" / "playground" / "p"
    assert (run / "checkpoints" / "best.safetensors").is_file() and "validation_l1" in (run / "summary.json").read_text()
    (tmp_path / "A" / "notes.txt").write_text("skipped: not a picture")
    result = run_cli("stylize", run, tmp_path / "A", "--out", tmp_path / "sprites", "--colors", 5, "--indexed", "--outline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in (tmp_path / "sprites").iterdir())
    assert written == ["0.png", "1.png", "2.png", "3.png", "4.png"]
    for name in written:
        with Image.open(tmp_path / "sprites" / name) as png:
            assert png.mode == "P"
        sprite = imageio.load_rgba(tmp_path / "sprites" / name)
        assert max(sprite.shape[:2]) == 64 and len(opaque_colours(sprite)) <= 5
    assert_clean_error(run_cli("sample", run, "--out", tmp_path / "x.png", cwd=tmp_path), "turns pictures into pixel art; use `spriteforge stylize`")


# -- stylize ----------------------------------------------------------------------------------------
@pytest.fixture
def cyclegan_run(tmp_path):
    """A freshly initialised tiny cyclegan, exported as a run folder would hold it."""
    model = make_cyclegan(size=32)
    path = tmp_path / "run" / "models" / "generator.safetensors"
    ckpt.save_checkpoint(path, model, 1, include_training_state=False, networks=model.inference_networks)
    return tmp_path / "run"


def test_stylize_size_palette_alpha(tmp_path, cyclegan_run):
    imageio.save_png(smooth_photo(120, 200), tmp_path / "photo.png")
    lines = []
    (written,) = stylize_files(cyclegan_run, [str(tmp_path / "photo.png")], tmp_path / "s.png", size=24, colours=6, echo=lines.append)
    sprite = imageio.load_rgba(written)
    assert sprite.shape == (14, 24, 4)  # longest side --size, the picture's aspect kept
    assert set(np.unique(sprite[..., 3])) <= {0, 255} and 0 < len(opaque_colours(sprite)) <= 6
    assert "200x120 -> 24x14" in lines[0] and "generator run at 32x32" in lines[0]
    (written,) = stylize_files(cyclegan_run, [str(tmp_path / "photo.png")], tmp_path / "big.png", size=50, colours=4, echo=lines.append)
    assert imageio.load_rgba(written).shape == (30, 50, 4) and "generator run at 52x52" in lines[-1]  # above the training size
    (tmp_path / "db.hex").write_text("#000000\n#ff0000\n#00ff00\n#0000ff\n#ffffff\n")
    (written,) = stylize_files(cyclegan_run, [str(tmp_path / "photo.png")], tmp_path / "fixed.png", palette_file=tmp_path / "db.hex",
                               indexed=True, scale=3)
    fixed = imageio.load_rgba(written)
    assert fixed.shape == (19 * 3, 32 * 3, 4)  # default --size: the training size, 32
    assert opaque_colours(fixed) <= {(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)}
    again = stylize_files(cyclegan_run, [str(tmp_path / "photo.png")], tmp_path / "again.png", palette_file=tmp_path / "db.hex",
                          indexed=True, scale=3)  # the same picture gives the same pixel art
    assert np.array_equal(imageio.load_rgba(again[0]), fixed)


def test_stylize_bad_inputs(tmp_path, cyclegan_run):
    imageio.save_png(smooth_photo(40, 40), tmp_path / "good.png")
    (tmp_path / "broken.png").write_text("not an image")
    huge_png_header(tmp_path / "huge.png")
    with pytest.raises(SpriteForgeError, match=r"2 of 3 pictures could not be stylized \(the others were written\); first: .*broken.png"):
        stylize_files(cyclegan_run, [str(tmp_path / name) for name in ("broken.png", "good.png", "huge.png")], tmp_path / "out")
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "broken.png").exists()
    with pytest.raises(SpriteForgeError, match="huge.png: image is too large to decode safely"):
        stylize_files(cyclegan_run, [str(tmp_path / "huge.png")], tmp_path / "h.png")
    long = np.zeros((40, 5000, 4), np.uint8)
    long[..., 3] = 255
    imageio.save_png(long, tmp_path / "long.png")
    lines = []
    stylize_files(cyclegan_run, [str(tmp_path / "long.png")], tmp_path / "l.png", echo=lines.append)
    assert "5000x40 (read at 1/2: over 4096 px)" in lines[0]
    imageio.save_png(smooth_photo(40, 40), tmp_path / "sub" / "good.png")
    with pytest.raises(SpriteForgeError, match="would both be written to"):
        stylize_files(cyclegan_run, [str(tmp_path / "good.png"), str(tmp_path / "sub")], tmp_path / "twice")
    with pytest.raises(SpriteForgeError, match="is a file, but several pictures need a folder"):
        stylize_files(cyclegan_run, [str(tmp_path / "good.png"), str(tmp_path / "long.png")], tmp_path / "l.png")
    with pytest.raises(SpriteForgeError, match="missing.png: no such picture or folder"):
        stylize_files(cyclegan_run, [str(tmp_path / "missing.png")], tmp_path / "m.png")
    with pytest.raises(SpriteForgeError, match="--size must be between 1 and 512"):
        stylize_files(cyclegan_run, [str(tmp_path / "good.png")], tmp_path / "m.png", size=600)
    pix2pix = model_class("pix2pix")(resolve("pix2pix", model_class("pix2pix").uses, {}, {}), 4, 4, 64)
    ckpt.save_checkpoint(tmp_path / "other" / "models" / "generator.safetensors", pix2pix, 1, include_training_state=False,
                         networks=("generator",))
    with pytest.raises(SpriteForgeError, match="a pix2pix model does not turn pictures into pixel art; stylize needs a run of cyclegan or pix2pix-pairs"):
        stylize_files(tmp_path / "other", [str(tmp_path / "good.png")], tmp_path / "m.png")
    with pytest.raises(SpriteForgeError, match="no checkpoint in this folder"):
        stylize_files(tmp_path / "sub", [str(tmp_path / "good.png")], tmp_path / "m.png")
    (tmp_path / "fake.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(SpriteForgeError, match="not a SpriteForge checkpoint"):
        stylize_files(tmp_path / "fake.safetensors", [str(tmp_path / "good.png")], tmp_path / "m.png")


def test_cli_stylize_bad_input_is_one_line(tmp_path, cyclegan_run):
    huge_png_header(tmp_path / "huge.png")
    result = run_cli("stylize", cyclegan_run, tmp_path / "huge.png", "--out", tmp_path / "out.png")
    assert_clean_error(result, "huge.png: image is too large to decode safely")
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1 and not (tmp_path / "out.png").exists()
