"""Procedural pixel-art characters in four views: SpriteForge's built-in default dataset.

It exists so that training, the tests and the demos run with no download: each character is drawn
from ``(seed, index)`` with numpy alone, as RGBA with binary alpha, in the package's view order.
"""

from __future__ import annotations

import colorsys

import numpy as np

from spriteforge import VIEWS

__all__ = ["VIEWS", "generate_characters"]

_BASE = 64
"""Every character is drawn on a 64x64 canvas, then resampled to the requested size."""

# Palette indices of the index images (0 is transparent).
# _EYE (eyes, eye patch) has the outline's colour but its own index, so that shrinking keeps it.
(_OUT, _SKIN, _SKIN_S, _HAIR, _HAIR_S, _SHIRT, _SHIRT_S, _PANTS, _PANTS_S,
 _SHOE, _ACC, _ACC_S, _METAL, _METAL_L, _EYE) = range(1, 16)
_N_INDICES = 16

# When shrinking, the highest-ranked pixel of each source block wins: small details before large
# areas, the outline last (it is put back on the silhouette's edge separately).
_RANK = np.array([0, 1, 4, 10, 5, 9, 3, 8, 2, 7, 6, 13, 11, 12, 14, 15], np.uint8)
_RANK_TO_INDEX = np.argsort(_RANK).astype(np.uint8)

_M = 4  # drawing margin around the 64x64 canvas, so parts never need clipping at its border
_SKINS = ((255, 224, 189), (241, 194, 150), (224, 172, 125), (198, 134, 90), (160, 104, 64), (110, 70, 45))
_FANTASY_SKINS = ((150, 190, 110), (150, 170, 215), (235, 225, 240), (205, 125, 110))
_HAIRS = ((40, 34, 36), (92, 58, 36), (140, 90, 50), (232, 200, 110), (196, 92, 44), (226, 226, 232),
          (150, 150, 160))
_METALS = (((180, 186, 198), (238, 242, 248)),  # silver, gold, bronze: (base, highlight)
           ((200, 150, 50), (250, 222, 120)),
           ((170, 110, 70), (225, 170, 120)))


