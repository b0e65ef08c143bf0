"""The `spriteforge` command: train, translate, pixelate, stylize and data.

Every user-facing problem surfaces as one `error: …` line and a non-zero exit, never a traceback.

Each command imports its module (and with it torch, numpy, Pillow) inside its function, on purpose:
`spriteforge --help`, `--version` and a mistyped flag answer at once instead of after seconds of imports.
Those imports still go only downwards (tests/test_layers.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import tomli_w

from spriteforge import VIEWS, __version__, distributed
from spriteforge.errors import SpriteForgeError
from spriteforge.options import BY_KEY, BY_NAME, OPTIONS, REPLACED, Config, coerce, option_key, option_name, read_toml, resolve


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="spriteforge")
def cli() -> None:
    """SpriteForge: GANs that draw pixel-art game characters."""
    from spriteforge.devices import keep_freed_memory

    keep_freed_memory()  # page faults on every fresh batch-sized allocation cost up to half of a CPU run


# -- train ----------------------------------------------------------------------------------------
class TrainCommand(click.Command):
    """Lets list options take several words (`--domains back left front right`), as the original did."""

    def parse_args(self, ctx, args):
        joined, index = [], 0
        list_flags = {f"--{o.name}" for o in OPTIONS if o.kind is list and o.name != "dataset"}
        while index < len(args):
            arg = args[index]
            if arg in list_flags:
                values, index = [], index + 1
                while index < len(args) and not args[index].startswith("-"):
                    values.append(args[index])
                    index += 1
                joined += [arg, ",".join(values)]
                continue
            joined.append(arg)
            index += 1
        if args and not args[0].startswith("-") and any(arg in ("-h", "--help") for arg in args):
            ctx.meta["help_model"] = args[0]  # `train MODEL … --help`: that model's flags only
        return super().parse_args(ctx, joined)

    def format_options(self, ctx, formatter):
        """With a model named (`train dcgan --help`): only the flags it takes, each with its default."""
        name = ctx.meta.get("help_model")
        if not name:
            return super().format_options(ctx, formatter)
        from spriteforge.models import model_class

        cls = model_class(name)
        defaults = {option_key(key): value for key, value in cls.defaults.items()}
        rows = []
        for param in self.get_params(ctx):
            option = BY_KEY.get(param.name)
            if option is not None and (option.name in cls.refuses or not (option.common or option.name in cls.uses)):
                continue
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if option is not None:
                default = defaults.get(option.key, option.default)
                if default not in (None, "", [], False):
                    shown = ",".join(map(str, default)) if isinstance(default, list) else default
                    record = (record[0], f"{record[1]}  [default: {shown}]")
            rows.append(record)
        with formatter.section(f"Options of {name}"):
            formatter.write_dl(rows)


def device_option(function):
    """--device, defined once for every command that runs a model (resolved by `devices.resolve_device`)."""
    option = BY_NAME["device"]
    return click.option("--device", default=option.default, show_default=True, help=option.help)(function)


def seed_option(meaning: str, default: int | None = 0):
    """--seed, defined once: every command's seed makes its output repeatable; `meaning` says what it seeds."""
    return click.option("--seed", default=default, type=int, show_default=default is not None,
                        help=f"seed of {meaning}: the same seed gives the same result")


def _refuse_replaced(ctx, param, value):
    """--gpu and --vram are gone: refuse them with the flag that replaced them."""
    if value is not None:
        raise SpriteForgeError(REPLACED[param.name.removeprefix("replaced_")][1])
    return value


def _option_decorators():
    decorators = []
    for option in OPTIONS:
        flag = f"--{option.name}"
        if option.kind is bool:
            if option.name.startswith("no-"):
                decorators.append(click.option(flag, option.key, is_flag=True, flag_value=True, default=None, help=option.help))
            else:
                decorators.append(click.option(f"{flag}/--no-{option.name}", option.key, default=None, help=option.help))
        elif option.kind is list:
            multiple = option.name == "dataset"
            decorators.append(click.option(flag, option.key, multiple=multiple, default=None, help=option.help + (" (comma- or space-separated)" if not multiple else "")))
        else:
            kind = click.Choice(option.choices) if option.choices else option.kind
            decorators.append(click.option(flag, option.key, type=kind, default=None, help=option.help))
    return decorators


def _with_options(function):
    for decorator in reversed(_option_decorators()):
        function = decorator(function)
    return function


RESUME_OVERRIDES = {"steps", "epochs", "evaluate_steps", "checkpoint_steps", "keep_checkpoints", "test_images", "lr", "verbose", "device", "memory_fraction", "precision", "data_dir"}


