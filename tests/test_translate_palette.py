"""`translate --palette-from` and `--indexed`: forced palettes (collagan draws with them, other models are
snapped to them), indexed PNG round trips, and one-line errors for bad palette files."""

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models import model_class
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer
from spriteforge.drawing import model_palette, snap_to_palette
from spriteforge.translation import translate_files

from conftest import random_sprite
from test_cli import assert_clean_error, main_ok, run_cli
from test_stargan import tiny_data

COLLAGAN = model_class("collagan")
FORCED = np.array([[255, 0, 0], [0, 128, 255], [20, 20, 20], [250, 240, 200], [0, 200, 0]], np.uint8)


def _train(root, name, **given):
    config = resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults,
                     {"steps": 1, "evaluate_steps": 1, "batch": 2, "image_size": 32, "capacity": 1, "log_folder": str(root),
                      "run_string": name, **given})
    trainer = Trainer(config, data=tiny_data())
    trainer.run()
    return trainer.run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    return {"quantized": _train(root, "quantized", palette_quantization=True), "plain": _train(root, "plain")}


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    """Two given views (front, left) of a character, 32×32, a handful of colours none of which is in FORCED."""
    folder = tmp_path_factory.mktemp("views")
    rng = np.random.default_rng(5)
    paths = {}
    for name in ("front", "left"):
        image = random_sprite(rng, 32)
        imageio.save_png(image, folder / f"{name}.png")
        paths[name] = folder / f"{name}.png"
    return paths


def _palette_png(path, colours):
    image = np.zeros((4, len(colours) + 2, 4), np.uint8)  # a transparent border that must not count
    image[1:3, 1:-1, :3] = colours
    image[1:3, 1:-1, 3] = 255
    imageio.save_png(image, path)
    return path


def _opaque_colours(rgba):
    return {tuple(c) for c in rgba[rgba[..., 3] == 255][:, :3]}


def test_model_palette_and_snapping():
    palette = model_palette(FORCED, 4)
    assert palette.shape == (6, 4) and torch.equal(palette[-1], -torch.ones(4))  # transparent last
    assert np.array_equal(imageio.to_uint8(palette[:5, :, None, None])[:, 0, 0, :3], FORCED)  # exact levels
    image = np.array([[[254, 1, 1, 200], [1, 1, 1, 100], [0, 120, 250, 255]]], np.uint8)
    snapped = snap_to_palette(image, FORCED)
    assert snapped.tolist() == [[[255, 0, 0, 255], [0, 0, 0, 0], [0, 128, 255, 255]]]


def test_collagan_impute_draws_with_a_forced_palette():
    config = resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults, {"steps": 10, "capacity": 1, "palette_quantization": True})
    model = COLLAGAN(config, 4, 4, 32).eval()
    batch = torch.from_numpy(tiny_data().train.images[:2]).float().movedim(-1, -3) / 127.5 - 1
    available = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=torch.bool)
    out = imageio.to_uint8(model.impute(batch, available, torch.tensor([3, 2]), palette=model_palette(FORCED, 4)))
    allowed = {tuple(c) for c in FORCED.tolist()}
    assert {tuple(c) for c in out[out[..., 3] == 255][:, :3]} <= allowed
    assert set(np.unique(out[..., 3]).tolist()) <= {0, 255} and (out[out[..., 3] == 0] == 0).all()


@pytest.mark.parametrize("kind", ["quantized", "plain"])
@pytest.mark.parametrize("source", ["png", "hex"])
def test_every_opaque_pixel_is_in_the_forced_palette(runs, views, tmp_path, kind, source):
    if source == "png":
        palette_file = _palette_png(tmp_path / "palette.png", FORCED)
    else:
        palette_file = tmp_path / "palette.hex"
        palette_file.write_text("; a forced palette\n" + "\n".join("#%02x%02x%02x" % tuple(c) for c in FORCED) + "\n")
    out = tmp_path / "sheet.png"
    written = translate_files(runs[kind], views, out, separate=True, palette_from=palette_file)
    assert len(written) == 5
    allowed = {tuple(c) for c in FORCED.tolist()}
    for path in written:
        image = np.array(Image.open(path).convert("RGBA"))
        assert set(np.unique(image[..., 3]).tolist()) <= {0, 255}
        assert _opaque_colours(image) <= allowed, _opaque_colours(image) - allowed
    sheet = np.array(Image.open(out))
    assert sheet.shape == (32, 128, 4) and len(_opaque_colours(sheet)) >= 2


