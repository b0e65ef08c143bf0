"""The turnaround model: pixel sources on known answers, pixel-exact drawing, learning on a fixed batch,
resume bit-identity, and batch translation through the CLI."""

import importlib.util
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from spriteforge import imageio
from spriteforge.data.synthetic import generate_characters
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation.metrics import enclosed_holes, stray_specks
from spriteforge.inference import load_for_inference
from spriteforge.models import model_class
from spriteforge.models.blocks import grow_to_border, reaches_border, speck_pixels
from spriteforge.models.turnaround import (DRAWN, EMPTY, FIRST_VIEW, MIRROR_ORDER, allowed_candidates, candidates, decoding_columns,
                                           least_expected_l1, mirror_characters, sample_given, shift_columns,
                                           snap_to_given_colours, source_targets, view_candidate, view_variants)
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_cli import assert_clean_error, main_ok, run_cli
from test_stargan import _state, tiny_data

TURNAROUND = model_class("turnaround")


def make(size=32, **given):
    config = resolve("turnaround", TURNAROUND.uses, TURNAROUND.defaults, {"steps": 100, "capacity": 1, **given})
    return TURNAROUND(config, 4, 4, size)


def sprites(count=2, size=32):
    return torch.from_numpy(tiny_data(size=size).train.images[:count]).float().movedim(-1, -3) / 127.5 - 1


def test_pixel_sources_known_answers():
    """A transparent true pixel is `empty`; a pixel a given view shows (as is or mirrored) is that view; else `drawn`."""
    views = torch.full((1, 4, 4, 1, 3), -1.0)
    red, blue, green = torch.tensor([1.0, -1, -1, 1]), torch.tensor([-1.0, -1, 1, 1]), torch.tensor([-1.0, 1, -1, 1])
    views[0, 2, :, 0, 0] = red  # the front: red at column 0
    views[0, 1, :, 0, 2] = red  # the left: red at column 2 (the front mirrored), green at column 1 (new)
    views[0, 1, :, 0, 1] = green
    views[0, 0, :, 0, 1] = blue  # the back shows blue at column 1
    kept = torch.tensor([[True, False, True, False]])
    options = candidates(views * kept[:, :, None, None, None], torch.zeros(1, 4, 3, 1, 3))
    targets = source_targets(options, views, allowed_candidates(kept))[0, 1, :, 0]  # the left view's sources [K, W]
    front, front_mirrored = FIRST_VIEW + 2, FIRST_VIEW + 4 + 2
    assert targets[front_mirrored, 2] and not targets[front, 2] and not targets[DRAWN, 2]  # the front, mirrored
    assert targets[DRAWN, 1] and targets[:, 1].sum() == 1  # green is in no given view: drawn
    assert targets[EMPTY, 0] and not targets[DRAWN, 0]  # transparent
    assert not targets[FIRST_VIEW + 1].any() and not targets[FIRST_VIEW + 3].any()  # views not given never count


def test_sampled_given_views_and_mirror():
    given = sample_given(2000, 4, torch.Generator().manual_seed(0))
    counts = np.bincount(given.sum(1).numpy(), minlength=4)
    assert counts[0] == 0 and counts[1:].sum() == 2000 and abs(counts[1] / 2000 - 0.4) < 0.04
    batch = sprites(2)
    mirrored = mirror_characters(batch)
    assert torch.equal(mirrored[:, 1], batch[:, 3].flip(-1)) and torch.equal(mirror_characters(mirrored), batch)


def test_draws_only_the_given_colours_and_keeps_given_views():
    torch.manual_seed(0)
    model = make().eval()
    views = sprites(2)
    kept = torch.tensor([[False, False, True, False], [True, True, False, False]])
    out = imageio.to_uint8(model.impute_all(views, kept).flatten(0, 1)).reshape(2, 4, 32, 32, 4)
    given = imageio.to_uint8(views.flatten(0, 1)).reshape(2, 4, 32, 32, 4)
    for row in range(2):
        allowed = {tuple(c) for d in np.flatnonzero(kept[row]) for c in given[row, d].reshape(-1, 4) if c[3] == 255}
        for view in range(4):
            if kept[row, view]:
                assert np.array_equal(out[row, view], given[row, view])
                continue
            pixels = out[row, view].reshape(-1, 4)
            assert set(np.unique(pixels[:, 3])) <= {0, 255}
            assert {tuple(c) for c in pixels if c[3] == 255} <= allowed
            assert not pixels[pixels[:, 3] == 0].any()  # transparent pixels are (0, 0, 0, 0)
    single = model.impute(views, kept, torch.tensor([0, 3]))
    assert torch.equal(single, model.impute_all(views, kept)[torch.arange(2), torch.tensor([0, 3])])


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = make(lr=3e-3)
    batch = sprites(4)
    totals = []
    for step in range(12):
        torch.manual_seed(step % 2)  # the same two draws of given views, alternately
        totals.append(model.train_step(batch, step, step / 12)["generator/total"])
    assert all(math.isfinite(value) for value in totals)
    assert np.mean(totals[-2:]) < 0.7 * np.mean(totals[:2])