@cli.command(cls=TrainCommand, context_settings={"show_default": False})
@click.argument("model", required=False)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of options (the command line overrides it)")
@click.option("--resume", "resume", type=click.Path(file_okay=False), help="continue the run in this folder exactly where it stopped")
@click.option("--print-config", "print_config", is_flag=True, help="print the resolved configuration as TOML and exit (nothing is trained)")
@click.option("--gpu", "replaced_gpu", hidden=True, expose_value=False, callback=_refuse_replaced)
@click.option("--vram", "replaced_vram", hidden=True, expose_value=False, callback=_refuse_replaced)
@_with_options
def train(model, config_file, resume, print_config, **values):
    """Train MODEL (stargan-paired, collagan, dcgan, cyclegan, …) on the chosen datasets (default: the built-in synthetic set).

    `spriteforge train MODEL --help` lists the flags MODEL takes, with their defaults."""
    from spriteforge.models import MODELS, model_class
    from spriteforge.training.engine import Trainer, command_line_string

    given = {}
    if config_file:
        given.update(read_toml(config_file))
    for key, value in values.items():
        if value is None or (isinstance(value, tuple) and not value):
            continue
        if BY_KEY[key].kind is list:
            value = [part for item in (value if isinstance(value, tuple) else [value]) for part in str(item).replace(",", " ").split()]
        given[key] = value
    model = model or given.pop("model", None)
    given.pop("model", None)
    if resume:
        if print_config:
            click.echo(tomli_w.dumps(_resumed_config(Path(resume), model, given)[0].to_toml_dict()), nl=False)
            return
        trainer = _resumed_trainer(Path(resume), model, given)
    else:
        if not model:
            raise SpriteForgeError(f"name a model to train: one of {', '.join(MODELS)}")
        cls = model_class(model)
        config = resolve(model, cls.uses, cls.defaults, given, cls.refuses)
        if print_config:
            click.echo(tomli_w.dumps(config.to_toml_dict()), nl=False)
            return
        if "all" in (config.get("source"), config.get("target")):
            return _train_pairs(config, given)
        trainer = Trainer(config, command_line=command_line_string())
    _run_trainer(trainer)


def _resumed_trainer(run_dir: Path, model: str | None, given: dict):
    """A Trainer continuing the run in `run_dir` with its own options (only RESUME_OVERRIDES may change)."""
    from spriteforge.training.engine import Trainer

    config, checkpoint = _resumed_config(run_dir, model, given)
    return Trainer(config, resume=run_dir, checkpoint=checkpoint)


def _resumed_config(run_dir: Path, model: str | None, given: dict):
    """(configuration, newest checkpoint or None) of the run in `run_dir` with `given` overrides applied."""
    from spriteforge.options import config_from_meta
    from spriteforge.models import model_class
    from spriteforge.training.run_folder import RunFolder

    folder = RunFolder(run_dir)
    recorded = folder.configuration
    checkpoint = None  # read once, here: the Trainer restores from it
    if folder.has_checkpoint() or not recorded.is_file():
        checkpoint = folder.read_latest(warn=lambda line: click.echo(line, err=True))
        path, _, meta = checkpoint
        config = config_from_meta(meta, path)
    else:  # killed before its first checkpoint: the recorded configuration starts it again from step 0
        options = read_toml(recorded)
        name = options.pop("model", None)
        if not isinstance(name, str):
            raise SpriteForgeError(f"{recorded}: names no model; start a new run instead")
        cls = model_class(name)
        config = resolve(name, cls.uses, cls.defaults, options, cls.refuses)
        meta = {"model": name}
        click.echo(f"{run_dir}: no checkpoint yet (stopped before the first one); training again from step 0", err=True)
    if model and model != meta["model"]:
        raise SpriteForgeError(f"{run_dir}: holds a '{meta['model']}' run, not '{model}'")
    others = sorted(set(given) - RESUME_OVERRIDES)
    if others:
        raise SpriteForgeError(f"--resume takes the run's own options; only {', '.join('--' + option_name(k) for k in sorted(RESUME_OVERRIDES))} may change (got {', '.join('--' + option_name(k) for k in others)})")
    for key in ("steps", "epochs"):
        if key in given:
            config["steps"], config["epochs"] = None, None
    config.update({key: coerce(BY_KEY[key], value) for key, value in given.items()})
    return config, checkpoint


def _run_trainer(trainer, rerun_hint: str | None = None) -> None:
    """Train to the end; on Ctrl-C/SIGTERM say how to continue and exit 130."""
    from spriteforge.training.engine import Interrupted

    say = (lambda line: click.echo(line, err=True)) if trainer.is_main else (lambda line: None)  # torchrun: rank 0 speaks
    say(f"run folder: {trainer.run_dir}")
    processes, share = distributed.world_size(), trainer.config.batch // distributed.world_size()
    say(f"data: {trainer.data.describe()}"
        + (f"; {processes} processes, {share} example{'s' if share != 1 else ''} each per step" if processes > 1 else ""))
    hint = rerun_hint or f"spriteforge train --resume {trainer.run_dir}"
    try:
        state = trainer.run()
    except Interrupted as stopped:
        distributed.stop()
        if not trainer.is_main:
            sys.exit(130)
        if stopped.saved:
            click.echo(f"\ninterrupted after step {stopped.step}; checkpoint saved. Continue with: {hint}", err=True)
        elif stopped.step:
            click.echo(f"\nstopped at once; the checkpoint of step {stopped.step} is kept. Continue with: {hint}", err=True)
        else:
            click.echo("\nstopped at once, before the first checkpoint; nothing to resume", err=True)
        sys.exit(130)
    distributed.stop()
    summary = trainer.folder.summary
    say(f"done: {state.step} steps; results in {trainer.run_dir}" + (f" ({summary.read_text().strip()})" if summary.exists() and trainer.config.verbose else ""))


