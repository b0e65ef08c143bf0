"""A run folder of `spriteforge train`: where each of its files lives, creating one, its status and its checkpoints.

    LOG_FOLDER/MODEL/EXPERIMENT/RUN/
        configuration.toml        the resolved options (+ versions, resume history)
        command-line.txt, model-description.txt
        checkpoints/latest.safetensors   what --resume continues (earlier ones kept as latest-<step>.safetensors)
        checkpoints/best.safetensors     the best validation L1 (--callback-evaluate-l1)
        models/generator.safetensors     the inference networks at the end (--save-model)
        summary.json              written when the run finished
        previews/, test-images/, discriminated-images/, profile/, evaluation/
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.training import checkpoint as ckpt

LATEST, BEST = "latest.safetensors", "best.safetensors"
EXPORTED = Path("models") / "generator.safetensors"
INFERENCE_ORDER = (Path("checkpoints") / BEST, EXPORTED, Path("checkpoints") / LATEST)
"""Where a run's weights for use are looked for, in this order (relative to the run folder)."""


class Inside:
    """A path inside the run folder, read as an attribute (`folder.summary`)."""

    def __init__(self, *parts: str | Path):
        self.parts = parts

    def __get__(self, folder, owner=None):
        return self if folder is None else folder.path.joinpath(*self.parts)


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    # -- files ----------------------------------------------------------------------------------------
    checkpoints = Inside("checkpoints")
    latest = Inside("checkpoints", LATEST)
    best = Inside("checkpoints", BEST)
    exported = Inside(EXPORTED)
    configuration = Inside("configuration.toml")
    command_line = Inside("command-line.txt")
    description = Inside("model-description.txt")
    summary = Inside("summary.json")
    lock = Inside(".lock")
    evaluation = Inside("evaluation")
    profile = Inside("profile")

    def preview(self, step: int) -> Path:
        return self.path / "previews" / f"step_{step:06d}.png"

    def test_image(self, stem: str, step: int) -> Path:
        return self.path / "test-images" / f"{stem}_at_step_{step}.png"

    def discriminated(self, split: str, step: int) -> Path:
        return self.path / "discriminated-images" / f"discriminated_{split}_at_step_{step}.png"

    # -- status ---------------------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        """Whether there is a checkpoint to resume from (the latest or a kept earlier one)."""
        return self.latest.is_file() or bool(ckpt.previous_checkpoints(self.latest))

    def is_finished(self) -> bool:
        return self.summary.is_file()

    def status(self) -> str:
        """The run's progress: "done" (summary written), "interrupted" (a latest checkpoint) or "new"."""
        if self.is_finished():
            return "done"
        if self.latest.is_file():
            return "interrupted"
        return "new"

    def inference_checkpoint(self) -> Path | None:
        """The weights to use the run with: best, exported or latest, the first that exists."""
        return next((self.path / candidate for candidate in INFERENCE_ORDER if (self.path / candidate).is_file()), None)

    def read_latest(self, warn=None) -> tuple[Path, dict, dict]:
        """(path, tensors, meta) of the newest readable checkpoint (a damaged latest falls back to a kept one)."""
        return ckpt.read_newest(self.latest, warn=warn)

    # -- finding and creating ----------------------------------------------------------------------------
    @classmethod
    def containing(cls, location: str | Path) -> "RunFolder":
        """The run folder a checkpoint belongs to (…/RUN/checkpoints/best.safetensors → …/RUN), or the folder itself."""
        location = Path(location).expanduser()
        if location.is_dir():
            return cls(location)
        if location.parent.name in ("checkpoints", "models"):
            return cls(location.parent.parent)
        return cls(location.parent)

    @staticmethod
    def below(root: Path) -> list["RunFolder"]:
        """The run folders below `root` that hold weights to use, sorted."""
        return [RunFolder(path) for path in sorted({path.parents[1] for candidate in INFERENCE_ORDER for path in Path(root).glob(f"**/{candidate}")})]

    @staticmethod
    def parent(log_folder: str | Path, model: str, experiment: str) -> Path:
        """LOG_FOLDER/MODEL/EXPERIMENT: where the runs of a model (its --model-name, if given) and experiment go."""
        return Path(str(log_folder)) / str(model) / str(experiment)

    @classmethod
    def parent_for(cls, config) -> Path:
        """The parent of a configuration's runs (see `parent`)."""
        return cls.parent(config.log_folder, config.model_name or config.model, config.experiment)

    @classmethod
    def create(cls, config) -> "RunFolder":
        """A new folder for a run of `config`, created atomically (`mkdir`): --run-string names it (an existing
        folder is taken as it is), else the time, with a -2, -3 … suffix when another run took it in the same second."""
        parent = cls.parent_for(config)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            if config.run_string:
                path = parent / config.run_string
                path.mkdir(exist_ok=True)
                return cls(path)
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            for number in itertools.count(1):
                path = parent / (stamp if number == 1 else f"{stamp}-{number}")
                try:
                    path.mkdir()
                    return cls(path)
                except FileExistsError:
                    continue
        except OSError as error:
            raise SpriteForgeError(imageio.io_error_message(error)) from None
        raise AssertionError("unreachable")