def generate_characters(count: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """Draw ``count`` characters as uint8 RGBA, shape [count, 4, size, size, 4] (character, view, H, W, RGBA).

    Views follow ``VIEWS`` (back, left, front, right); alpha is 0 or 255 and transparent pixels are
    (0, 0, 0, 0). Character ``i`` depends only on ``(seed, i)`` and ``size``, never on ``count``.
    ``size`` must be a multiple of 16 from 32 to 512 (characters are drawn at 64 and resampled).
    """
    count, seed, size = _check_int(count, "count"), _check_int(seed, "seed"), _check_int(size, "size")
    if size % 16 or not 32 <= size <= 512:
        raise ValueError(f"size must be a multiple of 16 between 32 and 512 (e.g. 32, 64, 128), got {size}")
    index = np.zeros((count, len(VIEWS), _BASE, _BASE), np.uint8)
    palettes = np.zeros((count, _N_INDICES, 4), np.uint8)
    canvas = np.zeros((_BASE + 2 * _M, _BASE + 2 * _M), np.uint8)
    inner = canvas[_M:_M + _BASE, _M:_M + _BASE]
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        p = _sample(rng)
        palettes[i] = _palette(rng)
        for view in (0, 2, 3):  # back, front, right; the left view is mirrored below
            canvas.fill(0)
            if view == 3:
                _draw_side(canvas, p)
            else:
                _draw_front_back(canvas, p, back=view == 0)
            index[i, view] = inner
    _outline(index)
    index = _resample(index, size)
    index[:, 1] = index[:, 3, :, ::-1]  # the left view is the right view mirrored, at every size
    # Look up all four channels at once, as one uint32 per colour.
    rgba = palettes.view(np.uint32)[:, :, 0][np.arange(count)[:, None, None, None], index]
    return rgba.view(np.uint8).reshape(count, len(VIEWS), size, size, 4)


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return int(value)


# ----------------------------------------------------------------------------------------------
# Character parameters and palette


class _Params:
    """Everything that shapes one character (rows and columns are on the 64x64 canvas; `_sample` draws them)."""

    hat: str  # none, cap, wizard, helmet
    hair: str  # short, long, bald, spiky
    robe: bool
    short_sleeves: bool
    belt: bool
    hw2: int  # head half width
    tw2: int  # torso half width
    aw: int  # arm width
    td2: int  # torso half depth, seen from the side
    hat_h: int
    drape: int  # how far long hair falls below the chin
    fringe: np.ndarray  # [8] bool: gaps in the lower fringe row, mirrored
    blade: int
    hand: str | None  # sword, staff
    side: str | None  # shield, satchel
    head_item: str | None  # eyepatch, feather
    hh: int  # head height
    gb: int  # lowest filled row (soles)
    ht: int  # skull top
    top: int  # topmost filled row
    hb: int  # chin
    tt: int  # shoulders
    tb: int  # waist
    lt: int  # legs
    ey: int  # eyes (2 rows)
    fr: int  # lowest fringe row


def _sample(rng: np.random.Generator) -> _Params:
    p = _Params()
    p.hat = ("none", "cap", "wizard", "helmet")[rng.choice(4, p=[0.4, 0.2, 0.2, 0.2])]
    p.hair = ("short", "long", "bald", "spiky")[rng.choice(4, p=[0.35, 0.3, 0.15, 0.2])]
    p.robe = bool(rng.random() < 0.3)
    p.short_sleeves = bool(rng.random() < 0.3)
    p.belt = bool(rng.random() < 0.5)
    p.hw2 = int(rng.integers(5, 8))  # head half width
    p.tw2 = int(rng.integers(6, 10))  # torso half width
    p.aw = int(rng.integers(3, 5))  # arm width
    p.td2 = max(4, round(p.tw2 * 0.6))  # torso half depth, seen from the side
    p.hat_h = int(rng.integers(8, 11))
    p.drape = int(rng.integers(3, 7))  # how far long hair falls below the chin
    p.fringe = rng.random(8) < 0.5  # gaps in the lower fringe row, mirrored
    p.blade = int(rng.integers(7, 13))

    # 1-2 asymmetric items, each in its own slot: right hand, left side, head.
    p.hand = p.side = p.head_item = None
    for slot in rng.permutation(3)[: 1 + int(rng.random() < 0.5)]:
        pick = int(rng.integers(2))
        if slot == 0:
            p.hand = ("sword", "staff")[pick]
        elif slot == 1:
            p.side = ("shield", "satchel")[pick]
        else:
            p.head_item = ("eyepatch", "feather")[pick]

    if p.hat == "none":
        extra = {"bald": 0, "spiky": 3}.get(p.hair, 1)
    else:
        extra = {"cap": 2, "helmet": 1, "wizard": p.hat_h}[p.hat]
    # Fill height from skull top to soles; with the hat and the 1 px outline the sprite is 36-50 tall.
    body = int(rng.integers(max(30, 34 - extra), min(44, 48 - extra) + 1))
    p.hh = int(np.clip(round(body * rng.uniform(0.28, 0.36)), 10, 13))
    rest = body - p.hh
    th = max(8, round(rest * rng.uniform(0.42, 0.55)))
    p.gb = int(rng.integers(56, 61))  # lowest filled row (soles); the outline sits below it
    p.ht = p.gb - body + 1  # skull top
    p.top = p.ht - extra  # topmost filled row
    p.hb = p.ht + p.hh - 1  # chin
    p.tt = p.hb + 1  # shoulders
    p.tb = p.tt + th - 1  # waist
    p.lt = p.tb + 1  # legs
    p.ey = p.ht + p.hh // 2  # eyes (2 rows)
    p.fr = p.ht + (2 if p.hh <= 11 else 3)  # lowest fringe row
    return p


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _shade(c, f: float = 0.72) -> tuple[int, int, int]:
    """Darker and slightly cooler, as pixel artists shade."""
    return int(c[0] * f * 0.92), int(c[1] * f * 0.96), min(255, int(c[2] * f * 1.04 + 10))


def _palette(rng: np.random.Generator) -> np.ndarray:
    u = rng.uniform
    if rng.random() < 0.12:
        skin = _FANTASY_SKINS[rng.integers(len(_FANTASY_SKINS))]
    else:
        skin = _SKINS[rng.integers(len(_SKINS))]
    red, green, blue = (int(np.clip(c + rng.integers(-8, 9), 0, 255)) for c in skin)
    skin = (red, green, blue)
    if rng.random() < 0.75:
        hair = _HAIRS[rng.integers(len(_HAIRS))]
    else:
        hair = _hsv(u(), u(0.5, 0.85), u(0.55, 0.9))
    h_shirt = u()
    shirt = _hsv(h_shirt, u(0.45, 0.85), u(0.55, 0.92))
    pants = _hsv(h_shirt + u(0.25, 0.75), u(0.25, 0.7), u(0.3, 0.6))
    if rng.random() < 0.7:  # leather brown
        shoes = _hsv(u(0.02, 0.1), u(0.3, 0.7), u(0.22, 0.42))
    else:
        shoes = _hsv(u(), u(0.1, 0.5), u(0.2, 0.4))
    acc = _hsv(u(), u(0.6, 0.9), u(0.6, 0.95))
    metal, metal_light = _METALS[rng.choice(3, p=[0.6, 0.25, 0.15])]
    outline = _hsv(h_shirt, u(0.3, 0.6), u(0.08, 0.15))
    colours = [outline, skin, _shade(skin, 0.8), hair, _shade(hair), shirt, _shade(shirt),  # index order
               pants, _shade(pants), shoes, acc, _shade(acc), metal, metal_light]
    seen: set[tuple[int, int, int]] = set()
    for k, c in enumerate(colours):  # keep the 14 colours distinct
        while c in seen:
            c = ((c[0] + 11) % 256, c[1], (c[2] + 7) % 256)
        seen.add(c)
        colours[k] = c
    palette = np.zeros((_N_INDICES, 4), np.uint8)
    palette[1:, :3] = colours + [colours[0]]
    palette[1:, 3] = 255
    return palette


# ----------------------------------------------------------------------------------------------
# Drawing: each part is a small index image stamped onto the canvas with its own 1 px outline


class _Part:
    """A small index image at a canvas position; ``mirror`` flips all x coordinates (back view)."""

    __slots__ = ("pad", "a", "y0", "x0", "mirror")

    def __init__(self, y0: int, y1: int, x0: int, x1: int, mirror: bool = False):
        if mirror:
            x0, x1 = _BASE - x1, _BASE - x0
        self.pad = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)  # 1 px border for the outline
        self.a = self.pad[1:-1, 1:-1]
        self.y0, self.x0, self.mirror = y0, x0, mirror

    def rect(self, y0: int, y1: int, x0: int, x1: int, c: int) -> None:
        if self.mirror:
            x0, x1 = _BASE - x1, _BASE - x0
        y0 -= self.y0
        y1 -= self.y0
        x0 -= self.x0
        x1 -= self.x0
        if y0 < 0:
            y0 = 0
        if x0 < 0:
            x0 = 0
        if y1 > y0 and x1 > x0:  # slicing clips the far ends
            self.a[y0:y1, x0:x1] = c

    def px(self, y: int, x: int, c: int) -> None:
        self.rect(y, y + 1, x, x + 1, c)

    def line(self, y0: int, x0: int, y1: int, x1: int, c: int) -> None:
        n = max(abs(y1 - y0), abs(x1 - x0)) + 1
        ys = np.floor(np.linspace(y0, y1, n) + 0.5).astype(np.intp)
        xs = np.floor(np.linspace(x0, x1, n) + 0.5).astype(np.intp)
        if self.mirror:
            xs = _BASE - 1 - xs
        self.a[ys - self.y0, xs - self.x0] = c

    def stamp(self, canvas: np.ndarray, outline: bool = True) -> None:
        """Paint the part, ringed with the outline colour unless ``outline`` is false."""
        pad = self.pad
        m = pad != 0
        h, w = pad.shape
        y, x = self.y0 + _M - 1, self.x0 + _M - 1
        region = canvas[y:y + h, x:x + w]
        if outline:
            d = m.copy()
            d[1:] |= m[:-1]
            d[:-1] |= m[1:]
            d[:, 1:] |= m[:, :-1]
            d[:, :-1] |= m[:, 1:]
            np.copyto(region, _OUT, where=d)
        np.copyto(region, pad, where=m)