def _train_pairs(config, given: dict) -> None:
    """`--source all` and/or `--target all` (pix2pix): one run per (source, target) pair, named
    SOURCE-TARGET (after --run-string and a dash when given), one after the other. The same command
    again skips finished pairs and resumes an interrupted one, so a long sweep survives a stop."""
    from spriteforge.training.engine import Trainer, command_line_string
    from spriteforge.training.run_folder import RunFolder

    domains = list(config.domains)
    for flag in ("source", "target"):
        if config[flag] != "all" and config[flag] not in domains:
            raise SpriteForgeError(f"--{flag} {config[flag]}: not one of the views {', '.join(domains)} (--domains) or 'all'")
    sources = domains if config.source == "all" else [config.source]
    targets = domains if config.target == "all" else [config.target]
    pairs = [(source, target) for source in sources for target in targets if source != target]
    prefix = f"{config.run_string}-" if config.run_string else ""
    folder = RunFolder.parent_for(config)
    for number, (source, target) in enumerate(pairs, 1):
        name = f"{prefix}{source}-{target}"
        run = RunFolder(folder / name)
        click.echo(f"pair {number}/{len(pairs)}: {source} → {target}", err=True)
        if run.is_finished():
            click.echo(f"already trained: {run.path}", err=True)
            continue
        if run.has_checkpoint():
            trainer = _resumed_trainer(run.path, config.model, {k: v for k, v in given.items() if k in RESUME_OVERRIDES})
        else:
            pair = Config(config)
            pair.update({"source": source, "target": target, "run_string": name})
            trainer = Trainer(pair, command_line=command_line_string())
        _run_trainer(trainer, rerun_hint="the same command (finished pairs are skipped)")
    click.echo(f"all {len(pairs)} pairs trained in {folder}; translate with: spriteforge translate {folder} --front FILE --out sheet.png", err=True)


# -- translate ------------------------------------------------------------------------------------
@cli.command()
@click.argument("model_path", metavar="[MODEL]", required=False)
@click.option("--model", "model_option", default=None, metavar="MODEL",
              help="run folder, checkpoint or bundled name (default: 'default', the model shipped with SpriteForge)")
@click.option("--back", type=click.Path(dir_okay=False), help="the character seen from the back")
@click.option("--left", type=click.Path(dir_okay=False), help="the character facing left")
@click.option("--front", type=click.Path(dir_okay=False), help="the character seen from the front")
@click.option("--right", type=click.Path(dir_okay=False), help="the character facing right")
@click.option("--input", "batch_input", type=click.Path(), default=None,
              help="batch mode: a sprite sheet (one character per row, views left to right, empty cells drawn) or a folder "
                   "with one sub-folder per view (front/, 2-front/ …; same file name = same character)")
@click.option("--out", "out", required=True, type=click.Path(),
              help="sprite sheet PNG to write (views left to right); with --input FOLDER a folder for one sheet per character")
@click.option("--scale", default=1, type=click.IntRange(1, 32), help="nearest-neighbour upscale factor of the written PNGs")
@click.option("--separate", is_flag=True, help="also write one PNG per view beside --out")
@click.option("--soft-alpha", is_flag=True, help="keep the generator's raw alpha instead of binarising it")
@click.option("--palette-from", type=click.Path(dir_okay=False), default=None,
              help="force a palette (.gpl, .pal, a text file of #rrggbb lines, or a PNG: its opaque pixels' colours; ≤ 256 colours): "
                   "collagan --palette-quantization draws with it, other models' views are snapped to it (nearest RGB), given views too")
@click.option("--indexed", is_flag=True, help="write indexed (P-mode) PNGs with the exact palette, index 0 transparent (≤ 255 colours)")
@device_option
@click.option("--styles", default=1, type=click.IntRange(1, 64), show_default=True,
              help="munit, remic: K variations, one row each: the encoded style first (see --style), then styles sampled from N(0, I)")
@click.option("--style", "style_source", type=click.Choice(["encoded", "sampled"]), default=None,
              help="munit, remic: the first row's style: encoded (default; munit: the target view's style encoder on the source view, remic: on the empty target slot) or sampled")
@seed_option("the sampled styles (default 0)", default=None)
def translate(model_path, model_option, back, left, front, right, batch_input, out, scale, separate, soft_alpha, palette_from, indexed,
              device, styles, style_source, seed):
    """Draw the missing views of a character from the views given (MODEL: run folder, checkpoint, or 'default')."""
    from spriteforge.inference import DEFAULT_MODEL
    from spriteforge.translation import translate_batch, translate_files

    if model_path and model_option:
        raise SpriteForgeError(f"two models given ({model_path} and --model {model_option}); keep one")
    model = model_option or model_path or DEFAULT_MODEL
    _guard_out(out, back, left, front, right, palette_from, model_path, model_option, batch_input)
    given = {name: path for name, path in zip(VIEWS, (back, left, front, right)) if path}
    out = Path(out)
    if batch_input is not None:
        if given:
            raise SpriteForgeError("--input reads every character from the sheet or folder; leave out --back/--left/--front/--right")
        refused = [flag for flag, value in (("--separate", separate), ("--indexed", indexed), ("--styles", styles > 1),
                                            ("--style", style_source), ("--seed", seed is not None)) if value]
        if refused:
            raise SpriteForgeError(f"{refused[0]} works on one character; drop it with --input (batch mode)")
        written = translate_batch(model, batch_input, out, scale=scale, binary_alpha=not soft_alpha, device=device, palette_from=palette_from)
        click.echo(f"{written[0]}" if len(written) == 1 else f"{len(written)} sheets in {out}")
        return
    if out.suffix.lower() != ".png":
        raise SpriteForgeError(f"--out {out}: the sheet is written as PNG; name it {out.with_suffix('.png').name}")
    written = translate_files(model, given, out, scale=scale, separate=separate, binary_alpha=not soft_alpha, device=device,
                              palette_from=palette_from, indexed=indexed, styles=styles, style_source=style_source, seed=seed)
    for path in written:
        click.echo(str(path))


