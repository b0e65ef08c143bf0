"""Turnaround: draw every missing view of a character in one pass, each pixel picked or drawn.

Why this design. A model trained on L1 alone learns to copy the given view into the missing slot
(copying is cheap and mostly right), so a back drawn from the front keeps the face. Here the network
says, for every pixel of every missing view, *where its colour comes from*: empty, a given view at
the same place, a given view mirrored, or **drawn** (a colour the network paints, for what no given
view shows: the hair on the back of a head, the profile of a face). The target of that choice is
known exactly from the true view, so training is a per-pixel cross-entropy (plus an L1 on the drawn
colours where they are needed) and no pixel is rewarded for being copied where the truth differs.
At inference the most likely source wins and drawn colours snap to the given views' palette, so
every output pixel is a colour of the character and alpha is binary: pixel art by construction.

One U-Net over the stacked views (as is and mirrored) and their availability planes draws all four
views at once, so a character costs one pass whatever is missing.

Why an optional critic (`--lambda-adversarial`, `--lambda-domain`). Cross-entropy and L1 reward the
average of what could be there, so a face drawn on a front seen only from the back comes out as a
skin-coloured blur without eyes, and a side drawn from a front as a narrow blurred front. A small
view-conditional patch discriminator (spectrally normalised, hinge loss, projection on the target
view) and its own view head (trained on real views only, as in StarGAN) judge the drawn views as a
whole: is this a plausible back, left, front or right? The generator sees them through a soft
composition of its per-pixel choices, so its selections and drawn colours both learn from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import (PointwiseConv2d, ResidualBlock, drawing_on_cpu, first_argmax, half_size_mean, init_glorot,
                                      instance_norm, reaches_border, speck_pixels, upsample_concat)
from spriteforge.models.evaluation import missing_views_grid
from spriteforge.models.losses import hinge_discriminator_loss, hinge_generator_loss
from spriteforge.models.views import check_four_views
from spriteforge.options import Config

LEVELS = 4
CHANNELS_LAST_LEVELS = 2  # drawing on a CPU, the levels at 64² and 32² run channels-last (see TurnaroundNet.forward)
# Candidates per pixel of a view: 0 empty, 1 drawn, 2..2+D the views as they are, then mirrored, then
# (with --candidate-shifts) the views moved sideways: see `view_variants`.
EMPTY, DRAWN, FIRST_VIEW = 0, 1, 2
# Two colours closer than this (in [-1, 1] units, every channel) are the same colour: 1.5/255 survives
# the float round trip of hue augmentation.
MATCH_TOLERANCE = 3.0 / 255
# P(1, 2, 3 views given) per training example: the harder cases a little more often.
GIVEN_PROBABILITIES = (0.4, 0.35, 0.25)
# The view slots of a character seen in a mirror: back, right (as the left), front, left (as the right).
MIRROR_ORDER = [0, 3, 2, 1]
# How drawing picks each pixel's candidate (`Turnaround.decoding`): see `least_expected_l1`.
DECODINGS = ("least-expected-l1", "most-likely")


def view_variants(shifts: int = 0) -> list[tuple[bool, int]]:
    """The blocks of view candidates after `empty` and `drawn`, in order, D views each: (mirrored, columns
    moved right; negative = left). The first two, as is and mirrored in place, are the layout of models
    trained without shifts; then as is moved −1, +1, −2, +2 … and mirrored moved the same way.

    Why shifts: a character's views are often not centred on the same column. A back matches the mirrored
    front one column to the right in about 3 of 4 pooled test characters, and in the last part of each
    train split a side matches the mirrored other side moved by one column in half of them. In place,
    such pixels have no candidate and must be drawn (blurred, then snapped); moved, they are copied exactly.
    """
    moves = [move for distance in range(1, shifts + 1) for move in (-distance, distance)]
    return [(False, 0), (True, 0)] + [(False, move) for move in moves] + [(True, move) for move in moves]


def candidate_count(domains: int, shifts: int = 0) -> int:
    return FIRST_VIEW + len(view_variants(shifts)) * domains


def shift_columns(images: torch.Tensor, shift: int) -> torch.Tensor:
    """`images` [..., W] (RGBA in [-1, 1]) moved `shift` columns right (left when negative); the columns
    nothing moves into are transparent (every channel −1, as `empty`)."""
    if shift == 0:
        return images
    moved = torch.full_like(images, -1.0)
    if shift > 0:
        moved[..., shift:] = images[..., :-shift]
    else:
        moved[..., :shift] = images[..., -shift:]
    return moved


def view_candidate(views: torch.Tensor, column: int, shifts: int = 0) -> torch.Tensor:
    """[B, C, H, W]: the image of view candidate `column` (≥ FIRST_VIEW) for every character of `views` [B, D, C, H, W]."""
    domains = views.shape[1]
    mirrored, shift = view_variants(shifts)[(column - FIRST_VIEW) // domains]
    image = views[:, (column - FIRST_VIEW) % domains]
    return shift_columns(image.flip(-1) if mirrored else image, shift)


def conv_norm(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), instance_norm(cout), nn.LeakyReLU(0.2)]


class TurnaroundNet(nn.Module):
    """U-Net: views + mirrored views + availability planes → per view: candidate logits and a drawn RGB.

    Widths w·(1, 2, 4, 8), w = 16·capacity; two conv-norm-LeakyReLU per level, 2×2 average-pool down,
    `blocks` residual blocks at 1/8 size, nearest ×2 up + skip concatenation, a 1×1 head.
    """

    def __init__(self, channels: int, domains: int, capacity: int, blocks: int = 2, shifts: int = 0):
        super().__init__()
        width = 16 * capacity
        widths = [width * 2**level for level in range(LEVELS)]
        self.domains, self.channels = domains, channels
        cin = 2 * domains * channels + domains
        self.down = nn.ModuleList()
        for w in widths:
            self.down.append(nn.Sequential(*conv_norm(cin, w), *conv_norm(w, w)))
            cin = w
        self.middle = nn.Sequential(*(ResidualBlock(widths[-1], slope=0.2) for _ in range(blocks)))
        self.up = nn.ModuleList()
        for level in reversed(range(LEVELS - 1)):
            self.up.append(nn.Sequential(*conv_norm(cin + widths[level], widths[level]), *conv_norm(widths[level], widths[level])))
            cin = widths[level]
        self.outputs_per_view = candidate_count(domains, shifts) + 3
        self.head = PointwiseConv2d(cin, domains * self.outputs_per_view, 1)
        init_glorot(self)

    def forward(self, views: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """views [B, D, C, H, W] (missing ones zeroed), kept [B, D] → logits [B, D, K, H, W], drawn RGB [B, D, 3, H, W]."""
        count, domains, channels, height, width = views.shape
        planes = kept[:, :, None, None].to(views.dtype).expand(count, domains, height, width)
        # Drawing on a CPU, the large maps go channels-last: oneDNN runs a 3×3 conv to 16 or 32 channels on
        # 64² maps about twice as fast that way (the norms there are `InstanceGroupNorm`'s stable path); at
        # 16² and below the norms cost more than the convs gain, so those levels stay channels-first.
        wide = drawing_on_cpu(views)
        if wide:
            x = torch.empty(count, 2 * domains * channels + domains, height, width, dtype=views.dtype, memory_format=torch.channels_last)
            x[:, : domains * channels] = views.flatten(1, 2)
            x[:, domains * channels : 2 * domains * channels] = views.flatten(1, 2).flip(-1)
            x[:, 2 * domains * channels :] = planes
        else:
            x = torch.cat([views.flatten(1, 2), views.flip(-1).flatten(1, 2), planes], dim=1)
        skips = []
        for level, stage in enumerate(self.down):
            if level:
                x = half_size_mean(x)
            if wide and level == CHANNELS_LAST_LEVELS:
                x = x.contiguous()
            x = stage(x)
            skips.append(x)
        x = self.middle(x)
        for stage, skip in zip(self.up, reversed(skips[:-1])):
            x = stage(upsample_concat(x, skip))
        out = self.head(x.contiguous()).view(count, domains, self.outputs_per_view, height, width)  # the 1×1 head runs channels-first
        return out[:, :, :-3], torch.tanh(out[:, :, -3:])


class TurnaroundEnsemble(nn.Module):
    """Several trained turnaround networks drawing as one (`spriteforge models combine`): the same inputs,
    the same outputs as one `TurnaroundNet` with the most moved candidates of its members.

    Why: two trainings of the same recipe disagree enough that their agreement beats either one (stop 40:
    with one view missing, validation L1 0.0369 → 0.0351 for two members, pooled test 0.0316 → 0.0307). A
    candidate's log-probability is the mean of the members' that offer it (the geometric mean of their
    probabilities; a member without moved candidates leaves them to those with them), normalised by the
    caller's softmax. Drawn colours are the first member's: averaged, two members' colours blend into
    shades neither drew, and fronts drawn from three views were then read as fronts less often (0.46
    against 0.52)."""

    def __init__(self, channels: int, domains: int, capacity: int, blocks: int, member_shifts: list[int]):
        super().__init__()
        if len(member_shifts) < 2:
            raise SpriteForgeError(f"an ensemble needs two members or more, got {len(member_shifts)}")
        self.members = nn.ModuleList(TurnaroundNet(channels, domains, capacity, blocks, shifts) for shifts in member_shifts)
        full = view_variants(max(member_shifts))
        self.candidates = candidate_count(domains, max(member_shifts))
        offered = torch.zeros(self.candidates)
        for index, shifts in enumerate(member_shifts):  # where each of a member's candidates sits in the ensemble's order
            own = torch.tensor([EMPTY, DRAWN] + [FIRST_VIEW + full.index(variant) * domains + view
                                                 for variant in view_variants(shifts) for view in range(domains)])
            offered.index_add_(0, own, torch.ones(len(own)))
            self.register_buffer(f"positions_{index}", own, persistent=False)
        self.register_buffer("offered", offered, persistent=False)

    def forward(self, views: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As `TurnaroundNet.forward`; the logits are mean log-probabilities (equal up to a per-pixel constant)."""
        count, domains, _, height, width = views.shape
        total = views.new_zeros(count, domains, self.candidates, height, width)
        first_drawn = torch.empty(0)
        for index, member in enumerate(self.members):
            logits, drawn = member(views, kept)
            total.index_add_(2, self.get_buffer(f"positions_{index}"), logits.log_softmax(2))
            first_drawn = drawn if index == 0 else first_drawn
        return total / self.get_buffer("offered")[:, None, None], first_drawn


