"""Every training option in one table: its flag, type, default and help (one source of truth).

Flag names follow the original system's flag table. Options marked `common` apply to every model;
the others are accepted only by the models that list them in `Model.uses` (a flag a model does not use
is rejected for it with a clear message, never silently ignored). Models may override defaults.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Option:
    name: str
    kind: Any  # int, float, str, bool (a flag), list (of str)
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    common: bool = False
    low: float | None = None
    """The smallest legal value (None: no bound); `above` makes it exclusive (lr > 0)."""
    high: float | None = None
    """The largest legal value; `below` makes it exclusive (beta1 < 1)."""
    above: bool = False
    below: bool = False

    @property
    def key(self) -> str:
        return option_key(self.name)


def option_key(name: str) -> str:
    """A flag's name as TOML files, model defaults and grids write it ('lambda-gp') → its Config key
    ('lambda_gp'); a key is returned as it is."""
    return name.replace("-", "_")


def option_name(key: str) -> str:
    """A Config key ('lambda_gp') → the flag's name ('lambda-gp'), as --help, TOML files and messages write it."""
    return key.replace("_", "-")


MAX_IMAGE_SIDE = 1024
"""The largest image side any model is built for (a crafted checkpoint may not declare more)."""
LR_DECAYS = ("none", "constant-then-linear", "exponential", "step", "per-epoch")
OPTIONS: list[Option] = [
    # data
    Option("dataset", list, [], "dataset name (tiny, rm2k, rmxp, rmvx, misc, all, synthetic) or folder; repeatable", common=True),
    Option("tiny", bool, False, "use the TinyHero dataset", common=True),
    Option("rm2k", bool, False, "use the RPG Maker 2000 dataset", common=True),
    Option("rmxp", bool, False, "use the RPG Maker XP dataset", common=True),
    Option("rmvx", bool, False, "use the RPG Maker VX Ace dataset", common=True),
    Option("misc", bool, False, "use the miscellaneous dataset", common=True),
    Option("tiny-validation", bool, False, "test on TinyHero's test partition only", common=True),
    Option("rm2k-validation", bool, False, "test on RPG Maker 2000's test partition only", common=True),
    Option("rmxp-validation", bool, False, "test on RPG Maker XP's test partition only", common=True),
    Option("rmvx-validation", bool, False, "test on RPG Maker VX Ace's test partition only", common=True),
    Option("data-dir", str, "", "where extracted datasets live (default: the user cache, or $SPRITEFORGE_DATA_DIR)", common=True),
    Option("validation-fraction", float, 0.1, "share of each train partition (its last characters) kept for model selection", common=True, low=0, high=1, below=True),
    Option("domains", list, list(VIEWS), "names of the domains, matching the folders <k>-<name>", common=True),
    Option("image-size", int, 64, "width and height of the images (files of another size are an error)", common=True, low=4, high=MAX_IMAGE_SIDE),
    Option("output-channels", int, 4, "4 = RGBA; 3 = RGB with transparent pixels made white", choices=None, common=True),
    Option("input-channels", int, 4, "channels of the input images (must equal --output-channels)", common=True),
    Option("no-aug", bool, False, "disable all augmentation", common=True),
    Option("no-hue", bool, False, "disable hue rotation", common=True),
    Option("no-tran", bool, False, "disable translation", common=True),
    # optimisation
    Option("lr", float, 1e-4, "initial learning rate", common=True, low=0, above=True),
    Option("lr-decay", str, "constant-then-linear", "learning-rate schedule", choices=LR_DECAYS, common=True),
    Option("lr-epoch-decay", float, 0.995, "with --lr-decay per-epoch: the learning rate is multiplied by this after every epoch", common=True, low=0, high=1, above=True),
    Option("beta1", float, 0.5, "Adam beta1", common=True, low=0, high=1, below=True),
    Option("beta2", float, 0.999, "Adam beta2", common=True, low=0, high=1, below=True),
    Option("ttur", float, 1.0, "discriminator learning rate = lr x ttur", common=True, low=0, above=True),
    Option("batch", int, 4, "characters per batch", common=True, low=0, above=True),
    Option("steps", int, None, "training steps (default 10000; give steps or epochs, not both)", common=True, low=0, above=True),
    Option("epochs", int, None, "epochs (converted to steps through the train size)", common=True, low=0, above=True),
    Option("seed", int, 42, "random seed (training is deterministic on CPU for a given seed)", common=True),
    Option("init-from", str, "", "start a new run from the networks of this model of the same kind and size (a run folder, "
           "checkpoint or bundled name such as 'default'); networks it lacks and the optimisers start afresh", common=True),
    # monitoring and output
    Option("evaluate-steps", int, 1000, "interval of previews, evaluations and checkpoints", common=True, low=0, above=True),
    Option("checkpoint-steps", int, None, "interval of 'latest' checkpoints (default: --evaluate-steps)", common=True, low=0, above=True),
    Option("keep-checkpoints", int, 2, "checkpoints kept: the latest and N-1 previous ones (resume falls back to them if the latest is damaged)", common=True, low=1, high=1000),
    Option("test-images", int, 100, "test characters drawn into test-images/ at the end of training (0: none)", common=True, low=0, high=100000),
    Option("callback-evaluate-l1", bool, False, "evaluate L1 on validation/test every --evaluate-steps; keep the best", common=True),
    Option("callback-evaluate-fid", bool, False, "log FID and KID of validation/test drawings every --evaluate-steps (needs the FID weights)", common=True),
    Option("callback-debug-discriminator", bool, False, "save images of the discriminator's outputs", common=True),
    Option("callback-early-stop", bool, False, "stop after --patience evaluations without validation improvement", common=True),
    Option("patience", int, 10, "evaluations without improvement before early stopping", common=True, low=1),
    Option("save-model", bool, False, "export the generator (safetensors + config) to models/ at the end", common=True),
    Option("verbose", bool, False, "print the model description and losses at each evaluation", common=True),
    Option("log-folder", str, "output", "root folder of run folders", common=True),
    Option("model-name", str, "", "run-folder level 1 (default: the model)", common=True),
    Option("experiment", str, "playground", "run-folder level 2", common=True),
    Option("run-string", str, "", "run-folder level 3 (default: a timestamp)", common=True),
    Option("device", str, "auto", "where to run: auto (a CUDA GPU, else Apple's MPS, else the CPU), cpu, cuda, cuda:N or mps", common=True),
    Option("memory-fraction", float, 1.0, "cap this process's use of the GPU's memory at this share (1 = no cap)", common=True, low=0, high=1, above=True),
    Option("precision", str, "32", "32 (float32), bf16 (autocast to bfloat16) or 16-mixed (autocast to float16 with gradient scaling)",
           choices=("32", "bf16", "16-mixed"), common=True),
    Option("profile", int, 0, "profile this many steps with torch.profiler into the run folder", common=True, low=0),
    Option("pretrain-epochs", int, 0, "not used by any model (kept from the original's table)", low=0),
    # model architecture
    Option("generator", str, "", "generator type (StarGAN: resnet)"),
    Option("capacity", int, 1, "multiplier of the generator's widths", low=1, high=64),
    Option("conditional-discriminator", bool, False, "condition the discriminator on the source image"),
    Option("source-domain-aware-generator", bool, False, "give the generator the source domain too"),
    Option("discriminator-scales", int, 3, "scales of the multi-scale discriminator (MUNIT, ReMIC)", low=1, high=8),
    Option("sampler", str, "multi-target", "source/target sampler of StarGAN", choices=("multi-target", "single-target")),
    Option("d-steps", int, 1, "update the generator once every d-steps discriminator updates", low=1),
    Option("adv", str, "lsgan", "adversarial loss", choices=("lsgan", "r3gan")),
    # sampling models (new characters)
    Option("latent", int, 84, "size of the latent vector z (DCGAN family)", low=1, high=4096),
    Option("feature-maps", int, 48, "base width of the generator and discriminator (DCGAN family; MUNIT, ReMIC: 64 = the reference; CycleGAN: ngf = ndf, 64)", low=1, high=4096),
    Option("loss", str, "bce", "adversarial loss of DCGAN: bce (soft labels) or wasserstein (weight clipping)", choices=("bce", "wasserstein")),
    Option("label-smoothing", float, 0.1, "soft labels: real targets ~ U[1-s, 1], fake ~ U[0, s] (0 = hard labels)", low=0, high=1, below=True),
    Option("d-dropout", float, 0.2, "dropout in the discriminator after its first and third blocks", low=0, high=1, below=True),
    Option("source", str, "front", "the view a pairwise model (Pix2Pix) draws from (a --domains name; 'all': one run per pair)"),
    Option("target", str, "right", "the view a pairwise model (Pix2Pix) draws (a --domains name; 'all': one run per pair)"),
    Option("embedding", int, 10, "size of the trainable view embedding concatenated to z (cdcgan; biggan: the shared class embedding)", low=1, high=4096),
    Option("noise-std", float, 0.0, "autoencoder: σ of the Gaussian noise added to its input in training ([-1, 1] units, clamped; the target stays clean); 0 = plain autoencoder", low=0),
    Option("encoder-dropout", float, 0.2, "autoencoder: dropout in the encoder after its first and third blocks", low=0, high=1, below=True),
    Option("critic-norm", str, "layer", "normalisation in the WGAN-GP critic (never BatchNorm)", choices=("none", "layer", "instance")),
    Option("base-width", int, 4, "BigGAN: width of the first feature map; image width = base-width x 2^upsample-layers", low=1, high=64),
    Option("base-height", int, 4, "BigGAN: height of the first feature map; image height = base-height x 2^upsample-layers", low=1, high=64),
    Option("upsample-layers", int, 4, "BigGAN: number of x2 up-sampling stages of G (and down-sampling stages of D), any number >= 1", low=1),
    Option("lambda-orthogonal", float, 1e-4, "weight of BigGAN's orthogonal regularisation of G's weights (0 = off)", low=0),
    Option("ema-decay", float, 0.9999, "decay of the moving average of G's weights that draws previews and samples (0 = off)", low=0, high=1, below=True),
    Option("diff-augment", str, "none", "sampling models: differentiable augmentation of every image the discriminator sees, real and fake "
           "(none, or a comma-separated list of color, translation, cutout; small datasets: color,translation,cutout)"),
    Option("truncation", float, 0.5, "truncated-normal z (|z| <= t) for previews, FID samples and `sample` (0 = off)"),
    # losses
    Option("lambda-adversarial", float, 1.0, "weight of the adversarial term", low=0),
    Option("lambda-l1", float, 100.0, "weight of the forward L1 to the target (MUNIT: within-view reconstruction; ReMIC: image consistency)", low=0),
    Option("lambda-l1-backward", float, 10.0, "weight of the backward (cycled) L1 (CollaGAN)", low=0),
    Option("lambda-gp", float, 10.0, "weight of the gradient penalty", low=0),
    Option("lambda-domain", float, 10.0, "weight of the domain classification terms", low=0),
    Option("lambda-reconstruction", float, 10.0, "weight of the cycle reconstruction L1 (StarGAN, CycleGAN)", low=0),
    Option("lambda-ssim", float, 10.0, "weight of the cycled SSIM term (CollaGAN)", low=0),
    Option("lambda-tv", float, 0.0, "weight of the total-variation term (StarGAN)", low=0),
    Option("lambda-latent-reconstruction", float, 1.0, "weight of the latent reconstruction (MUNIT, ReMIC)", low=0),
    Option("lambda-cyclic-reconstruction", float, 0.0, "weight of the cyclic reconstruction (MUNIT: back to the source view; ReMIC: every view, hidden ones included, from sampled styles)", low=0),
    Option("lambda-palette", float, 0.0, "weight of the palette coverage term", low=0),
    Option("lambda-histogram", float, 0.0, "weight of the histogram term (CollaGAN)", low=0),
    Option("lambda-selection", float, 1.0, "weight of the pixel-selection cross-entropy (CollaGAN --target-prior select)", low=0),
    Option("lambda-regularization", float, 0.0, "effective L2 weight-decay coefficient on generator kernels", low=0),
    Option("lambda-kl", float, 0.01, "weight of the KL term (ReMIC)", low=0),
    Option("lambda-l1-given", float, 0.0, "weight of the L1 on the given views' reconstructions (yamata; inference copies given views)", low=0),
    # imputation specifics
    Option("input-dropout", str, "none", "input dropout strategy (CollaGAN, ReMIC)",
           choices=("none", "original", "aggressive", "balanced", "conservative", "curriculum")),
    Option("target-prior", str, "none", "what collagan's empty target slot receives: nothing (the paper) or the trivial baseline's guess (the other side view mirrored, else a given view copied); residual: that guess, and the output is the guess plus a learnt correction; select: that guess, and each output pixel is picked from the guess, an empty pixel, or a given view as it is or mirrored (pixel-exact)", choices=("none", "baseline", "residual", "select")),
    Option("cycled-source-replacer", str, "forward", "which slots receive the forward fake in the cycle (CollaGAN)", choices=("forward", "dropout")),
    Option("shuffled-batches", bool, False, "discriminate real and fake shuffled together (CollaGAN)"),
    Option("palette-quantization", bool, False, "quantise outputs to the characters' palettes (CollaGAN)"),
    Option("annealing", str, "linear", "temperature annealing for palette quantisation", choices=("none", "linear", "cosine", "expcosine")),
    Option("temperature", float, 0.1, "initial temperature of palette quantisation", low=0),
    Option("perturb-palette", float, 0.0, "probability of a random HSV shift of a character per step", low=0, high=1),
    Option("candidate-shifts", int, 0, "turnaround: also offer each given view (as is and mirrored) moved by up to this many "
           "pixels left or right as a pixel's source (0 = same place only)", low=0, high=4),
    Option("distill-from", str, "", "turnaround: a trained turnaround or `models combine` ensemble (run, weights or default) whose "
           "per-pixel source probabilities the model also learns (knowledge distillation); it must offer the same candidates "
           "(--candidate-shifts)"),
    Option("lambda-distill", float, 1.0, "turnaround: weight of the KL divergence from --distill-from's probabilities, beside the true sources' cross-entropy", low=0),
    # style transfer: pictures (domain A) → pixel art (domain B = --dataset)
    Option("domain-a", str, "", "folder of pictures to turn into pixel art (PNG/JPEG, any size, fitted into --image-size); "
           "pix2pix-pairs pairs them by file name with the pixel art of --dataset FOLDER (cyclegan, pix2pix-pairs)"),
    Option("generator-blocks", int, 9, "residual blocks of the CycleGAN ResNet generator (the reference: 9, or 6)", low=1, high=64),
    Option("pool-size", int, 50, "generated images each CycleGAN discriminator also learns from (image history; 0 = off)", low=0),
    Option("lambda-identity", float, 0.5, "weight of the CycleGAN identity L1, relative to --lambda-reconstruction (0 = off)", low=0),
]
BY_NAME = {option.name: option for option in OPTIONS}
BY_KEY = {option.key: option for option in OPTIONS}
DEFAULT_STEPS = 10000