# -- models ---------------------------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@click.option("--root", default="output", show_default=True, type=click.Path(file_okay=False), help="where to look for your trained runs")
@click.pass_context
def models(ctx, root):
    """The models shipped with SpriteForge and the runs you trained (`models show NAME` prints a model card)."""
    if ctx.invoked_subcommand is not None:
        return
    from spriteforge.model_cards import bundled_models, user_models

    click.echo("bundled (use the name wherever a model is expected):")
    for row in bundled_models():
        if not row["available"]:
            click.echo(f"  {row['name']:<10} missing from this installation ({row['file']}); reinstall spriteforge")
            continue
        click.echo(f"  {row['name']:<10} {row['model']}, {row['parameters'] / 1e6:.1f}M parameters, {row['megabytes']} MB: {row['summary']}")
    runs = user_models(Path(root))
    click.echo(f"your runs under {root}/:" if runs else f"no trained runs under {root}/ (spriteforge train … writes them there)")
    for row in runs:
        extra = f", test L1 {row['test_l1']:.4f}" if isinstance(row.get("test_l1"), float) else ""
        click.echo(f"  {row['name']}  ({row['model']}, step {row.get('step', '?')}{extra})")


@models.command("show")
@click.argument("name")
def models_show(name):
    """Print the model card of a bundled model (e.g. default) or a run folder's configuration and summary."""
    from spriteforge.model_cards import show_card

    click.echo(show_card(name))


@models.command("pack")
@click.argument("location", metavar="RUN")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--fp32", is_flag=True, help="keep 32-bit weights (default: 16-bit, half the size)")
def models_pack(location, out, fp32):
    """Write RUN's inference weights (no optimiser state, no machine paths) to OUT.safetensors to share or ship."""
    from spriteforge.model_cards import pack

    path = pack(location, Path(out), half=not fp32)
    click.echo(f"{path} ({path.stat().st_size / 2**20:.1f} MB)")


@models.command("combine")
@click.argument("locations", metavar="MODEL...", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the ensemble's .safetensors file")
@click.option("--fp32", is_flag=True, help="keep 32-bit weights (default: 16-bit, half the size)")
def models_combine(locations, out, fp32):
    """Write two or more trained turnaround models (runs or weights, `default` included) as one ensemble
    that draws with all of them: lower L1 than either, at the cost of one pass per member."""
    from spriteforge.model_cards import combine

    path, members = combine(list(locations), Path(out), half=not fp32)
    click.echo(f"{path} ({path.stat().st_size / 2**20:.1f} MB, {members} members)")


# -- sample ---------------------------------------------------------------------------------------
@cli.command()
@click.argument("model_path", metavar="[MODEL]", required=False, default=None)
@click.option("-n", "--count", default=None, type=click.IntRange(1, 4096), help="how many sprites (default 64; with --sheet, characters: 8)")
@click.option("--view", default=None, help="draw this view (conditional models only: cdcgan, biggan, deep-biggan)")
@seed_option("the latent vectors")
@click.option("--interpolate", is_flag=True, help="a strip of -n sprites morphing from seed to seed + 1")
@click.option("--truncation", default=None, type=float,
              help="biggan/deep-biggan: draw z from a normal truncated to |z| <= T (0 = untruncated; default: the model's --truncation)")
@click.option("--colours", "--colors", "colours", default=32, show_default=True, type=click.IntRange(0, 255),
              help="colours per sprite (k-means in CIELAB, alpha binarised: pixel art by construction); 0 = the generator's own")
@click.option("--palette-from", type=click.Path(dir_okay=False), default=None,
              help="snap every sprite to this palette instead (.gpl, .pal, hex lines or a PNG's opaque colours)")
@click.option("--sheet", is_flag=True, help="brand-new characters in all four views: each sample completed by --imputer, one row per character")
@click.option("--imputer", default="default", show_default=True, help="with --sheet: the imputation model that draws the other views")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="grid PNG to write (with --sheet: the sheet, one character per row)")
@click.option("--scale", default=1, type=click.IntRange(1, 32), help="nearest-neighbour upscale factor of the written PNGs")
@click.option("--separate", is_flag=True, help="also write one PNG per sprite (with --sheet: per character) beside --out")
@click.option("--soft-alpha", is_flag=True, help="keep the generator's raw alpha and colours (no pixel-art snapping)")
@device_option
def sample(model_path, count, view, seed, interpolate, truncation, colours, palette_from, sheet, imputer, out, scale, separate, soft_alpha, device):
    """Draw brand-new characters (MODEL: a sampler's run folder or checkpoint; default: the bundled sampler)."""
    from spriteforge.sampling import sample_files, sheet_files

    _guard_out(out, model_path, palette_from)
    if Path(out).suffix.lower() != ".png":
        raise SpriteForgeError(f"--out {out}: the grid is written as PNG; name it {Path(out).with_suffix('.png').name}")
    if soft_alpha and palette_from is not None:
        raise SpriteForgeError("--soft-alpha keeps the raw output; it cannot be combined with --palette-from")
    if sheet:
        refused = [flag for flag, value in (("--interpolate", interpolate), ("--view", view), ("--soft-alpha", soft_alpha)) if value]
        if refused:
            raise SpriteForgeError(f"{refused[0]} does not apply to --sheet (each character is drawn once, then completed); drop it")
        written = sheet_files(model_path, imputer, Path(out), count=count or 8, seed=seed, scale=scale, separate=separate,
                              device=device, colours=colours, truncation=truncation, palette_from=palette_from)
    else:
        if imputer != "default":
            raise SpriteForgeError("--imputer only applies with --sheet")
        count = count or 64
        if interpolate and count < 2:
            raise SpriteForgeError("--interpolate needs -n 2 or more")
        written = sample_files(model_path, Path(out), count=count, view=view, seed=seed, interpolate=interpolate, scale=scale,
                               separate=separate, binary_alpha=not soft_alpha, device=device, truncation=truncation,
                               colours=0 if soft_alpha else colours, palette_from=palette_from)
    for path in written[:1] + ([f"… and {len(written) - 1} separate PNGs"] if len(written) > 1 else []):
        click.echo(str(path))


