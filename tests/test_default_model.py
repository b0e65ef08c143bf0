"""The bundled default imputation model: it ships, loads, draws, and is described by its card."""

import numpy as np
import pytest
from PIL import Image

from spriteforge import imageio
from spriteforge.data.synthetic import generate_characters
from spriteforge.inference import BUNDLED, BUNDLED_FOLDER, load_for_inference

from test_cli import assert_clean_error, main_ok, run_cli

WEIGHTS = BUNDLED_FOLDER / BUNDLED["default"]


def test_the_default_ships_small_with_its_card():
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size <= 16 * 2**20
    card = WEIGHTS.with_suffix(".md").read_text(encoding="utf-8")
    for words in ("research", "CC-BY-SA 3.0", "examples/turnaround-default.toml", "pose correctness"):
        assert words in card, words


def test_translate_with_no_model_uses_the_default(tmp_path):
    front = imageio.save_png(generate_characters(1, seed=5)[0, 2], tmp_path / "front.png")
    assert main_ok(["translate", "--front", str(front), "--out", str(tmp_path / "sheet.png"), "--scale", "2"])
    sheet = np.array(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (128, 512, 4)
    assert np.array_equal(sheet[::2, 256:384:2], imageio.load_rgba(front, 64))  # the given view, exactly
    assert set(np.unique(sheet[..., 3])) <= {0, 255}
    colours = {tuple(c) for c in imageio.load_rgba(front, 64).reshape(-1, 4) if c[3] == 255}
    drawn = sheet[::2, ::2].reshape(-1, 4)
    assert drawn[:, 3].any() and {tuple(c) for c in drawn if c[3] == 255} <= colours  # the front's own colours only


def test_default_names_the_bundled_model_everywhere(tmp_path):
    model, config = load_for_inference("default")
    assert config.model == "turnaround" and model.imputes
    result = run_cli("models")
    assert result.returncode == 0 and "default" in result.stdout and "turnaround" in result.stdout, result.stderr
    result = run_cli("models", "show", "default")
    assert result.returncode == 0 and "research" in result.stdout


def test_missing_and_corrupt_models_are_one_line(tmp_path):
    front = imageio.save_png(generate_characters(1, seed=5)[0, 2], tmp_path / "front.png")
    assert_clean_error(run_cli("translate", "--model", tmp_path / "nowhere", "--front", front, "--out", tmp_path / "s.png"),
                       "no such run folder or checkpoint")
    corrupt = tmp_path / "weights.safetensors"
    corrupt.write_bytes(WEIGHTS.read_bytes()[:5000])
    assert_clean_error(run_cli("translate", "--model", corrupt, "--front", front, "--out", tmp_path / "s.png"), "not a SpriteForge checkpoint")
    assert_clean_error(run_cli("translate", "--front", front, "--out", tmp_path / "s.webp"), "written as PNG")
    assert_clean_error(run_cli("models", "show", tmp_path / "nope"), "neither a bundled model")
    assert not (tmp_path / "s.png").exists()
