"""The evaluation reports: the protocol's and the samplers' Markdown tables, and evaluation.json/.md."""

from __future__ import annotations

import json
import math
from pathlib import Path

from spriteforge.evaluation.case_list import LETTERS
from spriteforge.imageio import atomic_write

COLUMNS = [("fid", "FID", "{:.3f}"), ("kid", "KID×10³", "{:.2f}"), ("l1", "L1", "{:.4f}"), ("ssim", "SSIM", "{:.4f}"),
           ("view", "view", "{:.3f}"), ("palette", "palette", "{:.3f}"), ("colour_ratio", "colours/true", "{:.2f}"),
           ("alpha_binary", "α binary", "{:.3f}"), ("iou", "IoU", "{:.3f}"), ("holes", "holes", "{:.2f}"),
           ("holes_truth", "holes (real)", "{:.2f}"),
           ("specks", "specks", "{:.2f}"), ("specks_truth", "specks (real)", "{:.2f}"), ("opaque_ratio", "opaque/true", "{:.3f}")]


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
    compared = [c for c in present if c[0] in ("fid", "kid", "l1", "view")]
    if len(names) > 1 and compared:
        header = [f"{name} {c[1]}" for c in compared for name in names]
        lines += ["", "### Every case, all systems", "",
                  "| target | given | missing | " + " | ".join(header) + " |",
                  "|---|---|---:|" + "---:|" * len(header)]
        for index, row in enumerate(systems[first]["cases"]):
            given = "+".join(LETTERS.get(g, g) for g in row["given"])
            cells = [_cell(systems[name]["cases"][index], c[0], c[2]) for c in compared for name in names]
            lines.append(f"| {row['target']} | {given} | {row['missing']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, folder: Path, title: str = "", text: str | None = None) -> tuple[Path, Path]:
    """evaluation.json (NaN written as null) and evaluation.md: `text`, or else the protocol's `markdown`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "evaluation.json", folder / "evaluation.md"
    with atomic_write(paths[0]) as temporary:
        temporary.write_text(json.dumps(_finite(report), indent=2) + "\n")
    with atomic_write(paths[1]) as temporary:
        temporary.write_text(markdown(report, title) if text is None else text)
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