def _cone_half(p: _Params, r: int) -> int:
    return 1 + ((p.hw2 - 2) * (r - p.top)) // (p.ht - p.top)


def _draw_front_back(c: np.ndarray, p: _Params, back: bool) -> None:
    """Front view, or with ``back`` the back view; both in the front's frame, the back mirrored.

    In the front frame the character's right side is on the image's left.
    """
    def part(y0, y1, x0, x1):
        return _Part(y0, y1, x0, x1, back)

    ht, hb, tt, tb, lt, gb, ey = p.ht, p.hb, p.tt, p.tb, p.lt, p.gb, p.ey
    hw2, aw = p.hw2, p.aw
    L, R = 32 - p.tw2, 32 + p.tw2  # torso columns
    x0, x1 = 32 - hw2, 32 + hw2  # skull columns
    hp2 = p.tw2 - 1  # hip half width

    # Legs and shoes, or a robe.
    if p.robe:
        legs = part(lt, gb + 1, L - 3, R + 3)
        n = max(1, gb - 2 - lt)
        for y in range(lt, gb - 1):
            half = hp2 + 1 + (2 * (y - lt)) // n
            legs.rect(y, y + 1, 32 - half, 32 + half, _SHIRT)
            legs.rect(y, y + 1, 32 - half, 32 - half + 1, _SHIRT_S)
            legs.rect(y, y + 1, 32 + half - 1, 32 + half, _SHIRT_S)
        legs.rect(lt + 2, gb - 1, 31, 33, _SHIRT_S)  # a fold
        legs.rect(gb - 1, gb + 1, 32 - hp2 + 1, 31, _SHOE)
        legs.rect(gb - 1, gb + 1, 33, 32 + hp2 - 1, _SHOE)
    else:
        legs = part(lt, gb + 1, L, R)
        legs.rect(lt, gb - 1, 32 - hp2, 32 + hp2, _PANTS)
        legs.rect(lt + 1, gb - 1, 30, 31, _PANTS_S)
        legs.rect(lt + 1, gb - 1, 33, 34, _PANTS_S)
        legs.rect(gb - 1, gb + 1, 32 - hp2, 31, _SHOE)
        legs.rect(gb - 1, gb + 1, 33, 32 + hp2, _SHOE)
        legs.rect(lt + 2, gb + 1, 31, 33, 0)  # the gap between the legs becomes outline
    legs.stamp(c)

    # Torso.
    torso = part(tt, tb + 1, L, R)
    torso.rect(tt, tb + 1, L, R, _SHIRT)
    torso.rect(tt + 1, tb + 1, L, L + 1, _SHIRT_S)
    torso.rect(tt + 1, tb + 1, R - 1, R, _SHIRT_S)
    torso.px(tt, L, 0)
    torso.px(tt, R - 1, 0)
    if not back:
        torso.rect(tt, tt + 1, 30, 34, _SKIN)
        torso.rect(tt + 1, tt + 2, 31, 33, _SKIN)
    if p.belt or p.robe:
        torso.rect(tb, tb + 1, L, R, _ACC_S if p.robe else _PANTS_S)
        if not back and not p.robe:
            torso.rect(tb, tb + 1, 31, 33, _METAL_L)
    if p.side == "satchel":  # strap from the right shoulder to the left hip
        torso.line(tt, L + 2, tb - 1, R - 3, _ACC_S)
    torso.stamp(c)

    # Arms (the character's right arm is on the image's left in the front frame).
    for ax0 in (L - aw, R):
        arm = part(tt, tb + 2, ax0, ax0 + aw)
        arm.rect(tt, tb + 2, ax0, ax0 + aw, _SHIRT)
        outer = ax0 if ax0 < 32 else ax0 + aw - 1
        arm.rect(tt, tb, outer, outer + 1, _SHIRT_S)
        if p.short_sleeves:
            arm.rect(tt + 3, tb, ax0, ax0 + aw, _SKIN)
        arm.rect(tb, tb + 2, ax0, ax0 + aw, _SKIN)
        arm.px(tt, outer, 0)
        arm.stamp(c)

    # Head and hair.
    head = part(ht - 4, hb + 8, x0 - 3, x1 + 3)
    head.rect(ht, hb + 1, x0, x1, _SKIN)
    for y, x in ((ht, x0), (ht, x1 - 1), (hb, x0), (hb, x1 - 1)):
        head.px(y, x, 0)
    if p.hair != "long" and p.hat != "helmet":  # ears
        head.rect(ey, ey + 2, x0 - 1, x0, _SKIN)
        head.rect(ey, ey + 2, x1, x1 + 1, _SKIN)
    if back:
        if p.hair == "bald":
            head.rect(hb - 1, hb, x0 + 1, x1 - 1, _SKIN_S)
        else:
            head.rect(ht - 1, ht, x0 + 1, x1 - 1, _HAIR)
            head.rect(ht, hb - 1, x0, x1, _HAIR)
            head.rect(hb - 2, hb - 1, x0 + 1, x1 - 1, _HAIR_S)
            head.rect(hb - 1, hb, x0 + 1, x1 - 1, _SKIN_S)  # nape
            if p.hair == "long":
                bottom = hb + p.drape
                head.rect(ht, bottom, x0 - 1, x1 + 1, _HAIR)
                head.rect(ht + 2, bottom, 31, 33, _HAIR_S)
                head.rect(bottom - 1, bottom, x0 - 1, x1 + 1, _HAIR_S)
                head.px(bottom - 1, x0 - 1, 0)
                head.px(bottom - 1, x1, 0)
    else:
        head.rect(hb, hb + 1, x0 + 1, x1 - 1, _SKIN_S)  # jaw
        e = hw2 - 3
        head.rect(ey, ey + 2, 32 - e - 1, 32 - e, _EYE)
        head.rect(ey, ey + 2, 32 + e, 32 + e + 1, _EYE)
        if ey + 3 <= hb - 1:
            head.rect(ey + 3, ey + 4, 31, 33, _SKIN_S)
        if p.hair != "bald":
            head.rect(ht - 1, ht, x0 + 1, x1 - 1, _HAIR)
            head.rect(ht, p.fr, x0, x1, _HAIR)
            head.rect(p.fr, p.fr + 1, x0, x1, _HAIR_S)
            for k in range(hw2 - 1):  # ragged fringe
                if p.fringe[k]:
                    head.px(p.fr, 31 - k, _SKIN)
                    head.px(p.fr, 32 + k, _SKIN)
            head.rect(p.fr + 1, p.fr + 3, x0, x0 + 1, _HAIR_S)  # sideburns
            head.rect(p.fr + 1, p.fr + 3, x1 - 1, x1, _HAIR_S)
            if p.hair == "long":
                head.rect(ht, hb + 3, x0 - 1, x0 + 1, _HAIR)
                head.rect(ht, hb + 3, x1 - 1, x1 + 1, _HAIR)
                head.rect(p.fr + 1, hb + 3, x0, x0 + 1, _HAIR_S)
                head.rect(p.fr + 1, hb + 3, x1 - 1, x1, _HAIR_S)
    if p.hair == "spiky" and p.hat == "none":
        for k in range(hw2 - 1):
            if k % 3 != 2:
                head.px(ht - 2, 31 - k, _HAIR)
                head.px(ht - 2, 32 + k, _HAIR)
            if k % 3 == 0:
                head.px(ht - 3, 31 - k, _HAIR)
                head.px(ht - 3, 32 + k, _HAIR)
    head.stamp(c)

    _hat_front_back(c, p, part, back)

    # Asymmetric items.
    if p.head_item == "feather":
        _feather(c, p, part, ya=p.top + 4, xa=_hat_edge(p, p.top + 4), direction=1)
    if p.head_item == "eyepatch":
        e = hw2 - 3
        strap = part(ht - 1, ey + 3, x0 - 1, x1 + 1)
        if not back:
            strap.rect(ey - 1, ey + 2, 32 + e - 1, 32 + e + 2, _EYE)
        strap.line(ey - 1, 32 + e, ht + 1, x0, _EYE)
        strap.stamp(c, outline=False)
    if p.side == "shield":
        sy0, sy1 = tt + 2, min(tb + 2, tt + 2 + int(p.blade * 0.8))
        sh = part(sy0, sy1, R - 1, R + aw + 2)
        sh.rect(sy0, sy1, R - 1, R + aw + 2, _METAL)
        sh.rect(sy0 + 1, sy1 - 1, R, R + aw + 1, _ACC_S if back else _ACC)
        if back:
            sh.rect((sy0 + sy1) // 2, (sy0 + sy1) // 2 + 1, R, R + aw + 1, _METAL)
        else:
            sh.rect((sy0 + sy1) // 2 - 1, (sy0 + sy1) // 2 + 1, R + aw // 2, R + aw // 2 + 1, _METAL_L)
        sh.px(sy1 - 1, R - 1, 0)
        sh.px(sy1 - 1, R + aw + 1, 0)
        sh.stamp(c)
    if p.side == "satchel":
        bag = part(tb - 2, tb + 3, R - 4, R + 1)
        bag.rect(tb - 2, tb + 3, R - 4, R + 1, _ACC)
        bag.rect(tb - 2, tb, R - 4, R + 1, _ACC_S)
        if not back:
            bag.px(tb, R - 2, _METAL_L)
        bag.stamp(c)
    if p.hand is not None:
        hx0 = L - aw
        cx = hx0 + aw // 2 - 1
        _held_item(c, p, part, hx0, cx)


def _hat_edge(p: _Params, y: int) -> int:
    """Column just outside the hat (or hair) on the character's left, front frame, at row ``y``."""
    if p.hat == "wizard":
        return 32 + _cone_half(p, y)
    if p.hat == "helmet":
        return 32 + p.hw2 + 1
    return 32 + p.hw2


def _feather(c, p, part, ya: int, xa: int, direction: int) -> None:
    colour = _HAIR if p.hat == "none" else _ACC
    f = part(ya - 4, ya + 1, min(xa, xa + 3 * direction), max(xa, xa + 3 * direction) + 1)
    for dy, dx in ((0, 0), (-1, 1), (-2, 1), (-2, 2), (-3, 2), (-4, 3)):
        f.px(ya + dy, xa + dx * direction, colour)
    if p.hat != "none":
        f.px(ya, xa, _ACC_S)
    f.stamp(c)


def _held_item(c, p, part, hx0: int, cx: int) -> None:
    """Sword (pointing down) or staff in the right hand, whose left column is ``hx0``."""
    tb, aw, gb = p.tb, p.aw, p.gb
    if p.hand == "sword":
        s = part(tb - 1, gb, hx0 - 1, hx0 + aw + 1)
        s.rect(tb - 1, tb, cx, cx + 2, _ACC_S)  # pommel
        s.rect(tb + 2, tb + 3, hx0 - 1, hx0 + aw + 1, _ACC_S)  # guard
        end = min(gb - 1, tb + 3 + p.blade)
        s.rect(tb + 3, end, cx, cx + 1, _METAL_L)
        s.rect(tb + 3, end, cx + 1, cx + 2, _METAL)
        s.stamp(c)
    else:
        ht = p.ht
        s = part(ht, gb + 1, cx - 1, cx + 3)
        s.rect(ht + 3, gb + 1, cx, cx + 2, _ACC_S)
        s.rect(ht, ht + 3, cx - 1, cx + 3, _ACC)
        s.px(ht, cx - 1, 0)
        s.px(ht, cx + 2, 0)
        s.px(ht + 1, cx, _METAL_L)
        s.stamp(c)
    hand = part(tb, tb + 2, hx0, hx0 + aw)
    hand.rect(tb, tb + 2, hx0, hx0 + aw, _SKIN)
    hand.stamp(c)


def _hat_front_back(c, p, part, back: bool) -> None:
    ht, hb, ey, hw2 = p.ht, p.hb, p.ey, p.hw2
    x0, x1 = 32 - hw2, 32 + hw2
    if p.hat == "cap":
        h = part(ht - 2, ht + 3, x0 - 1, x1 + 1)
        h.rect(ht - 2, ht - 1, x0 + 2, x1 - 2, _ACC)
        h.rect(ht - 1, ht, x0 + 1, x1 - 1, _ACC)
        h.rect(ht, ht + 2, x0, x1, _ACC)
        if back:
            h.rect(ht + 2, ht + 3, x0, x1, _ACC_S)
        else:
            h.rect(ht + 2, ht + 3, x0 - 1, x1 + 1, _ACC_S)
        h.stamp(c)
    elif p.hat == "helmet":
        h = part(ht - 1, hb + 1, x0 - 1, x1 + 1)
        h.rect(ht - 1, ht, x0 + 1, x1 - 1, _METAL)
        h.rect(ht, ey - 1, x0 - 1, x1 + 1, _METAL)
        if back:
            h.rect(ey - 1, hb, x0 - 1, x1 + 1, _METAL)
        else:
            h.rect(ey - 1, hb - 1, x0 - 1, x0 + 1, _METAL)
            h.rect(ey - 1, hb - 1, x1 - 1, x1 + 1, _METAL)
        h.rect(ht - 1, ey - 1, 31, 33, _METAL_L)
        h.stamp(c)
    elif p.hat == "wizard":
        h = part(p.top, ht + 1, x0 - 2, x1 + 2)
        for r in range(p.top, ht):
            half = _cone_half(p, r)
            h.rect(r, r + 1, 32 - half, 32 + half, _ACC)
        half = _cone_half(p, ht - 1)
        h.rect(ht - 2, ht, 32 - half, 32 + half, _ACC_S)
        h.rect(ht, ht + 1, x0 - 2, x1 + 2, _ACC_S)
        h.stamp(c)


def _draw_side(c: np.ndarray, p: _Params) -> None:
    """Right view: the character faces the image's right and shows its right side."""
    ht, hb, tt, tb, lt, gb, ey = p.ht, p.hb, p.tt, p.tb, p.lt, p.gb, p.ey
    hw2, aw, td2 = p.hw2, p.aw, p.td2
    T0, T1 = 32 - td2, 32 + td2  # torso columns (depth)
    x0, x1 = 33 - hw2, 33 + hw2  # skull columns, a little forward

    # Behind the body: the satchel on the far hip, the feather on the far side.
    if p.side == "satchel":
        bag = _Part(tb - 2, tb + 3, T0 - 2, T0 + 2)
        bag.rect(tb - 2, tb + 3, T0 - 2, T0 + 2, _ACC)
        bag.rect(tb - 2, tb, T0 - 2, T0 + 2, _ACC_S)
        bag.stamp(c)

    # Legs: far leg darker and behind, near leg a step forward; or a robe.
    lw = td2 + 1
    if p.robe:
        legs = _Part(lt, gb + 1, T0 - 2, T1 + 3)
        n = max(1, gb - 2 - lt)
        for y in range(lt, gb - 1):
            grow = (2 * (y - lt)) // n
            legs.rect(y, y + 1, T0 - grow, T1 + grow, _SHIRT)
            legs.rect(y, y + 1, T0 - grow, T0 - grow + 1, _SHIRT_S)
        legs.rect(gb - 1, gb + 1, T1 - lw + 1, T1 + 2, _SHOE)
        legs.stamp(c)
    else:
        for lx0, colour in ((T0, _PANTS_S), (T1 - lw, _PANTS)):
            leg = _Part(lt, gb + 1, lx0, lx0 + lw + 2)
            leg.rect(lt, gb - 1, lx0, lx0 + lw, colour)
            leg.rect(gb - 1, gb + 1, lx0, lx0 + lw + 2, _SHOE)
            leg.px(gb - 1, lx0 + lw + 1, 0)
            leg.stamp(c)

    # Torso.
    torso = _Part(tt, tb + 1, T0, T1)
    torso.rect(tt, tb + 1, T0, T1, _SHIRT)
    torso.rect(tt + 1, tb + 1, T0, T0 + 1, _SHIRT_S)
    torso.px(tt, T0, 0)
    torso.px(tt, T1 - 1, 0)
    torso.rect(tt, tt + 1, T1 - 3, T1 - 1, _SKIN)
    if p.belt or p.robe:
        torso.rect(tb, tb + 1, T0, T1, _ACC_S if p.robe else _PANTS_S)
    if p.side == "satchel":
        torso.line(tt, T1 - 2, tb - 2, T0 + 1, _ACC_S)
    torso.stamp(c)

    if p.side == "shield":  # on the far arm, its edge showing in front of the chest
        sy0, sy1 = tt + 2, min(tb + 2, tt + 2 + int(p.blade * 0.8))
        sh = _Part(sy0, sy1, T1 - 1, T1 + 2)
        sh.rect(sy0, sy1, T1 - 1, T1 + 2, _ACC)
        sh.rect(sy0, sy1, T1 + 1, T1 + 2, _METAL)
        sh.stamp(c)

    # Near (right) arm; reaching forward when it holds a staff.
    ax0 = 32 - aw // 2
    arm = _Part(tt, tb + 2, ax0 - 1, x1 + 6)
    if p.hand == "staff":
        ye = tt + max(3, (tb - tt) // 2)
        hand_x = max(T1 + 1, x1 + 2)
        arm.rect(tt, ye + aw - 1, ax0, ax0 + aw, _SHIRT)
        arm.rect(ye, ye + aw - 1, ax0, hand_x, _SHIRT)
        arm.rect(ye, ye + aw - 1, hand_x - 2, hand_x, _SKIN)
    else:
        arm.rect(tt, tb + 2, ax0, ax0 + aw, _SHIRT)
        if p.short_sleeves:
            arm.rect(tt + 3, tb, ax0, ax0 + aw, _SKIN)
        arm.rect(tb, tb + 2, ax0, ax0 + aw, _SKIN)
    arm.rect(tt, tt + 1, ax0, ax0 + 1, _SHIRT_S)
    arm.px(tt, ax0 + aw - 1, 0)
    arm.stamp(c)

    if p.head_item == "feather":
        back = _hat_back_edge(p, p.top + 4)
        _feather(c, p, _Part, ya=p.top + 4, xa=back, direction=-1)

    # Head in profile.
    head = _Part(ht - 4, hb + 8, x0 - 3, x1 + 3)
    head.rect(ht, hb + 1, x0, x1, _SKIN)
    for y, x in ((ht, x0), (ht, x1 - 1), (hb, x0), (hb, x1 - 1)):
        head.px(y, x, 0)
    head.rect(hb, hb + 1, x0 + 1, x1 - 1, _SKIN_S)
    head.px(ey + 2, x1, _SKIN)  # nose
    head.rect(ey, ey + 2, x1 - 3, x1 - 2, _EYE)
    if ey + 3 <= hb - 1:
        head.px(ey + 3, x1 - 2, _SKIN_S)
    ear = x0 + hw2 - 2
    if p.hair != "bald":
        head.rect(ht - 1, ht, x0 + 1, x1 - 2, _HAIR)
        head.rect(ht, p.fr, x0, x1 - 1, _HAIR)
        head.rect(p.fr, p.fr + 1, x0, x1 - 2, _HAIR_S)
        if p.hair == "long":
            head.rect(ht, hb + 4, x0 - 1, ear + 1, _HAIR)
            head.rect(p.fr + 1, hb + 4, ear, ear + 1, _HAIR_S)
            head.px(hb + 3, x0 - 1, 0)
        else:
            head.rect(p.fr, ey + 3, x0, ear, _HAIR)
            head.rect(ey + 2, ey + 3, x0 + 1, ear, _HAIR_S)
    if p.hair != "long" and p.hat != "helmet":
        head.rect(ey + 1, ey + 3, ear, ear + 1, _SKIN_S)
    if p.hair == "spiky" and p.hat == "none":
        for k in range(0, 2 * hw2 - 2, 3):
            head.rect(ht - 2, ht - 1, x0 + k, x0 + k + 2, _HAIR)
            head.px(ht - 3, x0 + k, _HAIR)
    head.stamp(c)

    # Hat in profile.
    if p.hat == "cap":
        h = _Part(ht - 2, ht + 3, x0, x1 + 3)
        h.rect(ht - 2, ht - 1, x0 + 2, x1 - 2, _ACC)
        h.rect(ht - 1, ht, x0 + 1, x1 - 1, _ACC)
        h.rect(ht, ht + 2, x0, x1, _ACC)
        h.rect(ht + 2, ht + 3, x1 - 3, x1 + 3, _ACC_S)
        h.stamp(c)
    elif p.hat == "helmet":
        h = _Part(ht - 1, hb, x0 - 1, x1 + 1)
        h.rect(ht - 1, ht, x0 + 1, x1 - 1, _METAL_L)
        h.rect(ht, ey - 1, x0 - 1, x1 + 1, _METAL)
        h.rect(ey - 1, hb, x0 - 1, ear, _METAL)
        h.rect(ht, ey - 1, x0 + 2, x0 + 3, _METAL_L)
        h.stamp(c)
    elif p.hat == "wizard":
        h = _Part(p.top, ht + 1, x0 - 4, x1 + 2)
        for r in range(p.top, ht):
            half, cen = _cone_half(p, r), _cone_centre(p, r)
            h.rect(r, r + 1, cen - half, cen + half, _ACC)
        half = _cone_half(p, ht - 1)
        h.rect(ht - 2, ht, 33 - half, 33 + half, _ACC_S)
        h.rect(ht, ht + 1, x0 - 2, x1 + 2, _ACC_S)
        h.stamp(c)

    # Near-side items.
    if p.head_item == "eyepatch":
        strap = _Part(ht, ey + 3, x0, x1)
        strap.line(ht + 2, x1 - 2, ey + 1, x0 + 1, _EYE)
        strap.stamp(c, outline=False)
    if p.hand == "sword":
        _held_item(c, p, _Part, ax0, ax0 + aw // 2 - 1)
    elif p.hand == "staff":
        s = _Part(ht, gb + 1, hand_x - 2, hand_x + 2)
        s.rect(ht + 3, gb + 1, hand_x - 1, hand_x + 1, _ACC_S)
        s.rect(ht, ht + 3, hand_x - 2, hand_x + 2, _ACC)
        s.px(ht, hand_x - 2, 0)
        s.px(ht, hand_x + 1, 0)
        s.px(ht + 1, hand_x - 1, _METAL_L)
        s.stamp(c)
        hand = _Part(ye, ye + aw - 1, hand_x - 2, hand_x)
        hand.rect(ye, ye + aw - 1, hand_x - 2, hand_x, _SKIN)
        hand.stamp(c)


def _cone_centre(p: _Params, r: int) -> int:
    """The wizard hat's tip bends towards the back of the head in profile."""
    return 33 - (3 * (p.ht - r) ** 2) // (p.hat_h ** 2)


def _hat_back_edge(p: _Params, y: int) -> int:
    """Column just behind the hat (or hair) in the right view at row ``y``."""
    if p.hat == "wizard":
        return _cone_centre(p, y) - _cone_half(p, y) - 1
    return 33 - p.hw2 - (2 if p.hat == "helmet" or p.hair == "long" else 1)


# ----------------------------------------------------------------------------------------------
# Whole-batch passes


def _outline(index: np.ndarray) -> None:
    """Close every silhouette with a 1 px outline (4-neighbourhood), in place.

    Parts already carry their own outlines; this only fills transparent pixels that still touch a
    coloured one, so an outline is never doubled.
    """
    m = index > _OUT
    d = m.copy()
    d[..., 1:, :] |= m[..., :-1, :]
    d[..., :-1, :] |= m[..., 1:, :]
    d[..., :, 1:] |= m[..., :, :-1]
    d[..., :, :-1] |= m[..., :, 1:]
    index[d & (index == 0)] = _OUT


def _resample(index: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resampling of index images (the last two axes).

    When shrinking, each target pixel takes the highest-ranked colour of its source block, except
    that a block holding both outline and background becomes outline: the silhouette stays closed
    and 1 px thick, while interior lines and fills merge.
    """
    if size == _BASE:
        return index
    i = np.arange(size)
    lo = (i * _BASE) // size
    hi = np.maximum(lo + 1, ((i + 1) * _BASE) // size)
    arrays = [_RANK[index], index == 0, index == _OUT]
    for axis in (-2, -1):
        for k, a in enumerate(arrays):
            best = None
            for o in range(int((hi - lo).max())):
                taken = np.take(a, np.minimum(lo + o, hi - 1), axis=axis)
                best = taken if best is None else np.maximum(best, taken)
            arrays[k] = best
    rank, background, outline = arrays
    out = _RANK_TO_INDEX[rank]
    out[background & outline] = _OUT
    return out
