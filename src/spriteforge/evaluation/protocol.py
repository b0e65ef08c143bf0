"""The publication protocol: every target view × every combination of given views (28 cases).

For each case the target view of every test character is drawn from the given views; FID and KID
compare the set of drawn targets with the set of real targets (both through the convention of
``inception.py``); L1, SSIM and the pixel-art metrics compare each drawn target with its real one.
`view` (pose correctness) is the share of drawn targets the shipped view classifier (``views.py``)
labels as the target view: a front copied into the back slot counts as wrong.
Aggregates per number of missing views are plain means over the cases (4 cases with 1 view missing,
12 with 2, 12 with 3), as in the original's tables. The trivial baselines (copy a given view, mirror
the other side view) are imputers like any model and run on the same cases.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
import torch

from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError
from spriteforge.data.batches import to_model_input
from spriteforge.evaluation import metrics as m
from spriteforge.evaluation.inception import InceptionFeatures
from spriteforge.evaluation.views import WEIGHTS, view_score
from spriteforge.imageio import atomic_write
from spriteforge.models.views import evaluation_cases

METRICS = ("fid", "kid", "l1", "ssim", "view", "palette")
"""Metric groups `--metrics` selects from; `palette` is every pixel-art metric, `view` pose correctness."""
FEATURE_METRICS = {"fid", "kid"}
LETTERS = {"back": "b", "left": "l", "front": "f", "right": "r"}

@dataclass(frozen=True)
class Case:
    """Draw view `target` from the views `given`."""

    target: int
    given: tuple[int, ...]
    domains: int = 4

    @property
    def missing(self) -> int:
        return self.domains - len(self.given)

    def label(self, names: tuple[str, ...]) -> str:
        return "+".join(LETTERS.get(names[d], names[d]) for d in self.given)


def cases(domain_count: int = 4) -> list[Case]:
    """Per target: single given views, then pairs, …, then all others (28 cases for 4 views)."""
    result = []
    for target in range(domain_count):
        others = [d for d in range(domain_count) if d != target]
        for size in range(1, len(others) + 1):
            for given in itertools.combinations(others, size):
                result.append(Case(target, given, domain_count))
    return result


# -- running --------------------------------------------------------------------------------------
def parse_metrics(text: str | list[str]) -> tuple[str, ...]:
    parts = text if isinstance(text, (list, tuple)) else str(text).replace(",", " ").split()
    if not parts:
        raise SpriteForgeError(f"--metrics needs at least one of {', '.join(METRICS)}")
    unknown = [p for p in parts if p not in METRICS]
    if unknown:
        raise SpriteForgeError(f"--metrics: unknown metric '{unknown[0]}'; choose from {', '.join(METRICS)} (comma-separated)")
    return tuple(dict.fromkeys(parts))


def given_chunks(views: torch.Tensor, case: Case, device, batch: int):
    """Batches of the characters with only the case's given views (the others zeroed) and their mask."""
    for start in range(0, len(views), batch):
        chunk = views[start : start + batch].to(device)
        available = torch.zeros(len(chunk), views.shape[1], dtype=torch.bool, device=device)
        available[:, list(case.given)] = True
        yield chunk * available[:, :, None, None, None], available  # a model never sees a view that is not given


@torch.no_grad()
def generate(imputer, views: torch.Tensor, case: Case, device, batch: int = 64, drawn_sets: dict | None = None) -> torch.Tensor:
    """The target view of every character drawn from the case's given views: [N, C, H, W] on CPU.

    An imputer that draws every view in one pass (`impute_all`) runs once per set of given views:
    `drawn_sets` keeps its drawings (uint8, lossless for its exact pixels) for the other targets.
    """
    if drawn_sets is not None and hasattr(imputer, "impute_all") and views.shape[2] == 4:
        if case.given not in drawn_sets:
            drawn_sets[case.given] = np.concatenate([m.to_uint8(imputer.impute_all(masked, available).float().cpu())
                                                     for masked, available in given_chunks(views, case, device, batch)])
        return torch.from_numpy(drawn_sets[case.given][:, case.target]).float().movedim(-1, -3) / 127.5 - 1
    outputs = []
    for masked, available in given_chunks(views, case, device, batch):
        target = torch.full((len(masked),), case.target, dtype=torch.long, device=device)
        outputs.append(imputer.impute(masked, available, target).float().cpu())
    return torch.cat(outputs)


