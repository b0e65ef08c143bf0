"""Palette files in the formats pixel-art editors use: GIMP `.gpl`, JASC `.pal` (Paint Shop Pro, Aseprite,
Pyxel Edit), plain hex lines (`.hex`, `.txt`; Lospec's format) and a PNG of swatches.

A palette is [N, 3] uint8 RGB in the file's order, repeats dropped. Reading decides the format from the
content (a PNG signature, a `GIMP Palette` or `JASC-PAL` header, else hex lines); writing from the extension.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError

FORMATS = {".gpl": "gpl", ".pal": "jasc", ".hex": "hex", ".txt": "hex", ".png": "png"}


def _unique_in_order(colours: np.ndarray) -> np.ndarray:
    colours = np.asarray(colours, np.uint8).reshape(-1, 3)
    return colours[np.sort(np.unique(colours, axis=0, return_index=True)[1])]


def _channel(path: Path, number: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SpriteForgeError(f"{path}:{number}: '{text[:20]}' is not a colour channel (0-255)") from None
    if not 0 <= value <= 255:
        raise SpriteForgeError(f"{path}:{number}: channel {value} is outside 0-255")
    return value


def parse_gpl(path: Path, lines: list[str]) -> np.ndarray:
    """GIMP palette: `GIMP Palette`, optional `Name:`/`Columns:` lines and `#` comments, then `R G B [name]` lines."""
    colours = []
    for number, line in enumerate(lines[1:], 2):
        line = line.strip()
        if not line or line.startswith("#") or line.split(":")[0] in ("Name", "Columns", "Channels"):
            continue
        fields = line.split()
        if len(fields) < 3:
            raise SpriteForgeError(f"{path}:{number}: '{line[:20]}' is not an 'R G B name' line")
        colours.append([_channel(path, number, field) for field in fields[:3]])
    return np.array(colours, np.uint8).reshape(-1, 3)


def parse_jasc(path: Path, lines: list[str]) -> np.ndarray:
    """JASC palette: `JASC-PAL`, `0100`, the count, then `R G B` lines (the count is checked)."""
    if len(lines) < 3:
        raise SpriteForgeError(f"{path}: a JASC palette starts with JASC-PAL, 0100 and the number of colours")
    try:
        count = int(lines[2].strip())
    except ValueError:
        raise SpriteForgeError(f"{path}:3: '{lines[2].strip()[:20]}' is not the number of colours") from None
    colours = []
    for number, line in enumerate(lines[3:], 4):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            raise SpriteForgeError(f"{path}:{number}: '{line.strip()[:20]}' is not an 'R G B' line")
        colours.append([_channel(path, number, field) for field in fields[:3]])
    if len(colours) != count:
        raise SpriteForgeError(f"{path}: the header says {count} colours but {len(colours)} follow")
    return np.array(colours, np.uint8).reshape(-1, 3)


def is_editor_palette(path: Path) -> bool:
    """True when the file starts with a GIMP or JASC palette header."""
    return path.read_bytes()[:16].lstrip(b"\xef\xbb\xbf").startswith((b"GIMP Palette", b"JASC-PAL"))


def read_editor_palette(path: Path) -> np.ndarray:
    """A GIMP `.gpl` or JASC `.pal` file as [N, 3] uint8 (file order, repeats dropped)."""
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    colours = parse_gpl(path, lines) if lines[0].startswith("GIMP") else parse_jasc(path, lines)
    if not len(colours):
        raise SpriteForgeError(f"{path}: the palette has no colours")
    return _unique_in_order(colours)


_HEX_LINE = re.compile(r"^#?([0-9a-fA-F]{6})$")


def read_palette(path: str | Path) -> np.ndarray:
    """A palette as [N, 3] uint8 from a GIMP .gpl or JASC .pal file, a PNG
    (its opaque pixels' distinct colours, in reading order) or a text file of hex colours, one per line (`#ff8800` or `ff8800`; blank and `;` lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise SpriteForgeError(f"{path}: palette file not found")
    if is_editor_palette(path):  # GIMP .gpl or JASC .pal
        return read_editor_palette(path)
    if path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n":
        image, _ = imageio.load_image(path)
        opaque = image[image[..., 3] >= 128][:, :3]
        if not len(opaque):
            raise SpriteForgeError(f"{path}: the palette image has no opaque pixel; paint the palette colours opaque")
        first = np.sort(np.unique(opaque, axis=0, return_index=True)[1])
        return opaque[first]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise SpriteForgeError(f"{path}: a palette must be a PNG or a text file of hex colours (#rrggbb per line)") from None
    colours = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith((";", "//")):
            continue
        match = _HEX_LINE.match(line)
        if not match:
            raise SpriteForgeError(f"{path}:{number}: '{line[:20]}' is not a hex colour; write one #rrggbb per line")
        value = int(match.group(1), 16)
        colours.append((value >> 16, (value >> 8) & 255, value & 255))
    if not colours:
        raise SpriteForgeError(f"{path}: no colours found; write one #rrggbb per line")
    palette = np.array(colours, np.uint8)
    return palette[np.sort(np.unique(palette, axis=0, return_index=True)[1])]


def palette_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise SpriteForgeError(f"{path}: unknown palette format '{suffix or '(none)'}'; use .gpl (GIMP), .pal (JASC), .hex or .txt, or .png")
    return FORMATS[suffix]


def palette_text(palette: np.ndarray, kind: str, name: str = "SpriteForge") -> str:
    """The text of a palette file: kind gpl, jasc or hex."""
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)
    if kind == "gpl":
        lines = ["GIMP Palette", f"Name: {name}", "Columns: 8", "#"]
        lines += [f"{r:3d} {g:3d} {b:3d}\t#{r:02x}{g:02x}{b:02x}" for r, g, b in colours.tolist()]
    elif kind == "jasc":
        lines = ["JASC-PAL", "0100", str(len(colours))] + [f"{r} {g} {b}" for r, g, b in colours.tolist()]
    elif kind == "hex":
        lines = [f"{r:02x}{g:02x}{b:02x}" for r, g, b in colours.tolist()]
    else:
        raise SpriteForgeError(f"unknown palette text format '{kind}'")
    return "\n".join(lines) + "\n"


def write_palette(palette: np.ndarray, path: str | Path, swatch: int = 1) -> Path:
    """Write [N, 3] colours to `path` in the format its extension names (.png: one row of `swatch`-px squares)."""
    path = Path(path)
    kind = palette_format(path)
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)
    if not len(colours):
        raise SpriteForgeError(f"{path}: refusing to write an empty palette")
    if kind == "png":
        strip = np.concatenate([colours, np.full((len(colours), 1), 255, np.uint8)], axis=1)[None]
        return imageio.save_png(strip, path, scale=swatch)
    with imageio.atomic_write(path) as temporary:
        temporary.write_text(palette_text(colours, kind, name=path.stem), encoding="utf-8")
    return path


def convert_palette(source: str | Path, target: str | Path) -> tuple[Path, int]:
    """Read any palette file and write it in the format of `target`'s extension; returns (target, colour count)."""
    palette_format(target)
    colours = read_palette(source)
    return write_palette(colours, target), len(colours)