def test_refuses_what_it_cannot_draw():
    config = resolve("turnaround", TURNAROUND.uses, TURNAROUND.defaults, {"steps": 1})
    with pytest.raises(SpriteForgeError, match="needs the four views"):
        TURNAROUND(config, 3, 4, 32)
    with pytest.raises(SpriteForgeError, match="divisible by 8"):
        TURNAROUND(config, 4, 4, 36)
    with pytest.raises(SpriteForgeError, match="not used by turnaround"):
        make(lambda_gp=10.0)


def test_critic_learns_and_teaches_the_generator():
    """With the critic on: it trains on real and drawn views, its view head learns the real views on a
    fixed batch, and its terms reach the generator (a different update than without them)."""
    torch.manual_seed(0)
    model = make(lr=2e-3, lambda_adversarial=1.0, lambda_domain=1.0)
    plain = make(lr=2e-3)
    plain.generator.load_state_dict(model.generator.state_dict())
    assert not hasattr(plain, "discriminator") and set(model.optimizers) == {"generator", "discriminator"}
    assert model.inference_networks == ("generator",)  # the critic never travels with packed weights
    batch = torch.from_numpy(generate_characters(4, size=32)).float().movedim(-1, -3) / 127.5 - 1  # views that differ
    critic_before = [p.clone() for p in model.discriminator.parameters()]
    errors = []
    for step in range(15):
        torch.manual_seed(step % 2)
        losses = model.train_step(batch, step, step / 15)
        errors.append(losses["discriminator/real-view-error"])
        assert all(math.isfinite(value) for value in losses.values())
        if step == 0:
            torch.manual_seed(0)
            plain.train_step(batch, 0, 0.0)
            assert not torch.equal(next(model.generator.parameters()), next(plain.generator.parameters()))
    assert np.mean(errors[-3:]) < 0.7 * errors[0]
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, model.discriminator.parameters()))


def _trainer(tmp_path, name, **given):
    config = resolve("turnaround", TURNAROUND.uses, TURNAROUND.defaults,
                     {"steps": 2, "evaluate_steps": 1, "batch": 2, "image_size": 32, "log_folder": str(tmp_path),
                      "run_string": name, "callback_evaluate_l1": True, "capacity": 1, "save_model": True, **given})
    return Trainer(config, data=tiny_data())


@pytest.mark.parametrize("critic", [0.0, 0.5], ids=["plain", "critic"])
def test_resume_is_bit_identical(tmp_path, critic):
    straight = _trainer(tmp_path, "straight", lambda_adversarial=critic, lambda_domain=critic)
    straight.run()
    interrupted = _trainer(tmp_path, "interrupted", lambda_adversarial=critic, lambda_domain=critic)
    interrupted.run(stop_at=1)
    resumed = Trainer(interrupted.config, resume=interrupted.run_dir, data=tiny_data())
    resumed.run()
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_init_from_starts_with_the_trained_generator(tmp_path):
    """--init-from loads the networks a model holds (a packed model: the generator), the critic starts afresh,
    and a model of another kind or size is refused in one line."""
    first = _trainer(tmp_path, "first")
    first.run()
    packed = tmp_path / "first.safetensors"
    assert main_ok(["models", "pack", str(first.run_dir), str(packed)])
    tuned = _trainer(tmp_path, "tuned", init_from=str(packed), lambda_adversarial=0.1)
    trained, _ = load_for_inference(packed)
    for key, value in trained.generator.state_dict().items():
        assert torch.equal(tuned.model.generator.state_dict()[key], value), key
    tuned.run()  # and it trains from there
    moved = _trainer(tmp_path, "moved", init_from=str(packed), candidate_shifts=1)  # the head grows: 10 → 26 candidates per view
    head, grown = trained.generator.head.weight, moved.model.generator.head.weight
    assert grown.shape[0] == 4 * (26 + 3) and torch.equal(grown[:10], head[:10]) and torch.equal(grown[26:29], head[10:13])
    with pytest.raises(SpriteForgeError, match="weights do not fit the generator"):
        _trainer(tmp_path, "wider", init_from=str(packed), capacity=2)
    with pytest.raises(SpriteForgeError, match="no such run folder or checkpoint"):
        _trainer(tmp_path, "missing", init_from=str(tmp_path / "nothing"))
    assert not list(tmp_path.rglob("missing")) and not list(tmp_path.rglob("wider"))  # refused before any run folder


