"""SpriteForge Studio: a local web app (FastAPI + one page of HTML/JS) over the Python API.

`spriteforge studio` serves it on 127.0.0.1; `create_app()` builds the app for tests or other servers.
Needs the `studio` extra: pip install -e ".[studio]".
"""

from __future__ import annotations

import socket
import threading
import webbrowser

from spriteforge.errors import SpriteForgeError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def require_studio_packages() -> None:
    """One clear line when the studio extra is not installed."""
    missing = []
    for module, package in (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("multipart", "python-multipart")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SpriteForgeError(f"the studio needs {', '.join(missing)}: pip install -e \".[studio]\" (or pip install 'spriteforge[studio]')")


def create_app(model: str = "default", sampler: str | None = None):
    """The studio's FastAPI app; `model` and `sampler` are the runs its forms start with."""
    require_studio_packages()
    from spriteforge.studio.app import build_app  # needs fastapi, an optional dependency (checked just above)

    return build_app(model=model, sampler=sampler)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def serve(port: int = 7860, host: str | None = None, open_browser: bool = True, model: str = "default",
          sampler: str | None = None, echo=print) -> None:
    """Run the studio until interrupted: 127.0.0.1 unless `host` is given (then a warning is printed)."""
    require_studio_packages()
    import uvicorn

    app = create_app(model=model, sampler=sampler)
    bind = host or "127.0.0.1"
    if host and host not in LOCAL_HOSTS:
        echo(f"warning: serving on {host}: anyone who can reach this address can use the studio and the models it loads "
             "(there is no login); leave out --host to serve only this computer")
    port = port or free_port(bind)
    shown = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"
    echo(f"SpriteForge Studio on {url} (Ctrl+C to stop)")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=bind, port=port, log_level="warning")