class Config(dict[str, Any]):
    """Resolved options; keys are flag names with '_' (``config.lambda_l1``), read as typed attributes.

    Every option of the table has an annotation here, its type from the table (`None` default: optional),
    so a type checker and an editor follow ``config.capacity`` (an `int`) from the flag to the layer;
    tests/test_options.py checks the two never drift. A common option is always present; a model-specific
    one only in the configurations of the models that use it (``"capacity" in config``, or
    ``config.get("capacity", 1)``): reading an absent one raises AttributeError. The configuration is
    still a dict of flag keys, so TOML files, checkpoints and run folders read and write it unchanged.
    """

    model: str
    """The model's name (set by `resolve`)."""
    # data
    dataset: list[str]
    tiny: bool
    rm2k: bool
    rmxp: bool
    rmvx: bool
    misc: bool
    tiny_validation: bool
    rm2k_validation: bool
    rmxp_validation: bool
    rmvx_validation: bool
    data_dir: str
    validation_fraction: float
    domains: list[str]
    image_size: int
    output_channels: int
    input_channels: int
    no_aug: bool
    no_hue: bool
    no_tran: bool
    # optimisation
    lr: float
    lr_decay: str
    lr_epoch_decay: float
    beta1: float
    beta2: float
    ttur: float
    batch: int
    steps: int | None
    epochs: int | None
    seed: int
    init_from: str
    # monitoring and output
    evaluate_steps: int
    checkpoint_steps: int | None
    keep_checkpoints: int
    test_images: int
    callback_evaluate_l1: bool
    callback_evaluate_fid: bool
    callback_debug_discriminator: bool
    callback_early_stop: bool
    patience: int
    save_model: bool
    verbose: bool
    log_folder: str
    model_name: str
    experiment: str
    run_string: str
    device: str
    memory_fraction: float
    precision: str
    profile: int
    pretrain_epochs: int
    # model architecture
    generator: str
    capacity: int
    conditional_discriminator: bool
    source_domain_aware_generator: bool
    discriminator_scales: int
    sampler: str
    d_steps: int
    adv: str
    # sampling models (new characters)
    latent: int
    feature_maps: int
    loss: str
    label_smoothing: float
    d_dropout: float
    source: str
    target: str
    embedding: int
    noise_std: float
    encoder_dropout: float
    critic_norm: str
    base_width: int
    base_height: int
    upsample_layers: int
    lambda_orthogonal: float
    ema_decay: float
    diff_augment: str
    truncation: float
    # losses
    lambda_adversarial: float
    lambda_l1: float
    lambda_l1_backward: float
    lambda_gp: float
    lambda_domain: float
    lambda_reconstruction: float
    lambda_ssim: float
    lambda_tv: float
    lambda_latent_reconstruction: float
    lambda_cyclic_reconstruction: float
    lambda_palette: float
    lambda_histogram: float
    lambda_selection: float
    lambda_regularization: float
    lambda_kl: float
    lambda_l1_given: float
    # imputation specifics
    input_dropout: str
    target_prior: str
    cycled_source_replacer: str
    shuffled_batches: bool
    palette_quantization: bool
    annealing: str
    temperature: float
    perturb_palette: float
    candidate_shifts: int
    distill_from: str
    lambda_distill: float
    # style transfer: pictures (domain A) → pixel art (domain B = --dataset)
    domain_a: str
    generator_blocks: int
    pool_size: int
    lambda_identity: float

    if not TYPE_CHECKING:  # for the type checker, only the annotated options above exist (a misspelt one is an error)

        def __getattr__(self, key: str) -> Any:
            try:
                return self[key]
            except KeyError:
                raise AttributeError(key) from None

    def to_toml_dict(self) -> dict:
        return {option_name(key): value for key, value in sorted(self.items()) if value is not None}