def test_quantized_model_draws_the_forced_colours_itself(runs, views):
    """Not just the post-snap: the quantising model's generated views already use the forced palette."""
    from spriteforge.inference import load_for_inference
    from spriteforge.drawing import draw_characters

    model, config = load_for_inference(runs["quantized"])
    character = np.zeros((1, 4, 32, 32, 4), np.uint8)
    for name, path in views.items():
        character[0, config.domains.index(name)] = imageio.load_rgba(path, 32)
    given = character[..., 3].reshape(1, 4, -1).max(-1) > 0
    calls = []
    impute = model.impute
    model.impute = lambda *args, **kwargs: calls.append(kwargs) or impute(*args, **kwargs)
    drawn = draw_characters(model, config, character, given, palette=FORCED)[0]
    assert len(calls) == 2 and all("palette" in call for call in calls)
    model.impute = impute
    for index in (0, 3):  # back and right were generated
        assert _opaque_colours(drawn[index]) <= {tuple(c) for c in FORCED.tolist()}


@pytest.mark.parametrize("kind", ["quantized", "plain"])
def test_indexed_round_trip(runs, views, tmp_path, kind):
    rgba = translate_files(runs[kind], views, tmp_path / "rgba.png", separate=True, palette_from=_palette_png(tmp_path / "p.png", FORCED))
    indexed = translate_files(runs[kind], views, tmp_path / "indexed.png", separate=True, scale=2, indexed=True,
                              palette_from=tmp_path / "p.png")
    for plain, paletted in zip(rgba, indexed):
        image = Image.open(paletted)
        assert image.mode == "P"
        assert image.getpalette()[3:3 + 3 * len(FORCED)] == FORCED.reshape(-1).tolist()  # the file's order, after transparent 0
        expected = imageio.upscale(np.array(Image.open(plain)), 2)
        assert np.array_equal(np.array(image.convert("RGBA")), expected)
    # quantised without a forced palette: the sheet's own colours, still exact
    translate_files(runs["quantized"], views, tmp_path / "own.png")
    translate_files(runs["quantized"], views, tmp_path / "own-indexed.png", indexed=True)
    assert np.array_equal(np.array(Image.open(tmp_path / "own-indexed.png").convert("RGBA")), np.array(Image.open(tmp_path / "own.png")))


def test_indexed_refuses_too_many_colours(runs, tmp_path):
    rng = np.random.default_rng(1)
    noisy = np.concatenate([rng.integers(0, 256, (32, 32, 3)), np.full((32, 32, 1), 255)], -1).astype(np.uint8)
    imageio.save_png(noisy, tmp_path / "noisy.png")  # ~1000 colours in the given view itself
    with pytest.raises(SpriteForgeError, match="more than the 255 an indexed PNG holds; force a palette with --palette-from"):
        translate_files(runs["plain"], {"front": tmp_path / "noisy.png"}, tmp_path / "sheet.png", indexed=True)
    assert not (tmp_path / "sheet.png").exists()
    with pytest.raises(SpriteForgeError, match="--soft-alpha cannot be combined with --indexed"):
        translate_files(runs["plain"], {"front": tmp_path / "noisy.png"}, tmp_path / "sheet.png", indexed=True, binary_alpha=False)


def test_bad_palette_files_are_one_line_cli_errors(runs, views, tmp_path):
    rng = np.random.default_rng(2)
    many = np.stack(np.meshgrid(np.arange(20), np.arange(20), indexing="ij"), -1).reshape(-1, 2)  # 400 colours
    imageio.save_png(np.concatenate([many * 12, np.full((400, 1), 7), np.full((400, 1), 255)], -1).astype(np.uint8).reshape(20, 20, 4),
                     tmp_path / "many.png")
    imageio.save_png(np.zeros((4, 4, 4), np.uint8), tmp_path / "empty.png")
    (tmp_path / "binary.dat").write_bytes(bytes(rng.integers(128, 256, 200, dtype=np.uint8)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really")
    (tmp_path / "words.txt").write_text("red\ngreen\n")
    in_process = {"broken.png": "not a readable image", "words.txt": "is not a hex colour"}
    for name, fragment in in_process.items():
        with pytest.raises(SpriteForgeError, match=fragment) as error:
            translate_files(runs["plain"], {"front": views["front"]}, tmp_path / "sheet.png", palette_from=tmp_path / name)
        assert str(tmp_path / name) in str(error.value) and "\n" not in str(error.value)
    cases = {"missing.png": "not found", "binary.dat": "a palette must be a PNG", "empty.png": "no opaque pixel",
             "many.png": "400 colours; a palette has at most 256"}
    base = ["translate", runs["plain"], "--front", views["front"], "--out", tmp_path / "sheet.png"]
    for name, fragment in cases.items():
        result = run_cli(*base, "--palette-from", tmp_path / name, env={"OMP_NUM_THREADS": "1"})
        assert_clean_error(result, str(tmp_path / name), fragment)
        assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr
    assert not (tmp_path / "sheet.png").exists()
    assert main_ok([str(a) for a in base] + ["--palette-from", str(_palette_png(tmp_path / "p.png", FORCED)), "--indexed"])
    assert Image.open(tmp_path / "sheet.png").mode == "P"
