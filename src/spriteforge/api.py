"""The Python API: SpriteForge from a notebook or a script, on PIL images.

    >>> import spriteforge
    >>> model = spriteforge.load_model()                      # the bundled default turnaround model
    >>> views = model.translate({"front": Image.open("hero-front.png")})
    >>> views["back"].save("hero-back.png")
    >>> art = spriteforge.pixelate(Image.open("photo.jpg"), size=48, colours=12)

The commands and the studio go through this module (`spriteforge translate` and `pixelate` call
`Model.draw` and `pixelate_detailed`), so the command line, the studio and a notebook give the same pixels.
Images go in as PIL images, uint8 RGBA arrays or file paths and come out as RGBA PIL images.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence, Union

import numpy as np
import torch
from PIL import Image

from spriteforge import VIEWS, imageio
from spriteforge.drawing import STYLE_SOURCES, draw_characters, latent_vectors, snap_to_palette, style_rows
from spriteforge.devices import resolve_device
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluating import evaluate_location
from spriteforge.evaluation.protocol import parse_metrics
from spriteforge.inference import load_for_inference, resolve_sampler
from spriteforge.models.kinds import Imputer
from spriteforge.palettes import read_palette
from spriteforge.pixelart import SAMPLE_COLOURS, pixel_art_samples
from spriteforge.pixelart import pixelate as pixelate_array

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike]
"""A PIL image, a uint8 [H, W, 4] (or [H, W, 3]) array, or the path of an image file."""

PaletteLike = Union[np.ndarray, Sequence[Sequence[int]], str, os.PathLike, None]
"""[N, 3] uint8 colours, or a palette file (.gpl, .pal, .hex/.txt, .png)."""


def as_rgba(image: ImageLike) -> np.ndarray:
    """Any `ImageLike` as uint8 RGBA [H, W, 4] with fully transparent pixels zeroed (paths: size-checked loader)."""
    if isinstance(image, (str, os.PathLike)):
        return imageio.load_image(image)[0]
    if isinstance(image, Image.Image):
        return imageio._to_rgba_array(image)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise SpriteForgeError(f"an image array must be uint8 [H, W, 3 or 4], got {array.dtype} {list(array.shape)}")
    if array.shape[-1] == 3:
        array = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    array = array.copy()
    array[array[..., 3] == 0] = 0
    return array


def to_pil(rgba: np.ndarray) -> Image.Image:
    """uint8 RGBA [H, W, 4] → an RGBA PIL image."""
    return Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), "RGBA")


def as_palette(palette: PaletteLike) -> np.ndarray | None:
    """A `PaletteLike` as [N, 3] uint8 (None stays None)."""
    if palette is None:
        return None
    if isinstance(palette, (str, os.PathLike)):

        return read_palette(palette if isinstance(palette, str) else Path(palette))
    colours = np.asarray(palette)
    if colours.ndim != 2 or colours.shape[1] < 3 or len(colours) == 0:
        raise SpriteForgeError(f"a palette is [N, 3] colours, got shape {list(colours.shape)}")
    return np.asarray(colours[:, :3], np.uint8)


class Model:
    """A loaded SpriteForge model: an imputer (draws missing views) or a sampler (draws new characters).

    Attributes: `kind` (the model's name, e.g. "turnaround"), `views` (its view names in index order),
    `image_size` (the side of one sprite, or (height, width) for a biggan drawing non-square images), `imputes` (True for view imputers), `config`, `network`, `device`.
    """

    def __init__(self, network, config, device, location: str):
        self.network, self.config, self.device, self.location = network, config, device, location
        self.kind: str = config.model
        self.views: tuple[str, ...] = tuple(config.domains)
        size = network.image_size
        self.image_size: int | tuple[int, int] = size[0] if isinstance(size, tuple) and size[0] == size[1] else size
        self.imputes: bool = isinstance(network, Imputer)

    def __repr__(self) -> str:
        role = "draws missing views" if self.imputes else "draws new characters"
        size = self.image_size
        pixels = f"{size[1]}x{size[0]}" if isinstance(size, tuple) else f"{size}px"
        return f"<spriteforge.Model {self.kind} from {self.location!r}: {role}, views {', '.join(self.views)}, {pixels}>"

    @property
    def side(self) -> int:
        """The side of the model's square images (every imputer's); a model drawing non-square ones is refused."""
        if isinstance(self.image_size, tuple):
            raise SpriteForgeError(f"{self.kind} draws {self.image_size[1]}x{self.image_size[0]} images, not squares")
        return self.image_size

    # -- imputers -----------------------------------------------------------------------------------
    @property
    def style_size(self) -> int:
        """Length of the model's style code (munit, remic; 0 for models without one)."""
        return int(getattr(self.network, "style_size", 0) or 0)

    def _require_imputer(self) -> None:
        if not self.imputes:
            raise SpriteForgeError(f"{self.kind} draws new characters and cannot draw missing views; use model.sample() "
                                   "(or `spriteforge sample`)")

    def _character(self, views: Mapping[str, ImageLike]) -> tuple[np.ndarray, np.ndarray]:
        self._require_imputer()
        if not views:
            raise SpriteForgeError(f"give at least one view ({', '.join(self.views)})")
        size = self.side
        character = np.zeros((len(self.views), size, size, 4), np.uint8)
        available = np.zeros(len(self.views), bool)
        for name, image in views.items():
            if name not in self.views:
                raise SpriteForgeError(f"this model's views are {', '.join(self.views)}; it has no '{name}' view")
            rgba = as_rgba(image)
            if rgba.shape[:2] != (size, size):
                raise SpriteForgeError(f"the {name} view is {rgba.shape[1]}x{rgba.shape[0]} but this model draws "
                                       f"{size}x{size} sprites; resize it with nearest-neighbour")
            character[self.views.index(name)] = rgba
            available[self.views.index(name)] = True
        if available.all():
            raise SpriteForgeError("all views are given, so there is nothing to draw; leave out the views you want drawn")
        return character, available

    def draw(self, views: np.ndarray, available: np.ndarray, palette: PaletteLike = None, binary_alpha: bool = True,
             batch: int = 32, style=None) -> np.ndarray:
        """The array form of `translate_many`: uint8 [N, D, H, W, 4] characters whose views `available`
        ([N, D] bool) are given → the same array with the other views drawn (one model pass per `batch`).

        `palette` snaps every view, given ones included, to those colours (a palette-quantising collagan
        draws with them directly); `style` ([1, style_size] tensor; munit, remic) replaces the encoded style.
        """
        self._require_imputer()
        if style is not None and not self.style_size:
            raise SpriteForgeError(f"style: {self.kind} has no style code to vary (munit and remic have one)")
        return draw_characters(self.network, self.config, views, available, self.device, batch, binary_alpha,
                               as_palette(palette), style)

    def translate_many(self, characters: Sequence[Mapping[str, ImageLike]], palette: PaletteLike = None,
                       binary_alpha: bool = True, batch: int = 32) -> list[dict[str, Image.Image]]:
        """Draw the missing views of many characters at once (one model pass per `batch` characters).

        Each character is a dict view name → image (1 to len(views) - 1 of them, each image_size square).
        Returns, per character, every view: the given ones as given, the others drawn. `palette`
        ([N, 3] colours or a palette file) snaps every view, the given ones too, to those colours.
        """
        if not characters:
            return []
        pairs = [self._character(views) for views in characters]
        drawn = self.draw(np.stack([character for character, _ in pairs]), np.stack([given for _, given in pairs]),
                          palette=palette, binary_alpha=binary_alpha, batch=batch)
        return [{name: to_pil(character[index]) for index, name in enumerate(self.views)} for character in drawn]

    def translate(self, views: Mapping[str, ImageLike], palette: PaletteLike = None, binary_alpha: bool = True) -> dict[str, Image.Image]:
        """Draw the missing views of one character: {"front": image} → {"back": …, "left": …, "front": …, "right": …}.

        Given views come back unchanged (snapped to `palette` when one is given); images are RGBA PIL images
        of `image_size` square.
        """
        return self.translate_many([views], palette=palette, binary_alpha=binary_alpha)[0]

    def variations(self, views: Mapping[str, ImageLike], count: int = 4, style: str = "encoded", seed: int = 0,
                   palette: PaletteLike = None, binary_alpha: bool = True) -> list[dict[str, Image.Image]]:
        """`count` versions of one character from a model with a style code (munit, remic): with `style`
        "encoded" the first uses the model's own encoded style, the others (all of them with "sampled")
        styles drawn from N(0, I) seeded by `seed`; the same seed gives the same versions."""
        if not self.style_size:
            raise SpriteForgeError(f"{self.kind} has no style code to vary (munit and remic have one); use translate()")
        if count < 1:
            raise SpriteForgeError(f"count must be at least 1, got {count}")
        if style not in STYLE_SOURCES:
            raise SpriteForgeError(f"style must be one of {', '.join(STYLE_SOURCES)}, got '{style}'")
        character, given = self._character(views)
        rows = []
        for code in style_rows(self.style_size, count, style, seed):
            drawn = self.draw(character[None], given[None], palette=palette, binary_alpha=binary_alpha, style=code)[0]
            rows.append({name: to_pil(drawn[index]) for index, name in enumerate(self.views)})
        return rows

    # -- samplers -----------------------------------------------------------------------------------
    def sample_arrays(self, count: int = 16, seed: int = 0, view: str | None = None, truncation: float | None = None,
                      binary_alpha: bool = True, colours: int = SAMPLE_COLOURS, palette: PaletteLike = None,
                      interpolate: bool = False) -> np.ndarray:
        """The array form of `sample`: uint8 [count, H, W, 4]."""
        if self.imputes:
            raise SpriteForgeError(f"{self.kind} draws missing views, not new characters; use model.translate() (or `spriteforge translate`)")
        if count < 1:
            raise SpriteForgeError(f"count must be at least 1, got {count}")
        if truncation is not None and not self.network.truncates:
            raise SpriteForgeError(f"--truncation: {self.kind} draws from an untruncated normal; only biggan and deep-biggan take it")
        if truncation is not None and truncation < 0:
            raise SpriteForgeError(f"--truncation must be 0 (off) or positive, got {truncation}")
        if not 0 <= colours <= 255:
            raise SpriteForgeError(f"colours must be 0 (the generator's own) to 255, got {colours}")
        if not binary_alpha and (colours or palette is not None):
            raise SpriteForgeError("soft alpha keeps the generator's raw output: use colours=0 and no palette with it")
        labels = None
        if view is not None:
            if self.network.domain_count == 1:
                raise SpriteForgeError(f"view {view!r}: this model was trained on a single folder of images (one class, no views)")
            if view not in self.views:
                raise SpriteForgeError(f"view {view!r}: this model's views are {', '.join(self.views)}")
            labels = torch.full((count,), self.views.index(view), device=self.device)
        with torch.no_grad():
            noise = latent_vectors(self.network, count, seed, interpolate, truncation).to(self.device)
            images = imageio.to_uint8(self.network.sample(noise, labels))
        if not binary_alpha or images.shape[-1] != 4:
            return images
        forced = as_palette(palette)
        if forced is not None:
            return np.stack([snap_to_palette(image, forced) for image in images])
        return pixel_art_samples(images, colours, seed)

    def sample(self, count: int = 16, seed: int = 0, view: str | None = None, truncation: float | None = None,
               binary_alpha: bool = True, colours: int = SAMPLE_COLOURS, palette: PaletteLike = None,
               interpolate: bool = False) -> list[Image.Image]:
        """Draw `count` new characters (sampling models: dcgan family, biggan); the same seed gives the same sprites.

        Pixel art by construction: alpha is binarised and each sprite's colours are reduced to `colours`
        (k-means in CIELAB; 0 keeps the generator's own), or snapped to `palette` (colours or a palette
        file) when one is given. `view` asks a view-conditional model for one view; `truncation`
        (biggan) overrides its own; `interpolate` morphs from z(seed) to z(seed + 1) across the count.
        """
        return [to_pil(image) for image in self.sample_arrays(count, seed, view, truncation, binary_alpha, colours, palette, interpolate)]


