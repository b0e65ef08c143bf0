"""CollaGAN / MDIGAN: draw a missing view from any subset of the other views (§4.2–4.5 of the reference).

One generator takes all view slots at once (missing ones are zeros) plus the target one-hot, and is
trained with a forward L1 to the target and a collaborative cycle: each given view is re-drawn from
the others with the forward fake in the target slot. Fixed relative to the original:
* the input-dropout sampler draws each example's mask from the valid masks for its own target (the
  target is always dropped) and the curriculum never asks for more missing views than exist;
* palettes are rounded (not truncated) to uint8 and never contain the grey of empty slots;
* masked (dropped) views add nothing to the cycle SSIM (the original added the constant log 2);
* --lambda-regularization is the effective coefficient of Σw² (the original multiplied it by 0.01).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spriteforge import distributed
from spriteforge.data.augment import hsv_to_rgb, rgb_to_hsv
from spriteforge.errors import SpriteForgeError
from spriteforge.models import losses
from spriteforge.models.base import SpriteModel
from spriteforge.models.blocks import SmallMapConv2d, first_argmax, frozen, init_glorot, instance_norm, tiled_one_hot, total
from spriteforge.models.views import check_four_views, guess_views, one_view_missing, sample_kept_views
from spriteforge.options import BY_NAME, Config
from spriteforge.models.evaluation import missing_views_grid


@dataclass
class StepWork:
    """One training step's forward work, which the generator's and then the discriminator's update share."""

    batch: torch.Tensor  # [N, D, C, H, W], perturbed when --perturb-palette drew it
    target: torch.Tensor  # [N] the view each example draws
    kept: torch.Tensor  # [N, D] the views it is given
    real_target: torch.Tensor
    palette: tuple[torch.Tensor, torch.Tensor] | None
    temperature: float
    fake: torch.Tensor
    selection: torch.Tensor | None  # --target-prior select's selection loss
    judged: bool  # the discriminator is weighted (adversarial or domain term)
    cycles: bool  # the cycle is weighted (those, or its L1 or SSIM)
    l1_backward: torch.Tensor  # the cycle's L1 and SSIM to the views that were given (0 without the cycle)
    ssim: torch.Tensor
    cycled: torch.Tensor | None  # the cycle's re-drawn views, their targets and palettes (None without it)
    cycle_target: torch.Tensor | None
    cycle_palette: tuple[torch.Tensor, torch.Tensor] | None


def conv_block(cin: int, cout: int) -> list[nn.Module]:
    """3×3 conv with bias, InstanceNorm (eps 1e-3 like the original), ReLU."""
    return [nn.Conv2d(cin, cout, 3, padding=1), instance_norm(cout, eps=1e-3), nn.ReLU()]


