"""Files for game engines and sprite editors: an animated GIF turnaround, a sprite sheet with an
Aseprite-compatible JSON atlas, and PNG bytes (RGBA or indexed) for downloads."""

from __future__ import annotations

import io
import json
from typing import Sequence

import numpy as np
from PIL import Image

from spriteforge import imageio
from spriteforge.pixelart import apply_palette, binarize_alpha, kmeans_palette

TURNAROUND_ORDER = ("front", "right", "back", "left")
"""The order a character turns in (clockwise seen from above) in the GIF preview."""


def shared_palette(frames: Sequence[np.ndarray], limit: int = 255) -> np.ndarray:
    """The opaque colours of all frames, [N ≤ limit, 3]; k-means-reduced when there are more."""
    stacked = np.concatenate([frame.reshape(-1, 4) for frame in frames])
    opaque = stacked[stacked[:, 3] == 255][:, :3]
    colours, counts = np.unique(opaque, axis=0, return_counts=True)
    if len(colours) <= limit:
        return colours

    return kmeans_palette(colours, counts, limit)


def indexed_frame(rgba: np.ndarray, palette: np.ndarray) -> Image.Image:
    """A P-mode image: index 0 transparent, 1… `palette` (each opaque pixel takes its nearest colour)."""
    rgba = binarize_alpha(rgba)
    if len(palette):
        rgba = apply_palette(rgba, palette)
    keys = imageio._pack_rgb(palette)
    order = np.argsort(keys)
    pixel_keys = imageio._pack_rgb(rgba[..., :3])
    position = np.clip(np.searchsorted(keys[order], pixel_keys), 0, max(len(keys) - 1, 0))
    indices = np.where(rgba[..., 3] == 255, order[position] + 1 if len(keys) else 0, 0).astype(np.uint8)
    image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), np.ascontiguousarray(indices).tobytes())
    flat = np.zeros((256, 3), np.uint8)
    flat[1 : 1 + len(palette)] = palette
    image.putpalette(flat.reshape(-1).tobytes(), "RGB")
    image.info["transparency"] = 0
    return image


def turnaround_gif(views: dict[str, np.ndarray], scale: int = 4, duration: int = 250) -> bytes:
    """An endlessly looping GIF of a character turning (front, right, back, left), nearest-neighbour ×`scale`,
    transparent background (index 0), one palette for all frames."""
    frames = [imageio.upscale(views[name], scale) for name in TURNAROUND_ORDER if name in views]
    palette = shared_palette(frames)
    images = [indexed_frame(frame, palette) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0,
                   transparency=0, disposal=2, optimize=False)
    return buffer.getvalue()


def png_bytes(rgba: np.ndarray, scale: int = 1) -> bytes:
    """A lossless RGBA PNG, nearest-neighbour ×`scale`."""
    buffer = io.BytesIO()
    Image.fromarray(imageio.upscale(np.ascontiguousarray(rgba, np.uint8), scale), "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def indexed_png_bytes(rgba: np.ndarray, scale: int = 1) -> bytes:
    """A palette (P-mode) PNG, index 0 transparent; more than 255 colours are reduced by k-means."""
    image = imageio.upscale(np.ascontiguousarray(rgba, np.uint8), scale)
    buffer = io.BytesIO()
    indexed_frame(image, shared_palette([image])).save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()


def aseprite_atlas(rows: Sequence[Sequence[str]], cell: int, image_name: str = "sheet.png", scale: int = 1,
                   duration: int = 250, tags: Sequence[str] | None = None) -> dict:
    """The JSON atlas Aseprite writes (`--data`, array format) for a sheet of `cell`-pixel frames laid out in
    `rows` (each row: frame names left to right), with one frame tag per row (`tags`, default row names)."""
    size = cell * scale
    frames, frame_tags, index = [], [], 0
    for row, names in enumerate(rows):
        start = index
        for column, name in enumerate(names):
            frames.append({"filename": name, "frame": {"x": column * size, "y": row * size, "w": size, "h": size},
                           "rotated": False, "trimmed": False, "spriteSourceSize": {"x": 0, "y": 0, "w": size, "h": size},
                           "sourceSize": {"w": size, "h": size}, "duration": duration})
            index += 1
        tag = tags[row] if tags else f"row{row}"
        frame_tags.append({"name": tag, "from": start, "to": index - 1, "direction": "forward", "color": "#000000ff"})
    columns = max(len(names) for names in rows)
    return {"frames": frames, "meta": {"app": "https://www.aseprite.org/", "version": "1.3", "image": image_name,
                                       "format": "RGBA8888", "size": {"w": columns * size, "h": len(rows) * size},
                                       "scale": "1", "frameTags": frame_tags, "layers": [{"name": "Layer", "opacity": 255,
                                                                                          "blendMode": "normal"}], "slices": []}}


def atlas_json(atlas: dict) -> bytes:
    return (json.dumps(atlas, indent=1) + "\n").encode("utf-8")
