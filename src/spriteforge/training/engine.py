"""The step loop every model trains with.

Why it looks like this: all randomness of step s (batch order, augmentation, the model's own draws)
is a pure function of (seed, s), so a run resumed from a checkpoint at step N continues exactly like
the uninterrupted run, bit for bit on CPU. Learning rates are likewise computed from the step.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tomli_w
import torch
from filelock import BaseFileLock, FileLock, Timeout
from tqdm import tqdm

from spriteforge import __version__, distributed, imageio
from spriteforge.data.augment import Augmentation
from spriteforge.data.batches import batch_indices, normalise, step_seed, to_model_input
from spriteforge.data.folders import CharacterSet
from spriteforge.data.loading import SpriteData, is_single_folder_source, load_data
from spriteforge.data.pictures import load_pairs, load_unpaired
from spriteforge.devices import autocast, check_precision, cpu_has_bf16_arithmetic, fits_on_device, limit_memory, resolve_device
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation.inception import InceptionFeatures
from spriteforge.evaluation.training_fid import evaluate_fid, evaluate_sample_fid
from spriteforge.models import model_class
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import parameter_count
from spriteforge.models.kinds import Imputer
from spriteforge.options import DEFAULT_STEPS, Config, dataset_sources, load_toml_file, option_name
from spriteforge.training import checkpoint as ckpt
from spriteforge.training.locations import find_checkpoint
from spriteforge.training.run_folder import RunFolder
from spriteforge.versions import versions

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

EVALUATION_LIMIT = 500


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM. `saved`: the checkpoint holds the step just finished;
    otherwise (a second signal stopped a step half-way) the last periodic checkpoint was kept."""

    def __init__(self, step: int, saved: bool):
        super().__init__(step)
        self.step, self.saved = step, saved


class StopRequest:
    """Ctrl-C or SIGTERM while training: the first lets the current step finish, so the checkpoint
    saved after it resumes bit for bit (a step cut half-way may have updated D but not G); a second
    stops at once. A SIGINT that the parent ignores (`cmd &` in a script) stays ignored."""

    def __init__(self):
        self.requested = False
        self.previous: dict[int, Any] = {}  # the handlers signal.signal replaced

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(number) is not signal.SIG_IGN:
                    self.previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def pick_device(config: Config) -> torch.device:
    """--device (auto: a CUDA GPU, else MPS, else the CPU), its --memory-fraction, and a --precision it can run.
    Under torchrun each process on a machine takes its own GPU (LOCAL_RANK)."""
    device = distributed.local_device(resolve_device(config.get("device", "auto")))
    limit_memory(device, config.get("memory_fraction", 1.0))
    check_precision(device, config.get("precision", "32"))
    return device


def build_model(config: Config, domain_count: int, channels: int, image_size: int | tuple[int, int], device: torch.device | str = "cpu") -> SpriteModel:
    model = model_class(config.model)(config, domain_count, channels, image_size)
    return model.to(device)


PICTURE_DATA = {"unpaired-pictures": load_unpaired, "paired-pictures": load_pairs}
"""The loaders of the `data_kind`s other than "characters" (which `load_data` reads)."""


def training_data(model_type: type[SpriteModel], config: Config):
    """The data a model's `data_kind` names when it reads its own folders, or None for characters (`load_data`).

    Data returned here may draw its own batches: a `batch_images(step, batch, seed)` method returning
    uint8 [B, D, H, W, 4] (a pure function of its arguments, so resume stays exact) replaces the
    engine's character sampler.
    """
    if model_type.data_kind == "characters":
        return None
    if model_type.data_kind not in PICTURE_DATA:
        raise SpriteForgeError(f"{model_type.name}: unknown data kind '{model_type.data_kind}'")
    model_type.check_data_config(config)  # before reading folders of the wrong size
    return PICTURE_DATA[model_type.data_kind](config, model_type.name)