# -- denoise --------------------------------------------------------------------------------------
@cli.command()
@click.argument("model_path", metavar="RUN")
@click.argument("inputs", nargs=-1, metavar="[SPRITE.png|FOLDER]...")
@click.option("--out", "out", required=True, type=click.Path(), help="PNG to write (one input) or folder (<input name>.png for each)")
@click.option("--from-sample", "sampler", default=None, metavar="GAN_RUN", help="clean fresh samples of this sampling model instead of files (OUT/raw/ keeps them)")
@click.option("-n", "--count", default=None, type=click.IntRange(1, 4096), help="with --from-sample: how many samples (default 16)")
@seed_option("the latent vectors, with --from-sample (default 0)", default=None)
@click.option("--view", default=None, help="with --from-sample: draw this view (conditional models only)")
@click.option("--palette-from", type=click.Path(dir_okay=False), default=None,
              help="snap the outputs to this palette (.gpl, .pal, one #rrggbb per line, or a PNG: its opaque colours); alpha is binarised")
@click.option("--input-palette", is_flag=True, help="snap each output to its input's own opaque colours; alpha is binarised")
@click.option("--colors", "colors", default=None, type=click.IntRange(1, 255), help="reduce each output to this many colours (k-means in CIELAB); alpha is binarised")
@click.option("--scale", default=1, type=click.IntRange(1, 32), help="nearest-neighbour upscale factor of the written PNGs")
@click.option("--compare", default=None, type=click.Path(dir_okay=False), help="also write a grid PNG: each row of inputs above their cleaned outputs")
@device_option
def denoise(model_path, inputs, out, sampler, count, seed, view, palette_from, input_palette, colors, scale, compare, device):
    """Clean sprites with a trained autoencoder (RUN: run folder or checkpoint): encode, decode, keep it pixel art."""
    from spriteforge.denoising import denoise_files, denoise_samples

    _guard_out(out, model_path, sampler, palette_from, *inputs)
    _guard_out(compare, flag="--compare")
    options = dict(scale=scale, palette_from=palette_from, input_palette=input_palette, colours=colors, compare=compare, device=device)
    if sampler is not None:
        if inputs:
            raise SpriteForgeError("give sprite files or --from-sample, not both")
        written = denoise_samples(model_path, sampler, Path(out), count=count or 16, seed=seed or 0, view=view, **options)
    else:
        unused = [flag for flag, value in (("-n", count), ("--seed", seed), ("--view", view)) if value is not None]
        if unused:
            raise SpriteForgeError(f"{', '.join(unused)} only appl{'ies' if len(unused) == 1 else 'y'} with --from-sample GAN_RUN")
        written = denoise_files(model_path, list(inputs), Path(out), **options)
    for path in written[:3] + ([f"… and {len(written) - 3} more"] if len(written) > 3 else []):
        click.echo(str(path))


# -- pixelate -------------------------------------------------------------------------------------
@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="PICTURE|FOLDER...")
@click.option("--out", "out", required=True, type=click.Path(), help="PNG to write (one picture) or folder for <name>.png (several, or a folder)")
@click.option("--size", default=64, show_default=True, type=click.IntRange(1, 4096), help="longest side when no pixel grid is found")
@click.option("--colors", "colors", default=16, show_default=True, type=click.IntRange(1, 255), help="palette size (k-means in CIELAB)")
@click.option("--palette", "palette_file", type=click.Path(dir_okay=False), help="use this palette instead: .gpl, .pal, hex lines or a PNG (its opaque colours)")
@click.option("--pixel-size", "pixel_size", default=None, type=click.IntRange(1, 4096), help="force the art's pixel grid: one output pixel per N×N picture pixels (default: detect it)")
@click.option("--outline", is_flag=True, help="remove stray pixels, fill pinholes and add a 1-px outline in the darkest colour")
@click.option("--clean", is_flag=True, help="remove stray pixels and fill pinholes only")
@click.option("--background", type=click.Choice(["none", "auto"]), default="none", show_default=True, help="auto: a uniform border colour becomes transparent")
@click.option("--indexed", is_flag=True, help="write a palette (P-mode) PNG, index 0 transparent")
@click.option("--scale", default=1, type=click.IntRange(1, 32), help="nearest-neighbour upscale factor of the written PNG")
@seed_option("k-means")
def pixelate(inputs, out, size, colors, palette_file, pixel_size, outline, clean, background, indexed, scale, seed):
    """Clean pixel art from pictures (files or folders): snap to the pixel grid (or downscale), limit the palette, binarise alpha."""
    from spriteforge.pixelating import pixelate_files

    _guard_out(out, *inputs, palette_file)
    written = pixelate_files(list(inputs), out, echo=lambda line: click.echo(line, err=True), size=size, colours=colors,
                             palette_file=palette_file, clean=clean, outline=outline, indexed=indexed, scale=scale,
                             background=None if background == "none" else background, seed=seed, pixel_size=pixel_size)
    for path in written:
        click.echo(str(path))