def case_metrics(fake: torch.Tensor, views: torch.Tensor, case: Case, selected: tuple[str, ...], extractor=None,
                 real_features: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Every selected metric of one case; fake [N, C, H, W], views [N, D, C, H, W] (floats in [-1, 1])."""
    real = views[:, case.target]
    result: dict[str, float] = {}
    if "l1" in selected:
        result["l1"] = float(m.l1_per_image(fake, real).mean())
    if "ssim" in selected:
        result["ssim"] = float(m.ssim_per_image(fake, real).mean())
    if "view" in selected:
        result["view"] = view_score(fake, case.target)
    fake8 = m.to_uint8(fake)
    if "palette" in selected:
        views8, real8 = m.to_uint8(views), m.to_uint8(real)
        available = np.zeros(views.shape[:2], bool)
        available[:, list(case.given)] = True
        result["palette"] = _nanmean(m.palette_adherence(fake8, views8, available))
        counts, truth = m.colour_counts(fake8), m.colour_counts(real8)
        result["colours"] = float(counts.mean())
        result["colours_truth"] = float(truth.mean())
        result["colour_ratio"] = _nanmean(np.where(truth > 0, counts / np.maximum(truth, 1), np.nan))
        result["alpha_binary"] = float(m.alpha_binarity(fake8).mean())
        result["iou"] = float(m.silhouette_iou(fake8, real8).mean())
        result["holes"] = float(m.enclosed_holes(fake8).mean())
        result["holes_truth"] = float(m.enclosed_holes(real8).mean())
        drawn, truth = m.opaque_counts(fake8), m.opaque_counts(real8)
        result["opaque"], result["opaque_truth"] = float(drawn.mean()), float(truth.mean())
        result["opaque_ratio"] = float(drawn.sum() / truth.sum()) if truth.sum() else float("nan")
    if FEATURE_METRICS & set(selected):
        if extractor is None or real_features is None:
            raise ValueError(f"{', '.join(sorted(FEATURE_METRICS))} need the Inception extractor and the real views' features")
        features = extractor(fake8)
        if "fid" in selected:
            result["fid"] = m.frechet_distance(real_features, features)
        if "kid" in selected:
            result["kid"], result["kid_std"] = m.kernel_inception_distance(real_features, features, seed=seed)
    return result


def _nanmean(values: ArrayLike) -> float:
    values = np.asarray(values, float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def run_protocol(imputers: dict, images: np.ndarray, *, channels: int = 4, domains: tuple[str, ...] = VIEWS,
                 selected: tuple[str, ...] = METRICS, extractor=None, device="cpu", batch: int = 64, seed: int = 0,
                 progress=None) -> dict:
    """Run every case for every imputer on characters `images` (uint8 [N, D, H, W, 4]); a JSON-ready report."""
    if len(images) < 2:
        raise SpriteForgeError(f"the protocol needs at least 2 characters, got {len(images)}")
    if FEATURE_METRICS & set(selected) and extractor is None:
        extractor = InceptionFeatures(device=device)
    views = to_model_input(torch.from_numpy(np.ascontiguousarray(images)), channels)
    all_cases = cases(views.shape[1])
    skipped_metrics = {}
    if "view" in selected:
        reason = view_metric_unavailable(domains, views.shape[-2:])
        if reason:
            selected = tuple(metric for metric in selected if metric != "view")
            skipped_metrics["view"] = reason
            if not selected:
                raise SpriteForgeError(f"--metrics view: {reason}")
    real_features = {}
    if FEATURE_METRICS & set(selected):
        for target in range(views.shape[1]):
            real_features[target] = extractor(m.to_uint8(views[:, target]))
    systems = {}
    compared: list[int] | None = None  # the cases the first system draws; every mean is taken over them
    for name, imputer in imputers.items():
        started = time.perf_counter()
        rows, skipped = [], []
        drawn_sets: dict[tuple[int, ...], np.ndarray] = {}
        for index, case in enumerate(all_cases):
            row = {"target": domains[case.target], "given": [domains[d] for d in case.given], "missing": case.missing}
            if drawable(imputer, case):
                fake = generate(imputer, views, case, device, batch, drawn_sets)
                row.update(case_metrics(fake, views, case, selected, extractor, real_features.get(case.target), seed))
            else:
                skipped.append(index)
            rows.append(row)
            if progress:
                progress(name, index + 1, len(all_cases))
        if len(skipped) == len(all_cases):
            raise SpriteForgeError(f"{name} draws none of the {len(all_cases)} cases of the protocol")
        keys = [k for k in next(r for i, r in enumerate(rows) if i not in skipped) if k not in ("target", "given", "missing")]
        for index in skipped:  # a case the model cannot draw (pix2pix: one source → target pair) is NaN, never a guess
            rows[index].update({key: float("nan") for key in keys}, drawn=False)
        if compared is None:
            compared = [i for i in range(len(all_cases)) if i not in skipped]
        systems[name] = {"cases": rows, "by_missing": aggregate([rows[i] for i in compared]),
                         "cases_drawn": len(all_cases) - len(skipped), "seconds": round(time.perf_counter() - started, 1)}
    assert compared is not None  # set by the first system (there is at least one)
    report = {
        "characters": int(len(images)),
        "domains": list(domains),
        "channels": channels,
        "metrics": list(selected),
        "cases": len(all_cases),
        "means_over": len(compared),
        "systems": systems,
    }
    if skipped_metrics:
        report["skipped_metrics"] = skipped_metrics
    if "view" in selected:
        report["view_classifier"] = {"weights": WEIGHTS.name, "accuracy_on_real_views": {
            domains[d]: view_score(views[:, d], d) for d in range(views.shape[1])}}
    if extractor is not None and FEATURE_METRICS & set(selected):
        report["fid_convention"] = {**extractor.convention(), "samples_per_set": int(len(images)),
                                    "kid": f"unbiased MMD² (torchmetrics), cubic polynomial kernel, 100 subsets of {min(1000, len(images))}"}
    return report


def view_metric_unavailable(domains, size) -> str | None:
    """Why pose correctness cannot be measured on these data (None when it can)."""
    if tuple(domains) != VIEWS:
        return f"the view classifier knows the domains {', '.join(VIEWS)}, not {', '.join(domains)}"
    if tuple(size) != (64, 64):
        return f"the view classifier takes 64×64 sprites, not {size[1]}×{size[0]}"
    return None


def drawable(imputer, case: Case) -> bool:
    """Whether the imputer draws this case (models without `can_impute` draw every case)."""
    if not hasattr(imputer, "can_impute"):
        return True
    available = torch.zeros(1, case.domains, dtype=torch.bool)
    available[0, list(case.given)] = True
    return bool(imputer.can_impute(available, torch.tensor([case.target])).all())


def aggregate(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Plain means of each metric over the cases with the same number of missing views, and over all."""
    keys = [k for k in rows[0] if k not in ("target", "given", "missing", "drawn")]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row["missing"]), []).append(row)
    groups = dict(sorted(groups.items()))
    groups["all"] = rows
    return {name: {k: _nanmean([r[k] for r in group]) for k in keys} for name, group in groups.items()}