def refuse_single_folder(model: str, source: str) -> None:
    raise SpriteForgeError(
        f"{model} needs characters with views, but {source} is a single folder of images; train a sampling model "
        f"on it (dcgan, wgan-gp, biggan, deep-biggan) or pass a folder of view sub-folders")


def learning_rate_factor(decay: str, step: int, total: int, steps_per_epoch: int = 1, epoch_factor: float = 1.0) -> float:
    """Multiplier of the base learning rate at `step` of `total` (per-epoch: `epoch_factor` ** epochs done).

    A schedule, never a re-created optimiser: Adam's moment estimates survive every change of rate.
    """
    if decay == "per-epoch":
        return epoch_factor ** (step // max(1, steps_per_epoch))
    if decay == "constant-then-linear":
        return max(0.0, min(1.0, 2.0 * (1.0 - step / total)))
    if decay == "exponential":
        return 0.99 ** (step // 400)
    if decay == "step":
        return 0.5 ** (step // 30000)
    return 1.0


@dataclass
class RunState:
    step: int = 0
    best_validation: float | None = None
    best_step: int | None = None
    evaluations_without_improvement: int = 0
    history: list[dict] = field(default_factory=list)


class Trainer:
    """Owns a run folder, a model and its data; `run()` trains to the configured number of steps."""

    def __init__(self, config: Config, command_line: str = "", resume: Path | None = None, data: SpriteData | None = None,
                 checkpoint: tuple[Path, dict, dict] | None = None):
        """`resume`: the run folder to continue; `checkpoint`: its newest checkpoint (path, tensors, meta) when
        the caller has read it already (the CLI reads it for the run's options), so it is read once."""
        self.config = config
        self.device = pick_device(config)
        distributed.start(self.device)
        distributed.check_batch(config.batch)
        self.is_main = distributed.is_main()
        torch.use_deterministic_algorithms(True, warn_only=True)
        sources, test_sources = dataset_sources(config)
        model_type = model_class(config.model)
        image_size = model_type.data_size(config)  # a square side, or (height, width) for BigGAN
        own = None if data is not None else training_data(model_type, config)  # style models read their own folders
        single = [source for source in sources if is_single_folder_source(source)]
        if data is None and own is None and single and not model_type.accepts_single_folder():
            refuse_single_folder(config.model, single[0])
        self.data = data or own or load_data(
            sources, domains=tuple(config.domains), image_size=image_size, data_dir=config.data_dir or None,
            seed=config.seed, validation_fraction=config.validation_fraction, test_sources=test_sources,
        )
        if len(self.data.train) == 0:
            raise SpriteForgeError("the training partition is empty")
        if config.batch > len(self.data.train):
            raise SpriteForgeError(f"--batch {config.batch} is larger than the training split ({len(self.data.train)} characters); "
                                   f"lower --batch to at most {len(self.data.train)}")
        if len(self.data.domains) == 1 and not model_type.accepts_single_folder():
            refuse_single_folder(config.model, "+".join(self.data.sources))
        total_steps = config.steps
        if total_steps is None:
            total_steps = math.ceil(config.epochs * len(self.data.train) / config.batch) if config.epochs else DEFAULT_STEPS
            config["steps"] = total_steps
        self.total_steps = total_steps
        self.channels = config.output_channels
        torch.manual_seed(config.seed)  # the initial weights are part of the run's determinism
        self.model = build_model(config, len(self.data.domains), self.channels, image_size, self.device)
        distributed.synchronise_layers(self.model, self.device)  # statistics of the global batch under torchrun
        if config.callback_evaluate_l1 and not self.model.evaluates_l1:
            raise SpriteForgeError(f"--callback-evaluate-l1 measures imputed views; {config.model} draws new characters (use --callback-evaluate-fid)")
        self.augmentation = Augmentation(
            hue=not (config.no_aug or config.no_hue), translation=not (config.no_aug or config.no_tran)
        )
        # Data with its own sampler (unpaired folders) draws batches itself; see `training_data`. Characters
        # live on the device when they fit (uint8): a step then sends only its batch indices across.
        self.train_images = None if hasattr(self.data, "batch_images") else torch.from_numpy(self.data.train.images)
        if self.train_images is not None and fits_on_device(self.train_images.nbytes, self.device):
            self.train_images = self.train_images.to(self.device)
        self.precision = config.get("precision", "32")
        self.model.use_grad_scalers(self.device if self.precision == "16-mixed" else None)
        self.state = RunState()
        self.lock: BaseFileLock | None = None
        if config.get("init_from") and (resume is None or (checkpoint is None and not RunFolder(resume).has_checkpoint())):
            self._start_from(config.init_from)  # before any run folder is made: a refused model leaves nothing behind
        if config.get("distill_from"):
            self._load_teacher(config.distill_from)
        if resume is not None:
            self.folder = RunFolder(resume)
            self.run_dir = self.folder.path
            if self.is_main:
                self._lock_run_dir(self.run_dir)
                imageio.remove_orphans(self.folder.checkpoints)
            if checkpoint is not None or self.folder.has_checkpoint():
                self._restore(checkpoint or self.folder.read_latest(warn=lambda line: print(line, file=sys.stderr)))
            else:  # killed before its first checkpoint: start again from step 0 in the same folder
                self._write_run_files(command_line or command_line_string())
        else:
            self.folder = self._shared_new_run_folder()
            self.run_dir = self.folder.path
            self._write_run_files(command_line)
        distributed.broadcast_state(self.model)  # every rank starts from rank 0's weights (equal anyway: same seed)
        self.saved_step = self.state.step  # the step `checkpoints/latest` holds (0: none yet)
        self.writer: SummaryWriter | None = None
        self.fid_extractor: InceptionFeatures | None = None

    @property
    def tensorboard(self) -> SummaryWriter:
        """The run's TensorBoard writer (`run` opens it)."""
        assert self.writer is not None, "TensorBoard is written while `run` trains"
        return self.writer

    # -- run folder -------------------------------------------------------------------------------
    def _shared_new_run_folder(self) -> RunFolder:
        """Rank 0 claims the run folder (`_new_run_folder`); the other ranks learn its path, or its refusal."""
        outcome: tuple[str, str] = ("", "")
        if self.is_main:
            try:
                outcome = ("folder", str(self._new_run_folder().path))
            except SpriteForgeError as error:
                outcome = ("error", str(error))
        kind, text = distributed.broadcast_value(outcome)
        if kind == "error":
            raise SpriteForgeError(text)
        return RunFolder(Path(text))

    def _new_run_folder(self) -> RunFolder:
        """Claim a run folder for this process alone: created atomically (`RunFolder.create`), then locked.

        A named folder is refused while another process trains in it (its lock is held) or when it
        holds a checkpoint (continue it with --resume); a named folder without a checkpoint (a run
        killed before its first one) is started again from step 0.
        """
        folder = RunFolder.create(self.config)
        self._lock_run_dir(folder.path)
        if folder.has_checkpoint():
            self.release()
            raise SpriteForgeError(f"{folder.path}: a run already exists there; continue it with --resume {folder.path} or pick another --run-string")
        imageio.remove_orphans(folder.checkpoints)
        return folder

    def _lock_run_dir(self, run_dir: Path) -> None:
        """Hold `run_dir/.lock` while this Trainer lives or trains: a second process is refused."""
        if not run_dir.is_dir():
            raise SpriteForgeError(f"{run_dir}: no such run folder (checkpoint not found)")
        lock = FileLock(str(RunFolder(run_dir).lock), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise SpriteForgeError(f"{run_dir}: another spriteforge process is training in this run folder; wait for it to "
                                   f"finish or stop it (a second one would overwrite its checkpoints)") from None
        except OSError as error:
            raise SpriteForgeError(imageio.io_error_message(error, RunFolder(run_dir).lock)) from None
        self.lock = lock

    def release(self) -> None:
        """Let another process use the run folder (at the end of `run`; `run` takes it again)."""
        if self.lock is not None:
            self.lock.release(force=True)
            self.lock = None

    def _write_run_files(self, command_line: str, resumed: dict | None = None) -> None:
        if not self.is_main:
            return
        record = self.config.to_toml_dict()
        path = self.folder.configuration
        history = []
        if resumed is not None and path.is_file():
            try:
                history = list(load_toml_file(path, "run configuration").get("resumed", []))
            except SpriteForgeError:  # unreadable: the history starts again
                history = []
        record["versions"] = versions()
        if resumed is not None:
            history.append(resumed)
        if history:
            record["resumed"] = history
        with imageio.atomic_write(path) as temporary:
            temporary.write_text(tomli_w.dumps(record))
        if resumed is not None:
            return
        self.folder.command_line.write_text(command_line + "\n")
        counts = {name: parameter_count(net) for name, net in self.model.networks().items()}
        description = [f"model: {self.config.model}", f"data: {self.data.describe()}", f"device: {self.device}"]
        description += [f"{name}: {count:,} parameters" for name, count in counts.items()]
        self.folder.description.write_text("\n".join(description) + "\n\n" + self.model.describe())

    def _start_from(self, location: str) -> None:
        """--init-from: the networks a trained model holds (e.g. only the generator of a packed model)."""
        path = find_checkpoint(location)
        tensors, meta = ckpt.read_checkpoint(path)
        if meta["model"] != self.config.model:
            raise SpriteForgeError(f"{path}: --init-from needs a {self.config.model} model, this is a {meta['model']} model")
        held = tuple(name for name in self.model.networks() if any(key.startswith(f"network/{name}/") for key in tensors))
        if not held:
            raise SpriteForgeError(f"{path}: holds none of the networks of {self.config.model}; --init-from needs trained weights")
        tensors = self.model.adapt_initial_weights(tensors, meta.get("config", {}))
        ckpt.load_weights(self.model, tensors, path, held)
        fresh = [name for name in self.model.networks() if name not in held]
        if self.is_main:
            print(f"starting from {path}: {', '.join(held)}" + (f" ({', '.join(fresh)} afresh)" if fresh else ""), file=sys.stderr)

    def _load_teacher(self, location: str) -> None:
        """--distill-from: the trained model whose probabilities this one also learns, as drawn (eval mode, no gradients)."""
        path = find_checkpoint(location)
        tensors, meta = ckpt.read_checkpoint(path)
        if meta["model"] != self.config.model:
            raise SpriteForgeError(f"{path}: --distill-from needs a {self.config.model} model, this is a {meta['model']} model")
        teacher, _ = ckpt.rebuild_model(tensors, meta, path)
        self.model.learn_from(teacher.to(self.device).eval().requires_grad_(False), path)
        if self.is_main:
            print(f"distilling from {path}", file=sys.stderr)

    def _restore(self, checkpoint: tuple[Path, dict, dict]) -> None:
        path, tensors, meta = checkpoint
        written_by = meta["versions"].get("spriteforge")
        if written_by and written_by != __version__:
            print(f"warning: {path} was written by SpriteForge {written_by}, this is {__version__}; "
                  f"the run may not continue exactly", file=sys.stderr)
        if meta["model"] != self.config.model:
            raise SpriteForgeError(f"{path}: checkpoint of model '{meta['model']}', not '{self.config.model}'")
        ckpt.load_weights(self.model, tensors, path)
        ckpt.load_optimizers(self.model, tensors, meta, path)
        extra = meta["extra"]
        scaler_states = extra.get("grad_scalers") or {}
        for name, scaler in self.model.grad_scalers.items():  # a run that switches to 16-mixed starts its scales afresh
            if isinstance(scaler_states.get(name), dict):
                scaler.load_state_dict(scaler_states[name])
        self.state = RunState(
            step=meta["step"], best_validation=extra.get("best_validation"), best_step=extra.get("best_step"),
            evaluations_without_improvement=extra.get("evaluations_without_improvement", 0),
            history=extra.get("history", []),
        )
        changed = {key: value for key, value in self.config.items()
                   if key in meta["config"] and meta["config"][key] != value and value is not None}
        if changed:  # --resume with new options (--lr, --steps …): the run's configuration keeps the history
            self._write_run_files("", resumed={
                "step": meta["step"], "time": datetime.now().isoformat(timespec="seconds"),
                "changed": {option_name(key): value for key, value in sorted(changed.items())},
                "before": {option_name(key): meta["config"][key] for key in sorted(changed)},
            })

    def save_latest(self) -> Path:
        """Write checkpoints/latest (keeping --keep-checkpoints - 1 earlier ones); never non-finite weights.
        Under torchrun rank 0 alone writes (the weights are the same on every rank)."""
        if not self.is_main:
            self.saved_step = self.state.step
            return self.folder.latest
        extra: dict[str, Any] = {
            "best_validation": self.state.best_validation, "best_step": self.state.best_step,
            "evaluations_without_improvement": self.state.evaluations_without_improvement,
            "history": self.state.history,
        }
        if self.model.grad_scalers:  # --precision 16-mixed: the loss scales continue exactly on resume
            extra["grad_scalers"] = {name: scaler.state_dict() for name, scaler in self.model.grad_scalers.items()}
        try:
            path = ckpt.save_checkpoint(self.folder.latest, self.model, self.state.step, extra,
                                        keep=self.config.get("keep_checkpoints") or 2)
        except ckpt.NonFiniteState as error:
            raise self.diverged(self.state.step, str(error)) from None
        self.saved_step = self.state.step
        return path

    def out_of_memory(self, step: int) -> SpriteForgeError:
        """One line for a step that ran out of memory: what the step held and what to lower. Nothing was
        saved over the last checkpoint."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        config = self.config
        capacity = "capacity" in config
        held = ", ".join([f"--batch {config.batch}"] + ([f"--capacity {config.capacity}"] if capacity else [])
                         + [f"--precision {self.precision}", f"--image-size {config.image_size}"])
        kept = (f"checkpoints/latest.safetensors still holds step {self.saved_step}" if self.saved_step
                else "no checkpoint was written yet")
        fixes = f"start a run with a lower --batch{' or --capacity' if capacity else ''}"
        if self.precision == "32":
            fixes += (f", or continue with spriteforge train --resume {self.run_dir} --precision bf16" if self.saved_step
                      else ", or add --precision bf16")
        return SpriteForgeError(f"out of memory at step {step} on {self.device} ({held}); {kept}; {fixes}")

    def diverged(self, step: int, cause: str) -> SpriteForgeError:
        """The error of a run whose loss or weights went non-finite: nothing was saved over the last good checkpoint."""
        lower = f"{self.config.lr / 10:g}"
        kept = (f"checkpoints/latest.safetensors still holds step {self.saved_step}" if self.saved_step
                else "no checkpoint was written yet")
        return SpriteForgeError(f"training diverged at step {step} ({cause}); {kept}: lower --lr and resume with "
                                f"spriteforge train --resume {self.run_dir} --lr {lower}")

    # -- the loop ---------------------------------------------------------------------------------
    def batch(self, step: int) -> torch.Tensor:
        if self.train_images is None:
            images = self.data.batch_images(step, self.config.batch, self.config.seed)  # type: ignore[union-attr]  # data without it has train_images
        else:
            images = self.train_images[batch_indices(step, self.config.batch, len(self.train_images), self.config.seed)]
        images = images.float().movedim(-1, -3)  # [B, D, 4, H, W], 0..255
        generator = torch.Generator().manual_seed(step_seed(self.config.seed, step) ^ 0x5EED)
        images = distributed.shard(self.augmentation(images, generator))  # under torchrun: this rank's rows
        return normalise(images, self.channels).to(self.device)

    def apply_learning_rates(self, step: int) -> float:
        steps_per_epoch = math.ceil(len(self.data.train) / self.config.batch)
        factor = learning_rate_factor(self.config.lr_decay, step, self.total_steps, steps_per_epoch, self.config.get("lr_epoch_decay", 1.0))
        for name, optimizer in self.model.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.model.base_lrs[name] * factor
        return factor * self.config.lr

    def run(self, stop_at: int | None = None) -> RunState:
        """Train until the configured steps (or `stop_at`), saving checkpoints. Ctrl-C or SIGTERM: the
        step in progress finishes, is saved, and `Interrupted` is raised (see StopRequest)."""
        if self.lock is None and self.is_main:
            self._lock_run_dir(self.run_dir)
        try:
            return self._run(stop_at)
        finally:
            self.release()

    def _run(self, stop_at: int | None) -> RunState:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard (a second or more): only when training

        config = self.config
        self.writer = SummaryWriter(str(self.run_dir)) if self.is_main else None
        end = min(self.total_steps, stop_at) if stop_at else self.total_steps
        checkpoint_every = config.checkpoint_steps or config.evaluate_steps
        log_every = max(1, config.evaluate_steps // 10)
        self.model.train()
        if self.is_main and self.device.type == "cpu" and self.precision == "32" and self.state.step == 0 and cpu_has_bf16_arithmetic():
            print("hint: this CPU computes bfloat16 in hardware; --precision bf16 trains most models 1.2–1.7× faster on such "
                  "CPUs, to the same scores in the README's runs (its training-speed section has the measurements)", file=sys.stderr)
        profiler = self._profiler()
        bar = tqdm(total=end, initial=self.state.step, desc=config.model, unit="step", dynamic_ncols=True,
                   disable=None if self.is_main else True, file=sys.stderr)
        started = time.perf_counter()
        early_stopped = False
        first_step = self.state.step
        stop_request = StopRequest()
        try:
            with stop_request, profiler or nullcontext():
                while self.state.step < end:
                    step = self.state.step
                    torch.manual_seed(step_seed(config.seed, step))
                    learning_rate = self.apply_learning_rates(step)
                    try:
                        with autocast(self.device, self.precision):
                            losses = self.model.train_step(self.batch(step), step, step / self.total_steps)
                    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
                        if isinstance(error, RuntimeError) and not isinstance(error, torch.OutOfMemoryError) \
                                and "out of memory" not in str(error) and "can't allocate memory" not in str(error):
                            raise
                        raise self.out_of_memory(step + 1) from None
                    losses, stopping = distributed.average_values(losses, stop_request.requested)
                    self.state.step = done = step + 1
                    if profiler is not None and done <= config.profile:
                        profiler.step()
                    bar.update(1)
                    if bar.disable and self.is_main and (done % log_every == 0 or done == end):
                        rate = (time.perf_counter() - started) / max(1, done - first_step)
                        print(f"step {done}/{end} {rate:.2f} s/step, ETA {(end - done) * rate / 60:.1f} min "
                              + " ".join(f"{k}={v:.4g}" for k, v in losses.items() if k.endswith(("total", "l1"))),
                              file=sys.stderr, flush=True)
                    if self.writer is not None and (done % log_every == 0 or done == 1):
                        for key, value in losses.items():
                            self.tensorboard.add_scalar(key, value, done)
                        self.tensorboard.add_scalar("learning-rate", learning_rate, done)
                        bar.set_postfix({k.split("/")[0][0] + ":" + k.split("/")[-1][:4]: f"{v:.3g}" for k, v in losses.items() if k.endswith("total") or k.endswith("l1")})
                    if not all(math.isfinite(v) for v in losses.values()):
                        raise self.diverged(done, "a loss is not finite")
                    if done == 1 or done % config.evaluate_steps == 0 or done == self.total_steps:
                        stop = distributed.broadcast_value(self.evaluate(done, losses) if self.is_main else False)
                        if stop:
                            bar.write(f"early stop at step {done}: no validation improvement in {config.patience} evaluations")
                            self.save_latest()
                            early_stopped = True
                            break
                    if done % checkpoint_every == 0 or done == end or stopping:
                        self.save_latest()
                    if stopping:
                        raise Interrupted(done, saved=True)
        except KeyboardInterrupt as interruption:
            bar.close()
            if self.writer is not None:
                self.writer.close()
            if isinstance(interruption, Interrupted):
                raise
            raise Interrupted(self.saved_step, saved=False) from None
        bar.close()
        elapsed = time.perf_counter() - started
        if self.is_main and (self.state.step >= self.total_steps or early_stopped):
            self.finish(elapsed)
        if self.writer is not None:
            self.writer.close()
        distributed.barrier()  # the other ranks wait for rank 0's test images and exports
        return self.state

    def _profiler(self):
        if self.config.profile <= 0:
            return None
        activities = [torch.profiler.ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        return torch.profiler.profile(
            activities=activities, schedule=torch.profiler.schedule(wait=0, warmup=1, active=max(1, self.config.profile - 1), repeat=1),
            on_trace_ready=torch.profiler.tensorboard_trace_handler(str(self.folder.profile)),
        )

    # -- evaluation, previews, the end --------------------------------------------------------------
    def evaluation_set(self, characters: CharacterSet) -> torch.Tensor:
        count = min(len(characters), EVALUATION_LIMIT)
        picks = np.linspace(0, len(characters) - 1, count).round().astype(int) if count else []
        return to_model_input(torch.from_numpy(characters.images[picks]), self.channels)

    def evaluate(self, step: int, losses: dict[str, float]) -> bool:
        """Preview, optional L1 evaluation and best checkpoint; returns True to stop early."""
        config = self.config
        self.model.eval()
        preview = self.model.preview(self.evaluation_set(self.data.train)[:3], self.evaluation_set(self.data.test)[:3], self.device)
        imageio.save_png(preview, self.folder.preview(step), scale=2)
        self.tensorboard.add_image("preview", preview, step, dataformats="HWC")
        if config.callback_debug_discriminator:
            self._debug_discriminator(step)
        stop = False
        record = {"step": step, **{k: round(v, 6) for k, v in losses.items()}}
        splits = {"train": self.data.train, "validation": self.data.validation, "test": self.data.test}
        for name, value in self.model.on_evaluation(lambda split: self.evaluation_set(splits[split]), self.device).items():
            self.tensorboard.add_scalar(name, value, step)
            record[name] = round(value, 6)
        if config.callback_evaluate_l1:
            results = {}
            for split, characters in splits.items():
                if len(characters):
                    results[split] = self.model.evaluation_l1(self.evaluation_set(characters), self.device, seed=config.seed)
                    self.tensorboard.add_scalar(f"l1-evaluation/{split}", results[split], step)
            record.update({f"l1/{k}": round(v, 6) for k, v in results.items()})
            selection = results.get("validation", None)
            if selection is not None:
                if self.state.best_validation is None or selection < self.state.best_validation:
                    self.state.best_validation, self.state.best_step = selection, step
                    self.state.evaluations_without_improvement = 0
                    ckpt.save_checkpoint(self.folder.best, self.model, step,
                                         {"validation_l1": selection, "test_l1": results.get("test")},
                                         include_training_state=False, networks=self.model.inference_networks)
                else:
                    self.state.evaluations_without_improvement += 1
                    stop = config.callback_early_stop and self.state.evaluations_without_improvement >= config.patience
        if config.callback_evaluate_fid:
            record.update(self._evaluate_fid(step))
        self.state.history.append(record)
        if config.verbose:
            tqdm.write(json.dumps(record))
        self.model.train()
        return stop

    def _evaluate_fid(self, step: int) -> dict[str, float]:
        """FID and KID of the drawn targets against the real ones, per split, on distinct characters.

        The Inception network is loaded once per run and remembers the real views' features, so
        later evaluations only pass the newly drawn images through it.
        """
        if self.fid_extractor is None:
            self.fid_extractor = InceptionFeatures(self.device)
        results = {}
        for split, characters in (("train", self.data.train), ("validation", self.data.validation), ("test", self.data.test)):
            if len(characters) < 2:  # a covariance needs at least two images
                continue
            views = self.evaluation_set(characters)
            if isinstance(self.model, Imputer):
                scores = evaluate_fid(self.model, views, self.device, self.fid_extractor, seed=self.config.seed)
            else:
                scores = evaluate_sample_fid(self.model, views, self.device, self.fid_extractor, seed=self.config.seed)
            for name, value in scores.items():
                self.tensorboard.add_scalar(f"{name}-evaluation/{split}", value, step)
                results[f"{name}/{split}"] = round(float(value), 6)
        return results

    def _debug_discriminator(self, step: int) -> None:
        for split, characters in (("train", self.data.train), ("test", self.data.test)):
            batch = self.evaluation_set(characters)[:4].to(self.device)
            outputs = self.model.debug_discriminator(batch)
            if outputs is None:
                continue
            image = discriminator_debug_grid(*outputs)
            imageio.save_png(image, self.folder.discriminated(split, step), scale=2)

    def finish(self, elapsed: float) -> None:
        """Restore the best generator (if any), write test images, exports and a summary."""
        config = self.config
        best_path = self.folder.best
        summary: dict[str, Any] = {"steps": self.state.step, "seconds_this_session": round(elapsed, 1), "versions": versions()}
        if self.state.history:
            summary["last_evaluation"] = self.state.history[-1]
        if best_path.exists():
            tensors, meta = ckpt.read_checkpoint(best_path)
            ckpt.load_weights(self.model, tensors, best_path, self.model.inference_networks)
            summary.update({"best_step": meta["step"], "validation_l1": meta["extra"].get("validation_l1"),
                            "test_l1": meta["extra"].get("test_l1")})
        self.model.eval()
        self._write_test_images(summary.get("best_step", self.state.step))
        if config.save_model:
            ckpt.save_checkpoint(self.folder.exported, self.model, summary.get("best_step", self.state.step),
                                 include_training_state=False, networks=self.model.inference_networks)
        with imageio.atomic_write(self.folder.summary) as temporary:
            temporary.write_text(json.dumps(summary, indent=2) + "\n")

    def _write_test_images(self, at_step: int) -> None:
        """`test-images/`: --test-images test characters spread over the split (0 writes none)."""
        test = self.evaluation_set(self.data.test)
        count = min(self.config.get("test_images", 100), len(test))
        if count == 0:
            return
        picks = np.linspace(0, len(test) - 1, count).round().astype(int)
        started = time.time()
        for stem, image in self.model.final_images(test[picks], self.device).items():
            imageio.save_png(image, self.folder.test_image(stem, at_step), scale=2)
        print(f"test images: {count} test characters in {time.time() - started:.1f} s (--test-images sets how many)")


def discriminator_debug_grid(real, fake, real_scores, fake_scores) -> np.ndarray:
    """Rows: real image, its score map, generated image, its score map (maps upscaled, grey)."""
    def score_map(scores: torch.Tensor, size: tuple[int, ...]) -> np.ndarray:
        scores = scores[:, :1].float()
        low, high = scores.min(), scores.max()
        scaled = (scores - low) / (high - low + 1e-8) * 2 - 1
        maps = torch.nn.functional.interpolate(scaled, size=size, mode="nearest").repeat(1, 3, 1, 1)
        return imageio.to_uint8(maps)

    size = tuple(real.shape[-2:])
    rows = [list(imageio.to_uint8(real)), list(score_map(real_scores, size)), list(imageio.to_uint8(fake)), list(score_map(fake_scores, size))]
    return imageio.grid(rows)


def command_line_string() -> str:
    return " ".join(shlex.quote(part) for part in ["spriteforge", *sys.argv[1:]])