# -- stylize -------------------------------------------------------------------------------------
@cli.command()
@click.argument("model_path", metavar="MODEL")
@click.argument("inputs", nargs=-1, required=True, metavar="PICTURE...")
@click.option("--out", "out", required=True, type=click.Path(), help="PNG to write (one picture) or folder for <name>.png (several, or a folder)")
@click.option("--size", default=None, type=click.IntRange(1, 512), help="longest side of the pixel art (default: the model's image size)")
@click.option("--colors", "colors", default=16, show_default=True, type=click.IntRange(1, 255), help="palette size (k-means in CIELAB)")
@click.option("--palette", "palette_file", type=click.Path(dir_okay=False), help="use this palette instead: .gpl, .pal, hex lines or a PNG (its opaque colours)")
@click.option("--outline", is_flag=True, help="remove stray pixels, fill pinholes and add a 1-px outline in the darkest colour")
@click.option("--clean", is_flag=True, help="remove stray pixels and fill pinholes only")
@click.option("--indexed", is_flag=True, help="write palette (P-mode) PNGs, index 0 transparent")
@click.option("--scale", default=1, type=click.IntRange(1, 32), help="nearest-neighbour upscale factor of the written PNGs")
@seed_option("k-means")
@device_option
def stylize(model_path, inputs, out, size, colors, palette_file, outline, clean, indexed, scale, seed, device):
    """Turn pictures into pixel art with a cyclegan or pix2pix-pairs run (MODEL), then snap, quantise and clean."""
    from spriteforge.stylize import stylize_files

    _guard_out(out, model_path, palette_file, *inputs)
    written = stylize_files(model_path, list(inputs), out, size=size, colours=colors, palette_file=palette_file, clean=clean,
                            outline=outline, indexed=indexed, scale=scale, seed=seed, device=device,
                            echo=lambda line: click.echo(line, err=True))
    for path in written:
        click.echo(str(path))


# -- data -----------------------------------------------------------------------------------------
@cli.group()
def data() -> None:
    """List, download, inspect and generate datasets."""


@data.command("list")
@click.option("--data-dir", default=None, help="where extracted datasets live")
def data_list(data_dir):
    """Show the named datasets and whether each is ready, archived locally, or must be downloaded."""
    from spriteforge.data import registry

    root = registry.data_dir(data_dir)
    click.echo(f"data directory: {root}")
    click.echo(f"{'name':<10} {'status':<22} {'licence':<32} url")
    click.echo(f"{'synthetic':<10} {'built in':<22} {'generated by SpriteForge':<32} -")
    for name, dataset in registry.NAMED_DATASETS.items():
        if (root / name / ".complete").exists():
            status = "extracted"
        elif registry.find_archive(dataset):
            status = "archive found"
        else:
            status = "download on first use"
        click.echo(f"{name:<10} {status:<22} {dataset.licence:<32} {dataset.url}")
    click.echo("all        = tiny + rm2k + rmxp + rmvx + misc")


@data.command("download")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-dir", default=None, help="where extracted datasets live")
def data_download(names, data_dir):
    """Fetch (or take from $SPRITEFORGE_ARCHIVES), verify and extract named datasets."""
    from spriteforge.data import registry

    for name in registry.expand(list(names)):
        if name not in registry.NAMED_DATASETS:
            raise SpriteForgeError(f"unknown dataset '{name}': choose from {', '.join(registry.NAMED_DATASETS)}, all")
        click.echo(f"{name}: {registry.ensure_extracted(name, data_dir)}")


@data.command("inspect")
@click.argument("source")
@click.option("--data-dir", default=None, help="where extracted datasets live")
@click.option("--domains", default=",".join(VIEWS), help="comma-separated domain names")
@click.option("--image-size", default=None, type=int, help="expected image size (default 64; a single folder of images: its own size)")
@click.option("--preview", "preview", type=click.Path(dir_okay=False), default=None, help="preview grid PNG to write (default: <source>-preview.png)")
def data_inspect(source, data_dir, domains, image_size, preview):
    """Counts per split and domain, colour statistics and a preview grid of SOURCE."""
    from spriteforge.data.inspect import inspect_source

    _guard_out(preview, source, flag="--preview")
    domains = tuple(d for d in domains.replace(",", " ").split())
    report, path = inspect_source(source, domains=domains, image_size=image_size, data_dir=data_dir, preview=preview)
    click.echo(report)
    click.echo(f"preview: {path}")


