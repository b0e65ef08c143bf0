"""What every trainable model offers the engine, the evaluators and the translate command."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from spriteforge import distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.models.blocks import parameter_count, update_moving_average
from spriteforge.models.diffaugment import augment_discriminator
from spriteforge.models.evaluation import evaluate_l1, preview_grid, test_image_grid
from spriteforge.models.kinds import Imputer, Stylizer
from spriteforge.models.views import evaluation_cases
from spriteforge.options import Config, read_toml

STANDING_LATENTS, STANDING_BATCH, STANDING_SEED = 512, 64, 20240
"""Latents (and their batch size and seed) over which a moving-average generator's BatchNorm statistics are recomputed."""

DEFAULTS_FOLDER = Path(__file__).parent / "defaults"


def defaults_from_file(model: str) -> dict[str, Any]:
    """A model's default configuration from models/defaults/<model>.toml (flag names, checked like --config)."""
    return read_toml(DEFAULTS_FOLDER / f"{model}.toml")


class SpriteModel(nn.Module):
    """A model is a set of named networks, their optimisers and one `train_step`.

    Randomness inside `train_step` comes from the global torch RNG, which the engine reseeds from
    (seed, step) before every step, so resuming from a checkpoint continues bit-identically.
    """

    name: ClassVar[str]
    uses: ClassVar[frozenset[str]] = frozenset()
    """Model-specific flags this model reads (the common ones are always accepted)."""
    defaults: ClassVar[dict[str, Any]] = {}
    """Overrides of the option table's defaults for this model."""
    inference_networks: tuple[str, ...] = ("generator",)
    """Networks `translate` needs: the best checkpoint and exports hold only these (a model with a moving
    average adds "generator_ema" on the instance)."""
    imputes: ClassVar[bool] = False
    """Whether the model is an `Imputer` (models/kinds.py): derived from its methods, never set by hand."""
    evaluation_given_views: ClassVar[int] = 1
    """How many views training-time L1 evaluation gives the model per case (1 for single-source models)."""
    stylizes: ClassVar[bool] = False
    """Whether the model is a `Stylizer` (picture → pixel art: cyclegan, pix2pix-pairs; `stylize` uses them,
    `translate`, `sample` and `evaluate` refuse them): derived from its methods, never set by hand."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.imputes, cls.stylizes = issubclass(cls, Imputer), issubclass(cls, Stylizer)

    data_kind: ClassVar[str] = "characters"
    """The training data this model needs; the engine reads it (models never read data themselves):
    "characters" (views of characters, or one folder of images for samplers: `data.loading.load_data`),
    "unpaired-pictures" (--domain-a pictures and pixel art, `data.pictures.load_unpaired`) or
    "paired-pictures" (pictures and their pixel art by file name, `data.pictures.load_pairs`)."""

    @classmethod
    def check_data_config(cls, config: Config) -> None:
        """Refuse a configuration before any data is read (e.g. an image size the networks cannot take)."""
    style_size: ClassVar[int] = 0
    """Length of the style code `impute(..., style=)` accepts (munit, remic); 0 for models without a style."""

    refuses: ClassVar[dict[str, str]] = {}
    """Common flags this model does not take, with the reason (BigGAN derives its image size)."""
    truncates: ClassVar[bool] = False
    """True when `noise(…, truncation=t)` draws truncated-normal latents (BigGAN's truncation trick)."""

    @classmethod
    def data_size(cls, config: Config) -> int | tuple[int, int]:
        """The size the training images must have: the square --image-size, or (height, width)."""
        return config.image_size

    @classmethod
    def accepts_single_folder(cls) -> bool:
        """Whether one folder of images (one domain, no views) can train this model: the samplers can."""
        return not cls.imputes

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int | tuple[int, int]):
        super().__init__()
        self.config = config
        self.domain_count = domain_count
        self.channels = channels
        self.image_size = image_size
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lrs: dict[str, float] = {}
        self.grad_scalers: dict[str, torch.amp.GradScaler] = {}
        """--precision 16-mixed: one loss scaler per optimiser (the engine sets them up; `optimize` uses them)."""
        self._average_updates, self._standing_for = 0, -1  # see standing_statistics

    generator: nn.Module
    """Every model has a generator (what `translate`, `sample` and `stylize` draw with); most a discriminator."""
    discriminator: nn.Module
    generator_ema: nn.Module
    """With --ema-decay > 0 only (`keep_moving_average`)."""

    # -- networks -------------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {name: module for name, module in self.named_children()}

    def learn_from(self, teacher: "SpriteModel", path) -> None:
        """--distill-from: also learn what the trained `teacher` draws (models that use the option override this)."""
        raise SpriteForgeError(f"{path}: {self.name} does not learn from a teacher model (--distill-from)")

    def adapt_initial_weights(self, tensors: dict[str, torch.Tensor], source_config: dict) -> dict[str, torch.Tensor]:
        """--init-from: the saved tensors made to fit this model, when the saved model was configured
        differently (`source_config`) in a way the model knows how to carry over. As they are by default."""
        return tensors

    def describe(self) -> str:
        lines = []
        for name, network in self.networks().items():
            lines.append(f"{name}: {parameter_count(network):,} parameters")
            lines.append(str(network))
            lines.append("")
        return "\n".join(lines)

    def make_optimizer(self, name: str, network: nn.Module, lr: float) -> None:
        config = self.config
        # fused: one kernel per step for all parameters; on CPU 5× faster than the default for-each Adam on the
        # discriminators' 40M parameters (benchmarks/peak_share.py). A resumed run keeps the implementation its
        # checkpoint was made with (the flag travels in the optimiser's state), so resume stays bit-identical.
        self.optimizers[name] = torch.optim.Adam(network.parameters(), lr=lr, betas=(config.beta1, config.beta2), fused=True)
        self.base_lrs[name] = lr

    # -- moving average of the generator (sampling models: --ema-decay) ----------------------------------
    def keep_moving_average(self) -> None:
        """With --ema-decay > 0, keep `generator_ema`, an exponential moving average of `generator` that
        draws previews, FID samples and `sample` (it travels in checkpoints and exports)."""
        decay = self.config.get("ema_decay", 0.0)
        if not 0 <= decay < 1:
            raise SpriteForgeError(f"--ema-decay must be in [0, 1) (0 = off), got {decay}")
        if decay > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
            self.inference_networks = (*self.inference_networks, "generator_ema")

    def augment_discriminator_inputs(self) -> None:
        """With --diff-augment POLICY, every image `self.discriminator` sees in training is augmented (models/diffaugment.py)."""
        self.diff_augment_policy = augment_discriminator(self.discriminator, self.config.get("diff_augment", "none"))

    @property
    def drawing_generator(self) -> nn.Module:
        """The generator that draws pictures: the moving average when there is one, with BatchNorm
        statistics of its own (`standing_statistics`)."""
        average = getattr(self, "generator_ema", None)
        if average is None:
            return self.generator
        if self._standing_for != self._average_updates:  # set before the recompute, so its own draws do not recurse
            self.standing_statistics(average)
        return average

    def standing_statistics(self, average: nn.Module) -> None:
        """Recompute the BatchNorm statistics of the moving-average generator from its own outputs.

        The average copies the live generator's running statistics, which belong to other weights: in
        eval mode its layers then normalise by the wrong means and variances (fastgan at step 1,500 drew
        visibly different colours). BigGAN's answer, "standing statistics": run the average in training
        mode over STANDING_LATENTS fixed latents and keep the plain mean of the batch statistics. The
        latents come from a private seeded generator, so training's random stream and resume are
        untouched (the next averaging step copies the live statistics again). Skipped under torchrun,
        where only rank 0 draws previews and a synchronised BatchNorm would wait for the others."""
        self._standing_for = self._average_updates
        norms = [layer for layer in average.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats]
        if not norms or distributed.active():
            return
        momenta, mode = [layer.momentum for layer in norms], average.training
        device = next(average.parameters()).device
        generator = torch.Generator().manual_seed(STANDING_SEED)
        try:
            for layer in norms:
                layer.reset_running_stats()
                layer.momentum = None  # a cumulative average over the batches
            average.train()
            sampler: Any = self  # only samplers (models/kinds.Sampler) have a moving average, hence noise and sample
            with torch.no_grad():
                for _ in range(STANDING_LATENTS // STANDING_BATCH):
                    sampler.sample(sampler.noise(STANDING_BATCH, generator, device))
        finally:
            for layer, momentum in zip(norms, momenta):
                layer.momentum = momentum
            average.train(mode)

    def update_moving_average(self, updates: int) -> dict[str, float]:
        """After generator update number `updates` (from 0): one averaging step; the decay used, to log."""
        if not hasattr(self, "generator_ema"):
            return {}
        self._average_updates += 1
        return {"generator/ema-decay": update_moving_average(self.generator_ema, self.generator, self.config.ema_decay, updates)}

    def use_grad_scalers(self, device: torch.device | None) -> None:
        """Give every optimiser a GradScaler on `device` (fp16 training), or none (None)."""
        self.grad_scalers = {name: torch.amp.GradScaler(device.type) for name in self.optimizers} if device is not None else {}

    def optimize(self, name: str, loss: torch.Tensor) -> float:
        """One update of optimiser `name`: clear its gradients, back-propagate `loss`, step; returns the loss.

        Under torchrun the gradients are averaged over the ranks between backward and step (see distributed).

        With a GradScaler (fp16) the loss is scaled before backward and a step whose gradients overflowed is skipped."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler = self.grad_scalers.get(name)
        parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
        if scaler is None:
            loss.backward()
            distributed.average_gradients(parameters)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            distributed.average_gradients(parameters)  # scaled alike on every rank: the scales stay equal
            scaler.step(optimizer)
            scaler.update()
        return loss.item()

    # -- training ---------------------------------------------------------------------------------
    def train_step(self, batch: torch.Tensor, step: int, progress: float) -> dict[str, float]:
        """One update on a batch [B, domains, C, H, W] in [-1, 1]; returns named loss values."""
        raise NotImplementedError

    # -- inference --------------------------------------------------------------------------------
    @property
    def quantizes_palette(self) -> bool:
        """True when `impute` accepts `palette=` and draws only its colours (collagan --palette-quantization)."""
        return False

    def preview(self, train_views: torch.Tensor, test_views: torch.Tensor, device) -> np.ndarray:
        """The preview grid of a few train and test characters [N, D, C, H, W] (default: every view imputed)."""
        return preview_grid(self, train_views, test_views, device)

    def final_images(self, test_views: torch.Tensor, device) -> dict[str, np.ndarray]:
        """`test-images/` at the end of training: {file stem: RGBA image} (default: `test_images` per character)."""
        images = {}
        characters = tqdm(test_views, desc="test images", unit="character", file=sys.stderr, disable=None, leave=False)
        for index, character in enumerate(characters):
            for suffix, image in self.test_images(character, device).items():
                images[f"{index:04d}{suffix}"] = image
        return images

    def can_impute(self, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[B] bool: whether `impute` can draw view `target[i]` from `available[i]` (default: any view given)."""
        return available.any(dim=1)

    def evaluation_cases(self, count: int, domains: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (available, target) cases of training-time L1 evaluation, drawn once from `seed`."""
        return evaluation_cases(count, domains, self.evaluation_given_views, seed)

    def test_images(self, character: torch.Tensor, device) -> dict[str, np.ndarray]:
        """Pictures of one test character [D, C, H, W] for `test-images/`: {file-name suffix: RGBA image}.

        Default: a source × target grid (each row: every view drawn from that one view).
        """
        return {"": test_image_grid(self, character, device)}

    @property
    def evaluates_l1(self) -> bool:
        """Whether `--callback-evaluate-l1` has something to measure (default: imputers, drawn views vs real)."""
        return self.imputes

    def evaluation_l1(self, characters: torch.Tensor, device, seed: int = 0) -> float:
        """Training-time L1 of one split's characters [N, D, C, H, W] (default: views imputed per `evaluation_cases`)."""
        return evaluate_l1(self, characters, device, seed=seed)

    def on_evaluation(self, characters, device) -> dict[str, float]:
        """Called at every evaluation, in eval mode, before checkpoints are written.

        `characters(split)` gives a split's evaluation characters ("train", "validation", "test";
        [N, D, C, H, W], the same ones every time, maybe empty). A model may refresh state kept for
        inference here (the autoencoder fits its latent prior) and returns extra numbers to log,
        {"name/split": value}, written to TensorBoard and the evaluation history (default: none).
        """
        return {}

    def debug_discriminator(self, batch: torch.Tensor) -> list[torch.Tensor] | None:
        """Per-example maps of the discriminator's output for real and generated images, or None."""
        return None