# -- reports --------------------------------------------------------------------------------------
COLUMNS = [("fid", "FID", "{:.3f}"), ("kid", "KID×10³", "{:.2f}"), ("l1", "L1", "{:.4f}"), ("ssim", "SSIM", "{:.4f}"),
           ("view", "view", "{:.3f}"), ("palette", "palette", "{:.3f}"), ("colour_ratio", "colours/true", "{:.2f}"),
           ("alpha_binary", "α binary", "{:.3f}"), ("iou", "IoU", "{:.3f}"), ("holes", "holes", "{:.2f}"),
           ("holes_truth", "holes (real)", "{:.2f}"), ("opaque_ratio", "opaque/true", "{:.3f}")]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = fmt.format(value * 1000 if key == "kid" else value)
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.000"


def markdown(report: dict, title: str = "") -> str:
    """The report as Markdown: per-case table of the first system, means per missing count, comparison."""
    systems = report["systems"]
    names = list(systems)
    first = names[0]
    present = [c for c in COLUMNS if c[0] in systems[first]["cases"][0]]
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines.append(f"{report['characters']} characters; metrics: {', '.join(report['metrics'])}.")
    if "fid_convention" in report:
        c = report["fid_convention"]
        lines.append(f"FID/KID: {c['network']}, RGB on {c['background']}, {c['resize']}, {c['input']}, N = {c['samples_per_set']} per set.")
    if "view_classifier" in report:
        accuracy = report["view_classifier"]["accuracy_on_real_views"]
        lines.append("view: share of drawn views the view classifier labels as the target view (its accuracy on the real views "
                     "here: " + ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items()) + ").")
    for metric, reason in report.get("skipped_metrics", {}).items():
        lines.append(f"{metric}: not measured ({reason}).")
    lines += ["", f"### {first}: every case", "",
              "| target | given | missing | " + " | ".join(c[1] for c in present) + " |",
              "|---|---|---:|" + "---:|" * len(present)]
    for row in systems[first]["cases"]:
        given = "+".join(LETTERS.get(g, g) for g in row["given"])
        lines.append(f"| {row['target']} | {given} | {row['missing']} | " + " | ".join(_cell(row, *c[::2]) for c in present) + " |")
    if report.get("means_over", report["cases"]) < report["cases"]:
        lines.append(f"{first} draws {report['means_over']} of the {report['cases']} cases; every mean below, the "
                     "baselines' too, is taken over those cases only.")
    lines += ["", "### Means per number of missing views", "",
              "| system | missing | " + " | ".join(c[1] for c in present) + " |",
              "|---|---|" + "---:|" * len(present)]
    for name in names:
        for group, values in systems[name]["by_missing"].items():
            lines.append(f"| {name} | {group} | " + " | ".join(_cell(values, *c[::2]) for c in present) + " |")
    if len(names) > 1:
        compared = [c for c in present if c[0] in ("fid", "l1", "view")]
        header = [f"{name} {c[1]}" for c in compared for name in names]
        lines += ["", "### Every case, all systems", "",
                  "| target | given | missing | " + " | ".join(header) + " |",
                  "|---|---|---:|" + "---:|" * len(header)]
        for index, row in enumerate(systems[first]["cases"]):
            given = "+".join(LETTERS.get(g, g) for g in row["given"])
            cells = [_cell(systems[name]["cases"][index], c[0], c[2]) for c in compared for name in names]
            lines.append(f"| {row['target']} | {given} | {row['missing']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, folder: Path, title: str = "") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "evaluation.json", folder / "evaluation.md"
    with atomic_write(paths[0]) as temporary:
        temporary.write_text(json.dumps(_finite(report), indent=2) + "\n")
    with atomic_write(paths[1]) as temporary:
        temporary.write_text(markdown(report, title))
    return paths


def _finite(value):
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# -- training-time FID (for the engine's --callback-evaluate-fid) -----------------------------------
@torch.no_grad()
def evaluate_fid(model, images: torch.Tensor, device, extractor, seed: int = 0, given: int | None = None) -> dict[str, float]:
    """FID and KID of one evaluation split: distinct characters [N, D, C, H, W] in [-1, 1], per character
    one seeded target view and `given` other views (the cases of training-time L1); the real set is the
    same characters' target views. Every channel is used as it should be: RGBA → RGB over the
    extractor's background (the original mixed channels up as (R, B, A))."""
    given = given or model.evaluation_given_views
    available, targets = evaluation_cases(len(images), images.shape[1], given, seed)
    fakes = []
    for start in range(0, len(images), 64):
        chunk = images[start : start + 64].to(device)
        mask = available[start : start + 64].to(device)
        fakes.append(model.impute(chunk * mask[:, :, None, None, None], mask, targets[start : start + 64].to(device)).float().cpu())
    fake = torch.cat(fakes)
    real = images[torch.arange(len(images)), targets].float().cpu()
    real_features, fake_features = extractor(m.to_uint8(real)), extractor(m.to_uint8(fake))
    kid, _ = m.kernel_inception_distance(real_features, fake_features, seed=seed)
    return {"fid": m.frechet_distance(real_features, fake_features), "kid": kid}


@torch.no_grad()
def evaluate_sample_fid(model, images: torch.Tensor, device, extractor, seed: int = 0) -> dict[str, float]:
    """FID and KID of a sampling model: as many samples (seeded noise) as there are real images of the
    split's characters [N, D, C, H, W], against those real images (every view)."""
    real = images.flatten(0, 1).float()
    generator = torch.Generator().manual_seed(seed)
    fakes = [model.sample(model.noise(min(64, len(real) - start), generator, device)).float().cpu()
             for start in range(0, len(real), 64)]
    real_features, fake_features = extractor(m.to_uint8(real)), extractor(m.to_uint8(torch.cat(fakes)))
    kid, _ = m.kernel_inception_distance(real_features, fake_features, seed=seed)
    return {"fid": m.frechet_distance(real_features, fake_features), "kid": kid}


# -- sampling models (new characters) ---------------------------------------------------------------
SAMPLER_METRICS = ("fid", "kid", "palette")


def view_conditional(model) -> bool:
    """Whether the sampler draws a chosen view (cdcgan, biggan …) rather than any view."""
    return int(getattr(model, "view_count", 0) or 0) > 1


@torch.no_grad()
def draw_samples(model, count: int, views: torch.Tensor | None, device, seed: int, batch: int = 64) -> torch.Tensor:
    """`count` seeded samples [N, C, H, W] on CPU; row i asks for view `views[i]` when given."""
    generator = torch.Generator().manual_seed(seed)
    fakes = []
    for start in range(0, count, batch):
        size = min(batch, count - start)
        noise = model.noise(size, generator).to(device)
        asked = None if views is None else views[start : start + size].to(device)
        fakes.append(model.sample(noise, asked).float().cpu())
    return torch.cat(fakes)


def sample_metrics(fake: torch.Tensor, real: torch.Tensor, selected, extractor, seed: int) -> dict[str, float]:
    """FID/KID of a set of samples against a set of real images, plus the pixel-art statistics of both."""
    row: dict[str, float] = {"images": int(len(fake))}
    fake_uint8, real_uint8 = m.to_uint8(fake), m.to_uint8(real)
    if FEATURE_METRICS & set(selected):
        real_features = extractor(real_uint8)
        fake_features = extractor(fake_uint8)
        if "fid" in selected:
            row["fid"] = m.frechet_distance(real_features, fake_features)
        if "kid" in selected:
            row["kid"], _ = m.kernel_inception_distance(real_features, fake_features, seed=seed)
    if "palette" in selected:  # uint8 RGBA [N, H, W, 4] (3-channel models come back opaque)
        row["alpha_binary"] = float(np.mean(m.alpha_binarity(fake_uint8)))
        row["colours"] = float(np.mean(m.colour_counts(fake_uint8)))
        row["real_colours"] = float(np.mean(m.colour_counts(real_uint8)))
    return row


def sampler_markdown(report: dict, title: str = "") -> str:
    columns = [("fid", "FID", "{:.2f}"), ("kid", "KID×10³", "{:.2f}"), ("alpha_binary", "α binary", "{:.3f}"),
               ("colours", "colours/sprite", "{:.1f}"), ("real_colours", "real colours/sprite", "{:.1f}")]
    first = next(iter(report["systems"].values()))["all"]
    present = [c for c in columns if c[0] in first]
    lines = [f"## {title}", ""] if title else []
    lines.append(f"{report['images']} samples against {report['images']} real images"
                 + (" (each sample asked for the view of its real image)." if report["view_conditional"] else "."))
    if "fid_convention" in report:
        c = report["fid_convention"]
        lines.append(f"FID/KID: {c['network']}, RGB on {c['background']}, {c['resize']}, {c['input']}, N = {c['samples_per_set']} per set.")
    lines += ["", "| system | views | images | " + " | ".join(c[1] for c in present) + " |", "|---|---|---:|" + "---:|" * len(present)]
    for name, groups in report["systems"].items():
        for group, row in groups.items():
            lines.append(f"| {name} | {group} | {row['images']} | " + " | ".join(_cell(row, c[0], c[2]) for c in present) + " |")
    return "\n".join(lines) + "\n"