@data.command("synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="folder to write train/ and test/ into")
@click.option("--count", default=480, type=click.IntRange(2, 100000), help="number of characters")
@seed_option("the procedural generator")
@click.option("--image-size", default=64, type=int, help="image size (a multiple of 16)")
def data_synth(out, count, seed, image_size):
    """Write the procedural dataset as PNGs in the split layout (train|test/<k>-<view>/<n>.png)."""
    from spriteforge import imageio
    from spriteforge.data.loading import synthetic_splits

    splits = synthetic_splits(image_size, 4, count, seed)
    for split, characters in splits.items():
        for domain, name in enumerate(VIEWS):
            for index, image in enumerate(characters.images[:, domain]):
                imageio.save_png(image, Path(out) / split / f"{domain}-{name}" / f"{index}.png")
    click.echo(f"wrote {len(splits['train'])} train and {len(splits['test'])} test characters to {out}")


# -- evaluate -------------------------------------------------------------------------------------
@cli.command()
@click.argument("model_path", metavar="MODEL")
@click.option("--dataset", "datasets", multiple=True, help="dataset name or folder to evaluate on (repeatable; default: the model's own)")
@click.option("--data-dir", default=None, help="where extracted datasets live")
@click.option("--split", default="test", type=click.Choice(["test", "validation", "train"]), help="partition of the dataset to use")
@click.option("--metrics", default="fid,kid,l1,ssim,view,palette", show_default=True, help="comma-separated: fid, kid, l1, ssim, view (pose correctness: the share of drawn views the bundled view classifier labels as the target), palette (the pixel-art metrics: palette, colours, alpha, IoU, holes, opaque area)")
@click.option("--baselines/--no-baselines", default=True, help="also run the copy and mirror baselines on the same cases (default: on)")
@click.option("--limit", default=0, type=click.IntRange(0), help="use only this many characters, evenly spaced (0 = all)")
@click.option("--batch", default=64, type=click.IntRange(1), help="characters per generator call")
@click.option("--fid-resize", default="bicubic", type=click.Choice(["bicubic", "nearest"]), help="filter that resizes sprites to 299×299 for Inception")
@click.option("--fid-background", default="white", type=click.Choice(["white", "black"]), help="background RGBA sprites are composited on for FID/KID")
@click.option("--image-size", default=None, type=int, help="image size of a folder dataset for the baselines (default 64)")
@seed_option("KID's random subsets")
@click.option("--out", "out", default=None, type=click.Path(file_okay=False), help="folder for evaluation.json/.md (default: RUN/evaluation/<dataset>-<split>)")
@device_option
def evaluate(model_path, datasets, data_dir, split, metrics, baselines, limit, batch, fid_resize, fid_background, image_size, seed, out, device):
    """The 28-case protocol: every target view from every combination of given views (MODEL: run folder,
    checkpoint, baseline:copy or baseline:mirror); prints the Markdown tables, writes JSON + Markdown."""
    from spriteforge.evaluating import evaluate_location
    from spriteforge.evaluation.protocol import parse_metrics

    _guard_out(out, model_path)

    from tqdm import tqdm

    bars: dict = {}

    def progress(name, done, total):
        """One bar per system (model, then each baseline): cases done, time left."""
        if name not in bars:
            bars[name] = tqdm(total=total, desc=name, unit="case", file=sys.stderr, dynamic_ncols=True)
        bars[name].update(done - bars[name].n)
        if done == total:
            bars[name].close()

    try:
        _, paths, text = evaluate_location(
            model_path, datasets=list(datasets), data_dir=data_dir, split=split, selected=parse_metrics(metrics), baselines=baselines,
            limit=limit, batch=batch, device=device, resize=fid_resize, background=fid_background, image_size=image_size, seed=seed,
            out=out, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    click.echo(text)
    click.echo(f"written: {paths[0]} {paths[1]}", err=True)


# -- experiment -----------------------------------------------------------------------------------
@cli.command()
@click.argument("grid_file", metavar="GRID.toml", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="print each run's command and state; run nothing")
@click.option("--only", multiple=True, help="run only these: numbers as --dry-run lists them (3, 2-5,7) or name patterns ('rm2k,*capacity-4')")
@click.option("--output", "output", default=None, type=click.Path(file_okay=False), help="folder for logs, state and results (default: the grid's `output`)")
@click.option("--evaluate", "evaluate_metrics", default=None, help="after each run, run `spriteforge evaluate` with these metrics (e.g. fid,l1)")
@click.option("--python", "python", default=None, help="Python interpreter for the runs (default: this one)")
@click.option("--launcher", default="sequential", show_default=True, type=click.Choice(["sequential", "local", "slurm"]),
              help="sequential: one run after another here; local/slurm: through submitit, --jobs at once (pip install -e \".[cluster]\")")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 1024), help="runs at once with --launcher local or slurm")
@click.option("--gpus-per-run", default=0, show_default=True, type=click.IntRange(0, 64),
              help="GPUs each run gets with --launcher local/slurm; above 1 a run trains under torchrun, one process per GPU")
@click.option("--time-limit", default=24 * 60, show_default=True, type=click.IntRange(1, 60 * 24 * 30), help="minutes a launched run may take")
@click.option("--partition", default=None, help="Slurm partition (--launcher slurm)")
def experiment(grid_file, dry_run, only, output, evaluate_metrics, python, launcher, jobs, gpus_per_run, time_limit, partition):
    """Run a grid of trainings (GRID.toml) resumably, one after another or several at once (--launcher), then tabulate their results."""
    from spriteforge import experiment as runner

    grid = runner.read_grid(grid_file, output=output, python=python)
    runs = runner.select(grid.runs, only)
    if evaluate_metrics:
        from spriteforge.evaluation.protocol import parse_metrics

        parse_metrics(evaluate_metrics)
    if dry_run:
        for line in runner.dry_run_lines(grid, runs, python):
            click.echo(line)
        try:
            runner.validate(grid)
        except SpriteForgeError as error:
            click.echo(f"warning: {error} (these runs would fail)", err=True)
        click.echo(f"{len(runs)} of {len(grid.runs)} runs; output in {grid.output}", err=True)
        return
    if launcher == "sequential" and (jobs > 1 or gpus_per_run or partition):
        raise SpriteForgeError("--jobs, --gpus-per-run and --partition apply with --launcher local or slurm")
    if partition and launcher != "slurm":
        raise SpriteForgeError("--partition applies with --launcher slurm")
    runner.validate(grid)
    launched = None if launcher == "sequential" else runner.Launcher(launcher, jobs=jobs, gpus=gpus_per_run, minutes=time_limit, partition=partition)
    failed = runner.execute(grid, runs, python=python, echo=lambda line: click.echo(line, err=True), evaluate=evaluate_metrics,
                            launcher=launched)
    csv_path, md_path, text = runner.write_results(grid)
    click.echo(text)
    click.echo(f"results: {csv_path} {md_path}", err=True)
    if failed:
        raise SpriteForgeError(f"{len(failed)} of {len(runs)} runs failed ({', '.join(failed[:3])}{', …' if len(failed) > 3 else ''}); see {grid.output / 'logs'}, fix, and run the same command again")


