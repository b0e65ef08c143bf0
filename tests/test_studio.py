"""The studio over HTTP (no browser): views → sheet and downloads, pixelate, new characters, bad uploads,
and `spriteforge studio` binding 127.0.0.1 unless --host (then a warning)."""

import io
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from spriteforge import atlas, imageio
from spriteforge.data.synthetic import generate_characters

from studio_server import get, post, running_studio
from tiny_runs import tiny_run


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-runs")
    with running_studio(str(tiny_run(root / "t")), str(tiny_run(root / "d", "dcgan"))) as url:
        yield url


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def bomb_png() -> bytes:
    """A 20000×20000 PNG of 48 KB: decoding it would take 400 megapixels."""
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_views_give_a_sheet_and_every_download(studio):
    hero = generate_characters(1, seed=5, size=32)[0]
    status, body = post(studio + "/api/views", {"snap": "on", "zoom": "3"},
                        {"front": ("front.png", atlas.png_bytes(hero[2])), "left": ("left.png", atlas.png_bytes(hero[1]))})
    assert status == 200, body
    assert "drew 2 views of 1 character" in body["message"]
    sheet = decoded(get(studio + body["files"]["sheet.png"]))
    assert sheet.mode == "RGBA" and sheet.size == (128, 32)
    cells = np.array(sheet).reshape(32, 4, 32, 4).transpose(1, 0, 2, 3)
    assert np.array_equal(cells[2], hero[2]) and np.array_equal(cells[1], hero[1])  # the given views are kept
    indexed = decoded(get(studio + body["files"]["sheet-indexed.png"]))
    assert indexed.mode == "P" and indexed.size == (128, 32) and np.array_equal(np.array(indexed.convert("RGBA")), np.array(sheet))
    assert decoded(get(studio + body["files"]["sheet-x3.png"])).size == (384, 96)
    gif = decoded(get(studio + body["files"]["turnaround.gif"]))
    assert gif.n_frames == 4 and gif.size == (96, 96)
    atlas_json = json.loads(get(studio + body["files"]["sheet.json"]))
    assert [frame["frame"] for frame in atlas_json["frames"]][2] == {"x": 64, "y": 0, "w": 32, "h": 32}
    assert atlas_json["meta"]["size"] == {"w": 128, "h": 32} and atlas_json["meta"]["frameTags"][0]["to"] == 3


def test_a_sheet_upload_is_split_into_characters(studio):
    characters = generate_characters(2, seed=6, size=32)
    given = characters.copy()
    given[0, [0, 1, 3]] = 0
    given[1, [0, 3]] = 0
    status, body = post(studio + "/api/views", {}, {"sheet": ("sheet.png", atlas.png_bytes(imageio.grid([list(c) for c in given], padding=0)))})
    assert status == 200, body
    assert decoded(get(studio + body["files"]["sheet.png"])).size == (128, 64) and "5 views of 2 characters" in body["message"]


def test_pixelate_and_new_characters(studio):
    art = generate_characters(1, seed=7, size=32)[0, 2]
    status, body = post(studio + "/api/pixelate", {"colours": "255"}, {"picture": ("big.png", atlas.png_bytes(imageio.upscale(art, 5)))})
    assert status == 200, body
    assert np.array_equal(np.array(decoded(get(studio + body["files"]["pixel-art.png"]))), art)
    status, body = post(studio + "/api/pixelate", {"pixel_size": "5", "colours": "4"}, {"picture": ("big.png", atlas.png_bytes(imageio.upscale(art, 5)))})
    forced = np.array(decoded(get(studio + body["files"]["pixel-art.png"])))
    assert status == 200 and forced.shape == (32, 32, 4) and len(np.unique(forced[forced[..., 3] == 255][:, :3], axis=0)) <= 4
    status, body = post(studio + "/api/sample", {"count": "5", "seed": "3"})
    assert status == 200, body
    assert decoded(get(studio + body["files"]["samples.png"])).mode == "RGBA" and len(json.loads(get(studio + body["files"]["samples.json"]))["frames"]) == 5


@pytest.mark.parametrize("endpoint, field, data, words", [
    ("views", "front", b"this is not a picture", "not a readable image"),
    ("views", "front", "wrong size", "but this model draws 32x32 sprites"),
    ("views", "front", "bomb", "too large to decode safely"),
    ("pixelate", "picture", b"GIF89a broken", "not a readable image"),
    ("pixelate", "picture", "bomb", "too large to decode safely"),
    ("views", "palette", b"GIMP Palette\n999 0 0 red\n", "outside 0-255"),
])
def test_bad_uploads_answer_a_message_and_the_server_keeps_running(studio, endpoint, field, data, words):
    if data == "wrong size":
        data = atlas.png_bytes(np.zeros((48, 48, 4), np.uint8))
    elif data == "bomb":
        data = bomb_png()
    files = {field: ("upload.png", data)}
    if field == "palette":
        files["front"] = ("front.png", atlas.png_bytes(generate_characters(1, size=32)[0, 2]))
    status, body = post(f"{studio}/api/{endpoint}", {}, files)
    assert status == 400 and words in body["error"], body
    assert "/tmp" not in body["error"]  # names the user's file, not the server's temporary copy
    assert get(studio + "/").startswith(b"<!doctype html>")  # still serving


def test_nothing_given_and_unknown_or_wrong_models(studio):
    assert "upload 1 to 3 views" in post(studio + "/api/views")[1]["error"]
    status, body = post(studio + "/api/views", {"model": "/no/such/run"}, {"front": ("f.png", atlas.png_bytes(np.zeros((32, 32, 4), np.uint8)))})
    assert status == 400 and "no such run folder" in body["error"]
    sampler = json.loads(get(studio + "/api/config"))["sampler"]
    status, body = post(studio + "/api/views", {"model": sampler}, {"front": ("f.png", atlas.png_bytes(np.zeros((32, 32, 4), np.uint8)))})
    assert status == 400 and "draws new characters" in body["error"]


def test_serve_binds_localhost_and_warns_for_other_hosts(monkeypatch):
    pytest.importorskip("uvicorn", reason="the studio extra is not installed (pip install -e '.[studio]')")
    pytest.importorskip("fastapi", reason="the studio extra is not installed (pip install -e '.[studio]')")
    import uvicorn

    from spriteforge import studio

    calls, lines = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: calls.append((host, port)))
    studio.serve(port=8123, open_browser=False, echo=lines.append)
    assert calls[-1] == ("127.0.0.1", 8123) and not any("warning" in line for line in lines)
    studio.serve(port=8124, host="0.0.0.0", open_browser=False, echo=lines.append)
    assert calls[-1] == ("0.0.0.0", 8124) and any(line.startswith("warning: serving on 0.0.0.0") for line in lines)


def test_the_studio_command_serves_localhost(tmp_path):
    pytest.importorskip("uvicorn", reason="the studio extra is not installed (pip install -e '.[studio]')")
    process = subprocess.Popen([sys.executable, "-m", "spriteforge", "studio", "--port", "0", "--no-browser", "--model", str(tmp_path)],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stderr.readline()
        match = re.search(r"SpriteForge Studio on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        deadline = time.monotonic() + 30
        while True:
            try:
                page = get(match.group(1))
                break
            except OSError:
                assert time.monotonic() < deadline, "the studio did not answer"
                time.sleep(0.2)
        assert b"SpriteForge Studio" in page
        assert json.loads(get(match.group(1) + "api/config"))["model"] == str(tmp_path)
    finally:
        process.terminate()
        process.wait(10)
