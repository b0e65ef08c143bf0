"""Reading and writing pixel art exactly: RGBA, nearest-neighbour, lossless PNG, atomic writes."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from spriteforge.errors import SpriteForgeError

MAX_IMAGE_PIXELS = 4096 * 4096
"""Refuse to decode anything larger: sprites are tiny, a huge file is a mistake (or a bomb)."""


def load_rgba(path: str | os.PathLike, expected_size: int | tuple[int, int] | None = None) -> np.ndarray:
    """Load a PNG (RGBA, RGB, palette, grey, 16-bit) as uint8 [H, W, 4] with transparency kept.

    `expected_size` is a square side or a (height, width) pair; another size is an error.
    Fully transparent pixels become (0, 0, 0, 0), as in the original pipeline.
    """
    path = Path(path)
    with open_image(path, "a PNG image", "not a readable PNG image ({error}); re-export or remove the file") as image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            expected_height, expected_width = _pair(expected_size or 64)
            raise SpriteForgeError(
                f"{path}: image is {width}x{height}, far larger than a sprite; "
                f"crop or downscale it (nearest-neighbour) to {expected_width}x{expected_height}"
            )
        if isinstance(expected_size, int) and (width, height) != (expected_size, expected_size):
            raise SpriteForgeError(
                f"{path}: image is {width}x{height} but {expected_size}x{expected_size} is expected; "
                f"pass --image-size {width} if all images have that size, or resize the file "
                f"with nearest-neighbour"
            )
        if isinstance(expected_size, tuple) and (height, width) != expected_size:
            raise SpriteForgeError(
                f"{path}: image is {width}x{height} but {expected_size[1]}x{expected_size[0]} is expected; "
                f"{size_flags(width, height)}, or resize the file with nearest-neighbour"
            )
        array = _to_rgba_array(image)
    array[array[..., 3] == 0] = 0
    return array


@contextmanager
def open_image(path: Path, given: str, unreadable: str, too_large: str | None = None) -> Iterator[Image.Image]:
    """`Image.open(path)` for reading, every failure (inside the `with` too) one SpriteForgeError line:
    a missing file, a folder, pipe or device (refused before opening: give `given`), a file PIL cannot
    read (`unreadable`, formatted with {error}) and a decompression bomb (`too_large` when given)."""
    require_regular_file(path, given)
    try:
        with Image.open(path) as image:
            yield image
    except SpriteForgeError:
        raise
    except FileNotFoundError:
        raise SpriteForgeError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SpriteForgeError(f"{path}: is a folder; give {given}") from None
    except Image.DecompressionBombError as error:
        raise SpriteForgeError(f"{path}: {too_large or unreadable.format(error=error)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise SpriteForgeError(f"{path}: {unreadable.format(error=error)}") from None


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def image_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image from its header, without decoding the pixels."""
    with open_image(Path(path), "an image file", "not a readable image ({error}); re-export or remove the file") as image:
        return image.size[1], image.size[0]


def size_flags(width: int, height: int) -> str:
    """The training flags that make the models draw width×height images (for error messages).

    The DCGAN family draws squares (--image-size); BigGAN draws base × 2^layers on each side: the
    most layers whose power of two divides both sides and leaves a base of at least 3 (4×3 for 128×96).
    """
    divides = (min(width & -width, height & -height)).bit_length() - 1
    layers = max([n for n in range(1, divides + 1) if min(width, height) >> n >= 3] or [min(divides, 1)])
    biggan = (f"biggan/deep-biggan: --base-width {width >> layers} --base-height {height >> layers} --upsample-layers {layers}"
              if layers >= 1 else None)
    if width == height:
        return f"pass --image-size {width}" + (f" (or for {biggan})" if biggan else "")
    if biggan:
        return f"the dcgan family draws square images; for {width}x{height} train {biggan}"
    return f"no model draws {width}x{height} (odd side)"


MAX_SIDE = 4096
"""Pictures with a longer side are reduced on loading by `load_image`: pixel art never needs more."""

MAX_DECODE_PIXELS = 8192 * 8192
"""Refuse to decode beyond this (256 MiB of RGBA): checked from the header, so a bomb never hangs us."""


