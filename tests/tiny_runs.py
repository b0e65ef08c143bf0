"""Tiny trained runs for the API, export and studio tests: two steps of training, seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

from spriteforge.models import model_class
from spriteforge.options import resolve
from spriteforge.training.engine import Trainer

from test_stargan import tiny_data


def tiny_run(root: Path, model: str = "turnaround", size: int = 32, **options) -> Path:
    """Train `model` for 2 steps at `size`×`size` on hand-made sprites; returns the run folder."""
    cls = model_class(model)
    given = {"steps": 2, "batch": 2, "image_size": size, "log_folder": str(root), "run_string": "tiny", "save_model": True,
             **({"capacity": 1} if "capacity" in cls.uses else {}), **options}
    trainer = Trainer(resolve(model, cls.uses, cls.defaults, given), data=tiny_data(size=size))
    trainer.run()
    return Path(trainer.run_dir)
