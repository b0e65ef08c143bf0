"""SpriteForge: GANs that draw pixel-art game characters."""

__version__ = "0.1.0"

VIEWS = ("back", "left", "front", "right")
"""The four poses, in the index order every dataset and model uses (back=0, left=1, front=2, right=3)."""

API = ("load_model", "sample", "pixelate", "evaluate", "sheet", "grid", "Model")
"""The Python API (`spriteforge.api`), importable from here; loaded on first use so `import spriteforge` stays light."""

__all__ = ["VIEWS", "__version__", *API]


def __getattr__(name: str):
    if name in API:
        from spriteforge import api

        return getattr(api, name)
    raise AttributeError(f"module 'spriteforge' has no attribute {name!r}")