def load_image(path: str | os.PathLike, max_side: int = MAX_SIDE) -> tuple[np.ndarray, int]:
    """Load any picture (PNG, JPEG, palette, grey, 16-bit) as uint8 RGBA [H, W, 4], of any size.

    Unlike `load_rgba` (sprites of a known size), this is for user pictures. A side over `max_side`
    is reduced by an integer factor, taking each block's centre pixel (exact colours, no blending);
    returns the image and that factor (1 when untouched). Fully transparent pixels become (0, 0, 0, 0).
    """
    path = Path(path)
    too_large = (f"image is too large to decode safely (over {MAX_DECODE_PIXELS // 1_000_000} megapixels); "
                 f"downscale it first (nearest-neighbour) to at most {max_side}x{max_side}")
    with open_image(path, "an image file", "not a readable image ({error}); re-export it as PNG", too_large) as image:
        width, height = image.size
        if width * height > MAX_DECODE_PIXELS:
            raise SpriteForgeError(
                f"{path}: image is {width}x{height}, too large to decode safely (limit {MAX_DECODE_PIXELS // 1_000_000} "
                f"megapixels); downscale it first (nearest-neighbour) to at most {max_side}x{max_side}"
            )
        array = _to_rgba_array(image)
    factor = -(-max(array.shape[:2]) // max_side)
    if factor > 1:
        array = np.ascontiguousarray(array[factor // 2 :: factor, factor // 2 :: factor])
    array[array[..., 3] == 0] = 0
    return array, factor


def _to_rgba_array(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to uint8 RGBA, keeping tRNS transparency and scaling 16-bit to 8-bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(image, dtype=np.uint32)
        transparent = image.info.get("transparency")
        grey8 = (grey * 255 + 32767) // 65535 if grey.max(initial=0) > 255 or image.mode != "I" else grey
        grey8 = grey8.astype(np.uint8)
        alpha = np.full(grey8.shape, 255, np.uint8)
        if isinstance(transparent, int):
            alpha[grey == transparent] = 0
        return np.dstack([grey8, grey8, grey8, alpha])
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("PA")
    elif image.mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("LA" if image.mode == "L" else "RGBA")
    return np.array(image.convert("RGBA"), dtype=np.uint8)


def to_tensor(rgba: np.ndarray, channels: int = 4) -> torch.Tensor:
    """uint8 [..., H, W, 4] → float [..., C, H, W] in [-1, 1]; with 3 channels transparent goes white."""
    data = torch.from_numpy(np.ascontiguousarray(rgba)).float()
    if channels == 3:
        alpha = data[..., 3:4] / 255.0
        data = data[..., :3] * alpha + 255.0 * (1 - alpha)
    return (data / 127.5 - 1.0).movedim(-1, -3).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [..., C, H, W] in [-1, 1] → uint8 [..., H, W, 4]; RGB input gets opaque alpha."""
    images = images.detach().float().cpu().clamp(-1, 1)  # a new tensor: the steps below work in place
    array = images.add_(1.0).mul_(127.5).round_().to(torch.uint8).movedim(-3, -1).numpy()
    if array.shape[-1] == 3:
        alpha = np.full(array.shape[:-1] + (1,), 255, np.uint8)
        array = np.concatenate([array, alpha], axis=-1)
    array = array.copy()
    array[array[..., 3] == 0] = 0
    return array


MAX_OUTPUT_PIXELS = 16384 * 16384
"""The largest image written (1 GiB of RGBA): checked before the pixels are allocated."""


class OutputTooLarge(SpriteForgeError):
    """An output image over MAX_OUTPUT_PIXELS; the CLI adds the flags of the command to lower."""


def check_output_size(height: int, width: int, what: str = "the output") -> None:
    """Refuse, before allocating it, an image over MAX_OUTPUT_PIXELS (its RGBA size named)."""
    if height * width > MAX_OUTPUT_PIXELS:
        gib = height * width * 4 / 2**30
        raise OutputTooLarge(f"{what} would be {width}x{height} pixels ({gib:.1f} GiB of RGBA), over the "
                             f"{MAX_OUTPUT_PIXELS * 4 // 2**30} GiB limit")


def upscale(rgba: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour integer upscaling (the only resize pixel art tolerates)."""
    if factor <= 1:
        return rgba
    check_output_size(rgba.shape[0] * factor, rgba.shape[1] * factor)
    return np.repeat(np.repeat(rgba, factor, axis=0), factor, axis=1)


def grid(rows: list[list[np.ndarray]], padding: int = 2, background: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Tile equally sized uint8 RGBA images into one image, row by row."""
    height, width = rows[0][0].shape[:2]
    columns = max(len(row) for row in rows)
    check_output_size(len(rows) * (height + padding) + padding, columns * (width + padding) + padding, "the grid")
    canvas = np.zeros(
        (len(rows) * (height + padding) + padding, columns * (width + padding) + padding, 4), np.uint8
    )
    canvas[:] = background
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = padding + r * (height + padding), padding + c * (width + padding)
            canvas[y : y + height, x : x + width] = tile
    return canvas


def save_png(rgba: np.ndarray, path: str | os.PathLike, scale: int = 1) -> Path:
    """Write a lossless RGBA PNG atomically (a crash never leaves half a file)."""
    path = Path(path)
    image = Image.fromarray(upscale(np.ascontiguousarray(rgba, dtype=np.uint8), scale), "RGBA")
    with atomic_write(path) as temporary:
        image.save(temporary, format="PNG")
    return path


def save_indexed_png(rgba: np.ndarray, path: str | os.PathLike, scale: int = 1, palette: np.ndarray | None = None) -> Path:
    """Write a palette (P-mode) PNG: index 0 is transparent, 1… the opaque colours, exactly.

    Game engines and pixel editors keep palettes as indices; `palette` ([N, 3] uint8) fixes their
    order (default: the image's colours, sorted). Alpha must be binary; at most 255 opaque colours.
    """
    path = Path(path)
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    opaque = rgba[..., 3] == 255
    if not np.all(opaque | (rgba[..., 3] == 0)):
        raise SpriteForgeError(f"{path}: an indexed PNG needs binary alpha (0 or 255)")
    colours = np.unique(rgba[opaque][:, :3], axis=0)
    if palette is None:
        palette = colours
    else:  # keep the given order, dropping repeats
        palette = np.asarray(palette, np.uint8).reshape(-1, 3)
        palette = palette[np.sort(np.unique(palette, axis=0, return_index=True)[1])]
    if len(palette) > 255:
        raise SpriteForgeError(f"{path}: {len(palette)} colours do not fit an indexed PNG (255 at most); lower --colors")
    keys = _pack_rgb(palette)
    order = np.argsort(keys)
    pixel_keys = _pack_rgb(rgba[..., :3])
    position = np.clip(np.searchsorted(keys[order], pixel_keys), 0, max(len(keys) - 1, 0))
    if len(keys) == 0:
        indices = np.zeros(rgba.shape[:2], np.uint8)
    else:
        found = keys[order][position] == pixel_keys
        if not np.all(found | ~opaque):
            raise SpriteForgeError(f"{path}: the image has colours outside the palette; quantise it first")
        indices = np.where(opaque, order[position] + 1, 0).astype(np.uint8)
    pixels: np.ndarray = upscale(indices[..., None], scale)[..., 0]
    image = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), np.ascontiguousarray(pixels).tobytes())
    image.putpalette(np.concatenate([[0, 0, 0], palette.reshape(-1)]).astype(np.uint8).tobytes(), "RGB")
    with atomic_write(path) as temporary:
        image.save(temporary, format="PNG", transparency=0)
    return path


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


NAME_MAX = 255
"""The longest file name most file systems take; a temporary name must fit it too."""

_protected: set[str] = set()


def protect_inputs(*paths) -> None:
    """Mark files the running command reads: `atomic_write` refuses to replace any of them."""
    for path in paths:
        if isinstance(path, (str, os.PathLike)) and path and not os.path.isdir(os.path.expanduser(os.fspath(path))):  # a folder is never replaced by a file
            _protected.add(os.path.realpath(os.path.expanduser(os.fspath(path))))


def clear_protected() -> None:
    """Forget the protected inputs (the end of a command)."""
    _protected.clear()


def refuse_overwriting_input(path: str | os.PathLike, flag: str = "--out") -> None:
    """One line, before anything is written, when an output would replace a protected input."""
    target = os.path.realpath(os.path.expanduser(os.fspath(path)))
    if target in _protected:
        raise SpriteForgeError(f"{flag} {path}: would overwrite the input {path}; write to another file")


def require_regular_file(path: str | os.PathLike, what: str = "a file") -> None:
    """Refuse FIFOs, devices and sockets before opening them (opening a FIFO blocks for ever)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SpriteForgeError(f"{path}: file not found") from None
    except OSError as error:
        raise SpriteForgeError(f"{path}: cannot read ({error.strerror or error})") from None
    if stat.S_ISDIR(mode):
        raise SpriteForgeError(f"{path}: is a folder; give {what}")
    if not stat.S_ISREG(mode):
        raise SpriteForgeError(f"{path}: not a regular file (a pipe, device or socket); give {what}")


def input_files(inputs: Iterable[str | os.PathLike], suffixes: tuple[str, ...], what: str, missing: str = "file not found") -> list[Path]:
    """The files a command reads: files as given, and the files directly inside given folders whose suffix
    is one of `suffixes` (sorted, not recursive, hidden ones skipped). `what` names one in messages
    ("picture"); `missing` is said of a path that does not exist."""
    files = []
    for given in map(Path, inputs):
        if given.is_dir():
            inside = sorted(p for p in given.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))
            if not inside:
                raise SpriteForgeError(f"{given}: no {what}s in this folder ({', '.join(suffixes)})")
            files.extend(inside)
        elif given.exists():  # a file; a pipe, device or socket is refused before anything opens it
            require_regular_file(given, f"a {what} ({', '.join(suffixes)}) or a folder of them")
            files.append(given)
        else:
            raise SpriteForgeError(f"{given}: {missing}")
    return files


def png_paths_in(folder: Path, files: list[Path], advice: str) -> list[Path]:
    """`folder`/<name>.png for each file; two files that would be written to one path are refused (`advice`
    says what to do instead)."""
    paths = [folder / f"{file.stem}.png" for file in files]
    seen: dict[Path, Path] = {}
    for file, path in zip(files, paths):
        if path in seen:
            raise SpriteForgeError(f"{seen[path]} and {file} would both be written to {path}; {advice}")
        seen[path] = file
    return paths


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def io_error_message(error: OSError, path: str | os.PathLike | None = None) -> str:
    """`PATH: cannot write (No space left on device)`: the path and the cause in one line."""
    where = path or error.filename or "a file"
    return f"{where}: cannot write ({error.strerror or error})"


class atomic_write:
    """Context manager yielding a temporary path beside `path`, renamed over it only on success.

    The temporary name fits NAME_MAX whatever the target's length; the result gets the mode a plain
    `open()` would give (0666 less the umask), not mkstemp's 0600. A file the command reads (see
    `protect_inputs`) is never replaced. OS errors (read-only folder, full disk) become one
    SpriteForgeError naming the path; the previous file is left untouched.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        refuse_overwriting_input(self.path, "output")
        stem = self.path.name[: NAME_MAX - 14]  # "." + stem + "." + 8 random + ".tmp"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=self.path.parent)
        except OSError as error:
            raise SpriteForgeError(io_error_message(error, self.path)) from None
        os.close(handle)
        self.temporary = Path(name)
        return self.temporary

    def __exit__(self, kind, value, traceback) -> Literal[False]:
        if kind is None:
            try:
                os.chmod(self.temporary, 0o666 & ~_umask())
                with open(self.temporary, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(self.temporary, self.path)
                return False
            except OSError as error:
                self.temporary.unlink(missing_ok=True)
                raise SpriteForgeError(io_error_message(error, self.path)) from None
        self.temporary.unlink(missing_ok=True)
        if isinstance(value, OSError) or type(value).__name__ == "SafetensorError":
            raise SpriteForgeError(io_error_message(value, self.path) if isinstance(value, OSError)
                                   else f"{self.path}: cannot write ({value})") from None
        return False


def remove_orphans(folder: str | os.PathLike) -> int:
    """Delete the temporary files an `atomic_write` killed mid-way (kill -9, power loss) left in `folder`."""
    removed = 0
    for orphan in Path(folder).glob(".*.tmp"):
        try:
            orphan.unlink()
            removed += 1
        except OSError:
            pass
    return removed
