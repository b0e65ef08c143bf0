"""Exports for engines and editors: ONNX graphs checked against PyTorch, palette files round-trip,
`pixelate` on several files and folders with a forced pixel grid."""

import json

import numpy as np
import pytest
from PIL import Image

from spriteforge import imageio
from spriteforge.data.synthetic import generate_characters
from spriteforge.errors import SpriteForgeError
from spriteforge.palettes import convert_palette, read_palette, write_palette

from test_cli import assert_clean_error, main_ok, run_cli
from tiny_runs import tiny_run

PALETTE = np.array([[0, 0, 0], [255, 255, 255], [18, 52, 86], [200, 40, 40], [1, 2, 3]], np.uint8)


@pytest.mark.parametrize("model", ["turnaround", "dcgan"])
def test_onnx_export_matches_pytorch(model, tmp_path, capsys):
    pytest.importorskip("onnx", reason="the export extra is not installed (pip install -e '.[export]')")
    pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install -e '.[export]')")
    from spriteforge.export import compare_with_torch

    run = tiny_run(tmp_path / "runs", model)
    assert main_ok(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "model.onnx"), "--check"])
    assert (tmp_path / "model.onnx").is_file()
    description = json.loads((tmp_path / "model.json").read_text())
    assert description["model"] == model and description["image_size"] == 32
    assert description["inputs"] == (["views", "available"] if model == "turnaround" else ["noise"])
    assert "max abs difference" in capsys.readouterr().err
    difference = compare_with_torch(run, tmp_path / "model.onnx", batch=3)  # another batch size than the export's
    print(f"{model}: onnxruntime vs PyTorch max abs difference {difference:.3g}")
    assert difference < 1e-4
    if model == "turnaround":  # the graph serves given views other than the export's example (front, left)
        import onnxruntime
        import torch

        from spriteforge.inference import load_for_inference

        network, _ = load_for_inference(run, "cpu")
        network.snap_drawn, network.fill_holes, network.remove_specks = False, False, False  # as exported
        views = torch.rand(2, 4, 4, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
        available = torch.tensor([[True, False, False, False], [False, False, False, True]])  # the back; the right
        with torch.no_grad():
            expected = network.impute_all(views, available).numpy()
        session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {"views": views.numpy(), "available": available.numpy()})[0]
        assert abs(got - expected).max() < 1e-4


def test_onnx_export_refuses_other_names(tmp_path):
    assert_clean_error(run_cli("export", tmp_path, "--out", tmp_path / "model.pt"), "name it model.onnx")


@pytest.mark.parametrize("suffix", [".gpl", ".pal", ".hex", ".txt", ".png"])
def test_palette_formats_round_trip(suffix, tmp_path):
    path = write_palette(PALETTE, tmp_path / f"colours{suffix}")
    assert np.array_equal(read_palette(path), PALETTE)


def test_palette_files_from_editors_and_conversion(tmp_path):
    (tmp_path / "gimp.gpl").write_text("GIMP Palette\nName: Test\nColumns: 4\n#\n  0   0   0\tBlack\n255 255 255 White\n"
                                       "18 52 86 Navy blue\n\n255 255 255 again\n")
    assert read_palette(tmp_path / "gimp.gpl").tolist() == [[0, 0, 0], [255, 255, 255], [18, 52, 86]]
    (tmp_path / "jasc.pal").write_text("JASC-PAL\r\n0100\r\n2\r\n200 40 40\r\n1 2 3\r\n")
    assert read_palette(tmp_path / "jasc.pal").tolist() == [[200, 40, 40], [1, 2, 3]]
    (tmp_path / "short.pal").write_text("JASC-PAL\n0100\n3\n1 2 3\n")
    with pytest.raises(SpriteForgeError, match="says 3 colours but 1 follow"):
        read_palette(tmp_path / "short.pal")
    (tmp_path / "bad.gpl").write_text("GIMP Palette\n300 0 0 red\n")
    with pytest.raises(SpriteForgeError, match="outside 0-255"):
        read_palette(tmp_path / "bad.gpl")
    path, count = convert_palette(tmp_path / "gimp.gpl", tmp_path / "out.pal")
    assert count == 3 and path.read_text().splitlines()[:3] == ["JASC-PAL", "0100", "3"]
    assert main_ok(["palette", "convert", str(tmp_path / "jasc.pal"), str(tmp_path / "lospec.hex")])
    assert (tmp_path / "lospec.hex").read_text() == "c82828\n010203\n"
    assert_clean_error(run_cli("palette", "convert", tmp_path / "jasc.pal", tmp_path / "x.aco"), "unknown palette format")


def test_pixelate_folders_several_files_and_a_forced_grid(tmp_path):
    art = generate_characters(3, seed=2, size=32)[:, 2]
    for index, sprite in enumerate(art):
        imageio.save_png(imageio.upscale(sprite, 4), tmp_path / "in" / f"hero{index}.png")
    imageio.save_png(imageio.upscale(art[0], 4), tmp_path / "loose.png")
    write_palette(PALETTE, tmp_path / "p.gpl")
    assert main_ok(["pixelate", str(tmp_path / "in"), str(tmp_path / "loose.png"), "--out", str(tmp_path / "out"), "--colors", "255"])
    for name in ("hero0", "hero1", "hero2", "loose"):
        assert np.array_equal(imageio.load_rgba(tmp_path / "out" / f"{name}.png"), art[int(name[-1]) if name != "loose" else 0])
    assert main_ok(["pixelate", str(tmp_path / "loose.png"), "--out", str(tmp_path / "half.png"), "--pixel-size", "2", "--colors", "255"])
    assert np.array(Image.open(tmp_path / "half.png")).shape == (64, 64, 4)
    assert main_ok(["pixelate", str(tmp_path / "loose.png"), "--out", str(tmp_path / "gpl.png"), "--palette", str(tmp_path / "p.gpl")])
    used = imageio.load_rgba(tmp_path / "gpl.png")
    assert {tuple(c) for c in used[used[..., 3] == 255][:, :3]} <= {tuple(c) for c in PALETTE}
    assert_clean_error(run_cli("pixelate", tmp_path / "loose.png", "--out", tmp_path / "x.png", "--pixel-size", "999"), "--pixel-size 999")