def test_batch_translation_of_a_sheet_and_a_folder(tmp_path):
    run = _trainer(tmp_path, "batch")
    run.run()
    characters = tiny_data(size=32).train.images[:3]  # uint8 [3, 4, 32, 32, 4]
    sheet = characters.copy()
    sheet[0, [0, 1, 3]] = 0  # character 0: the front only; character 1: front and left; character 2: the back only
    sheet[1, [0, 3]] = 0
    sheet[2, 1:] = 0
    imageio.save_png(imageio.grid([list(c) for c in sheet], padding=0), tmp_path / "in.png")
    assert main_ok(["translate", str(run.run_dir), "--input", str(tmp_path / "in.png"), "--out", str(tmp_path / "done.png")])
    done = np.array(Image.open(tmp_path / "done.png"))
    assert done.shape == (96, 128, 4)
    cells = done.reshape(3, 32, 4, 32, 4).transpose(0, 2, 1, 3, 4)
    assert np.array_equal(cells[0, 2], characters[0, 2]) and np.array_equal(cells[2, 0], characters[2, 0])  # given views kept
    assert cells[0, 0, ..., 3].any()  # drawn where the sheet was empty

    folder = tmp_path / "chars"
    for name, character in (("hero", characters[0]), ("mage", characters[1])):
        imageio.save_png(character[2], folder / "front" / f"{name}.png")
    imageio.save_png(characters[1][1], folder / "left" / "mage.png")
    assert main_ok(["translate", "--model", str(run.run_dir), "--input", str(folder), "--out", str(tmp_path / "sheets")])
    for name in ("hero", "mage"):
        assert np.array(Image.open(tmp_path / "sheets" / f"{name}.png")).shape == (32, 128, 4)

    assert_clean_error(run_cli("translate", run.run_dir, "--input", tmp_path / "in.png", "--out", tmp_path / "done.jpg"), "is a PNG")
    assert_clean_error(run_cli("translate", run.run_dir, "--front", tmp_path / "in.png", "--out", tmp_path / "x.gif"), "written as PNG")
    assert_clean_error(run_cli("translate", run.run_dir, "--input", tmp_path / "in.png", "--out", tmp_path / "x.png", "--separate"),
                       "--separate works on one character")
    imageio.save_png(np.zeros((40, 128, 4), np.uint8), tmp_path / "odd.png")
    assert_clean_error(run_cli("translate", run.run_dir, "--input", tmp_path / "odd.png", "--out", tmp_path / "x.png"), "multiple of 32")


def test_protocol_draws_once_per_given_set_with_the_same_results():
    """The 28-case protocol runs the one-pass model once per set of given views (14), with the same numbers."""
    from spriteforge.evaluation.protocol import run_protocol

    torch.manual_seed(0)
    model = make().eval()
    calls = []
    model.generator.register_forward_hook(lambda *_: calls.append(1))

    class OneViewAtATime:  # the same model seen through `impute` only
        def impute(self, views, available, target):
            return model.impute(views, available, target)

    images = tiny_data(size=32).train.images[:3]
    fast = run_protocol({"m": model}, images, selected=("l1", "palette"))
    assert len(calls) == 14  # the characters and their mirror images in one batch
    slow = run_protocol({"m": OneViewAtATime()}, images, selected=("l1", "palette"))
    assert len(calls) == 14 + 28
    assert fast["systems"]["m"]["cases"] == slow["systems"]["m"]["cases"]


