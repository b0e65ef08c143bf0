"""The versions a run was made with: SpriteForge, torch, Python and the git commit of a checkout."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from spriteforge import __version__


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout SpriteForge runs from (None when installed from a wheel)."""
    source = Path(__file__).resolve().parent
    if not any((parent / ".git").exists() for parent in source.parents):
        return None
    try:  # the package's own files must be tracked there (not a wheel installed inside some other checkout)
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=source, capture_output=True, timeout=5)
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return (result.stdout.strip() or None) if tracked.returncode == 0 and result.returncode == 0 else None


def versions() -> dict[str, str]:
    """{'spriteforge', 'torch', 'python'[, 'git']} for configuration.toml, summary.json and checkpoints."""
    import torch  # only when asked: this module sits at the base, below everything that needs torch

    found = {"spriteforge": __version__, "torch": torch.__version__, "python": platform.python_version()}
    commit = git_commit()
    if commit:
        found["git"] = commit
    return found