class EncoderBranch(nn.Module):
    """One view slot's encoder: [2 convs] at each of 4 scales, 2×2 stride-2 downs, bottleneck 16f."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        widths = [width * 2**level for level in range(4)]
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.stages.append(nn.Sequential(*conv_block(cin, w), *conv_block(w, w)))
            self.downs.append(nn.Conv2d(w, 2 * w, 2, stride=2, bias=False))
            cin = 2 * w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for stage, down in zip(self.stages, self.downs):
            x = stage(x)
            skips.append(x)
            x = down(x)
        return x, skips


# --target-prior select: the candidates for each output pixel are the guess, an empty pixel, and every
# view slot as it is and mirrored; the young model's logits favour the guess by this margin.
GUESS_LOGIT = 6.0


def selection_candidates(domains: int) -> int:
    return 2 + 2 * domains


class AffluentGenerator(nn.Module):
    """CollaGAN's multi-branch U-Net: one encoder per view slot, one decoder with every branch's skips.

    `output`: "image" (tanh, the paper), "residual" (an unbounded correction to the trivial guess, zero
    at first) or "select" (per-pixel logits over the `selection_candidates`, the guess's at first).
    """

    def __init__(self, channels: int, domains: int, capacity: int, output: str = "image"):
        super().__init__()
        width = 16 * capacity
        self.domains = domains
        self.output = output
        self.branches = nn.ModuleList(EncoderBranch(channels + domains, width) for _ in range(domains))
        bottom = 16 * width
        self.bottleneck = nn.Sequential(*conv_block(domains * bottom, bottom), *conv_block(bottom, bottom))
        self.ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        cin = bottom
        for level in reversed(range(4)):
            w = width * 2**level
            self.ups.append(nn.ConvTranspose2d(cin, w, 2, stride=2, bias=False))
            self.stages.append(nn.Sequential(*conv_block((domains + 1) * w, w), *conv_block(w, w)))
            cin = w
        select = output == "select"
        self.to_image = nn.Conv2d(width, selection_candidates(domains) if select else channels, 1, bias=select)
        init_glorot(self)
        if output != "image":  # the young model draws the trivial guess: no correction, or the guess picked
            nn.init.zeros_(self.to_image.weight)
        if select:
            assert self.to_image.bias is not None  # bias=select
            with torch.no_grad():
                self.to_image.bias[0] = GUESS_LOGIT

    def forward(self, views: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """views [B, D, C, H, W] with missing slots zeroed, target [B] → image [B, C, H, W] in [-1, 1]
        (or the raw head: a residual generator's correction, a selecting one's candidate logits)."""
        condition = tiled_one_hot(target, self.domains, views.shape[-2:])
        bottoms, skips = [], []
        for slot, branch in enumerate(self.branches):
            bottom, branch_skips = branch(torch.cat([views[:, slot], condition], dim=1))
            bottoms.append(bottom)
            skips.append(branch_skips)
        x = self.bottleneck(torch.cat(bottoms, dim=1))
        for index, (up, stage) in enumerate(zip(self.ups, self.stages)):
            level = 3 - index
            x = stage(torch.cat([up(x), *(branch_skips[level] for branch_skips in skips)], dim=1))
        x = self.to_image(x)
        return torch.tanh(x) if self.output == "image" else x

    def kernels(self):
        return [m.weight for m in self.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


class CollaDiscriminator(nn.Module):
    """Image-only: 4×4 stride-2 convs (64…2048, LeakyReLU 0.3, no norm) to 1², dropout, LSGAN + domain heads."""

    def __init__(self, channels: int, domains: int, image_size: int):
        super().__init__()
        layers, cin, size = [], channels, image_size
        for level in range(6):
            if size < 2:
                break
            layers += [SmallMapConv2d(cin, 64 * 2**level, 4, 2, 1, bias=False), nn.LeakyReLU(0.3)]
            cin, size = 64 * 2**level, size // 2
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.5)
        self.patch = SmallMapConv2d(cin, 1, 3, padding=1)
        self.classes = SmallMapConv2d(cin, domains, 1)
        init_glorot(self)

    def forward(self, image: torch.Tensor, sizes: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and domain logits. `sizes` splits a concatenation of batches: each part then draws its own
        dropout mask, as it would in a pass of its own (so one pass gives the same masks as one per part,
        and under torchrun each rank's share of the global masks)."""
        features = self.body(image)
        if sizes is None:
            features = self.dropout(features)
        else:
            features = torch.cat([self.dropout(part) for part in features.split(sizes)])
        return self.patch(features), self.classes(features).mean((2, 3))


def select_pixels(logits: torch.Tensor, guess: torch.Tensor, views: torch.Tensor, kept: torch.Tensor, hard: bool,
                  truth: torch.Tensor | None = None):
    """Each pixel from its candidates (guess, empty, each kept view as is, each mirrored) by logits [B, K, H, W]:
    a softmax mix (`hard` False, for training) or the most likely candidate alone.

    With `truth` also returns the selection loss: −log P(a candidate equal to the true pixel), averaged
    over the pixels some candidate matches. Unlike L1 on the soft mix, which pulls every pixel back to
    the majority candidate, it gives the pixels the guess gets wrong the full gradient.
    """
    empty = torch.full_like(guess, -1.0)  # transparent (RGBA) or black (RGB)
    candidates = torch.cat([guess[:, None], empty[:, None], views, views.flip(-1)], dim=1)  # [B, K, C, H, W]
    allowed = torch.cat([torch.ones_like(kept[:, :2]), kept, kept], dim=1)[:, :, None, None]
    logits = logits.float().masked_fill(~allowed, float("-inf"))  # float32 softmaxes under --precision 16-mixed/bf16
    if hard:  # the chosen candidate itself: bit for bit what a one-hot mix of them gives, without the mix
        choice = first_argmax(logits, 1)[:, None, None].expand(-1, 1, *candidates.shape[2:])
        image = candidates.gather(1, choice).squeeze(1)
    else:
        image = (logits.softmax(1)[:, :, None] * candidates).sum(1)
    if truth is None:
        return image
    matches = (candidates == truth[:, None]).all(2) & allowed  # [B, K, H, W]
    matchable = matches.any(1)
    matches[:, 0] |= ~matchable  # a finite stand-in where nothing matches; those pixels weigh 0
    log_p = logits.log_softmax(1).masked_fill(~matches, float("-inf")).logsumexp(1)
    loss = -(log_p * matchable).sum() / distributed.count_per_rank(matchable.sum()).clamp_min(1)
    return image, loss


def temperature_at(config, progress: float) -> float:
    """The palette temperature at progress t for --annealing (reference §4.4), floored at 1e-8."""
    t0, kind = config.temperature, config.annealing
    if kind == "none":
        value = t0
    elif kind == "linear":
        value = t0 * (1 - progress)
    else:
        cycles = max(4, (config.steps or 0) // 4000)
        wave = 0.85 * t0 + 0.15 * t0 * math.cos(2 * math.pi * cycles * progress)
        value = (1 - progress) ** (4 if kind == "expcosine" else 1) * wave
    return max(value, 1e-8)


def perturb_hsv(images: torch.Tensor) -> torch.Tensor:
    """One random HSV shift (hue ±0.4, saturation ±0.1, value ±0.15) for all views of a batch, [-1, 1]."""
    shift = (torch.rand(3) * 2 - 1) * torch.tensor([0.4, 0.1, 0.15])
    rgb = (images[:, :, :3] + 1) / 2
    hue, saturation, value = rgb_to_hsv(rgb)
    shifted = hsv_to_rgb(torch.remainder(hue + shift[0], 1.0), (saturation + shift[1]).clamp(0, 1), (value + shift[2]).clamp(0, 1))
    result = images.clone()
    result[:, :, :3] = shifted * 2 - 1
    if images.shape[2] == 4:
        transparent = images[:, :, 3:4] <= -1
        result[:, :, :3] = torch.where(transparent, torch.full_like(shifted, -1.0), result[:, :, :3])
    return result


class CollaGAN(SpriteModel):
    """MDIGAN (SBGames'24): CollaGAN with input dropout and the forward cycled-source replacer.

    Training-time L1 (and so model selection) gives the other three views, as the original's did
    (random target, 3 poses given): this keeps checkpoints comparable with the published ones, and
    the 1-missing case is the one every input-dropout strategy trains on.
    """

    name = "collagan"
    evaluation_given_views = 3
    uses = frozenset({
        "capacity", "lambda-adversarial", "lambda-l1", "lambda-l1-backward", "lambda-ssim", "lambda-domain",
        "lambda-palette", "lambda-histogram", "lambda-regularization", "input-dropout", "cycled-source-replacer",
        "palette-quantization", "annealing", "temperature", "perturb-palette", "target-prior", "lambda-selection",
    })
    # The paper's MDIGAN settings (capacity 4: pass --capacity 1 to train on a CPU in hours, not days).
    defaults = {
        "capacity": 4, "lambda-l1": 100.0, "lambda-l1-backward": 10.0, "lambda-ssim": 10.0, "lambda-domain": 10.0,
        "lambda-palette": 0.0, "lambda-histogram": 0.0, "lambda-regularization": 0.0,
        "input-dropout": "conservative", "cycled-source-replacer": "forward", "target-prior": "none",
    }

    generator: AffluentGenerator
    discriminator: CollaDiscriminator

    def __init__(self, config: Config, domain_count: int, channels: int, image_size: int):
        super().__init__(config, domain_count, channels, image_size)
        if image_size % 16:
            raise SpriteForgeError("collagan needs --image-size divisible by 16 (its encoders halve it 4 times)")
        if not 0 <= config.perturb_palette <= 1:
            raise SpriteForgeError(f"--perturb-palette is a probability, got {config.perturb_palette}")
        if config.temperature <= 0:
            raise SpriteForgeError(f"--temperature must be positive, got {config.temperature}")
        if config.lambda_palette > 0 and not config.palette_quantization:
            raise SpriteForgeError("--lambda-palette needs --palette-quantization (it measures palette use)")
        if config.target_prior != "none":
            check_four_views(domain_count, f"--target-prior {config.target_prior}")
        if config.target_prior != "select" and config.lambda_selection != BY_NAME["lambda-selection"].default:
            raise SpriteForgeError("--lambda-selection weighs the pixel selection of --target-prior select; add that or remove it")
        output = config.target_prior if config.target_prior in ("residual", "select") else "image"
        self.generator = AffluentGenerator(channels, domain_count, config.capacity, output)
        self.discriminator = CollaDiscriminator(channels, domain_count, image_size)
        self.make_optimizer("generator", self.generator, config.lr)
        self.make_optimizer("discriminator", self.discriminator, config.lr * config.ttur)

    # -- generation ------------------------------------------------------------------------------
    def generate(self, views: torch.Tensor, kept: torch.Tensor, target: torch.Tensor, palette: tuple[torch.Tensor, torch.Tensor] | None = None,
                 temperature: float = 0.0, hard: bool = False, truth: torch.Tensor | None = None):
        """G on views with every slot not `kept` zeroed, then (if given) the palette quantisation.

        With --target-prior baseline the target's slot, empty otherwise, holds the trivial guess of the
        target from the kept views (`models/views.py`): a pixel-aligned starting point the U-Net can pass
        through its skips. With `residual` the image is that guess plus the generator's correction
        (zero at first), so training starts from the baselines' score instead of from mid-grey; the sum
        is clamped to [-1, 1] only at inference (`hard`), as a clamp would stop the gradient of a
        pixel pushed past the edge. With `select` each pixel is a softmax mix of its candidates in
        training and the most likely candidate at inference, so a drawn pixel is always one of the
        given views' pixels (mirrored or not), the guess's, or empty; given the `truth`, it returns
        (image, selection loss).
        """
        inputs = views * kept[:, :, None, None, None].to(views.dtype)
        guess = None
        if self.config.target_prior != "none":
            rows = torch.arange(len(views), device=views.device)
            guess = guess_views(inputs, kept, target, empty_ok=True)
            inputs = inputs.index_put((rows, target), guess)
        image = self.generator(inputs, target)
        if self.config.target_prior == "residual":
            image = guess + image
            if hard:
                image = image.clamp(-1, 1)
        elif self.config.target_prior == "select":
            assert guess is not None  # any prior but "none" draws the guess
            image = select_pixels(image, guess, inputs, kept, hard, truth)
            if truth is not None:
                image, selection = image
        if palette is not None:
            image = losses.quantize(image, *palette, temperature=temperature, hard=hard)
        return (image, selection) if truth is not None and self.config.target_prior == "select" else image

    @property
    def quantizes_palette(self) -> bool:
        return bool(self.config.palette_quantization)

    @torch.no_grad()
    def impute(self, views, available, target, palette: torch.Tensor | None = None):
        """Draw the targets; with --palette-quantization every pixel is a colour of the given views, or of
        `palette` ([K, C] in [-1, 1], e.g. from `translate --palette-from`) when one is forced."""
        if palette is not None:
            colours = palette.to(views)
            forced = (colours[None].expand(len(views), -1, -1), torch.ones(len(views), len(colours), dtype=torch.bool, device=views.device))
            return self.generate(views, available, target, forced, hard=True)
        palettes = losses.palettes_of(views, available) if self.config.palette_quantization else None
        return self.generate(views, available, target, palettes, hard=True)

    # -- training ------------------------------------------------------------------------------------
    def cycle_inputs(self, batch, kept, target, fake):
        """For each example and each view j ≠ target: the slots and target for re-drawing j.

        `forward`: the forward fake fills the target slot only; `dropout`: every slot that was empty in
        the forward input. Slot j is then emptied. Returns (views, kept, target, source index, j).
        """
        count, domains = kept.shape
        rows = torch.arange(count, device=batch.device)
        receives = torch.zeros_like(kept)
        receives[rows, target] = True
        if self.config.cycled_source_replacer == "dropout":
            receives = ~kept
        filled = torch.where(receives[:, :, None, None, None], fake.unsqueeze(1).expand_as(batch), batch)
        present = kept | receives
        others = torch.stack([torch.tensor([d for d in range(domains) if d != t]) for t in target.tolist()]).to(batch.device)
        source = rows.repeat_interleave(domains - 1)
        view = others.flatten()
        cycle_kept = present[source].clone()
        cycle_kept[torch.arange(len(source), device=batch.device), view] = False
        return filled[source], cycle_kept, view, source

    def train_step(self, batch, step, progress):
        """Draw the step's inputs, the forward fake and its cycle, then update G, then D on the same images."""
        batch, target, kept = self.draw_inputs(batch, progress)
        work = self.forward_and_cycle(batch, target, kept, progress)
        result = self.generator_step(work)
        if work.judged:
            result.update(self.discriminator_step(work))
        return result

    def draw_inputs(self, batch, progress):
        """The random part of a step, in this order: the palette perturbation, each example's target view,
        the views it is given (input dropout). Returns (batch, target, kept)."""
        config = self.config
        count, domains = batch.shape[:2]
        if config.perturb_palette > 0 and torch.rand(()) < config.perturb_palette:
            batch = perturb_hsv(batch)
        target = distributed.randint(0, domains, count, device=batch.device)
        kept = sample_kept_views(target, domains, config.input_dropout, progress)
        return batch, target, kept

    def forward_and_cycle(self, batch, target, kept, progress) -> StepWork:
        """The forward fake of each target and, while a term weighs it, its cycle (`cycle`)."""
        config = self.config
        rows = torch.arange(batch.shape[0], device=batch.device)
        real_target = batch[rows, target]
        temperature = temperature_at(config, progress)
        palette: tuple[torch.Tensor, torch.Tensor] | None = None
        if config.palette_quantization:  # the character's own colours, target included (as the original)
            palette = losses.palettes_of(batch, torch.ones_like(kept))
        selects = config.target_prior == "select"
        fake = self.generate(batch, kept, target, palette, temperature, truth=real_target if selects else None)
        selection = None
        if selects:
            fake, selection = fake
        # Work whose every loss weight is 0 is skipped (same gradients, far fewer FLOPs): the
        # discriminator, when neither the adversarial nor the domain term is weighted, and then the
        # cycle too, when neither of its own terms is.
        judged = config.lambda_adversarial > 0 or config.lambda_domain > 0
        cycles = judged or config.lambda_l1_backward > 0 or config.lambda_ssim > 0
        if not cycles:
            zero = fake.new_zeros(())
            return StepWork(batch, target, kept, real_target, palette, temperature, fake, selection, judged, cycles, zero, zero, None, None, None)
        return StepWork(batch, target, kept, real_target, palette, temperature, fake, selection, judged, cycles,
                        *self.cycle(batch, target, kept, fake, palette, temperature))

    def cycle(self, batch, target, kept, fake, palette, temperature):
        """Re-draw every view but the target with the forward fake in place (`cycle_inputs`). Returns the
        cycle's L1 and SSIM to the views that were given, the re-drawn views, their targets and palettes."""
        cycle_views, cycle_kept, cycle_target, source = self.cycle_inputs(batch, kept, target, fake)
        cycle_palette = (palette[0][source], palette[1][source]) if palette is not None else None
        cycled = self.generate(cycle_views, cycle_kept, cycle_target, cycle_palette, temperature)
        real_cycled = batch[source, cycle_target]
        cycled_was_given = kept[source, cycle_target]
        given_count = distributed.count_per_rank(cycled_was_given.sum()).clamp_min(1)
        cycled_l1 = (cycled - real_cycled).abs().flatten(1).mean(1)
        l1_backward = (cycled_l1 * cycled_was_given).sum() / given_count
        ssim = (losses.ssim_loss(cycled, real_cycled) * cycled_was_given).sum() / given_count
        return l1_backward, ssim, cycled, cycle_target, cycle_palette

    def generator_step(self, work: StepWork) -> dict[str, float]:
        """Generator: fool D, be classified as the asked view, match the target, close the cycle."""
        config, n = self.config, work.batch.shape[1]
        g_adversarial = g_domain = work.fake.new_zeros(())
        if work.judged:
            assert work.cycled is not None and work.cycle_target is not None  # a judged step always cycles
            with frozen(self.discriminator):
                (fake_scores, fake_logits), (cycled_scores, cycled_logits) = self.judge(work.fake, work.cycled)
            g_adversarial = (((fake_scores - 1) ** 2).mean() + (n - 1) * ((cycled_scores - 1) ** 2).mean()) / n
            g_domain = (F.cross_entropy(fake_logits, work.target) + (n - 1) * F.cross_entropy(cycled_logits, work.cycle_target)) / n
        g_l1 = (work.fake - work.real_target).abs().mean()
        g_loss = (
            config.lambda_adversarial * g_adversarial + config.lambda_l1 * g_l1
            + config.lambda_l1_backward * work.l1_backward + config.lambda_ssim * work.ssim + config.lambda_domain * g_domain
        )
        if work.selection is not None:
            g_loss = g_loss + config.lambda_selection * work.selection
        result = {
            "generator/adversarial": g_adversarial.item(), "generator/domain": g_domain.item(), "generator/l1": g_l1.item(),
            "generator/l1-backward": work.l1_backward.item(), "generator/ssim-backward": work.ssim.item(),
        }
        if work.selection is not None:
            result["generator/selection"] = work.selection.item()
        g_loss = self.add_optional_generator_losses(work, g_loss, result)
        self.optimize("generator", g_loss)
        result["generator/total"] = g_loss.item()
        return result

    def add_optional_generator_losses(self, work: StepWork, g_loss, result: dict[str, float]):
        """g_loss plus the palette coverage, histogram and kernel regularisation terms that are weighted
        (each recorded in `result`), added in that order."""
        config = self.config
        if work.palette is not None:
            result["generator/temperature"] = work.temperature
            if config.lambda_palette > 0:
                coverage = losses.palette_coverage_loss(work.fake, *work.palette, work.temperature)
                if work.cycles:
                    assert work.cycle_palette is not None  # the cycle's share of `palette`
                    coverage = coverage + losses.palette_coverage_loss(work.cycled, *work.cycle_palette, work.temperature)
                g_loss = g_loss + config.lambda_palette * coverage
                result["generator/palette"] = coverage.item()
        if config.lambda_histogram > 0:
            histogram = losses.histogram_loss(work.fake, work.real_target)
            g_loss = g_loss + config.lambda_histogram * histogram
            result["generator/histogram"] = histogram.item()
        if config.lambda_regularization > 0:
            regularization = total([(kernel**2).sum() for kernel in self.generator.kernels()])
            g_loss = g_loss + config.lambda_regularization * regularization
            result["generator/regularization"] = regularization.item()
        return g_loss

    def discriminator_step(self, work: StepWork) -> dict[str, float]:
        """Discriminator, on the same generated images: real target and views vs fake and cycled."""
        batch = work.batch
        count, n = batch.shape[:2]
        assert work.cycled is not None  # a judged step always cycles
        (real_scores, _), (fake_scores, _), (source_scores, source_logits), (cycled_scores, _) = self.judge(
            work.real_target, work.fake.detach(), batch.flatten(0, 1), work.cycled.detach())
        d_adversarial = (
            ((real_scores - 1) ** 2).mean() + (fake_scores**2).mean()
            + n * (((source_scores - 1) ** 2).mean() + (cycled_scores**2).mean())
        ) / (n + 1)
        d_domain = F.cross_entropy(source_logits, torch.arange(n, device=batch.device).repeat(count))
        d_loss = d_adversarial + self.config.lambda_domain * d_domain
        self.optimize("discriminator", d_loss)
        return {"discriminator/adversarial": d_adversarial.item(), "discriminator/domain": d_domain.item(),
                "discriminator/total": d_loss.item()}

    def judge(self, *images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The discriminator's (scores, logits) for each image batch, from one pass over them all: D has no
        batch statistics, so this is the same function as one pass each, and its large late layers read
        their weights and build their gradients once instead of once per batch."""
        sizes = [len(part) for part in images]
        scores, logits = self.discriminator(torch.cat(images), sizes)
        return list(zip(scores.split(sizes), logits.split(sizes)))

    @torch.no_grad()
    def debug_discriminator(self, batch):
        """LSGAN scores of real and generated targets; example i draws view i mod D from the others."""
        rows, target, available = one_view_missing(batch)
        real, fake = batch[rows, target], self.impute(batch, available, target)
        return [real, fake, self.discriminator(real)[0], self.discriminator(fake)[0]]

    # -- pictures -----------------------------------------------------------------------------------
    def test_images(self, character, device):
        """Grids for 1, 2 and 3 missing views: per row the given views, the generated ones, the truth."""
        domains = character.shape[0]
        return {f"_missing-{missing}": missing_views_grid(self, character, device, missing)
                for missing in range(1, domains)}
