"""mypy on src/ at the level pyproject.toml's [tool.mypy] sets: no errors, so `pytest` (and CI) enforces it.

The first run type-checks torch's stubs as well (about a minute); later runs reuse the cache in the
temporary folder and take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (it comes with pip install -e '.[dev]')")
def test_mypy_finds_no_errors_in_src():
    cache = Path(tempfile.gettempdir()) / f"spriteforge-mypy-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary"],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"mypy (pyproject.toml [tool.mypy]) reports errors in src/:\n{result.stdout}{result.stderr}"