# -- export, palettes, studio ---------------------------------------------------------------------
@cli.command("export")
@click.argument("model_path", metavar="RUN")
@click.option("--format", "fmt", default="onnx", show_default=True, type=click.Choice(["onnx"]), help="what to write")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="file to write (model.onnx); a description goes beside it (.json)")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(13, 23), help="ONNX opset")
@click.option("--check", is_flag=True, help="run the graph in onnxruntime and print its max abs difference from PyTorch")
def export_command(model_path, fmt, out, opset, check):
    """Export the generator of RUN (run folder, checkpoint or `default`) for game engines and runtimes (ONNX)."""
    from spriteforge.export import compare_with_torch, export_onnx

    path, description = export_onnx(model_path, out, opset=opset)
    click.echo(f"{description['model']}: inputs {', '.join(description['inputs'])} -> {', '.join(description['outputs'])}", err=True)
    if description["note"]:
        click.echo(f"note: {description['note']}", err=True)
    if check:
        click.echo(f"onnxruntime vs PyTorch: max abs difference {compare_with_torch(model_path, path):.3g}", err=True)
    click.echo(str(path))


@cli.group()
def palette() -> None:
    """Read, convert and show palette files (GIMP .gpl, JASC .pal, hex .hex/.txt, PNG swatches)."""


@palette.command("convert")
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
def palette_convert(source, target):
    """Convert palette SOURCE to TARGET, the format named by TARGET's extension (.gpl, .pal, .hex, .txt, .png)."""
    from spriteforge.palettes import convert_palette

    path, count = convert_palette(source, target)
    click.echo(f"{count} colours", err=True)
    click.echo(str(path))


@palette.command("show")
@click.argument("source", type=click.Path(dir_okay=False))
def palette_show(source):
    """Print the colours of a palette file (or a PNG's opaque colours) as hex lines."""
    from spriteforge.palettes import palette_text, read_palette

    click.echo(palette_text(read_palette(source), "hex"), nl=False)


@cli.command()
@click.option("--port", default=7860, show_default=True, type=click.IntRange(0, 65535), help="port to serve on (0: any free port)")
@click.option("--host", default=None, help="address to bind (default 127.0.0.1, this computer only)")
@click.option("--no-browser", is_flag=True, help="do not open the page in a web browser")
@click.option("--model", "model_path", default="default", show_default=True, help="imputation model the Views tab starts with")
@click.option("--sampler", default=None, help="sampling run the New characters tab starts with")
def studio(port, host, no_browser, model_path, sampler):
    """SpriteForge Studio: a local web app for views, pixelation, new characters and downloads (pip install -e ".[studio]")."""
    from spriteforge.studio import serve

    serve(port=port, host=host, open_browser=not no_browser, model=model_path, sampler=sampler,
          echo=lambda line: click.echo(line, err=True))


MEMORY_FLAGS = {
    "train": "--batch or --capacity", "translate": "--scale or --styles", "sample": "-n or --scale",
    "denoise": "-n or --scale", "pixelate": "--size or --scale", "stylize": "--size or --scale",
    "evaluate": "--batch or --limit", "experiment": "the grid's batch or capacity", "data": "--count or --image-size",
}
"""What to lower when a command runs out of memory: flags each command has."""


def _command(argv: list[str] | None) -> str:
    words = sys.argv[1:] if argv is None else argv
    return next((word for word in words if word in cli.commands), "train")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning known errors into one line and an exit code."""
    from spriteforge import imageio

    lower = MEMORY_FLAGS.get(_command(argv), "--batch or --scale")
    try:
        cli.main(args=argv, prog_name="spriteforge", standalone_mode=False)
    except imageio.OutputTooLarge as error:
        click.echo(f"error: {error}; lower {lower}", err=True)
        sys.exit(1)
    except SpriteForgeError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except OSError as error:  # an I/O failure no nearer code turned into a message: the path and the cause
        click.echo(f"error: {error.filename or 'a file'}: {error.strerror or error}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except MemoryError:
        click.echo(f"error: out of memory; lower {lower}", err=True)
        sys.exit(1)
    except RuntimeError as error:  # after Abort, itself a RuntimeError: torch's out of memory
        if "out of memory" not in str(error):
            raise
        click.echo(f"error: out of memory; lower {lower}", err=True)
        sys.exit(1)
    except Exception as error:
        if type(error).__name__ != "SafetensorError":
            raise
        click.echo(f"error: cannot read or write a .safetensors file ({error})", err=True)
        sys.exit(1)
    finally:
        imageio.clear_protected()


def _guard_out(out, *inputs, flag: str = "--out") -> None:
    """Every command with an --out: its inputs may not be overwritten, by --out or any file written beside it."""
    from spriteforge import imageio

    imageio.protect_inputs(*inputs)
    if out is not None:
        imageio.refuse_overwriting_input(out, flag)