def load_model(name_or_path: str | os.PathLike = "default", device: str = "cpu") -> Model:
    """Load a model for use: "default" (the bundled turnaround model), a run folder of `spriteforge train`,
    an exported or checkpoint `.safetensors` file, or a folder of pix2pix runs. `device`: cpu, cuda, cuda:1."""
    torch_dev = resolve_device(device)
    network, config = load_for_inference(name_or_path if isinstance(name_or_path, str) else Path(name_or_path), torch_dev)
    return Model(network, config, torch_dev, str(name_or_path))


def _model(model: Model | str | os.PathLike, device: str) -> Model:
    return model if isinstance(model, Model) else load_model(model, device)


def sample(model: Model | str | os.PathLike = "default", count: int = 16, seed: int = 0, view: str | None = None,
           truncation: float | None = None, device: str = "cpu", colours: int = SAMPLE_COLOURS) -> list[Image.Image]:
    """New characters from a sampling model (a `Model` or where to load one; "default": the bundled sampler): see `Model.sample`."""
    return _model(model if isinstance(model, Model) else resolve_sampler(model), device).sample(count=count, seed=seed, view=view, truncation=truncation, colours=colours)


def pixelate_detailed(image: ImageLike, size: int = 64, colours: int = 16, palette: PaletteLike = None,
                      pixel_size: int | None = None, outline: bool = False, clean: bool = False, background: str | None = None,
                      seed: int = 0, scale: int = 1):
    """`pixelate` with what it found: a `pixelart.Pixelated` (`.image` uint8 RGBA, `.palette` [K, 3],
    `.grid` the detected pixel grid or None, `.describe()` one line). `scale`: the upscale it will be
    written at; an output over the size limit is refused before the palette work."""
    if size < 1 or not 1 <= colours <= 255:
        raise SpriteForgeError(f"size must be at least 1 and colours 1 to 255, got size {size}, colours {colours}")
    return pixelate_array(as_rgba(image), size=size, colours=colours, palette=as_palette(palette), clean=clean,
                          outline=outline, background=background, seed=seed, pixel_size=pixel_size, scale=scale)


