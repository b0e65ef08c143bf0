"""`spriteforge evaluate` (and `api.evaluate`): load a model and its data, run the protocol of
`evaluation/protocol.py` (imputers) or measure its samples (`evaluation/samplers.py`), write evaluation.json
and .md (`evaluation/reports.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spriteforge import VIEWS
from spriteforge.data import registry
from spriteforge.data.batches import to_model_input
from spriteforge.data.loading import load_data
from spriteforge.devices import resolve_device
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation import metrics as m
from spriteforge.evaluation.inception import InceptionFeatures
from spriteforge.evaluation.protocol import FEATURE_METRICS, METRICS, run_protocol
from spriteforge.evaluation.reports import markdown, sampler_markdown, write_report
from spriteforge.evaluation.samplers import SAMPLER_METRICS, draw_samples, sample_metrics, view_conditional
from spriteforge.imageio import to_tensor
from spriteforge.inference import BUNDLED, load_for_inference
from spriteforge.models.baselines import BASELINES, baseline
from spriteforge.models.kinds import Imputer
from spriteforge.options import dataset_sources
from spriteforge.pixelart import SAMPLE_COLOURS, pixel_art_samples
from spriteforge.training.run_folder import RunFolder


def evaluate_location(model: str, *, datasets: list[str] | None = None, data_dir: str | None = None, split: str = "test",
                      selected: tuple[str, ...] = METRICS, baselines: bool = True, limit: int = 0, batch: int = 64,
                      device: str | torch.device = "cpu", resize: str = "bicubic", background: str = "white", image_size: int | None = None,
                      seed: int = 0, out: str | Path | None = None, progress=None) -> tuple[dict, tuple[Path, Path], str]:
    """Load MODEL (run folder, checkpoint, or baseline:copy / baseline:mirror) and its data, run the
    protocol (with the baselines unless told not to), write evaluation.json/.md; returns them and the Markdown."""
    imputers: dict = {}
    device = resolve_device(device)
    if not model.startswith("baseline:"):
        network, config = load_for_inference(model, device)
        if not isinstance(network, Imputer):
            return evaluate_sampler_location(model, network, config, datasets=datasets, data_dir=data_dir, split=split,
                                             selected=selected, baselines=baselines, limit=limit, device=device, resize=resize,
                                             background=background, image_size=image_size, seed=seed, out=out)
    if model.startswith("baseline:"):
        imputers[model] = baseline(model)
        channels, domains, size, sources, tests = 4, VIEWS, image_size or 64, list(datasets or ["synthetic"]), None
        validation_fraction, data_seed = 0.1, 0
        default_out = Path("evaluation") / model.replace(":", "-")
    else:
        imputers[config.model] = network
        channels, domains, size = config.output_channels, tuple(config.domains), config.image_size
        if image_size and image_size != size:
            raise SpriteForgeError(f"--image-size {image_size}: the model was trained at {size}; drop the flag")
        sources, tests = (list(datasets), None) if datasets else dataset_sources(config)
        sources = sources or ["synthetic"]
        data_dir = data_dir or config.data_dir or None
        validation_fraction, data_seed = config.validation_fraction, config.seed
        default_out = Path("evaluation") / model if model in BUNDLED else RunFolder.containing(model).evaluation
    if baselines and not model.startswith("baseline:"):
        if tuple(domains) != VIEWS:
            raise SpriteForgeError(f"the baselines need the domains {', '.join(VIEWS)}; pass --no-baselines for a model with domains {', '.join(domains)}")
        for name in BASELINES:
            imputers[f"baseline:{name}"] = baseline(name)
    if split not in ("test", "validation", "train"):
        raise SpriteForgeError(f"--split must be test, validation or train, got '{split}'")
    data = load_data(sources, domains=tuple(domains), image_size=size, data_dir=data_dir, seed=data_seed,
                     validation_fraction=validation_fraction, test_sources=tests)
    if len(data.domains) == 1:
        raise SpriteForgeError(f"{'+'.join(data.sources)} is a single folder of images; the protocol needs characters with views")
    characters = getattr(data, split)
    images = characters.images
    if limit and limit < len(images):
        picks = np.linspace(0, len(images) - 1, limit).round().astype(int)
        images = images[picks]
    extractor = None
    if FEATURE_METRICS & set(selected):
        extractor = InceptionFeatures(device=device, resize=resize, background=background)
    report = run_protocol(imputers, images, channels=channels, domains=tuple(domains), selected=selected, extractor=extractor,
                          device=device, batch=batch, seed=seed, progress=progress)
    shown = registry.expand(tests or sources) if split == "test" else registry.expand(sources)
    dataset_name = "+".join(s if s in registry.NAMED_DATASETS or s == "synthetic" else Path(s).name for s in shown)
    report = {"model": model, "dataset": dataset_name, "split": split, **report}
    folder = Path(out) if out else default_out / f"{dataset_name.replace('/', '_')}-{split}"
    title = f"{model} on {dataset_name} ({split}, {report['characters']} characters)"
    text = markdown(report, title)
    return report, write_report(report, folder, text=text), text


def evaluate_sampler_location(model_path: str, model, config, *, datasets=None, data_dir=None, split="test", selected=METRICS,
                              baselines=True, limit=0, device="cpu", resize="bicubic", background="white", image_size=None,
                              seed=0, out=None) -> tuple[dict, tuple[Path, Path], str]:
    """`spriteforge evaluate` for a model that draws new characters: as many seeded samples as the split
    has real images (the same views, for a view-conditional model), FID/KID against them (pooled, and
    per view for a view-conditional model) and the pixel-art statistics; the baseline is the training
    set itself (a sampler that copies training sprites), the floor FID can reach with this many images."""
    selected = tuple(metric for metric in selected if metric in SAMPLER_METRICS)
    if not selected:
        raise SpriteForgeError(f"{config.model} draws new characters: only {', '.join(SAMPLER_METRICS)} apply (L1 and SSIM need a true target)")
    size = type(model).data_size(config)  # a square side, or (height, width) for BigGAN
    if image_size and image_size != size:
        raise SpriteForgeError(f"--image-size {image_size}: the model was trained at {size}; drop the flag")
    if split not in ("test", "validation", "train"):
        raise SpriteForgeError(f"--split must be test, validation or train, got '{split}'")
    sources, tests = (list(datasets), None) if datasets else dataset_sources(config)
    data = load_data(sources or ["synthetic"], domains=tuple(config.domains), image_size=size,
                     data_dir=data_dir or config.data_dir or None, seed=config.seed,
                     validation_fraction=config.validation_fraction, test_sources=tests)
    def flat(characters: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if limit and limit < len(characters):
            characters = characters[np.linspace(0, len(characters) - 1, limit).round().astype(int)]
        views = to_model_input(torch.from_numpy(np.ascontiguousarray(characters)), config.output_channels)
        domain = torch.arange(views.shape[1]).repeat(len(views))
        return views.flatten(0, 1), domain

    real, real_views = flat(getattr(data, split).images)
    if len(real) < 2:
        raise SpriteForgeError(f"the {split} split has fewer than 2 images")
    conditional = view_conditional(model)
    fake = draw_samples(model, len(real), real_views if conditional else None, device, seed)
    extractor = None
    if FEATURE_METRICS & set(selected):
        extractor = InceptionFeatures(device=device, resize=resize, background=background)
    # As drawn (the generator's raw output), and as `spriteforge sample` writes them (pixel art by construction).
    snapped_name = f"{config.model} (pixel art, {SAMPLE_COLOURS} colours)"
    systems: dict = {config.model: {}, snapped_name: {}}
    if fake.shape[1] == 4:
        snapped = to_tensor(pixel_art_samples(m.to_uint8(fake), SAMPLE_COLOURS, seed))
    else:
        del systems[snapped_name]
    for name, images in ((config.model, fake), (snapped_name, snapped if snapped_name in systems else None)):
        if images is None:
            continue
        systems[name]["all"] = sample_metrics(images, real, selected, extractor, seed)
        if conditional:
            for index, view in enumerate(config.domains):
                chosen = real_views == index
                systems[name][view] = sample_metrics(images[chosen], real[chosen], selected, extractor, seed)
    if baselines and split != "train" and len(data.train):
        train, _ = flat(data.train.images)
        picks = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: len(real)]
        systems["baseline:train-set"] = {"all": sample_metrics(train[picks], real, selected, extractor, seed)}
    shown = registry.expand(tests or sources or ["synthetic"]) if split == "test" else registry.expand(sources or ["synthetic"])
    dataset_name = "+".join(s if s in registry.NAMED_DATASETS or s == "synthetic" else Path(s).name for s in shown)
    report = {"model": model_path, "dataset": dataset_name, "split": split, "kind": "sampler", "images": int(len(real)),
              "view_conditional": conditional, "metrics": list(selected), "seed": seed, "systems": systems}
    if getattr(model, "truncates", False):
        report["truncation"] = config.get("truncation")  # the latents `spriteforge sample` draws, as the seed's FID used
    if extractor is not None:
        report["fid_convention"] = {**extractor.convention(), "samples_per_set": int(len(real))}
    title = f"{config.model} samples vs {dataset_name} ({split}, {len(real)} images)"
    folder = Path(out) if out else RunFolder.containing(model_path).evaluation / f"{dataset_name.replace('/', '_')}-{split}"
    text = sampler_markdown(report, title)
    return report, write_report(report, folder, text=text), text
