"""The Python API as a notebook user meets it: load a model, translate PIL images, sample, pixelate, evaluate."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import spriteforge
from spriteforge.data.synthetic import generate_characters
from spriteforge.errors import SpriteForgeError

from tiny_runs import tiny_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"turnaround": tiny_run(root / "t"), "dcgan": tiny_run(root / "d", "dcgan")}


def test_import_stays_light_and_names_the_api():
    code = "import sys, spriteforge; print('torch' in sys.modules, callable(spriteforge.load_model), callable(spriteforge.pixelate))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True", "True"]
    assert {"load_model", "sample", "pixelate", "evaluate"} <= set(spriteforge.__all__)
    with pytest.raises(AttributeError):
        spriteforge.no_such_thing


def test_a_notebook_session(runs, tmp_path):
    model = spriteforge.load_model(runs["turnaround"])  # as a user would, with a run folder
    assert model.imputes and model.views == spriteforge.VIEWS and model.image_size == 32 and "turnaround" in repr(model)
    hero, mage = generate_characters(2, seed=3, size=32)
    front = Image.fromarray(hero[2], "RGBA")
    front.save(tmp_path / "front.png")
    views = model.translate({"front": front})
    assert list(views) == list(spriteforge.VIEWS)
    assert all(isinstance(image, Image.Image) and image.mode == "RGBA" and image.size == (32, 32) for image in views.values())
    assert np.array_equal(np.array(views["front"]), hero[2])  # the given view comes back as given
    assert set(np.unique(np.array(views["back"])[..., 3])) <= {0, 255}
    # the same from a path and from an array, and a batch of characters in one call
    assert np.array_equal(np.array(model.translate({"front": tmp_path / "front.png"})["back"]), np.array(views["back"]))
    many = model.translate_many([{"front": hero[2]}, {"left": mage[1], "back": mage[0]}])
    assert np.array_equal(np.array(many[0]["back"]), np.array(views["back"])) and np.array_equal(np.array(many[1]["left"]), mage[1])
    palette = np.array([[0, 0, 0], [255, 255, 255], [200, 40, 40]], np.uint8)
    from spriteforge.palettes import write_palette

    snapped = np.array(model.translate({"front": front}, palette=write_palette(palette, tmp_path / "three.gpl"))["back"])
    opaque = snapped[snapped[..., 3] == 255][:, :3]
    assert all(tuple(colour) in {(0, 0, 0), (255, 255, 255), (200, 40, 40)} for colour in opaque)
    sheet = spriteforge.sheet(many)
    assert sheet.size == (128, 64) and sheet.mode == "RGBA"

    with pytest.raises(SpriteForgeError, match="32x32 sprites"):
        model.translate({"front": Image.new("RGBA", (64, 64))})
    with pytest.raises(SpriteForgeError, match="no 'top' view"):
        model.translate({"top": front})
    with pytest.raises(SpriteForgeError, match="new characters"):
        model.sample(4)

    sampler = spriteforge.load_model(runs["dcgan"])
    samples = spriteforge.sample(sampler, count=5, seed=7)
    assert len(samples) == 5 and all(image.size == (32, 32) and image.mode == "RGBA" for image in samples)
    again = sampler.sample(count=5, seed=7)
    assert all(np.array_equal(np.array(a), np.array(b)) for a, b in zip(samples, again))  # the same seed, the same sprites
    assert spriteforge.grid(samples).size[0] > 32
    with pytest.raises(SpriteForgeError, match="missing views"):
        sampler.translate({"front": front})

    report = spriteforge.evaluate(model, dataset="synthetic", metrics=["l1", "palette"], limit=3, out=tmp_path / "evaluation")
    assert report["characters"] == 3 and (tmp_path / "evaluation" / "evaluation.json").is_file()


def test_pixelate_in_python():
    art = generate_characters(1, seed=1, size=32)[0, 2]
    big = Image.fromarray(np.repeat(np.repeat(art, 6, 0), 6, 1), "RGBA")
    found = spriteforge.pixelate(big, colours=255)
    assert found.size == (32, 32) and np.array_equal(np.array(found), art)  # the art's own grid is found
    forced = spriteforge.pixelate(big, pixel_size=3, colours=255)  # a forced grid half the real one: each art pixel twice
    assert forced.size == (64, 64) and np.array_equal(np.array(forced)[::2, ::2], art)
    few = spriteforge.pixelate(big, colours=3, outline=True)
    assert len(np.unique(np.array(few)[np.array(few)[..., 3] == 255][:, :3], axis=0)) <= 3
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8), "RGB")
    assert spriteforge.pixelate(photo, size=40, colours=8).size == (40, 30)
    with pytest.raises(SpriteForgeError, match="colours"):
        spriteforge.pixelate(photo, colours=0)