LEGACY = {"checkpoint_steps": (0, None)}
"""Values older runs recorded that the table no longer takes, and what they meant (0: --evaluate-steps)."""

REPLACED = {
    "gpu": (0, "--gpu N was replaced by --device cuda:N (or --device cpu, or --device auto: a GPU when there is one)"),
    "vram": (0, "--vram MB was replaced by --memory-fraction F (the share of the GPU's memory, e.g. 0.5)"),
}
"""Options that are gone, the value older runs recorded by default (read back silently), and the hint
that refuses any other value."""


def drop_replaced(values: dict[str, Any], where: str = "", recorded: bool = False) -> dict[str, Any]:
    """`values` without the replaced options: a default an older run recorded is dropped; a value someone
    chose is refused with the hint (a checkpoint's own record, `recorded`, is always read: where a run
    trains is not part of the run)."""
    kept = {}
    for key, value in values.items():
        if key in REPLACED:
            default, hint = REPLACED[key]
            if value != default and not recorded:
                raise SpriteForgeError(f"{where}{hint}")
            continue
        kept[key] = value
    return kept

RUN_RECORD_KEYS = {"versions", "resumed"}
"""Tables a run's configuration.toml holds besides options (ignored when it is read as --config)."""


def load_toml_file(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A TOML file as a dict; missing, not a regular file, not UTF-8 or not TOML: one line."""
    from spriteforge.imageio import require_regular_file  # here, not above: `spriteforge --help` stays free of numpy and Pillow

    if not os.path.exists(path):
        raise SpriteForgeError(f"{path}: {what} not found")
    require_regular_file(path, f"a {what}")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except UnicodeDecodeError as error:
        raise SpriteForgeError(f"{path}: not UTF-8 text (byte {error.start}); save the {what} as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise SpriteForgeError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise SpriteForgeError(f"{path}: cannot read ({error.strerror or error})") from None


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML config file of flag names (dashes or underscores) to values."""
    raw = load_toml_file(path, "config file")
    values = {}
    for name, value in raw.items():
        key = option_key(name)
        if key in RUN_RECORD_KEYS or not drop_replaced({key: value}, f"{path}: "):  # a run's record; --gpu 0 of older runs
            continue
        if key == "model":
            values[key] = value
            continue
        if key not in BY_KEY:
            raise SpriteForgeError(f"{path}: unknown option '{name}'")
        if key in LEGACY and value == LEGACY[key][0]:
            continue
        values[key] = coerce(BY_KEY[key], value, f"{path}: ")
    return values


def coerce(option: Option, value: Any, where: str = "") -> Any:
    """Check a value (from TOML or a checkpoint) against the option's type and choices."""
    try:
        if option.kind is bool:
            if not isinstance(value, bool):
                raise TypeError
        elif option.kind is list:
            value = [str(v) for v in (value if isinstance(value, list) else str(value).split())]
        elif value is not None:
            if option.kind is int and isinstance(value, float) and not value.is_integer():
                raise TypeError
            value = option.kind(value)
    except (TypeError, ValueError):
        raise SpriteForgeError(f"{where}--{option.name} expects {option.kind.__name__}, got {value!r}") from None
    if option.choices and value not in option.choices:
        raise SpriteForgeError(f"{where}--{option.name} must be one of {', '.join(option.choices)}, got '{value}'")
    if option.kind in (int, float) and value is not None:
        check_range(option, value, where)
    return value


def check_range(option: Option, value: float, where: str = "") -> None:
    """The option table's bounds: a finite number within [low, high] (ends exclusive where marked)."""
    if not math.isfinite(value):
        raise SpriteForgeError(f"{where}--{option.name} must be a finite number, got {value}")
    too_low = option.low is not None and (value <= option.low if option.above else value < option.low)
    too_high = option.high is not None and (value >= option.high if option.below else value > option.high)
    if too_low or too_high:
        raise SpriteForgeError(f"{where}--{option.name} must {describe_range(option)}, got {value}")


def describe_range(option: Option) -> str:
    """The bounds as the rest of a sentence: "be positive", "not be negative", "be in [0, 1)"."""
    low, high = option.low, option.high
    if low == 0 and high is None:
        return "be positive" if option.above else ("not be negative" if option.kind is float else "be at least 0")
    if low is not None and high is not None and option.kind is int:
        return f"be at least {low:g} and at most {high:g}"
    if low is not None and high is not None:
        return f"be in {'(' if option.above else '['}{low:g}, {high:g}{')' if option.below else ']'}"
    if low is not None:
        return f"be {'above' if option.above else 'at least'} {low:g}"
    return f"be {'below' if option.below else 'at most'} {high:g}"


def resolve(model: str, uses: frozenset[str], model_defaults: dict[str, Any], given: dict[str, Any],
            refuses: dict[str, str] | None = None) -> Config:
    """Defaults ← the model's defaults ← given values (file, then command line); reject unused flags.

    `refuses` maps common flags the model does not take to the reason (BigGAN derives its image size);
    they are left out of the configuration.
    """
    refuses = refuses or {}
    for key in given:
        if key in BY_KEY and BY_KEY[key].name in refuses:
            raise SpriteForgeError(f"--{BY_KEY[key].name} not used by {model}: {refuses[BY_KEY[key].name]}")
    unused = sorted(key for key in given if key in BY_KEY and not BY_KEY[key].common and BY_KEY[key].name not in uses)
    if unused:
        names = ", ".join(f"--{BY_KEY[key].name}" for key in unused)
        raise SpriteForgeError(f"{names} not used by {model}; remove {'it' if len(unused) == 1 else 'them'}")
    config = Config({o.key: o.default for o in OPTIONS if (o.common or o.name in uses) and o.name not in refuses})
    config.update({option_key(key): value for key, value in model_defaults.items()})
    config.update({key: coerce(BY_KEY[key], value) for key, value in given.items() if key in BY_KEY})
    config["model"] = model
    _check(config)
    return config


def _check(config: Config) -> None:
    if config.steps is not None and config.epochs is not None:
        raise SpriteForgeError("give --steps or --epochs, not both")
    for key in ("batch", "image_size", "evaluate_steps"):
        if key in config and config[key] <= 0:
            raise SpriteForgeError(f"--{BY_KEY[key].name} must be positive, got {config[key]}")
    for key in ("steps", "epochs"):
        if config[key] is not None and config[key] <= 0:
            raise SpriteForgeError(f"--{key} must be positive, got {config[key]}")
    if config.output_channels not in (3, 4) or config.input_channels not in (3, 4):
        raise SpriteForgeError("--output-channels and --input-channels must be 3 or 4")
    if config.input_channels != config.output_channels:
        raise SpriteForgeError("--input-channels must equal --output-channels: inputs and outputs are views of the same sprites")
    if config.lr <= 0:
        raise SpriteForgeError(f"--lr must be positive, got {config.lr}")
    if not 0 <= config.validation_fraction < 1:
        raise SpriteForgeError("--validation-fraction must be in [0, 1)")
    if len(set(config.domains)) != len(config.domains) or len(config.domains) < 2:
        raise SpriteForgeError("--domains needs at least two distinct names")
    if "image_size" in config and config.image_size % 4:
        raise SpriteForgeError("--image-size must be a multiple of 4")
    if config.get("capacity", 1) < 1:
        raise SpriteForgeError("--capacity must be at least 1")
    for key in ("latent", "feature_maps", "embedding"):
        if config.get(key, 1) < 1:
            raise SpriteForgeError(f"--{BY_KEY[key].name} must be at least 1, got {config[key]}")
    if config.get("d_steps", 1) < 1:
        raise SpriteForgeError("--d-steps must be at least 1")
    if not 0 < config.lr_epoch_decay <= 1:
        raise SpriteForgeError(f"--lr-epoch-decay must be in (0, 1], got {config.lr_epoch_decay}")
    if config.lr_decay != "per-epoch" and config.lr_epoch_decay != BY_NAME["lr-epoch-decay"].default:
        raise SpriteForgeError("--lr-epoch-decay applies only with --lr-decay per-epoch; add that or remove it")
    if config.callback_early_stop and not config.callback_evaluate_l1:
        raise SpriteForgeError("--callback-early-stop watches the validation L1: add --callback-evaluate-l1")
    if config.callback_evaluate_fid:
        from spriteforge.evaluation.inception import weights_path  # here, not above: options stay free of torch

        weights_path()  # fail before training, in one line, if the Inception weights are missing


def dataset_sources(config: Config) -> tuple[list[str], list[str] | None]:
    """The training sources and, if a --*-validation flag is on, the test sources."""
    sources = list(config.dataset) + [name for name in ("tiny", "rm2k", "rmxp", "rmvx", "misc") if config[name]]
    tests = [name for name in ("tiny", "rm2k", "rmxp", "rmvx") if config[f"{name}_validation"]]
    return sources, tests or None


def config_from_meta(meta: dict, path) -> Config:
    """A checkpoint's configuration; common options added since it was written take their defaults."""
    config = Config({option.key: option.default for option in OPTIONS if option.common and option.key not in meta["config"]})
    for key, value in drop_replaced(meta["config"], recorded=True).items():
        if key in LEGACY and value == LEGACY[key][0]:
            value = LEGACY[key][1]
        config[key] = coerce(BY_KEY[key], value, f"{path}: ") if key in BY_KEY else value
    if not isinstance(meta.get("model"), str) or config.get("model") not in (None, meta["model"]):
        raise SpriteForgeError(f"{path}: damaged checkpoint metadata (the model name does not match its configuration)")
    return config
