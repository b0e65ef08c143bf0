"""The studio's routes: JSON in and out, files kept in memory for download, every error a message."""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from spriteforge import VIEWS, __version__, api, atlas, imageio
from spriteforge.drawing import snap_to_palette
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import BUNDLED, DEFAULT_MODEL, DEFAULT_SAMPLER, resolve_sampler
from spriteforge.palettes import read_palette
from spriteforge.pixelart import add_outline, darkest
from spriteforge.translation import read_batch_input

MAX_UPLOAD = 16 * 1024 * 1024
"""Bytes one uploaded file may have (a sprite is a few KiB; a photo a few MiB)."""

MAX_RESULTS = 64
MAX_SAMPLES = 64
MEDIA = {".png": "image/png", ".gif": "image/gif", ".json": "application/json", ".gpl": "text/plain", ".pal": "text/plain"}
PAGE = Path(__file__).with_name("page.html")


class Results:
    """The last MAX_RESULTS results' files, by id: {name: bytes}."""

    def __init__(self):
        self.items: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, files: dict[str, bytes]) -> str:
        key = uuid.uuid4().hex[:12]
        with self.lock:
            self.items[key] = files
            while len(self.items) > MAX_RESULTS:
                self.items.popitem(last=False)
        return key

    def get(self, key: str, name: str) -> bytes | None:
        with self.lock:
            return self.items.get(key, {}).get(name)


class Models:
    """Loaded models by location (the last four), loaded once; inference one request at a time."""

    def __init__(self):
        self.loaded: OrderedDict[str, api.Model] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, location: str) -> api.Model:
        location = location.strip() or "default"
        if location not in self.loaded:
            self.loaded[location] = api.load_model(location)
            while len(self.loaded) > 4:
                self.loaded.popitem(last=False)
        return self.loaded[location]


def upload_name(upload: UploadFile | None) -> str:
    """The file name an upload came with ("" for none)."""
    return (upload.filename or "") if upload is not None else ""


async def read_upload(upload: UploadFile | None, what: str) -> bytes | None:
    if upload is None or not upload.filename:
        return None
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise SpriteForgeError(f"{upload.filename}: the {what} is over {MAX_UPLOAD // 2**20} MiB; upload a smaller file")
    if not data:
        raise SpriteForgeError(f"{upload.filename}: the {what} is empty")
    return data


