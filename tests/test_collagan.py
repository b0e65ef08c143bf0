"""CollaGAN / MDIGAN: architecture sizes, each loss on known answers, the input-dropout sampler,
palette exactness, learning on a fixed batch, resume bit-identity and the CLI end to end."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.models import losses, model_class
from spriteforge.models.blocks import parameter_count
from spriteforge.models.collagan import AffluentGenerator, temperature_at
from spriteforge.models.views import dropout_probabilities, sample_kept_views
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_cli import main_ok, run_cli
from test_stargan import _state, tiny_data

COLLAGAN = model_class("collagan")


def make(size=32, **given):
    config = resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults, {"steps": 100, "capacity": 1, **given})
    return COLLAGAN(config, 4, 4, size)


def sprites(count=2, size=32):
    return torch.from_numpy(tiny_data(size=size).train.images[:count]).float().movedim(-1, -3) / 127.5 - 1


def test_parameter_counts_match_the_reference():
    # §4.2: ~6.57M (c = 1), ~26.2M (c = 2), ~104.9M (c = 4: 36.1M in the encoders, 68.8M in the decoder).
    for capacity, expected in ((1, 6.57e6), (2, 26.2e6)):
        assert parameter_count(AffluentGenerator(4, 4, capacity)) == pytest.approx(expected, rel=0.002)
    big = AffluentGenerator(4, 4, 4)
    encoders = sum(parameter_count(branch) for branch in big.branches)
    assert parameter_count(big) == pytest.approx(104.9e6, rel=0.001)
    assert encoders == pytest.approx(36.1e6, rel=0.002) and parameter_count(big) - encoders == pytest.approx(68.8e6, rel=0.002)
    assert parameter_count(make(size=64).discriminator) == pytest.approx(44.7e6, rel=0.002)


def test_shapes_and_missing_views_are_zeros():
    model = make().eval()
    views = torch.rand(3, 4, 4, 32, 32) * 2 - 1
    available = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 1], [1, 1, 0, 1]], dtype=torch.bool)
    target = torch.tensor([0, 1, 2])
    out = model.impute(views, available, target)
    assert out.shape == (3, 4, 32, 32) and out.abs().max() <= 1
    changed = torch.where(available[:, :, None, None, None], views, torch.rand_like(views))
    assert torch.equal(model.impute(changed, available, target), out)  # what is missing is never read
    scores, logits = model.discriminator(views[:, 0])
    assert scores.shape == (3, 1, 1, 1) and logits.shape == (3, 4)
    assert COLLAGAN.evaluation_given_views == 3


def test_target_prior_puts_the_trivial_guess_in_the_target_slot():
    from spriteforge.models.views import guess_views

    views = torch.rand(3, 4, 4, 32, 32) * 2 - 1
    available = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    target = torch.tensor([3, 1, 0])  # right from left (mirror), left from right (mirror), back from front (copy)
    guessed = guess_views(views, available, target)
    assert torch.equal(guessed[0], views[0, 1].flip(-1)) and torch.equal(guessed[1], views[1, 3].flip(-1))
    assert torch.equal(guessed[2], views[2, 2])
    assert torch.equal(guess_views(views, available, target, mirror=False)[0], views[0, 1])  # copy: the other side, unflipped
    nothing = torch.zeros(1, 4, dtype=torch.bool)
    assert guess_views(views[:1], nothing, target[:1], empty_ok=True).abs().sum() == 0
    with pytest.raises(SpriteForgeError, match="no view given"):
        guess_views(views[:1], nothing, target[:1])
    model = make(target_prior="baseline").eval()
    seen = []
    model.generator.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    model.impute(views, available, target)
    inputs = seen[0]
    assert torch.equal(inputs[torch.arange(3), target], guessed)  # the target slot holds the guess
    dropped = ~available
    dropped[torch.arange(3), target] = False
    assert inputs[dropped].abs().sum() == 0 and torch.equal(inputs[available], views[available])
    assert make().config.target_prior == "none"  # the paper's MDIGAN: an empty target slot
    with pytest.raises(SpriteForgeError, match="needs the four views"):
        COLLAGAN(resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults, {"capacity": 1, "target_prior": "baseline"}), 3, 4, 32)


def test_residual_target_prior_starts_at_the_guess_and_learns_a_bounded_correction():
    from spriteforge.models.views import guess_views

    torch.manual_seed(0)
    views = sprites(4)
    available = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    target = torch.tensor([3, 1, 0, 3])
    model = make(target_prior="residual")
    assert parameter_count(model.generator) == parameter_count(make().generator)  # same network, new output rule
    model.eval()
    assert torch.equal(model.impute(views, available, target), guess_views(views, available, target))  # zero correction
    model.train()
    for step in range(3):
        model.train_step(views, step, step / 100)
    model.eval()
    drawn = model.impute(views, available, target)
    assert not torch.equal(drawn, guess_views(views, available, target))  # it learnt a correction
    assert drawn.min() >= -1 and drawn.max() <= 1  # clamped at inference
    with pytest.raises(SpriteForgeError, match="--target-prior residual needs the four views"):
        COLLAGAN(resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults, {"capacity": 1, "target_prior": "residual"}), 3, 4, 32)


def test_select_target_prior_draws_only_pixels_of_the_given_views():
    from spriteforge.models.views import guess_views

    torch.manual_seed(0)
    views = sprites(4)
    available = torch.tensor([[0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    target = torch.tensor([3, 1, 0, 3])
    model = make(target_prior="select", lambda_adversarial=0.0, lambda_domain=0.0)
    model.eval()
    assert torch.equal(model.impute(views, available, target), guess_views(views, available, target))  # the guess wins
    model.train()
    for step in range(3):
        model.train_step(views, step, step / 100)
    assert model.generator.to_image.weight.abs().sum() > 0  # the head learns
    with torch.no_grad():  # a model that prefers other candidates in places
        model.generator.to_image.weight.normal_(0, 1)
    model.eval()
    drawn = model.impute(views, available, target)
    assert not torch.equal(drawn, guess_views(views, available, target))
    for row in range(len(views)):  # every pixel is, at its place, the empty pixel or a given view's (mirrored or not)
        given = views[row][available[row]]
        candidates = torch.cat([torch.full_like(given[:1], -1.0), given, given.flip(-1)])
        assert (candidates == drawn[row]).all(1).any(0).all()


def test_select_trains_with_the_full_paper_loss():
    torch.manual_seed(0)
    model = make(target_prior="select", palette_quantization=True)
    results = [model.train_step(sprites(2), step, step / 10) for step in range(2)]
    assert all(math.isfinite(value) for value in results[-1].values())
    assert {"generator/selection", "generator/adversarial", "discriminator/total"} <= results[-1].keys()


def test_selection_loss_known_answers():
    from spriteforge.models.collagan import select_pixels

    views = sprites(1)  # [1, 4, C, H, W]
    kept = torch.tensor([[True, False, True, False]])
    guess = views[:, 0]
    uniform = torch.zeros(1, 10, *views.shape[-2:])
    # Uniform logits over the 6 allowed candidates: −log(matching count / 6) where something matches.
    image, loss = select_pixels(uniform, guess, views, kept, hard=False, truth=views[:, 0])
    matches = torch.stack([guess, torch.full_like(guess, -1), views[:, 0], views[:, 2], views[:, 0].flip(-1), views[:, 2].flip(-1)], 1)
    count = (matches == views[:, 0][:, None]).all(2).sum(1).float()
    assert math.isclose(loss.item(), (-(count / 6).log()).mean().item(), rel_tol=1e-5)
    assert torch.allclose(image, matches.mean(1))
    # A confident right answer costs ~0; the hard pick is exact; a dropped view is never picked.
    confident = uniform.clone()
    confident[:, 5] = 50.0  # slot 3, not kept: masked out
    confident[:, 4] = 20.0  # slot 2 as it is
    image, loss = select_pixels(confident, guess, views, kept, hard=True, truth=views[:, 2])
    assert torch.equal(image, views[:, 2]) and loss.item() < 1e-6


def test_ssim_and_histogram_and_coverage_known_answers():
    images = sprites()[:, 0]
    assert torch.allclose(losses.ssim(images, images), torch.ones(2), atol=1e-5)
    assert losses.ssim_loss(images, images).abs().max() < 1e-5
    assert losses.ssim(images, -images).max() < 0.5
    assert losses.histogram_loss(images, images).item() == pytest.approx(0.0, abs=1e-5)
    assert losses.histogram_loss(images, images.flip(0)).item() > 0.05
    histogram = losses.log_chroma_histogram(images)
    assert histogram.shape == (2, 3, 64, 64) and torch.allclose(histogram.flatten(1).sum(1), torch.ones(2))
    palette, valid = losses.palettes_of(images.unsqueeze(1), torch.ones(2, 1, dtype=torch.bool))
    assert losses.palette_coverage_loss(images, palette, valid, 1e-3).item() == pytest.approx(0.0, abs=1e-6)
    one_colour = palette[:, 0, :, None, None].expand_as(images)  # every pixel the first colour
    unused = (valid.sum(1) - 1).float() / valid.sum(1)
    assert torch.allclose(losses.palette_coverage_loss(one_colour, palette, valid, 1e-3), unused.mean(), atol=1e-5)


@pytest.mark.parametrize("strategy", ["none", "original", "aggressive", "balanced", "conservative"])
def test_input_dropout_frequencies(strategy):
    torch.manual_seed(1)
    draws = 20000
    target = torch.randint(4, (draws,))
    kept = sample_kept_views(target, 4, strategy, 0.5)
    assert not kept[torch.arange(draws), target].any()  # the target is always dropped
    dropped = 4 - kept.sum(1)
    frequencies = [(dropped == k).float().mean().item() for k in (1, 2, 3)]
    assert frequencies == pytest.approx(list(dropout_probabilities(strategy, 0.5)), abs=0.015)
    for k in (2, 3):  # given k, uniform over the 3 valid masks for the target
        rows = (dropped == k) & (target == 0)
        if rows.sum() > 300:
            masks, counts = kept[rows].unique(dim=0, return_counts=True)
            assert len(masks) == 3 and (counts.float() / rows.sum()).sub(1 / 3).abs().max() < 0.05


def test_curriculum_stays_in_range():
    torch.manual_seed(2)
    for progress, expected in ((0.1, 1), (0.2, 2), (0.4, 3)):
        kept = sample_kept_views(torch.randint(4, (500,)), 4, "curriculum", progress)
        assert ((4 - kept.sum(1)) == expected).all()
    target = torch.randint(4, (5000,))
    kept = sample_kept_views(target, 4, "curriculum", 0.9)
    assert kept.sum(1).min() >= 1 and not kept[torch.arange(5000), target].any()
    assert (4 - kept.sum(1)).float().mean().item() == pytest.approx(0.14 + 2 * 0.43 + 3 * 0.43, abs=0.05)


def test_defaults_are_the_papers_mdigan():
    config = resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults, {})
    assert (config.capacity, config.lambda_l1, config.lambda_l1_backward, config.lambda_ssim, config.lambda_domain) == (4, 100, 10, 10, 10)
    assert (config.input_dropout, config.cycled_source_replacer) == ("conservative", "forward")


def test_temperature_annealing():
    config = resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults, {"steps": 8000, "temperature": 1.0, "palette_quantization": True})
    values = {kind: [temperature_at(type(config)({**config, "annealing": kind}), t) for t in (0.0, 0.5, 1.0)]
              for kind in ("none", "linear", "cosine", "expcosine")}
    assert values["none"] == [1.0, 1.0, 1.0]
    assert values["linear"] == pytest.approx([1.0, 0.5, 1e-8])
    assert values["cosine"][0] == pytest.approx(1.0) and values["cosine"][1] == pytest.approx(0.5)  # 4 cycles: cos(4π) = 1
    assert values["expcosine"][1] == pytest.approx(0.5**4)


def test_impute_uses_only_the_given_colours():
    model = make(palette_quantization=True).eval()
    views = sprites()
    views[:, 1, :3] = views[:, 1, :3] * 0.999 + 0.0003  # colours that are not on uint8 levels must be rounded
    available = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=torch.bool)
    out = imageio.to_uint8(model.impute(views, available, torch.tensor([3, 2])))
    given = imageio.to_uint8(views)
    for row in range(2):
        allowed = {tuple(c) for d in np.flatnonzero(available[row]) for c in given[row, d].reshape(-1, 4)}
        produced = {tuple(c) for c in out[row].reshape(-1, 4)}
        assert produced <= allowed, produced - allowed
    assert (127, 127, 127, 127) not in produced


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(lr=2e-3, input_dropout="none")
    batch = sprites(2)
    l1 = [model.train_step(batch, step, step / 6)["generator/l1"] for step in range(6)]
    assert np.mean(l1[-2:]) < 0.95 * np.mean(l1[:2]) and l1[-1] < l1[0]


def test_every_option_trains():
    torch.manual_seed(0)
    model = make(palette_quantization=True, lambda_palette=1.0, lambda_histogram=0.25, lambda_regularization=1e-5,
                 perturb_palette=1.0, cycled_source_replacer="dropout", input_dropout="curriculum", annealing="expcosine")
    result = model.train_step(sprites(2), 0, 0.7)
    assert all(math.isfinite(value) for value in result.values())
    assert {"generator/palette", "generator/histogram", "generator/regularization"} <= result.keys()
    with pytest.raises(SpriteForgeError, match="--lambda-palette needs --palette-quantization"):
        make(lambda_palette=1.0)
    with pytest.raises(SpriteForgeError, match="--lambda-selection weighs the pixel selection of --target-prior select"):
        make(lambda_selection=2.0)
    with pytest.raises(SpriteForgeError, match="not used by collagan"):
        make(lambda_gp=10.0)


def test_work_with_zero_weight_is_skipped():
    torch.manual_seed(0)
    batch = sprites(2)
    for weights, generator_calls in (({"lambda_adversarial": 0.0, "lambda_domain": 0.0}, 2),
                                     ({"lambda_adversarial": 0.0, "lambda_domain": 0.0, "lambda_l1_backward": 0.0, "lambda_ssim": 0.0}, 1)):
        model = make(target_prior="residual", **weights)
        discriminator = {name: value.clone() for name, value in model.discriminator.state_dict().items()}
        calls = []
        model.generator.register_forward_hook(lambda *_: calls.append(1))
        result = model.train_step(batch, 0, 0.0)
        assert len(calls) == generator_calls  # the forward draw, plus the cycle only while it is weighted
        assert not any(key.startswith("discriminator/") for key in result)
        assert all(torch.equal(value, discriminator[name]) for name, value in model.discriminator.state_dict().items())
        assert result["generator/adversarial"] == 0 and math.isfinite(result["generator/total"])


def _trainer(tmp_path, name, **given):
    config = resolve("collagan", COLLAGAN.uses, COLLAGAN.defaults,
                     {"steps": 2, "evaluate_steps": 1, "batch": 2, "image_size": 32, "log_folder": str(tmp_path),
                      "run_string": name, "callback_evaluate_l1": True, "palette_quantization": True, "capacity": 1, **given})
    return Trainer(config, data=tiny_data())


def test_resume_is_bit_identical(tmp_path):
    straight = _trainer(tmp_path, "straight", callback_debug_discriminator=True)
    straight.run()
    assert (straight.run_dir / "discriminated-images" / "discriminated_test_at_step_2.png").is_file()
    interrupted = _trainer(tmp_path, "interrupted", callback_debug_discriminator=True)
    interrupted.run(stop_at=1)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    assert resumed.state.step == 1
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert straight.state.best_step == resumed.state.best_step
    names = sorted(p.name for p in (resumed.run_dir / "test-images").glob("0000_*.png"))
    assert [n.split("_")[1] for n in names] == ["missing-1", "missing-2", "missing-3"]  # 0000_missing-1_at_step_N.png


def test_cli_train_then_translate_from_two_views(tmp_path):
    """Train on a small folder of the built-in synthetic characters, then draw two views from two."""
    out = tmp_path / "out"
    assert main_ok(["data", "synth", "--out", str(tmp_path / "demo"), "--count", "8", "--seed", "1", "--image-size", "32"])
    result = run_cli("train", "collagan", "--dataset", tmp_path / "demo", "--steps", 2, "--batch", 2, "--image-size", 32,
                     "--capacity", 1, "--palette-quantization", "--log-folder", out, "--run-string", "quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = out / "collagan" / "playground" / "quick"
    assert "generator: 6,565,472 parameters" in (run / "model-description.txt").read_text()
    assert len(list((run / "test-images").glob("*_missing-2_at_step_*.png"))) >= 1
    front, left = (tmp_path / "demo" / "test" / name / "0.png" for name in ("2-front", "1-left"))
    result = run_cli("translate", run, "--front", front, "--left", left, "--out", tmp_path / "s.png")
    assert result.returncode == 0, result.stderr
    sheet = np.array(Image.open(tmp_path / "s.png"))
    assert sheet.shape == (32, 128, 4)
    assert np.array_equal(sheet[:, 64:96], imageio.load_rgba(front, 32))
    colours = {tuple(c) for path in (front, left) for c in imageio.load_rgba(path, 32).reshape(-1, 4)}
    assert {tuple(c) for c in sheet[:, :32].reshape(-1, 4)} <= colours | {(0, 0, 0, 0)}


@pytest.mark.parametrize("replacer", ["forward", "dropout"])
def test_cycle_inputs(replacer):
    model = make(cycled_source_replacer=replacer)
    batch = torch.rand(1, 4, 4, 8, 8)
    kept = torch.tensor([[True, False, False, True]])  # target 2, view 1 dropped
    fake = torch.full((1, 4, 8, 8), 7.0)
    views, cycle_kept, cycle_target, source = model.cycle_inputs(batch, kept, torch.tensor([2]), fake)
    assert cycle_target.tolist() == [0, 1, 3] and source.tolist() == [0, 0, 0]
    expected_kept = [[False, False, True, True], [True, False, True, True], [True, False, True, False]]
    if replacer == "dropout":  # every empty slot of the forward input receives the fake
        expected_kept = [[False, True, True, True], [True, False, True, True], [True, True, True, False]]
        assert torch.equal(views[:, 1], fake.expand(3, -1, -1, -1))
    assert cycle_kept.tolist() == expected_kept
    assert torch.equal(views[:, 2], fake.expand(3, -1, -1, -1)) and torch.equal(views[:, 0], batch[:, 0].expand(3, -1, -1, -1))


def test_soft_quantisation_tends_to_the_hard_one():
    images = torch.rand(2, 4, 8, 8) * 2 - 1
    palette, valid = torch.rand(2, 5, 4) * 2 - 1, torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    hard = losses.quantize(images, palette, valid, 0.0, hard=True)
    assert torch.allclose(losses.quantize(images, palette, valid, 1e-6, hard=False), hard, atol=1e-4)
    assert not torch.isin(hard[1].flatten(), palette[1, 3:].flatten()).any()  # padding is never chosen
