"""The command line end to end, and its handling of bad input (one clear line, non-zero exit)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from spriteforge import imageio
from spriteforge.cli import main


def run_cli(*args, cwd=None, env=None):
    """Run `spriteforge …` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "spriteforge", *map(str, args)], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=900)


def assert_clean_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(("error:", "Error:")), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.slow
def test_train_on_rm2k_then_translate(archives, tmp_path):
    result = run_cli("train", "stargan-paired", "--rm2k", "--no-tran", "--steps", 20, "--evaluate-steps", 10,
                     "--callback-evaluate-l1", "--callback-debug-discriminator", "--save-model", "--log-folder", tmp_path / "out", "--run-string", "e2e", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "out" / "stargan-paired" / "playground" / "e2e"
    for name in ("configuration.toml", "command-line.txt", "model-description.txt", "summary.json",
                 "checkpoints/latest.safetensors", "checkpoints/best.safetensors", "models/generator.safetensors",
                 "previews/step_000001.png", "previews/step_000010.png", "previews/step_000020.png"):
        assert (run / name).is_file(), name
    assert len(list((run / "test-images").glob("*.png"))) == 32
    assert (run / "discriminated-images" / "discriminated_test_at_step_20.png").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    assert "generator: 8,446,208 parameters" in (run / "model-description.txt").read_text()

    front = archives_front_view(tmp_path)
    result = run_cli("translate", run, "--front", front, "--out", tmp_path / "sheet.png", "--scale", 2, "--separate")
    assert result.returncode == 0, result.stderr
    sheet = np.array(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (128, 512, 4)
    assert np.array_equal(sheet[::2, 2 * 128 : 3 * 128 : 2], imageio.load_rgba(front, 64))  # the given view is kept exactly
    assert set(np.unique(sheet[..., 3])) <= {0, 255}
    for view in ("back", "left", "front", "right"):
        assert (tmp_path / f"sheet-{view}.png").is_file()

    result = run_cli("train", "--resume", run, "--steps", 22, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"steps": 22' in (run / "summary.json").read_text()


def archives_front_view(tmp_path):
    data_dir = os.environ["SPRITEFORGE_DATA_DIR"]
    return next((p for p in (os.path.join(data_dir, "rm2k", "test", "2-front", "0.png"),) if os.path.exists(p)))


def test_main_job_on_synthetic_data(tmp_path):
    """The README's quick start in miniature: synthetic data, a few steps, then translate a new character."""
    out = tmp_path / "out"
    assert main_ok(["train", "stargan-paired", "--steps", "2", "--image-size", "32", "--log-folder", str(out), "--run-string", "quick",
                    "--profile", "2"])
    assert list((out / "stargan-paired" / "playground" / "quick" / "profile").iterdir())  # torch.profiler trace
    assert main_ok(["data", "synth", "--out", str(tmp_path / "demo"), "--count", "8", "--seed", "1", "--image-size", "32"])
    front = tmp_path / "demo" / "test" / "2-front" / "0.png"
    assert main_ok(["translate", str(out / "stargan-paired" / "playground" / "quick"), "--front", str(front), "--out", str(tmp_path / "s.png")])
    assert np.array(Image.open(tmp_path / "s.png")).shape == (32, 128, 4)


def main_ok(argv):
    try:
        main(argv)
    except SystemExit as exit:
        return exit.code in (0, None)
    return True


def test_bad_flags_are_one_line_errors(tmp_path):
    assert_clean_error(run_cli("train", "stargan-paired", "--lambda-ssim", 3, cwd=tmp_path), "--lambda-ssim not used by stargan-paired")
    assert_clean_error(run_cli("train", "stargan-paired", "--lr-decay", "constant-than-linear", cwd=tmp_path), "constant-than-linear")
    assert_clean_error(run_cli("train", "collagan-x", cwd=tmp_path), "unknown model 'collagan-x'")
    assert_clean_error(run_cli("train", "stargan-paired", "--dataset", tmp_path / "nowhere", cwd=tmp_path), "unknown dataset")
    assert_clean_error(run_cli("train", "--resume", tmp_path, cwd=tmp_path), "checkpoint not found")
    assert not (tmp_path / "output").exists()  # nothing half-made left behind


def test_bad_images_for_translate(tmp_path):
    out = tmp_path / "out"
    assert main_ok(["train", "stargan-paired", "--steps", "1", "--image-size", "32", "--log-folder", str(out), "--run-string", "r"])
    run = out / "stargan-paired" / "playground" / "r"
    truncated = tmp_path / "cut.png"
    data = imageio.save_png(np.full((32, 32, 4), 255, np.uint8), tmp_path / "ok.png").read_bytes()
    truncated.write_bytes(data[:40])
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"keep me")
    assert_clean_error(run_cli("translate", run, "--front", truncated, "--out", sheet), "cut.png: not a readable PNG")
    assert sheet.read_bytes() == b"keep me"  # nothing already written is lost
    imageio.save_png(np.zeros((64, 64, 4), np.uint8), tmp_path / "big.png")
    assert_clean_error(run_cli("translate", run, "--front", tmp_path / "big.png", "--out", sheet), "is 64x64 but 32x32")
    assert_clean_error(run_cli("translate", tmp_path / "ok.png", "--front", tmp_path / "ok.png", "--out", sheet), "not a SpriteForge checkpoint")
    assert_clean_error(run_cli("translate", run, "--out", sheet), "give at least one view")


def test_data_commands(tmp_path, split_folder):
    result = run_cli("data", "inspect", split_folder, "--preview", tmp_path / "p.png")
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "colours/image" in result.stdout and "front onto the back" in result.stdout
    assert (tmp_path / "p.png").is_file()
    result = run_cli("data", "list", env={"SPRITEFORGE_ARCHIVES": str(tmp_path)})
    assert result.returncode == 0 and "rm2k" in result.stdout and "download on first use" in result.stdout
    assert_clean_error(run_cli("data", "download", "nope"), "unknown dataset 'nope'")
