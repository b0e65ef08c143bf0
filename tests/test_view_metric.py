"""Pose correctness (the shipped view classifier, `--metrics view`) and the hole / opaque-area metrics."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ARCHIVES
from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation import metrics as m
from spriteforge.evaluation import reports, views
from spriteforge.evaluation.case_list import Case, CharacterViews
from spriteforge.evaluation.protocol import case_metrics, generate, run_protocol
from spriteforge.models.baselines import CopyBaseline, MirrorBaseline
from spriteforge.data.batches import to_model_input

ARCHIVE_NAMES = ("tiny-hero.zip", "rpg-maker-2000.zip", "rpg-maker-xp.zip", "rpg-maker-vxace.zip", "miscellaneous.zip")
PER_ARCHIVE = 10


def _rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGBA")).copy()
    array[array[..., 3] == 0] = 0
    return array


def test_characters(count: int = PER_ARCHIVE) -> np.ndarray:
    """uint8 [N, 4, 64, 64, 4]: `count` evenly spaced test characters of every archive found (read from the zip)."""
    found = [ARCHIVES / name for name in ARCHIVE_NAMES if (ARCHIVES / name).is_file()]
    if not found:
        pytest.skip("dataset archives not available (set SPRITEFORGE_ARCHIVES)")
    characters = []
    for archive in found:
        with zipfile.ZipFile(archive) as bundle:
            names = set(bundle.namelist())
            stems = sorted((n.rsplit("/", 1)[1] for n in names if n.startswith("test/0-back/") and n.endswith(".png")),
                           key=lambda s: int(s[:-4]) if s[:-4].isdigit() else 0)
            for pick in np.linspace(0, len(stems) - 1, count).round().astype(int):
                characters.append(np.stack([_rgba(bundle.read(f"test/{d}-{view}/{stems[pick]}")) for d, view in enumerate(VIEWS)]))
    return np.stack(characters)


test_characters.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def real():
    return test_characters()


def test_shipped_classifier_loads_small_and_fast():
    assert views.WEIGHTS.is_file() and views.MODEL_CARD.is_file()
    assert views.WEIGHTS.stat().st_size < 1_000_000
    classifier = views.load_classifier()
    assert not classifier.training
    labels = views.classify_views(torch.zeros(3, 4, 64, 64) - 1)
    assert labels.dtype == torch.long and labels.shape == (3,) and ((labels >= 0) & (labels < 4)).all()
    assert "research use" in views.MODEL_CARD.read_text()


def test_transparent_colour_does_not_matter():
    image = torch.rand(2, 4, 64, 64) * 2 - 1
    image[:, 3] = torch.where(image[:, 3] > 0, 1.0, -1.0)
    junk = image.clone()
    junk[:, :3] = torch.where(image[:, 3:4] < 0, torch.rand(2, 3, 64, 64), image[:, :3])
    classifier = views.load_classifier()
    with torch.no_grad():
        assert torch.allclose(classifier(image), classifier(junk), atol=1e-5)


def test_accuracy_on_real_test_characters(real):
    images = to_model_input(torch.from_numpy(real), 4)
    labels = views.classify_views(images.flatten(0, 1))
    accuracy = (labels == torch.arange(4).repeat(len(real))).float().mean()
    assert accuracy >= 0.9, f"view classifier accuracy {accuracy:.3f} on {len(real)} real test characters"


def test_copy_scores_low_on_back_and_front_truth_scores_high(real):
    images = to_model_input(torch.from_numpy(real), 4)
    characters = CharacterViews(real, 4)
    for target, given in ((0, (2,)), (2, (0,))):
        case = Case(target, given)
        copied = generate(CopyBaseline(), characters, case, "cpu")
        assert views.view_score(copied, target) < 0.25  # a front copied into the back slot is a front
        assert views.view_score(images[:, target], target) > 0.85
    left = generate(MirrorBaseline(), characters, Case(1, (3,)), "cpu")  # the mirrored right faces left
    assert views.view_score(left, 1) > 0.75
    assert views.view_correct(images[:, 2], 2).dtype == torch.bool
    assert np.isnan(views.view_score(images[:0, 2], 2))


def test_view_metric_in_the_protocol(real, tmp_path):
    report = run_protocol({"baseline:copy": CopyBaseline()}, real[:12], selected=("l1", "view", "palette"))
    rows = report["systems"]["baseline:copy"]["cases"]
    back_from_front = next(r for r in rows if r["target"] == "back" and r["given"] == ["front"])
    assert back_from_front["view"] <= 0.25 and 0 <= report["systems"]["baseline:copy"]["by_missing"]["all"]["view"] <= 1
    assert report["metrics"] == ["l1", "view", "palette"]
    assert min(report["view_classifier"]["accuracy_on_real_views"].values()) >= 0.75
    text = reports.markdown(report, "t")
    assert " view |" in text
    assert "holes" in text and "specks (real)" in text and "opaque/true" in text


def test_view_metric_skipped_where_it_cannot_apply():
    small = np.zeros((3, 4, 16, 16, 4), np.uint8)
    small[:, :, 4:12, 4:12] = 255
    report = run_protocol({"baseline:copy": CopyBaseline()}, small, selected=("l1", "view"))
    assert "view" not in report["metrics"] and "64×64" in report["skipped_metrics"]["view"]
    assert "view: not measured" in reports.markdown(report)
    with pytest.raises(SpriteForgeError, match="64×64"):
        run_protocol({"baseline:copy": CopyBaseline()}, small, selected=("view",))
    with pytest.raises(SpriteForgeError, match=r"images \[N, 4, 64, 64\]"):
        views.classify_views(torch.zeros(2, 4, 16, 16))


def test_corrupt_weights_give_one_line(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SpriteForgeError, match="not a valid view classifier"):
        views.load_classifier(str(bad))
    with pytest.raises(SpriteForgeError, match="missing"):
        views.load_classifier(str(tmp_path / "absent.safetensors"))


# -- holes and opaque area --------------------------------------------------------------------------
def ring_sprite() -> np.ndarray:
    """12×12: an opaque 6×6 block with a 2×2 transparent hole inside, and a notch open to the outside."""
    image = np.zeros((12, 12, 4), np.uint8)
    image[3:9, 3:9] = (200, 50, 50, 255)
    image[5:7, 5:7] = 0  # enclosed: 4 pixels
    image[3:5, 7] = 0  # a notch in the top edge, open to the border: not a hole
    return image


@pytest.mark.parametrize("use_scipy", [True, False])
def test_enclosed_holes_on_a_hand_made_sprite(use_scipy):
    if use_scipy:
        pytest.importorskip("scipy")
    ring = ring_sprite()
    diagonal = np.zeros((5, 5, 4), np.uint8)
    diagonal[..., 3] = 255
    diagonal[0, 0, 3] = 0  # open corner
    diagonal[1, 1, 3] = 0  # touches the open corner only diagonally: enclosed under 4-connectivity
    semi = ring.copy()
    semi[5, 5, 3] = 127  # alpha below 128 is transparent
    semi[6, 6, 3] = 128  # alpha 128 is opaque
    empty = np.zeros((12, 12, 4), np.uint8)
    padded = np.zeros((12, 12, 4), np.uint8)
    padded[:5, :5] = diagonal
    images = np.stack([ring, padded, semi, empty])
    assert m.enclosed_holes(images, use_scipy=use_scipy).tolist() == [4, 1, 3, 0]
    assert m.enclosed_holes(images[:0], use_scipy=use_scipy).tolist() == []


def test_flood_fill_agrees_with_scipy():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(0)
    images = np.zeros((20, 24, 24, 4), np.uint8)
    images[..., 3] = np.where(rng.random((20, 24, 24)) < 0.55, 255, 0)
    assert m.enclosed_holes(images, use_scipy=True).tolist() == m.enclosed_holes(images, use_scipy=False).tolist()


def test_opaque_area_and_holes_in_case_metrics():
    real = np.zeros((2, 4, 12, 12, 4), np.uint8)
    real[:, :] = ring_sprite()
    views_ = to_model_input(torch.from_numpy(real), 4)
    fake = views_[:, 0].clone()
    fake[0, 3, :6] = -1  # first image: the top half cut away (only the bottom half of the block stays)
    row = case_metrics(fake, CharacterViews(real, 4), Case(0, (2,)), ("palette",))
    truth = m.opaque_counts(real[:, 0])
    drawn = m.opaque_counts(m.to_uint8(fake))
    assert truth.tolist() == [30, 30] and drawn.tolist() == [16, 30]
    assert row["opaque_ratio"] == pytest.approx(46 / 60)
    assert row["opaque"] == 23 and row["opaque_truth"] == 30
    assert row["holes_truth"] == 4 and row["holes"] == pytest.approx((0 + 4) / 2)  # the cut opens the hole
    assert row["specks"] == 0 and row["specks_truth"] == 0
    fake[1, 3, 0, 0] = 1  # a lone opaque pixel in the corner of the second image, away from the figure
    row = case_metrics(fake, CharacterViews(real, 4), Case(0, (2,)), ("palette",))
    assert row["specks"] == pytest.approx((0 + 1) / 2) and row["specks_truth"] == 0


def test_evaluate_cli_reports_view_and_holes(tmp_path, capsys):
    import json

    from conftest import write_split_folder
    from spriteforge.cli import main

    folder = write_split_folder(tmp_path / "sprites", train=2, test=3)
    main(["evaluate", "baseline:mirror", "--dataset", str(folder), "--metrics", "l1,view,palette", "--out", str(tmp_path / "eval")])
    text = capsys.readouterr().out
    assert " view |" in text and " holes |" in text and "accuracy on the real views" in text
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    means = report["systems"]["baseline:mirror"]["by_missing"]
    assert set(means) == {"1", "2", "3", "all"} and 0 <= means["all"]["view"] <= 1
    assert means["all"]["opaque_ratio"] > 0 and means["all"]["holes"] >= 0