def pixelate(image: ImageLike, size: int = 64, colours: int = 16, palette: PaletteLike = None, pixel_size: int | None = None,
             outline: bool = False, clean: bool = False, background: str | None = None, seed: int = 0) -> Image.Image:
    """A picture → clean pixel art (RGBA PIL image): the same steps as `spriteforge pixelate`.

    The picture's own pixel grid is found when it is upscaled pixel art (one output pixel per art pixel);
    `pixel_size` forces that grid's cell size instead; without a grid the longest side becomes `size`.
    `colours`: k-means palette size, or `palette` (colours or a palette file) to use given colours.
    `outline`: tidy and add a 1-px outline in the darkest colour; `clean`: tidy only;
    `background="auto"`: a flat border colour becomes transparent.
    """
    return to_pil(pixelate_detailed(image, size, colours, palette, pixel_size, outline, clean, background, seed).image)


def evaluate(model: Model | str | os.PathLike, dataset: str | None = None, metrics: Iterable[str] = ("l1", "ssim", "palette"),
             split: str = "test", limit: int = 0, baselines: bool = False, out: str | os.PathLike | None = None,
             device: str = "cpu", data_dir: str | None = None) -> dict:
    """Run the evaluation protocol (every target view from every set of given views) and return its report.

    `model`: a `Model` (its location is used) or where to load one; `dataset`: a named dataset, a folder or
    "synthetic" (default: the model's own); `metrics`: any of fid, kid, l1, ssim, view, palette (fid/kid
    need Inception weights); `limit`: evenly spaced characters (0 = all). The JSON and Markdown reports
    are written to `out` (default: beside the run). Returns the report dict (`report["cases"]`, `report["summary"]`…).
    """
    location = model.location if isinstance(model, Model) else str(model)
    report, _, _ = evaluate_location(location, datasets=[dataset] if dataset else None, data_dir=data_dir, split=split,
                                     selected=parse_metrics(list(metrics)), baselines=baselines, limit=limit, device=device,
                                     out=str(out) if out is not None else None)
    return report


def sheet(views: Mapping[str, Image.Image] | Sequence[Mapping[str, Image.Image]], order: Sequence[str] | None = None) -> Image.Image:
    """One sprite sheet from translated views: one row per character, views left to right (`order`, default back, left, front, right)."""
    characters = [views] if isinstance(views, Mapping) else list(views)
    order = list(order or VIEWS)
    return to_pil(imageio.grid([[as_rgba(character[name]) for name in order] for character in characters], padding=0))


def grid(images: Sequence[ImageLike], columns: int | None = None) -> Image.Image:
    """Tile equally sized images (e.g. `sample()`'s) into one picture, `columns` wide (default: about square)."""
    arrays = [as_rgba(image) for image in images]
    columns = columns or math.ceil(math.sqrt(len(arrays)))
    return to_pil(imageio.grid([arrays[start : start + columns] for start in range(0, len(arrays), columns)]))
