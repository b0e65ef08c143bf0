"""SpriteForge: GANs that draw pixel-art game characters."""

__version__ = "0.1.0"

VIEWS = ("back", "left", "front", "right")
"""The four poses, in the index order every dataset and model uses (back=0, left=1, front=2, right=3)."""
