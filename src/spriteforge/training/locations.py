"""Where a model's weights are: the models bundled in the package by name, run folders, checkpoint files.

Below inference so that training can start from any of them (`--init-from`)."""

from __future__ import annotations

from pathlib import Path

from spriteforge.errors import SpriteForgeError
from spriteforge.training.run_folder import INFERENCE_ORDER, RunFolder


# Models shipped inside the package: the name a user types → the weights file beside its model card.
BUNDLED_FOLDER = Path(__file__).parent.parent / "weights"
BUNDLED = {"default": "turnaround-default.safetensors", "default-sampler": "fastgan-tinyhero.safetensors"}
DEFAULT_MODEL = "default"
DEFAULT_SAMPLER = "default-sampler"
"""What `default` means where new characters are drawn (`spriteforge sample`, `api.sample`)."""


def resolve_sampler(location):
    """`default` (or nothing) names the bundled sampler where new characters are drawn; anything else as given."""
    return DEFAULT_SAMPLER if location in (None, DEFAULT_MODEL) else location


def bundled_path(name: str) -> Path | None:
    """The weights of bundled model `name`, or None when `name` names no bundled model."""
    if name not in BUNDLED:
        return None
    path = BUNDLED_FOLDER / BUNDLED[name]
    if not path.is_file():
        raise SpriteForgeError(f"{path}: the bundled model '{name}' is missing from this installation; reinstall spriteforge "
                               "(pip install -e .) or pass a run folder with --model")
    return path


def find_checkpoint(location: str | Path) -> Path:
    """A bundled name resolves to its weights; a run folder to its best, exported or latest checkpoint, in that order."""
    bundled = bundled_path(str(location))
    if bundled is not None:
        return bundled
    location = Path(location).expanduser()
    if location.is_dir():
        found = RunFolder(location).inference_checkpoint()
        if found is not None:
            return found
        raise SpriteForgeError(f"{location}: no checkpoint in this folder (looked for {', '.join(map(str, INFERENCE_ORDER))}); pass a run folder of spriteforge train")
    if not location.exists():
        raise SpriteForgeError(f"{location}: no such run folder or checkpoint")
    return location