def with_file(data: bytes, name: str, read):
    """Run `read(path)` on the uploaded bytes saved to a private temporary file named like the upload."""
    suffix = Path(name or "upload").suffix[:8]
    with tempfile.TemporaryDirectory(prefix="spriteforge-studio-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return read(path)
        except SpriteForgeError as error:  # name the user's file, not the temporary one
            raise SpriteForgeError(str(error).replace(str(path), name or "upload")) from None


def picture(data: bytes, name: str) -> np.ndarray:
    return with_file(data, name, lambda path: imageio.load_image(path)[0])


def palette_colours(data: bytes | None, name: str) -> np.ndarray | None:
    if data is None:
        return None

    return with_file(data, name, read_palette)


def sheet_files(rows: list[list[np.ndarray]], names: list[list[str]], tags: list[str], stem: str, zoom: int) -> dict[str, bytes]:
    """PNG, indexed PNG, zoomed PNG, sprite sheet + Aseprite JSON atlas of a grid of equal sprites."""
    sheet = imageio.grid(rows, padding=0)
    cell = rows[0][0].shape[0]
    files = {f"{stem}.png": atlas.png_bytes(sheet), f"{stem}-indexed.png": atlas.indexed_png_bytes(sheet),
             f"{stem}-x{zoom}.png": atlas.png_bytes(sheet, zoom),
             f"{stem}.json": atlas.atlas_json(atlas.aseprite_atlas(names, cell, image_name=f"{stem}.png", tags=tags))}
    return files


def build_app(model: str = "default", sampler: str | None = None) -> FastAPI:
    app = FastAPI(title="SpriteForge Studio", version=__version__, docs_url=None, redoc_url=None)
    results, models = Results(), Models()
    sampler = sampler or (DEFAULT_MODEL if DEFAULT_SAMPLER in BUNDLED else None)  # the bundled sampler where there is one
    app.state.results, app.state.models = results, models

    @app.exception_handler(SpriteForgeError)
    async def user_error(request: Request, error: SpriteForgeError):
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception):
        return JSONResponse({"error": f"the studio could not do that ({type(error).__name__}: {str(error)[:200]})"}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/config")
    def config():
        return {"model": model, "sampler": sampler or "", "views": list(VIEWS), "version": __version__}

    @app.get("/api/result/{key}/{name}")
    def result(key: str, name: str, download: int = 0):
        data = results.get(key, name)
        if data is None:
            return JSONResponse({"error": "this result has expired; run it again"}, status_code=404)
        headers = {"Content-Disposition": f'attachment; filename="{name}"'} if download else {}
        return Response(data, media_type=MEDIA.get(Path(name).suffix, "application/octet-stream"), headers=headers)

    def answer(files: dict[str, bytes], shown: dict[str, str], message: str) -> dict:
        key = results.add(files)
        return {"id": key, "files": {name: f"/api/result/{key}/{name}" for name in files}, "shown": shown, "message": message}

    @app.post("/api/views")
    async def views(model_path: str = Form("", alias="model"), snap: bool = Form(False), outline: bool = Form(False),
                    zoom: int = Form(4), back: UploadFile | None = File(None), left: UploadFile | None = File(None),
                    front: UploadFile | None = File(None), right: UploadFile | None = File(None),
                    sheet: UploadFile | None = File(None), palette: UploadFile | None = File(None)):
        zoom = max(1, min(zoom, 16))
        uploads = {name: (await read_upload(upload, f"{name} view"), upload_name(upload))
                   for name, upload in (("back", back), ("left", left), ("front", front), ("right", right))}
        given = {name: (data, filename) for name, (data, filename) in uploads.items() if data is not None}
        sheet_data = await read_upload(sheet, "sprite sheet")
        palette_data = await read_upload(palette, "palette")
        if sheet_data is not None and given:
            raise SpriteForgeError("upload one sprite sheet or separate views, not both")
        if sheet_data is None and not given:
            raise SpriteForgeError("upload 1 to 3 views (or one sprite sheet with empty cells for the views to draw)")
        colours = palette_colours(palette_data, upload_name(palette))
        with models.lock:
            loaded = models.get(model_path.strip() or model)
            if not loaded.imputes:
                raise SpriteForgeError(f"{loaded.kind} draws new characters; pick it in New characters, and an imputation model here")
            size = loaded.side
            if sheet_data is not None:
                _, cells, available = with_file(sheet_data, upload_name(sheet), lambda path: read_batch_input(path, list(loaded.views), size))
                characters = [{name: cells[row, index] for index, name in enumerate(loaded.views) if available[row, index]}
                              for row in range(len(cells))]
            else:
                characters = [{}]
                for name, (data, filename) in given.items():
                    image = picture(data, filename)
                    if image.shape[:2] != (size, size):
                        raise SpriteForgeError(f"{filename}: the {name} view is {image.shape[1]}x{image.shape[0]} but this model "
                                               f"draws {size}x{size} sprites; resize it (nearest-neighbour) or pick another model")
                    characters[0][name] = image
            drawn = loaded.translate_many(characters, palette=colours)
        rows = []
        for given_views, character in zip(characters, drawn):
            row = [api.as_rgba(character[name]) for name in loaded.views]
            if snap:
                own = np.concatenate([view[view[..., 3] == 255][:, :3] for view in given_views.values()])
                if len(own):
                    row = [snap_to_palette(image, np.unique(own, axis=0)) for image in row]
            if outline:
                used = np.concatenate([image[image[..., 3] == 255][:, :3] for image in row])
                if len(used):
                    dark = darkest(np.unique(used, axis=0))
                    row = [add_outline(image, dark) for image in row]
            rows.append(row)
        names = [[f"character{number} {view}" for view in loaded.views] for number in range(len(rows))]
        files = sheet_files(rows, names, [f"character{number}" for number in range(len(rows))], "sheet", zoom)
        files["turnaround.gif"] = atlas.turnaround_gif(dict(zip(loaded.views, rows[0])), scale=zoom)
        drawn_count = sum(len(loaded.views) - len(c) for c in characters)
        return answer(files, {"sheet": "sheet.png", "preview": "turnaround.gif"},
                      f"{loaded.kind}: drew {drawn_count} view{'s' if drawn_count != 1 else ''} of {len(rows)} "
                      f"character{'s' if len(rows) != 1 else ''} ({size}x{size})")

    @app.post("/api/pixelate")
    async def pixelate(picture_file: UploadFile | None = File(None, alias="picture"), size: int = Form(64), colours: int = Form(16),
                       pixel_size: str = Form(""), outline: bool = Form(False), clean: bool = Form(False),
                       background: bool = Form(False), zoom: int = Form(4), palette: UploadFile | None = File(None)):
        data = await read_upload(picture_file, "picture")
        if data is None:
            raise SpriteForgeError("upload a picture to pixelate")
        if not 1 <= size <= 1024 or not 1 <= colours <= 255:
            raise SpriteForgeError(f"size must be 1 to 1024 and colours 1 to 255 (got {size}, {colours})")
        cell = int(pixel_size) if pixel_size.strip().isdigit() and int(pixel_size) > 0 else None
        colour_list = palette_colours(await read_upload(palette, "palette"), upload_name(palette))
        source = picture(data, upload_name(picture_file))
        art = api.as_rgba(api.pixelate(source, size=size, colours=colours, palette=colour_list, pixel_size=cell, outline=outline,
                                       clean=clean, background="auto" if background else None))
        zoom = max(1, min(zoom, 16))
        used = len(np.unique(art[art[..., 3] == 255][:, :3], axis=0))
        files = {"pixel-art.png": atlas.png_bytes(art), "pixel-art-indexed.png": atlas.indexed_png_bytes(art),
                 f"pixel-art-x{zoom}.png": atlas.png_bytes(art, zoom)}
        return answer(files, {"art": "pixel-art.png"},
                      f"{source.shape[1]}x{source.shape[0]} -> {art.shape[1]}x{art.shape[0]}, {used} colours")

    @app.post("/api/sample")
    def sample(sampler_path: str = Form("", alias="sampler"), count: int = Form(16), seed: int = Form(0), view: str = Form(""),
               zoom: int = Form(4)):
        sampler_path = sampler_path.strip() or sampler or ""
        if not sampler_path:
            raise SpriteForgeError("give a sampling run (a run folder of spriteforge train dcgan, biggan …)")
        sampler_path = resolve_sampler(sampler_path)
        if not 1 <= count <= MAX_SAMPLES:
            raise SpriteForgeError(f"count must be 1 to {MAX_SAMPLES}, got {count}")
        with models.lock:
            loaded = models.get(sampler_path)
            images = [api.as_rgba(image) for image in loaded.sample(count=count, seed=seed, view=view or None)]
        columns = int(np.ceil(np.sqrt(count)))
        rows = [images[start : start + columns] for start in range(0, count, columns)]
        rows[-1] = rows[-1] + [np.zeros_like(images[0])] * (columns - len(rows[-1]))
        names = [[f"sample{r * columns + c}" for c in range(columns) if r * columns + c < count] for r in range(len(rows))]
        files = sheet_files(rows, names, [f"row{r}" for r in range(len(rows))], "samples", max(1, min(zoom, 16)))
        return answer(files, {"samples": "samples.png"}, f"{loaded.kind}: {count} new characters, seed {seed}")

    return app