def test_packed_weights_translate_and_evaluate(tmp_path):
    """`models pack` keeps what inference needs (16-bit, no optimiser state, no machine paths)."""
    run = _trainer(tmp_path, "packed")
    run.run()
    packed = tmp_path / "small.safetensors"
    assert main_ok(["models", "pack", str(run.run_dir), str(packed)])
    assert packed.stat().st_size < (run.run_dir / "checkpoints" / "latest.safetensors").stat().st_size / 4
    model, config = load_for_inference(packed)
    assert config.data_dir == "" and config.log_folder == "output"
    result = run_cli("evaluate", packed, "--dataset", "synthetic", "--limit", 2, "--metrics", "l1,palette", "--out", tmp_path / "ev", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ev" / "evaluation.json").is_file()


def test_least_expected_l1_picks_the_colour_most_of_the_mass_agrees_on():
    """Empty at p = 0.4 against one colour (given in the back and left views, so four candidates) at
    0.15 each: argmax leaves a hole, the least expected L1 draws the colour, and agrees with the sum over
    candidates written out; a candidate that is not allowed is never chosen."""
    colour = torch.tensor([0.5, 0.2, -0.3, 1.0])
    views = torch.zeros(1, 4, 4, 1, 1)
    views[0, 0, :, 0, 0] = views[0, 1, :, 0, 0] = colour
    kept = torch.tensor([[True, True, False, False]])
    allowed = allowed_candidates(kept)
    drawn = torch.tensor([-0.5, 0.5, 0.5, 1.0])[None, None, :, None, None].expand(1, 4, 4, 1, 1)
    probabilities = torch.zeros(1, 4, 10, 1, 1)
    back, left = FIRST_VIEW, FIRST_VIEW + 1
    mirrored_back, mirrored_left = FIRST_VIEW + 4, FIRST_VIEW + 5
    probabilities[:, :, [EMPTY, back, left, mirrored_back, mirrored_left]] = torch.tensor([0.4, 0.15, 0.15, 0.15, 0.15])[:, None, None]
    assert probabilities.argmax(2).flatten().tolist() == [EMPTY] * 4
    choice = least_expected_l1(probabilities, views, drawn, allowed)
    assert choice.flatten().tolist() == [back] * 4  # the first of the equal colours
    options = candidates(views, drawn[:, :, :3])[0, 0, :, :, 0, 0]  # [K, C], written out
    expected = (probabilities[0, 0, :, 0, 0][None] * (options[:, None] - options[None]).abs().sum(2)).sum(1)
    assert expected.masked_fill(~allowed[0, 0], float("inf")).argmin().item() == back
    probabilities.zero_()
    probabilities[:, :, FIRST_VIEW + 2] = 1.0  # all the mass on the front, which is not given
    assert not allowed[0, 0, FIRST_VIEW + 2]
    assert allowed[0].gather(1, least_expected_l1(probabilities, views, drawn, allowed)[0, :, 0]).all()


def test_reaches_border_finds_the_holes_the_evaluation_counts():
    """The flood fill that drawing (and the evaluation without scipy) uses agrees with scipy's component
    labelling, pixel count per image, on random masks (winding paths included), and counts a ring's inside
    with and without a gap by hand."""
    generator = torch.Generator().manual_seed(0)
    clear = torch.rand(40, 16, 16, generator=generator) < torch.linspace(0.3, 0.7, 40)[:, None, None]
    ring = torch.zeros(2, 16, 16, dtype=torch.bool)
    ring[:, 1:-1, 1:-1] = True
    ring[:, 2:-2, 2:-2] = False
    ring = ~ring  # a closed opaque ring: its inside is enclosed
    ring[1, 0:3, 7] = True  # the second ring has a gap from the border to the inside
    clear = torch.cat([clear, ring])
    images = np.zeros((len(clear), 16, 16, 4), np.uint8)
    images[..., 3] = np.where(clear.numpy(), 0, 255)
    enclosed = clear & ~reaches_border(clear)
    if importlib.util.find_spec("scipy") is not None:  # an independent count: scipy's component labelling
        assert enclosed.flatten(1).sum(1).tolist() == enclosed_holes(images, use_scipy=True).tolist()
    assert enclosed[-2].sum() == 144 and enclosed[-1].sum() == 0
    assert enclosed.any()


def test_the_bit_row_flood_fill_equals_growing_a_pixel_a_step():
    """`reaches_border` fills 64-pixel rows as 64-bit words; it marks exactly the pixels that growing the
    border's clear pixels one pixel a step does: random masks of every density and odd sizes, a corridor
    that winds through all 64 rows (one turn per row pair: many rounds), and a map wider than 64 (which
    takes the pixel-a-step fill itself)."""
    generator = torch.Generator().manual_seed(3)
    for size in [(64, 64), (17, 33), (1, 64), (64, 1), (5, 63)]:
        clear = torch.rand(6, 3, *size, generator=generator) < torch.linspace(0.2, 1.0, 6)[:, None, None, None]
        assert torch.equal(reaches_border(clear), grow_to_border(clear)), size
    corridor = torch.zeros(64, 64, dtype=torch.bool)
    corridor[1:63:2, 1:63] = True  # rows 1, 3, … 61, joined alternately at their right and left ends
    for row in range(2, 62, 2):
        corridor[row, 62 if row % 4 == 2 else 1] = True
    corridor[0, 1] = True  # the only way out: its top-left end
    reached = reaches_border(corridor)
    assert torch.equal(reached, grow_to_border(corridor)) and torch.equal(reached, corridor)
    corridor[0, 1] = False  # closed: every pixel of it is enclosed
    assert not reaches_border(corridor).any()
    wide = torch.rand(4, 9, 70, generator=generator) < 0.6
    assert torch.equal(reaches_border(wide), grow_to_border(wide))


def test_drawn_views_keep_no_more_enclosed_holes_than_allowed():
    """Inside a 5×7 opaque figure the model is 0.36 and 0.45 sure of `empty` at two separate pixels and
    splits the rest between two colours, so the least expected L1 leaves two holes. Allowed none, both
    take an opaque candidate; allowed one, only the pixel least likely transparent is filled; a pixel
    joined to the border by transparent ones is no hole and stays."""
    red, green = torch.tensor([1.0, -1, -1, 1]), torch.tensor([-1.0, 1, -1, 1])
    views = torch.zeros(2, 4, 4, 5, 7)
    views[:, 0] = red[:, None, None]  # the back, all red and opaque
    kept = torch.tensor([[True, False, False, False]] * 2)
    allowed = allowed_candidates(kept)
    drawn = green[None, None, :, None, None].expand(2, 4, 4, 5, 7)
    p = torch.zeros(2, 4, 10, 5, 7)
    p[:, :, FIRST_VIEW] = 1.0  # the back as it is: red everywhere, but for two pixels
    for column, empty in ((2, 0.36), (4, 0.45)):
        p[:, :, :, 2, column] = 0
        p[:, :, [EMPTY, DRAWN, FIRST_VIEW], 2, column] = torch.tensor([empty, (1 - empty) / 2, (1 - empty) / 2])
    p[1, :, :, 0:2, 4] = 0
    p[1, :, EMPTY, 0:2, 4] = 1  # second character: a transparent path from the top border to the second pixel

    plain = least_expected_l1(p, views, drawn, allowed)
    assert (plain[:, 1:, 2, 2] == EMPTY).all() and (plain[:, 1:, 2, 4] == EMPTY).all()
    none = least_expected_l1(p, views, drawn, allowed, torch.tensor([0, 0]))
    assert (none[0, 1:, 2, 2] == DRAWN).all() and (none[0, 1:, 2, 4] == DRAWN).all()  # drawn and the back tie; the first wins
    assert (none[0, 1:] != EMPTY).all()
    assert (none[1, 1:, 2, 2] == DRAWN).all() and (none[1, 1:, 2, 4] == EMPTY).all()  # joined to the border: no hole
    one = least_expected_l1(p, views, drawn, allowed, torch.tensor([1, 1]))
    assert (one[0, 1:, 2, 2] == DRAWN).all() and (one[0, 1:, 2, 4] == EMPTY).all()  # the surer hole stays
    assert torch.equal(one[1], plain[1])  # one hole, one allowed


def test_the_hole_allowance_is_that_of_the_holiest_given_view():
    model = make().eval()
    views = torch.ones(3, 4, 4, 8, 8)
    views[0, 0, 3, 3, 3] = -1  # one hole in the back
    views[0, 2, 3, 3, 2:6] = -1  # four in the front, which is not given
    views[1, 0, 3, 3, 3:6] = -1  # three in the back...
    views[1, 2, 3, 3, 3] = -1  # ...and one in the front
    views[2, 3, 3, 0, 3] = -1  # a notch in the border of the right view: no hole
    kept = torch.tensor([[True, True, False, False], [True, False, True, False], [False, False, False, True]])
    assert model.hole_allowance(views, kept).tolist() == [1, 3, 0]
    model.fill_holes = False
    assert model.hole_allowance(views, kept) is None


def test_speck_pixels_are_the_components_of_one_or_two_pixels():
    """The speck finder agrees with scipy's 8-connected component labelling on random masks of every
    density, and by hand: a lone pixel and a diagonal pair are specks, an L of three pixels is not."""
    generator = torch.Generator().manual_seed(0)
    solid = torch.rand(60, 12, 12, generator=generator) < torch.linspace(0.05, 0.6, 60)[:, None, None]
    found = speck_pixels(solid)
    if importlib.util.find_spec("scipy") is not None:
        from scipy import ndimage

        for mask, specks in zip(solid.numpy(), found.numpy()):
            labels, _ = ndimage.label(mask, np.ones((3, 3)))
            small = np.bincount(labels.ravel()) <= 2
            small[0] = False
            assert (small[labels] == specks).all()
    shapes = torch.zeros(1, 9, 9, dtype=torch.bool)
    shapes[0, 1, 1] = True  # alone
    shapes[0, 4, 4] = shapes[0, 5, 5] = True  # a diagonal pair
    shapes[0, 1, 6] = shapes[0, 2, 6] = shapes[0, 2, 7] = True  # an L: three pixels
    assert speck_pixels(shapes).nonzero().tolist() == [[0, 1, 1], [0, 4, 4], [0, 5, 5]]
    images = np.zeros((2, 9, 9, 4), np.uint8)
    images[0, ..., 3] = np.where(shapes[0].numpy(), 255, 0)
    assert stray_specks(images).tolist() == [3, 0]


def test_drawn_views_keep_no_more_stray_specks_than_allowed():
    """Outside a red 5×5 figure two lone pixels lean opaque (P(drawn) 0.6 and 0.8), so the least expected L1
    makes them green specks. Allowed none, both become transparent; allowed one, only the one more likely
    transparent does; the figure itself is never touched."""
    red, green = torch.tensor([1.0, -1, -1, 1]), torch.tensor([-1.0, 1, -1, 1])
    views = torch.full((1, 4, 4, 9, 9), -1.0)
    views[:, 0, :, 2:7, 2:7] = red[:, None, None]  # the back: a red square on transparent
    kept = torch.tensor([[True, False, False, False]])
    allowed = allowed_candidates(kept)
    drawn = green[None, None, :, None, None].expand(1, 4, 4, 9, 9)
    p = torch.zeros(1, 4, 10, 9, 9)
    p[:, :, FIRST_VIEW] = 1.0  # the back as it is
    for row, opaque in ((0, 0.6), (8, 0.8)):
        p[:, :, :, row, 0] = 0
        p[:, :, [EMPTY, DRAWN], row, 0] = torch.tensor([1 - opaque, opaque])
    plain = least_expected_l1(p, views, drawn, allowed)
    assert (plain[0, 1:, 0, 0] == DRAWN).all() and (plain[0, 1:, 8, 0] == DRAWN).all()
    none = least_expected_l1(p, views, drawn, allowed, speck_allowance=torch.tensor([0]))
    assert (none[0, 1:, 0, 0] == EMPTY).all() and (none[0, 1:, 8, 0] == EMPTY).all()
    one = least_expected_l1(p, views, drawn, allowed, speck_allowance=torch.tensor([1]))
    assert (one[0, 1:, 0, 0] == EMPTY).all() and (one[0, 1:, 8, 0] == DRAWN).all()  # the surer speck stays
    for decided in (none, one):
        assert torch.equal(decided[0, 1:, 2:7, 2:7], plain[0, 1:, 2:7, 2:7])  # the figure as it was
    model = make().eval()
    assert model.speck_allowance(views, kept).tolist() == [0]
    views[0, 0, :, 0, 8] = red  # a one-pixel speck in the back: one allowed
    assert model.speck_allowance(views, kept).tolist() == [1]
    model.remove_specks = False
    assert model.speck_allowance(views, kept) is None


@pytest.mark.parametrize("shifts", [0, 1, 2])
def test_mirror_average_draws_a_mirrored_character_as_the_mirror_of_its_drawing(shifts):
    """Averaging over the character and its mirror image makes drawing mirror-equivariant, bit for bit: a
    wrong mapping of the mirrored pass's views or candidates back to the original (with moved candidates:
    a view moved right in the mirror is moved left in the original) would break this."""
    torch.manual_seed(0)
    model = make(candidate_shifts=shifts).eval()
    views = sprites(3)
    kept = torch.tensor([[False, True, False, False], [False, False, True, True], [True, True, True, False]])
    for decoding in ("least-expected-l1", "most-likely"):
        model.decoding = decoding
        drawn = model.impute_all(views, kept)
        assert torch.equal(model.impute_all(mirror_characters(views), kept[:, MIRROR_ORDER]), mirror_characters(drawn))
    model.mirror_average = False
    model.decoding = "most-likely"  # the drawing before stop 31: the most likely candidate of one pass
    inputs = views * kept[:, :, None, None, None]
    logits, drawn = model.generator(inputs, kept)
    choice = logits.masked_fill(~allowed_candidates(kept, shifts)[:, :, :, None, None], float("-inf")).argmax(2)
    alpha = candidates(inputs, drawn, shifts)[:, :, :, 3].gather(2, choice[:, :, None]).squeeze(2)  # snapping keeps alpha
    missing = ~kept[:, :, None, None].expand_as(alpha)
    assert torch.equal(model.impute_all(views, kept)[:, :, 3][missing], alpha[missing])


def test_an_unknown_decoding_is_refused_in_one_line():
    model = make().eval()
    model.decoding = "most_likely"
    with pytest.raises(SpriteForgeError, match="use one of least-expected-l1, most-likely"):
        model.impute_all(sprites(1), torch.tensor([[False, False, True, False]]))


def test_drawing_a_character_does_not_depend_on_the_rest_of_its_batch():
    """Drawing decides only the candidates and view slots some character of the batch can use: a character
    drawn alone or beside others with other given views gets the same sheet, and the channels-last drawing
    path keeps the network's values (up to rounding) of the channels-first training path."""
    torch.manual_seed(0)
    model = make().eval()
    views = sprites(4)
    kept = torch.tensor([[False, False, True, False], [True, True, False, False], [True, True, True, False], [False, True, False, True]])
    together = model.impute_all(views, kept)
    for row in range(4):
        assert torch.equal(model.impute_all(views[row : row + 1], kept[row : row + 1])[0], together[row])
    inputs = views * kept[:, :, None, None, None]
    with torch.no_grad():
        logits, drawn = model.generator(inputs, kept)
    trained_logits, trained_drawn = model.generator(inputs, kept)  # with gradients: channels-first
    torch.testing.assert_close(logits, trained_logits.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(drawn, trained_drawn.detach(), rtol=1e-4, atol=1e-4)


def test_least_expected_l1_over_the_usable_candidates_only_decides_the_same():
    torch.manual_seed(0)
    kept = torch.tensor([[False, True, False, False], [False, True, True, False]])
    allowed = allowed_candidates(kept)
    logits = torch.randn(2, 4, 10, 6, 5).masked_fill(~allowed[:, :, :, None, None], float("-inf"))
    probabilities = logits.softmax(2)
    views = torch.rand(2, 4, 4, 6, 5) * 2 - 1
    views[:, :, 3] = torch.where(views[:, :, 3] > 0, 1.0, -1.0)
    views = views * kept[:, :, None, None, None]
    drawn = torch.cat([torch.rand(2, 4, 3, 6, 5) * 2 - 1, torch.ones(2, 4, 1, 6, 5)], dim=2)
    columns = decoding_columns(allowed)
    assert columns.tolist() == [EMPTY, DRAWN, FIRST_VIEW + 1, FIRST_VIEW + 2, FIRST_VIEW + 5, FIRST_VIEW + 6]
    full = least_expected_l1(probabilities, views, drawn, allowed)
    assert torch.equal(least_expected_l1(probabilities[:, :, columns], views, drawn, allowed), full)
    assert allowed.gather(2, full.flatten(2)).all()


def test_snapping_moves_drawn_colours_to_each_characters_own_palette():
    """Every snapped pixel takes the nearest opaque colour of its own character's given views (written out
    per character here), the other pixels keep their colour, and a character with no opaque given pixel is
    left alone."""
    torch.manual_seed(0)
    views = sprites(3)
    views[2, 0, 3] = -1.0  # the third character's only given view is fully transparent
    kept = torch.tensor([[False, False, True, False], [True, True, False, False], [True, False, False, False]])
    drawn = torch.rand(3, 4, 3, 32, 32) * 2 - 1
    where = torch.rand(3, 4, 32, 32) < 0.5
    snapped = snap_to_given_colours(drawn, views, kept, where)
    for row in range(2):
        given = views[row, kept[row]].movedim(1, -1).reshape(-1, 4)
        palette = torch.unique(given[given[:, 3] > -1][:, :3], dim=0)
        colours = drawn[row].movedim(1, -1)[where[row]]
        expected = palette[((colours[:, None] - palette[None]) ** 2).sum(2).argmin(1)]
        torch.testing.assert_close(snapped[row].movedim(1, -1)[where[row]], expected, rtol=0, atol=1e-6)
        assert torch.equal(snapped[row].movedim(1, -1)[~where[row]], drawn[row].movedim(1, -1)[~where[row]])
    assert torch.equal(snapped[2], drawn[2])


def test_moved_candidates_are_the_given_views_moved_sideways():
    """With --candidate-shifts 1 a pixel that only the mirrored front one column to the right shows is
    that candidate's (not `drawn`), views moved out of the frame leave transparent columns, and the
    unmoved layout (empty, drawn, views, mirrored views) comes first, as in models trained without shifts."""
    assert view_variants(0) == [(False, 0), (True, 0)]
    assert view_variants(1) == [(False, 0), (True, 0), (False, -1), (False, 1), (True, -1), (True, 1)]
    row = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    assert torch.equal(shift_columns(row, 1), torch.tensor([[-1.0, 0.1, 0.2, 0.3]]))
    assert torch.equal(shift_columns(row, -2), torch.tensor([[0.3, 0.4, -1.0, -1.0]]))
    views = torch.full((1, 4, 4, 1, 5), -1.0)
    red, green = torch.tensor([1.0, -1, -1, 1]), torch.tensor([-1.0, 1, -1, 1])
    views[0, 2, :, 0, 0], views[0, 2, :, 0, 1] = red, green  # the front: red, green, then clear
    truth = torch.full_like(views, -1.0)
    truth[0, 0, :, 0, 3] = red  # the back: red where only the mirrored front moved left by one has it
    kept = torch.tensor([[False, False, True, False]])
    drawn = torch.zeros(1, 4, 3, 1, 5)
    for shifts, sources in ((0, {DRAWN}), (1, {FIRST_VIEW + 4 * 4 + 2})):  # mirrored, moved −1: block 4, the front
        inputs = views * kept[:, :, None, None, None]
        options = candidates(inputs, drawn, shifts)
        assert options.shape[2] == 2 + 4 * len(view_variants(shifts))
        for column in range(FIRST_VIEW, options.shape[2]):
            assert torch.equal(options[0, 0, column], view_candidate(inputs, column, shifts)[0])
        targets = source_targets(options, truth, allowed_candidates(kept, shifts))[0, 0, :, 0]  # the back's [K, W]
        assert set(targets[:, 3].nonzero().flatten().tolist()) == sources, shifts
        assert targets[EMPTY, [0, 1, 2, 4]].all() and not targets[DRAWN, [0, 1, 2, 4]].any()  # clear pixels are `empty` (and any clear candidate)


def test_init_from_a_model_without_shifts_keeps_its_choices(tmp_path):
    """--init-from a model with fewer shifts carries every head row over and starts each moved candidate
    1 logit below its unmoved sibling; more shifts than the new model has are refused in one line."""
    torch.manual_seed(0)
    plain = make()
    moved = make(candidate_shifts=1)
    tensors = {f"network/generator/{key}": value for key, value in plain.generator.state_dict().items()}
    moved.generator.load_state_dict({key[len("network/generator/"):]: value for key, value in
                                     moved.adapt_initial_weights(tensors, dict(plain.config)).items()})
    views, kept = sprites(2), torch.tensor([[False, False, True, False], [True, True, False, False]])
    with torch.no_grad():
        before, drawn_before = plain.generator(views * kept[:, :, None, None, None], kept)
        after, drawn_after = moved.generator(views * kept[:, :, None, None, None], kept)
    torch.testing.assert_close(after[:, :, :10], before, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(drawn_after, drawn_before, rtol=1e-5, atol=1e-5)
    for column in range(10, 26):
        mirrored, _ = view_variants(1)[(column - FIRST_VIEW) // 4]
        sibling = FIRST_VIEW + (4 if mirrored else 0) + (column - FIRST_VIEW) % 4
        torch.testing.assert_close(after[:, :, column], before[:, :, sibling] - 1, rtol=1e-5, atol=1e-4)
    with pytest.raises(SpriteForgeError, match="--candidate-shifts 1 or more"):
        plain.adapt_initial_weights({}, dict(moved.config))


def test_combined_models_draw_as_one_ensemble(tmp_path):
    """`models combine` writes trained turnarounds (moved candidates or not, an ensemble's members one by
    one) as one model that loads and draws like any other: pixel-exact, given views kept; a model combined
    with itself draws exactly as it does alone; models of another shape or kind are refused in one line."""
    from spriteforge.model_cards import combine
    from spriteforge.models.turnaround import TurnaroundEnsemble

    plain, moved = _trainer(tmp_path, "plain"), _trainer(tmp_path, "moved", candidate_shifts=1, seed=7)
    plain.run()
    moved.run()
    pair = tmp_path / "pair.safetensors"
    assert main_ok(["models", "combine", str(plain.run_dir), str(moved.run_dir), "--out", str(pair)])
    model, config = load_for_inference(pair)
    assert isinstance(model.generator, TurnaroundEnsemble) and config.member_shifts == [0, 1] and model.shifts == 1
    views, kept = sprites(2), torch.tensor([[False, False, True, False], [True, True, True, False]])
    out = imageio.to_uint8(model.impute_all(views, kept).flatten(0, 1)).reshape(2, 4, 32, 32, 4)
    given = imageio.to_uint8(views.flatten(0, 1)).reshape(2, 4, 32, 32, 4)
    for row in range(2):
        allowed = {tuple(c) for d in np.flatnonzero(kept[row]) for c in given[row, d].reshape(-1, 4) if c[3] == 255}
        for view in range(4):
            pixels = out[row, view].reshape(-1, 4)
            if kept[row, view]:
                assert np.array_equal(out[row, view], given[row, view])
            else:
                assert {tuple(c) for c in pixels if c[3] == 255} <= allowed and set(np.unique(pixels[:, 3])) <= {0, 255}
    # A candidate's score is the mean log-probability of the members offering it (the moved ones: the second
    # member's alone); drawn colours are the first member's.
    inputs = views * kept[:, :, None, None, None]
    with torch.no_grad():
        logits, drawn = model.generator(inputs, kept)
        (first, first_drawn), (second, _) = (member(inputs, kept) for member in model.generator.members)
    first, second = first.log_softmax(2), second.log_softmax(2)
    assert logits.shape[2] == second.shape[2] == 26 and first.shape[2] == 10
    torch.testing.assert_close(logits[:, :, :10], (first + second[:, :, :10]) / 2)
    torch.testing.assert_close(logits[:, :, 10:], second[:, :, 10:])
    assert torch.equal(drawn, first_drawn)

    twice = tmp_path / "twice.safetensors"
    combine([plain.run_dir, plain.run_dir], twice, half=False)
    doubled, _ = load_for_inference(twice)
    single, _ = load_for_inference(plain.run_dir)
    assert torch.equal(doubled.impute_all(views, kept), single.impute_all(views, kept))

    three, members = combine([pair, plain.run_dir], tmp_path / "three.safetensors")
    assert members == 3 and load_for_inference(three)[1].member_shifts == [0, 1, 0]

    wider = _trainer(tmp_path, "wider", capacity=2)
    wider.run()
    with pytest.raises(SpriteForgeError, match="capacity differ"):
        combine([plain.run_dir, wider.run_dir], tmp_path / "bad.safetensors")
    with pytest.raises(SpriteForgeError, match="two models or more"):
        combine([plain.run_dir], tmp_path / "bad.safetensors")
    with pytest.raises(SpriteForgeError, match="safetensors file"):
        combine([plain.run_dir, moved.run_dir], tmp_path / "bad.pt")
    assert not main_ok(["models", "combine", "default", "default-sampler", "--out", str(tmp_path / "bad.safetensors")])
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    assert_clean_error(run_cli("models", "combine", "default", broken, "--out", tmp_path / "bad.safetensors"), "not a SpriteForge checkpoint")
    assert_clean_error(run_cli("models", "combine", "default", tmp_path / "nothing", "--out", tmp_path / "bad.safetensors"), "nothing")
    assert not list(tmp_path.glob("bad*"))


def test_distilling_learns_the_teachers_probabilities(tmp_path):
    """--distill-from adds the KL divergence from a trained model's probabilities: on a fixed batch it falls,
    the teacher stays as it was and out of the student's checkpoint, and a teacher offering other
    candidates (or of another kind) is refused in one line before any run folder is made."""
    teacher_run = _trainer(tmp_path, "teacher", steps=4)
    teacher_run.run()
    student = _trainer(tmp_path, "student", distill_from=str(teacher_run.run_dir), lambda_distill=2.0, steps=1)
    teacher = student.model.__dict__["teacher"]
    before = {key: value.clone() for key, value in teacher.state_dict().items()}
    torch.manual_seed(0)
    model = student.model.train()
    batch = sprites(4)
    values = []
    for step in range(12):
        torch.manual_seed(1)  # the same mirror flips and given views every step: a fixed batch
        losses = model.train_step(batch, step, step / 12)
        values.append(losses["generator/distill"])
        # --lambda-distill 2 weighs the term twice (--lambda-l1 1, no critic)
        assert losses["generator/total"] == pytest.approx(losses["generator/selection"] + losses["generator/drawn-l1"] + 2.0 * values[-1], rel=1e-5)
    assert values[0] > 0.01 and values[-1] < 0.7 * values[0]
    assert all(torch.equal(before[key], value) for key, value in teacher.state_dict().items())
    student.run()
    tensors = load_file(str(student.run_dir / "checkpoints" / "latest.safetensors"))
    assert tensors and not any("teacher" in key for key in tensors)
    with pytest.raises(SpriteForgeError, match="--candidate-shifts 0"):
        _trainer(tmp_path, "moved", distill_from=str(teacher_run.run_dir), candidate_shifts=1)
    with pytest.raises(SpriteForgeError, match="needs a turnaround model"):
        _trainer(tmp_path, "sampler", distill_from="default-sampler")
    with pytest.raises(SpriteForgeError, match="no such run folder or checkpoint"):
        _trainer(tmp_path, "nowhere", distill_from=str(tmp_path / "nothing"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(SpriteForgeError, match="not a SpriteForge checkpoint"):
        _trainer(tmp_path, "broken", distill_from=str(broken))
    assert not [path for name in ("moved", "sampler", "nowhere", "broken") for path in tmp_path.rglob(name)]