class ViewCritic(nn.Module):
    """One view [N, C, H, W] and the view it should be [N] → patch realism scores [N, h, w] and view logits [N, D].

    Four spectrally normalised 4×4/3×3 convs (widths w·(1, 2, 4, 8)) to 1/8 size; the realism score of a
    patch is a linear read-out plus the projection of its features on the target view's embedding
    (Miyato & Koyama), and the view head reads the features map as a whole (trained on real views only).
    """

    def __init__(self, channels: int, domains: int, image_size: int, width: int = 32):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        cin = channels
        for index, w in enumerate(widths):
            stride, kernel = (2, 4) if index < 3 else (1, 3)
            layers += [spectral_norm(nn.Conv2d(cin, w, kernel, stride, padding=1)), nn.LeakyReLU(0.2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.realism = spectral_norm(nn.Conv2d(cin, 1, 1))
        self.embedding = spectral_norm(nn.Embedding(domains, cin))
        self.view_head = nn.Linear(cin * (image_size // 8) ** 2, domains)  # where things are tells the view

    def forward(self, images: torch.Tensor, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images)
        projection = (features * self.embedding(views)[:, :, None, None]).sum(1)
        return self.realism(features)[:, 0] + projection, self.view_head(features.flatten(1))


def candidates(views: torch.Tensor, drawn: torch.Tensor, shifts: int = 0) -> torch.Tensor:
    """[B, D, K, C, H, W]: for each view slot its candidates (empty, drawn, every view, every view mirrored,
    then moved: `view_variants`). Views are RGBA (the model refuses RGB); drawn colours are opaque."""
    count, domains = views.shape[:2]
    drawn = torch.cat([drawn, torch.ones_like(drawn[:, :, :1])], dim=2)
    empty = torch.full_like(views[:, :1], -1.0).expand(count, domains, *views.shape[2:])
    both = torch.cat([shift_columns(views.flip(-1) if mirrored else views, shift) for mirrored, shift in view_variants(shifts)], dim=1)
    shared = both[:, None].expand(count, domains, *both.shape[1:])
    return torch.cat([empty[:, :, None], drawn[:, :, None], shared], dim=2)


def allowed_candidates(kept: torch.Tensor, shifts: int = 0) -> torch.Tensor:
    """[B, D, K] bool: empty and drawn always, a view (as is, mirrored or moved) only when given."""
    count, domains = kept.shape
    always = torch.ones(count, domains, FIRST_VIEW, dtype=torch.bool, device=kept.device)
    variants = len(view_variants(shifts))
    given = kept.repeat(1, variants)[:, None].expand(count, domains, variants * domains)
    return torch.cat([always, given], dim=2)


def source_targets(options: torch.Tensor, truth: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """[B, D, K, H, W] bool: the candidates equal to the true pixel; where none is, `drawn` (an opaque
    pixel no given view shows). Transparent true pixels always match `empty`."""
    same = ((options[:, :, FIRST_VIEW:] - truth[:, :, None]).abs() <= MATCH_TOLERANCE).all(3)
    same &= allowed[:, :, FIRST_VIEW:, None, None]
    empty = truth[:, :, 3] <= -1 + MATCH_TOLERANCE  # transparent (RGBA only: the model refuses RGB)
    drawn = ~(same.any(2) | empty)
    return torch.cat([empty[:, :, None], drawn[:, :, None], same], dim=2)


def sample_given(count: int, domains: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, D] bool: per example 1, 2 or 3 given views (GIVEN_PROBABILITIES), a uniformly random subset."""
    probabilities = torch.tensor(GIVEN_PROBABILITIES[: domains - 1], dtype=torch.float64)
    given = torch.multinomial(probabilities / probabilities.sum(), count, replacement=True, generator=generator) + 1
    rank = torch.rand(count, domains, generator=generator).argsort(1).argsort(1)
    return rank < given[:, None]


def mirror_characters(batch: torch.Tensor) -> torch.Tensor:
    """The same characters seen in a mirror: every view flipped, left and right swapped."""
    flipped = batch.flip(-1)
    return flipped[:, MIRROR_ORDER]


def unmirror_slots(values: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
    """Per-slot maps [B, D, …, W] drawn for `mirror_characters(views)` → those of `views` itself: slots
    swapped left ↔ right, columns flipped back; with `slots`, only those slots, in that order."""
    order = torch.tensor(MIRROR_ORDER, device=values.device)
    return values.index_select(1, order if slots is None else order[slots]).flip(-1)


def unmirror_logits(logits: torch.Tensor, columns: torch.Tensor | None = None, slots: torch.Tensor | None = None,
                    shifts: int = 0) -> torch.Tensor:
    """Logits [B, D, K, H, W] drawn for `mirror_characters(views)` → the same choices for `views` itself:
    view slots and view candidates swapped left ↔ right, columns flipped back. A pixel that the mirrored
    pass copies from view e as is (mirrored), moved s columns, is, in the original, view e' as is
    (mirrored) moved −s columns. With `columns` (candidate indices, see `decoding_columns`) and `slots`
    (view slots), only those, in that order."""
    variants, domains = view_variants(shifts), len(MIRROR_ORDER)
    sources = [EMPTY, DRAWN]
    for mirrored, shift in variants:
        block = variants.index((mirrored, -shift))
        sources += [FIRST_VIEW + block * domains + d for d in MIRROR_ORDER]
    order = torch.tensor(sources, device=logits.device)
    return unmirror_slots(logits.index_select(2, order if columns is None else order[columns]), slots)


def decoding_columns(allowed: torch.Tensor) -> torch.Tensor:
    """The candidate indices (in candidate order) that some character of the batch may use: empty, drawn,
    and every view given to one of them, as is and mirrored. The others have probability 0 everywhere,
    so drawing can leave them out: with one given view, 4 of the 10 candidates. When traced for export,
    all of them: the graph must serve any given views."""
    if torch.jit.is_tracing():
        return torch.arange(allowed.shape[2], device=allowed.device)
    return allowed.any(1).any(0).nonzero().flatten()


def least_expected_l1(probabilities: torch.Tensor, views: torch.Tensor, drawn: torch.Tensor, allowed: torch.Tensor,
                      hole_allowance: torch.Tensor | None = None, speck_allowance: torch.Tensor | None = None,
                      shifts: int = 0) -> torch.Tensor:
    """[B, D, H, W]: per pixel the candidate j with the least Σ_k p_k·|v_j − v_k|₁ (the L1 it is expected to
    miss the truth by, taking the model's distribution p over the candidates as the truth's).

    Why not the most likely candidate: when a pixel is `empty` with p = 0.4 and three candidates of one
    colour share the other 0.6, argmax leaves a hole; the expected L1 picks that colour. Ties go to the
    first candidate, so the choice is deterministic.

    probabilities [B, D, K, H, W] over every candidate or over `decoding_columns(allowed)` only; views
    [B, D, C, H, W] (missing ones zeroed); drawn [B, D, C, H, W] RGBA; allowed [B, D, K]. Every candidate
    but `drawn` (empty, the views, mirrored) is the same for all view slots of a character, so their
    distances to each other are computed once per character, not once per slot; and only views given to
    some character of the batch take part (the others have probability 0 and are not allowed), so a
    batch with one given view weighs 3 such candidates, not 9."""
    count, domains, channels, height, width = views.shape
    columns = decoding_columns(allowed)
    if probabilities.shape[2] != len(columns):  # over every candidate: keep those of `columns`
        probabilities = probabilities[:, :, columns]
    shared = torch.stack([torch.full_like(views[:, 0], -1.0)]  # [B, S, C, H, W]: empty, then the view candidates in use
                         + [view_candidate(views, column, shifts) for column in columns[FIRST_VIEW:].tolist()], dim=1)
    size = shared.shape[1]
    p_shared = torch.cat([probabilities[:, :, EMPTY : EMPTY + 1], probabilities[:, :, FIRST_VIEW:]], dim=2)  # [B, D, S, H, W]
    p_drawn = probabilities[:, :, DRAWN : DRAWN + 1]  # [B, D, 1, H, W]
    between = shared.new_zeros(count, size, size, height, width)
    for first in range(size):
        for second in range(first + 1, size):
            between[:, first, second] = between[:, second, first] = (shared[:, first] - shared[:, second]).abs_().sum(1)
    to_drawn = torch.stack([(drawn - shared[:, None, candidate]).abs_().sum(2) for candidate in range(size)], dim=2)  # [B, D, S, H, W]
    cost_shared = torch.stack([(p_shared * between[:, None, candidate]).sum(2) for candidate in range(size)], dim=2)
    cost_shared += p_drawn * to_drawn
    cost_drawn = (p_shared * to_drawn).sum(2, keepdim=True)
    cost = torch.cat([cost_shared[:, :, :1], cost_drawn, cost_shared[:, :, 1:]], dim=2)  # the order of `columns`
    cost.masked_fill_(~allowed[:, :, columns, None, None], float("inf"))
    choice = first_argmax(cost.neg_(), 2)  # argmin, first on ties (`columns` keeps the candidate order)
    if hole_allowance is not None or speck_allowance is not None:
        clear = transparent_columns(shared, choice.shape[1])
        if hole_allowance is not None:
            choice = fill_enclosed_holes(choice, cost, probabilities, clear, hole_allowance)
        if speck_allowance is not None:
            choice = remove_stray_specks(choice, probabilities, clear, speck_allowance)
    return columns[choice]


def transparent_columns(shared: torch.Tensor, slots: int) -> torch.Tensor:
    """[B, slots, K', H, W] bool: which candidate columns of `least_expected_l1` are transparent there
    (`shared`: empty, then the shared candidates in column order; `drawn` is always opaque)."""
    clear_shared = shared[:, :, 3] <= 0  # [B, S, H, W]
    clear = torch.cat([clear_shared[:, :1], torch.zeros_like(clear_shared[:, :1]), clear_shared[:, 1:]], dim=1)
    return clear[:, None].expand(-1, slots, -1, -1, -1)


def first_in_excess(pixels: torch.Tensor, key: torch.Tensor, excess: torch.Tensor) -> torch.Tensor:
    """[B, D, H, W] bool: per map, the `excess` [B, D] pixels of `pixels` with the smallest `key` (ties: the
    first in reading order); none where `excess` ≤ 0. What the hole fill and speck removal change.

    Only the flagged pixels of maps in excess are ranked (a few dozen in a batch, not B·D·H·W)."""
    count, domains = excess.shape
    flagged = (pixels & (excess > 0)[:, :, None, None]).flatten(2)
    where = flagged.nonzero()  # [n, 3]: map row, slot, position, in reading order
    result = torch.zeros_like(flagged)
    if len(where) == 0:
        return result.view_as(pixels)
    values = key.flatten(2)[where[:, 0], where[:, 1], where[:, 2]]
    maps = where[:, 0] * domains + where[:, 1]
    order = values.argsort(stable=True)  # by key, ties in reading order
    order = order[maps[order].argsort(stable=True)]  # then grouped by map, keeping that order
    sizes = torch.bincount(maps, minlength=count * domains)
    rank = torch.arange(len(order), device=order.device) - (sizes.cumsum(0) - sizes)[maps[order]]
    chosen = where[order[rank < excess.flatten()[maps[order]]]]
    result[chosen[:, 0], chosen[:, 1], chosen[:, 2]] = True
    return result.view_as(pixels)


def remove_stray_specks(choice: torch.Tensor, probabilities: torch.Tensor, clear: torch.Tensor, allowance: torch.Tensor) -> torch.Tensor:
    """`least_expected_l1`'s choice (column indices [B, D, H, W]) with no more stray speck pixels (opaque
    pixels in a detached component of one or two, `blocks.speck_pixels`) per drawn view than `allowance`
    [B] (as many as the character's given view with the most): the excess pixels, those the model
    thinks most likely transparent first, become transparent (`empty`, column 0). `clear`: which
    columns are transparent where (`transparent_columns`).

    Why: each pixel is decided on its own, so a pixel outside the figure where some mass sits on an
    opaque colour can come out opaque alone: TinyHero sides drawn from a front had about one such
    speck per view, where real sprites have almost none."""
    solid = ~clear.gather(2, choice[:, :, None]).squeeze(2)
    specks = speck_pixels(solid)
    excess = specks.flatten(2).sum(2) - allowance[:, None]  # [B, D]
    if not (excess > 0).any():
        return choice
    remove = first_in_excess(specks, -(probabilities * clear).sum(2), excess)  # the most likely transparent first
    return choice.masked_fill(remove, 0)  # column 0 is `empty`: every batch may use it


def fill_enclosed_holes(choice: torch.Tensor, negative_cost: torch.Tensor, probabilities: torch.Tensor, clear: torch.Tensor,
                        allowance: torch.Tensor) -> torch.Tensor:
    """`least_expected_l1`'s choice (column indices [B, D, H, W]) with no more enclosed transparent pixels per
    drawn view than `allowance` [B] (as many as the character's given view with the most, see
    `Turnaround.hole_allowance`): the excess pixels, those the model is least sure are transparent first,
    take their best opaque candidate instead. `clear`: which columns are transparent where
    (`transparent_columns`).

    Why: where the model cannot agree on *which* colour a pixel inside the figure has, the transparent
    candidate can still be the least expected L1 (it sits between the colours), and such pixels punch
    holes into the figure: sides drawn from a front had 4.8 enclosed transparent pixels per view on RPG
    Maker XP, where real sides have 0.04. A character drawn with holes (a gap between arm and body) may
    keep as many as it shows. A pixel is enclosed when no 4-connected path of transparent pixels joins it
    to the border."""
    transparent = clear.gather(2, choice[:, :, None]).squeeze(2)
    enclosed = transparent & ~reaches_border(transparent)
    excess = enclosed.flatten(2).sum(2) - allowance[:, None]  # [B, D]
    if not (excess > 0).any():
        return choice
    fill = first_in_excess(enclosed, (probabilities * clear).sum(2), excess)  # the least likely transparent first
    where = fill.nonzero(as_tuple=True)  # a few dozen pixels: their best opaque candidate only
    options = negative_cost.movedim(2, -1)[where].masked_fill(clear.movedim(2, -1)[where], float("-inf"))  # [n, K']
    result = choice.clone()
    result[where] = first_argmax(options, 1)
    return result


class Turnaround(SpriteModel):
    """Every missing view in one pass; each pixel empty, copied from a given view (as is or mirrored), or drawn."""

    name = "turnaround"
    evaluation_given_views = 1
    uses = frozenset({"capacity", "lambda-l1", "generator-blocks", "lambda-adversarial", "lambda-domain", "candidate-shifts",
                      "distill-from", "lambda-distill"})
    defaults = {"capacity": 2, "lambda-l1": 1.0, "generator-blocks": 2, "lr": 1e-3, "beta1": 0.9, "beta2": 0.99,
                "batch": 16, "lr-decay": "constant-then-linear", "lambda-adversarial": 0.0, "lambda-domain": 0.0}

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        super().__init__(config, domain_count, channels, image_size)
        check_four_views(domain_count, "turnaround")
        if channels != 4:
            raise SpriteForgeError("turnaround draws RGBA sprites (its 'empty' pixel is transparent); drop --output-channels 3")
        if image_size % 2 ** (LEVELS - 1):
            raise SpriteForgeError(f"turnaround needs --image-size divisible by {2 ** (LEVELS - 1)}")
        if config.capacity < 1:
            raise SpriteForgeError(f"--capacity must be at least 1, got {config.capacity}")
        # Runs recorded before shifted candidates existed lack the option: they copy in place only.
        self.shifts = config.get("candidate_shifts", 0)
        # A combination of trained turnarounds (`spriteforge models combine`) records its members' shifts;
        # it is not an option: an ensemble is made of trained models, not trained as one.
        members = config.get("member_shifts")
        if members:
            self.shifts = max(members)
            self.generator = TurnaroundEnsemble(channels, domain_count, config.capacity, config.generator_blocks, members)
        else:
            self.generator = TurnaroundNet(channels, domain_count, config.capacity, config.generator_blocks, self.shifts)
        self.make_optimizer("generator", self.generator, config.lr)
        # Runs recorded before the critic existed lack these options: they trained without it.
        self.lambda_adversarial = config.get("lambda_adversarial", 0.0)
        self.lambda_domain = config.get("lambda_domain", 0.0)
        if self.lambda_adversarial > 0 or self.lambda_domain > 0:
            self.discriminator = ViewCritic(channels, domain_count, image_size)
            self.make_optimizer("discriminator", self.discriminator, config.lr * config.get("ttur", 1.0))
        self.snap_drawn = True
        # How a pixel's candidate is chosen when drawing (see `impute_all`); plain attributes, not options:
        # they change no weights, and a run trained before them draws the new way too.
        self.decoding: str = DECODINGS[0]  # "most-likely": argmax, as before stop 31
        self.mirror_average = True
        self.fill_holes = True  # no more enclosed holes per drawn view than the given views have: `fill_enclosed_holes`
        self.remove_specks = True  # nor more stray specks: `remove_stray_specks`

    def learn_from(self, teacher: SpriteModel, path) -> None:
        """--distill-from: also learn `teacher`'s per-pixel source probabilities (its one pass over the same inputs).

        Why: two trainings average to a lower L1 than either (`TurnaroundEnsemble`), at twice the drawing
        cost; their averaged probabilities say, where the true source is one of several equal guesses, how
        much each guess deserves, which the one true source cannot. The teacher is kept out of the model's
        networks: it is neither trained nor saved."""
        if not isinstance(teacher, Turnaround) or teacher.shifts != self.shifts or teacher.domain_count != self.domain_count:
            shifts = getattr(teacher, "shifts", 0)
            raise SpriteForgeError(f"{path}: --distill-from offers {candidate_count(teacher.domain_count, shifts)} sources per pixel, "
                                   f"this model {candidate_count(self.domain_count, self.shifts)}; train with --candidate-shifts {shifts}")
        self.__dict__["teacher"] = teacher  # not a submodule: no parameters, no checkpoint entries

    def adapt_initial_weights(self, tensors: dict[str, torch.Tensor], source_config: dict) -> dict[str, torch.Tensor]:
        """--init-from a turnaround with fewer moved candidates (`--candidate-shifts`): the head rows of the
        candidates both have carry over, and each new moved candidate starts as its unmoved sibling less 1
        in logit, so the new model first draws much as the old one did and learns from there where moving
        pays. (Less 4 was too far: at a fine-tuning learning rate of 2e-4, Adam moves a logit by about a
        hundredth per step, and after 700 steps the moved candidates held 6 % of the mass at the pixels
        only they match.) The rest of the network is the same shape and carries over as is."""
        before = source_config.get("candidate_shifts", 0)
        if before == self.shifts:
            return tensors
        if before > self.shifts:
            raise SpriteForgeError(f"--init-from: that model moves candidates by up to {before} pixels; "
                                   f"this one only {self.shifts} (--candidate-shifts {before} or more)")
        domains = self.domain_count
        old_variants, new_variants = view_variants(before), view_variants(self.shifts)
        old_count, new_count = candidate_count(domains, before), candidate_count(domains, self.shifts)
        sources, offsets = [], []
        for slot in range(domains):
            old_base, new_base = slot * (old_count + 3), slot * (new_count + 3)
            for column in range(new_count + 3):
                offset = 0.0
                if column < FIRST_VIEW:
                    source = column
                elif column < new_count:
                    mirrored, shift = new_variants[(column - FIRST_VIEW) // domains]
                    if (mirrored, shift) not in old_variants:
                        shift, offset = 0, -1.0
                    source = FIRST_VIEW + old_variants.index((mirrored, shift)) * domains + (column - FIRST_VIEW) % domains
                else:
                    source = old_count + column - new_count  # the drawn RGB
                sources.append(old_base + source)
                offsets.append(offset)
        adapted, index = dict(tensors), torch.tensor(sources)
        weight, bias = "network/generator/head.weight", "network/generator/head.bias"
        if weight in tensors:
            adapted[weight] = tensors[weight].index_select(0, index)
        if bias in tensors:
            adapted[bias] = tensors[bias].index_select(0, index) + torch.tensor(offsets, dtype=tensors[bias].dtype)
        return adapted

    # -- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def impute_all(self, views: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """[B, D, C, H, W]: every view, the given ones as given and the missing ones drawn.

        Each missing pixel becomes one of its candidates: by default the one with the least expected L1
        under the model's own distribution, averaged over the character and its mirror image
        (the attributes `decoding` and `mirror_average`; see `least_expected_l1`)."""
        if self.decoding not in DECODINGS:
            raise SpriteForgeError(f"decoding '{self.decoding}': use one of {', '.join(DECODINGS)}")
        views = views * kept[:, :, None, None, None].to(views.dtype)
        count, domains, channels, height, width = views.shape
        if torch.jit.is_tracing():  # an exported graph decides every slot, whatever is given
            slots = torch.arange(domains, device=views.device)
        else:  # the view slots missing for some character: only they are decided
            slots = (~kept).any(0).nonzero().flatten()
            if len(slots) == 0:
                return views
        missing = ~kept[:, slots]
        allowed = allowed_candidates(kept, self.shifts)[:, slots]
        columns = decoding_columns(allowed)  # the candidates this batch can use; the others have probability 0
        disallowed = ~allowed[:, :, columns, None, None]
        if self.mirror_average:  # the character and the same character seen in a mirror, in one batch
            logits, drawn = self.generator(torch.cat([views, mirror_characters(views)]), torch.cat([kept, kept[:, MIRROR_ORDER]]))
            logits, mirrored_logits = logits.chunk(2)  # chunk, not split(count): an exported graph takes any batch
            drawn, mirrored_drawn = drawn.chunk(2)
        else:
            logits, drawn = self.generator(views, kept)
        scores = logits.index_select(1, slots).index_select(2, columns).masked_fill_(disallowed, float("-inf"))  # logits of one pass, or probabilities of two
        drawn = drawn.index_select(1, slots)
        if self.mirror_average:  # its choices mapped back
            mirrored = unmirror_logits(mirrored_logits, columns, slots, self.shifts).masked_fill_(disallowed, float("-inf"))
            scores = scores.softmax(2).add_(mirrored.softmax(2)).div_(2)
            drawn = drawn.add_(unmirror_slots(mirrored_drawn, slots)).div_(2)
        if self.decoding == "most-likely":
            choice = columns[first_argmax(scores, 2)]  # [B, S, H, W]
            snapped = choice == DRAWN
        else:
            snapped = missing[:, :, None, None].expand(-1, -1, height, width)  # any missing pixel may pick it
        if self.snap_drawn:
            drawn = snap_to_given_colours(drawn, views, kept, snapped)
        drawn = torch.cat([drawn, torch.ones_like(drawn[:, :, :1])], dim=2)
        if self.decoding == "least-expected-l1":  # decided on the colours the pixels would get
            choice = least_expected_l1(scores if self.mirror_average else scores.softmax(2), views, drawn, allowed,
                                       self.hole_allowance(views, kept), self.speck_allowance(views, kept), self.shifts)
        # Each pixel takes its candidate's colour: the slot's own drawn colour, empty, or a given view as
        # is, mirrored or moved. One select per candidate the batch uses (one given view, no shifts: 3), not a gather
        # from a pool of every candidate (12 copies of the batch's views): half the time.
        picked = torch.where((choice == DRAWN)[:, :, None], drawn, -1.0)
        for column in columns[FIRST_VIEW:].tolist():
            source = view_candidate(views, column, self.shifts)
            picked = torch.where((choice == column)[:, :, None], source[:, None], picked)
        result = views.clone()
        result[:, slots] = torch.where(missing[:, :, None, None, None], picked, views[:, slots])
        return result

    def hole_allowance(self, views: torch.Tensor, kept: torch.Tensor) -> torch.Tensor | None:
        """[B]: how many enclosed transparent pixels a drawn view of each character may keep (see
        `fill_enclosed_holes`): as many as the given view with the most. None when `fill_holes` is off."""
        if not self.fill_holes or torch.jit.is_tracing():  # its flood fill is a data-dependent loop
            return None
        clear = views[:, :, 3] <= 0
        return (clear & ~reaches_border(clear) & kept[:, :, None, None]).flatten(2).sum(2).amax(1)

    def speck_allowance(self, views: torch.Tensor, kept: torch.Tensor) -> torch.Tensor | None:
        """[B]: how many stray speck pixels a drawn view of each character may keep (see
        `remove_stray_specks`): as many as the given view with the most. None when `remove_specks` is off."""
        if not self.remove_specks or torch.jit.is_tracing():
            return None
        return (speck_pixels(views[:, :, 3] > 0) & kept[:, :, None, None]).flatten(2).sum(2).amax(1)

    @torch.no_grad()
    def impute(self, views, available, target):
        rows = torch.arange(len(views), device=views.device)
        return self.impute_all(views, available)[rows, target]

    # -- training ---------------------------------------------------------------------------------
    def train_step(self, batch, step, progress):
        count, domains = batch.shape[:2]
        flip = distributed.rand(count, device=batch.device) < 0.5
        batch = torch.where(flip[:, None, None, None, None], mirror_characters(batch), batch)
        kept = sample_given(count, domains).to(batch.device)
        inputs = batch * kept[:, :, None, None, None].to(batch.dtype)
        logits, drawn = self.generator(inputs, kept)
        allowed = allowed_candidates(kept, self.shifts)
        options = candidates(inputs, drawn.detach(), self.shifts)
        targets = source_targets(options, batch, allowed)
        logits = logits.float().masked_fill(~allowed[:, :, :, None, None], float("-inf"))  # float32 under autocast
        log_p = logits.log_softmax(2)
        chosen = log_p.masked_fill(~targets, float("-inf")).logsumexp(2)  # [B, D, H, W]
        missing = (~kept)[:, :, None, None].expand_as(chosen)
        selection = -(chosen[missing]).mean()
        needs_drawing = targets[:, :, DRAWN] & missing
        colour_error = (drawn - batch[:, :, :3]).abs().sum(2)
        drawing = (colour_error * needs_drawing).sum() / distributed.count_per_rank(needs_drawing.sum()).clamp_min(1) / 3
        loss = selection + self.config.lambda_l1 * drawing
        teacher, taught = self.__dict__.get("teacher"), {}
        if teacher is not None:  # --distill-from: KL(teacher ‖ model) at the missing pixels (0 when they agree)
            with torch.no_grad():
                teacher_p = teacher.generator(inputs, kept)[0].float().masked_fill(~allowed[:, :, :, None, None], float("-inf")).softmax(2)
            log_q = log_p.masked_fill(~allowed[:, :, :, None, None], 0.0)
            distilled = (torch.special.xlogy(teacher_p, teacher_p) - teacher_p * log_q).sum(2)[missing].mean()
            loss = loss + self.config.get("lambda_distill", 1.0) * distilled
            taught = {"generator/distill": distilled.item()}
        critic_losses: dict[str, float] = {}
        if hasattr(self, "discriminator"):
            critic_term, critic_losses = self.critic_terms(batch, kept, log_p, candidates(inputs, drawn, self.shifts))
            loss = loss + critic_term
        self.optimize("generator", loss)
        with torch.no_grad():
            accuracy = (targets.gather(2, log_p.argmax(2, keepdim=True)).squeeze(2))[missing].float().mean()
        return {"generator/selection": selection.item(), "generator/drawn-l1": drawing.item(),
                "generator/drawn-share": needs_drawing.sum().item() / max(1, missing.sum().item()),
                "generator/pixel-accuracy": accuracy.item(), "generator/total": loss.item(), **taught, **critic_losses}

    def critic_terms(self, batch: torch.Tensor, kept: torch.Tensor, log_p: torch.Tensor,
                     options: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Update the critic on the true views and the drawn ones; return the generator's critic term.

        The drawn views are the soft composition of the per-pixel choices (probabilities × candidates),
        so gradients reach both the choices and the drawn colours."""
        count, domains = kept.shape
        composed = (log_p.exp()[:, :, :, None] * options.float()).sum(2)  # [B, D, C, H, W]
        slots = torch.arange(domains, device=batch.device).expand(count, domains)
        drawn_views, drawn_labels = composed[~kept], slots[~kept]
        real_views, real_labels = batch.flatten(0, 1), slots.flatten()
        real_scores, real_logits = self.discriminator(real_views, real_labels)
        fake_scores, _ = self.discriminator(drawn_views.detach(), drawn_labels)
        critic = self.lambda_adversarial * hinge_discriminator_loss(real_scores, fake_scores)
        view_error = F.cross_entropy(real_logits.float(), real_labels)
        critic = critic + self.lambda_domain * view_error
        self.optimize("discriminator", critic)
        self.discriminator.requires_grad_(False)  # the generator's loss needs no critic gradients
        scores, logits = self.discriminator(drawn_views, drawn_labels)
        self.discriminator.requires_grad_(True)
        adversarial = hinge_generator_loss(scores)
        drawn_view_error = F.cross_entropy(logits.float(), drawn_labels)
        term = self.lambda_adversarial * adversarial + self.lambda_domain * drawn_view_error
        return term, {"discriminator/total": critic.item(), "discriminator/real-view-error": view_error.item(),
                      "generator/adversarial": adversarial.item(), "generator/drawn-view-error": drawn_view_error.item()}

    def test_images(self, character, device):
        return {f"_missing-{missing}": missing_views_grid(self, character, device, missing)
                for missing in range(1, character.shape[0])}


def snap_to_given_colours(drawn: torch.Tensor, views: torch.Tensor, kept: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Drawn RGB [B, D, 3, H, W] at the pixels `where` ([B, D, H, W]) moved to the nearest opaque colour
    of the character's given views (the other pixels are not used, so they are left as they are).

    Each character's palette (its distinct colours, in code order) is gathered for the whole batch at
    once, padded to the longest with a colour far outside [-1, 1]; the nearest colour is then searched
    one character at a time over its own colours."""
    count = len(kept)
    slots = where.flatten(2).any(2).any(0)  # view slots with a pixel to snap in some character
    opaque = kept[:, :, None, None] & (views[:, :, 3] > -1)
    if not slots.any() or not opaque.any():
        return drawn
    given = kept.any(0).nonzero().flatten()  # views given to some character: the others add no colour
    pixels = views.index_select(1, given).movedim(2, -1)[opaque[:, given]]  # [P, C] opaque given pixels
    levels = ((pixels[:, :3] + 1) * 127.5).round().long()
    rows = torch.arange(count, device=views.device)[:, None, None, None].expand_as(opaque[:, given])[opaque[:, given]]
    keys = torch.unique(rows << 24 | (levels[:, 0] << 16) | (levels[:, 1] << 8) | levels[:, 2])  # by character, then colour code
    key_rows, key_codes = keys >> 24, keys & 0xFFFFFF
    sizes = torch.bincount(key_rows, minlength=count)
    place = torch.arange(len(keys), device=views.device) - (sizes.cumsum(0) - sizes)[key_rows]
    palette = drawn.new_full((count, int(sizes.max()), 3), 1000.0)
    palette[key_rows, place] = torch.stack([key_codes >> 16, (key_codes >> 8) & 255, key_codes & 255], 1).to(drawn.dtype) / 127.5 - 1
    chosen = drawn[:, slots]  # [B, S, 3, H, W]
    colours = chosen.movedim(2, -1).reshape(count, -1, 3)
    squares = palette.square().sum(2)
    nearest = colours.new_empty(colours.shape[:2], dtype=torch.long)  # [B, S·H·W]
    for row, size in enumerate(sizes.clamp(min=1).tolist()):
        # One character at a time, over its own colours: its distance table stays in the cache (the whole
        # batch's, padded to the longest palette, is about 100 MB and made this 2x slower). |p|² − 2c·p is
        # the squared distance less |c|², which is the same for every palette colour of a pixel; `min`
        # gives the first of equal distances, as argmin does, at half its time.
        nearest[row] = torch.addmm(squares[row, None, :size], colours[row], palette[row, :size].T, alpha=-2).min(1).indices
    snapped = palette.gather(1, nearest[:, :, None].expand(-1, -1, 3)).view(chosen.movedim(2, -1).shape).movedim(-1, 2)
    result = drawn.clone()
    mask = (where[:, slots] & (sizes > 0)[:, None, None, None])[:, :, None]
    result[:, slots] = torch.where(mask, snapped, chosen)
    return result
