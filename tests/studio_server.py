"""The studio served in a background thread on a free localhost port, for the HTTP and browser tests."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest


@contextlib.contextmanager
def running_studio(model: str = "default", sampler: str | None = None):
    """Yield the base URL of a studio serving on 127.0.0.1; stop it afterwards."""
    pytest.importorskip("fastapi", reason="the studio extra is not installed (pip install -e '.[studio]')")
    pytest.importorskip("uvicorn", reason="the studio extra is not installed (pip install -e '.[studio]')")
    pytest.importorskip("multipart", reason="the studio extra is not installed (pip install -e '.[studio]')")
    import uvicorn

    from spriteforge.studio import create_app, free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(model=model, sampler=sampler), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the studio did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def post(url: str, fields: dict[str, str] | None = None, files: dict[str, tuple[str, bytes]] | None = None) -> tuple[int, dict]:
    """POST a multipart form; returns (status, JSON body)."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, value in (fields or {}).items():
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in (files or {}).items():
        body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                   f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(url, data=body.getvalue(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()
