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

import time

import numpy as np
from numpy.typing import ArrayLike
import torch

from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation import metrics as m
from spriteforge.evaluation.case_list import Case, CharacterViews, cases, drawable, given_chunks
from spriteforge.evaluation.inception import InceptionFeatures
from spriteforge.evaluation.views import WEIGHTS, view_score

METRICS = ("fid", "kid", "l1", "ssim", "view", "palette")
"""Metric groups `--metrics` selects from; `palette` is every pixel-art metric, `view` pose correctness."""
FEATURE_METRICS = {"fid", "kid"}


def parse_metrics(text: str | list[str]) -> tuple[str, ...]:
    parts = text if isinstance(text, (list, tuple)) else str(text).replace(",", " ").split()
    if not parts:
        raise SpriteForgeError(f"--metrics needs at least one of {', '.join(METRICS)}")
    unknown = [p for p in parts if p not in METRICS]
    if unknown:
        raise SpriteForgeError(f"--metrics: unknown metric '{unknown[0]}'; choose from {', '.join(METRICS)} (comma-separated)")
    return tuple(dict.fromkeys(parts))


@torch.no_grad()
def generate(imputer, views: CharacterViews, case: Case, device, batch: int = 64, drawn_sets: dict | None = None) -> torch.Tensor:
    """The target view of every character drawn from the case's given views: [N, C, H, W] on CPU.

    An imputer that draws every view in one pass (`impute_all`) runs once per set of given views:
    `drawn_sets` keeps its drawings of the latest set (uint8, lossless for its exact pixels) for the other
    targets; run the cases grouped by given views (`run_protocol` does) and each set is drawn once.
    """
    if drawn_sets is not None and hasattr(imputer, "impute_all") and views.channels == 4:
        if case.given not in drawn_sets:
            drawn_sets.clear()  # one set at a time: all 14 sets of the pooled test split would hold 1.9 GB
            drawn_sets[case.given] = np.concatenate([m.to_uint8(imputer.impute_all(masked, available).float().cpu())
                                                     for masked, available in given_chunks(views, case, device, batch)])
        return torch.from_numpy(drawn_sets[case.given][:, case.target]).float().movedim(-1, -3) / 127.5 - 1
    outputs = []
    for masked, available in given_chunks(views, case, device, batch):
        target = torch.full((len(masked),), case.target, dtype=torch.long, device=device)
        outputs.append(imputer.impute(masked, available, target).float().cpu())
    return torch.cat(outputs)


def case_metrics(fake: torch.Tensor, views: CharacterViews, case: Case, selected: tuple[str, ...], extractor=None,
                 real_features: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Every selected metric of one case; fake [N, C, H, W] (floats in [-1, 1]), the characters' real views."""
    real = views.view(case.target)
    result: dict[str, float] = {}
    if "l1" in selected:
        result["l1"] = float(m.l1_per_image(fake, real).mean())
    if "ssim" in selected:
        result["ssim"] = float(m.ssim_per_image(fake, real).mean())
    if "view" in selected:
        result["view"] = view_score(fake, case.target)
    fake8 = m.to_uint8(fake)
    if "palette" in selected:
        views8, real8 = views.uint8(), m.to_uint8(real)
        available = np.zeros(views8.shape[:2], bool)
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
        result["specks"] = float(m.stray_specks(fake8).mean())
        result["specks_truth"] = float(m.stray_specks(real8).mean())
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
    views = CharacterViews(images, channels)
    all_cases = cases(views.domains)
    skipped_metrics = {}
    if "view" in selected:
        reason = view_metric_unavailable(domains, views.size)
        if reason:
            selected = tuple(metric for metric in selected if metric != "view")
            skipped_metrics["view"] = reason
            if not selected:
                raise SpriteForgeError(f"--metrics view: {reason}")
    real_features = {}
    if FEATURE_METRICS & set(selected):
        for target in range(views.domains):
            real_features[target] = extractor(m.to_uint8(views.view(target)))
    systems = {}
    compared: list[int] | None = None  # the cases the first system draws; every mean is taken over them
    for name, imputer in imputers.items():
        started = time.perf_counter()
        skipped: list[int] = []
        drawn_sets: dict[tuple[int, ...], np.ndarray] = {}
        rows: list[dict] = [{} for _ in all_cases]
        if progress:
            progress(name, 0, len(all_cases))  # a bar starts with the system, not after its first case
        # cases that share their given views run one after another, so a one-pass imputer draws each set once
        for done, index in enumerate(sorted(range(len(all_cases)), key=lambda i: all_cases[i].given), start=1):
            case = all_cases[index]
            row = {"target": domains[case.target], "given": [domains[d] for d in case.given], "missing": case.missing}
            if drawable(imputer, case):
                fake = generate(imputer, views, case, device, batch, drawn_sets)
                row.update(case_metrics(fake, views, case, selected, extractor, real_features.get(case.target), seed))
            else:
                skipped.append(index)
            rows[index] = row
            if progress:
                progress(name, done, len(all_cases))
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
            domains[d]: view_score(views.view(d), d) for d in range(views.domains)}}
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


def aggregate(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Plain means of each metric over the cases with the same number of missing views, and over all."""
    keys = [k for k in rows[0] if k not in ("target", "given", "missing", "drawn")]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row["missing"]), []).append(row)
    groups = dict(sorted(groups.items()))
    groups["all"] = rows
    return {name: {k: _nanmean([r[k] for r in group]) for k in keys} for name, group in groups.items()}
