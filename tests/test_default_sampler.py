"""The bundled default sampler (fastgan on TinyHero): it ships small with its card and attribution, loads, samples
pixel art with no model argument, and completes new characters into four-view sheets."""

import numpy as np
from PIL import Image

from spriteforge import api
from spriteforge.inference import BUNDLED, BUNDLED_FOLDER, DEFAULT_SAMPLER, load_for_inference

from test_cli import run_cli

WEIGHTS = BUNDLED_FOLDER / BUNDLED[DEFAULT_SAMPLER]


def test_the_default_sampler_ships_small_with_its_card_and_attribution():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size <= 16 * 2**20
    card = WEIGHTS.with_suffix(".md").read_text(encoding="utf-8")
    for words in ("TinyHero", "CC-BY-SA 3.0", "GPL 3.0", "examples/fastgan-tinyhero.toml", "FID"):
        assert words in card, words
    model, config = load_for_inference(DEFAULT_SAMPLER)
    assert config.model == "fastgan" and hasattr(model, "generator_ema")  # the moving average draws
    result = run_cli("models", "show", "default-sampler")
    assert result.returncode == 0 and "CC-BY-SA 3.0" in result.stdout, result.stderr


def test_sample_with_no_model_draws_pixel_art_sprites(tmp_path):
    result = run_cli("sample", "-n", 4, "--seed", 3, "--out", tmp_path / "grid.png", "--separate")
    assert result.returncode == 0, result.stderr
    sprites = [np.asarray(Image.open(path)) for path in sorted(tmp_path.glob("grid-*.png"))]
    assert len(sprites) == 4
    for sprite in sprites:
        assert sprite.shape == (64, 64, 4) and set(np.unique(sprite[..., 3])) <= {0, 255}
        opaque = sprite[sprite[..., 3] == 255]
        assert 0.05 < len(opaque) / 64**2 < 0.6  # a figure, not an empty or a full square
        assert len(np.unique(opaque[:, :3], axis=0)) <= 32
    again = api.sample("default", 4, seed=3)
    assert all(np.array_equal(np.asarray(image), sprite) for image, sprite in zip(again, sprites))  # the same seed, the same sprites


def test_sheet_with_no_models_completes_four_views(tmp_path):
    result = run_cli("sample", "--sheet", "-n", 2, "--seed", 1, "--out", tmp_path / "sheet.png")
    assert result.returncode == 0, result.stderr
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (2 * 64, 4 * 64, 4) and set(np.unique(sheet[..., 3])) <= {0, 255}
    for row in range(2):
        for view in range(4):
            assert sheet[64 * row : 64 * (row + 1), 64 * view : 64 * (view + 1), 3].any()  # every view drawn
