"""How consistent are brand-new four-view characters (`spriteforge sample --sheet`)?

A sampler draws one view per character; the imputer draws the other three. Printed per drawn view:
how often the independent view classifier (evaluation/views.py, never a training signal) labels the
drawn view as the slot it fills, the share of its opaque pixels whose colour appears in the sampled
view (palette overlap), and its opaque area relative to the sampled view. Also: where the samples
were placed (the classifier's reading of each unconditional sample), and the time per character.

    python benchmarks/sample_sheets.py [SAMPLER] [--imputer default] [-n 256] [--save docs/sample-sheets.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spriteforge import api, imageio
from spriteforge.evaluation.views import classify_views
from spriteforge.sampling import new_characters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sampler", nargs="?", default="default")
    parser.add_argument("--imputer", default="default")
    parser.add_argument("-n", "--count", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="also write the first 8 sheets to this PNG (scale 2)")
    args = parser.parse_args()

    from spriteforge.inference import resolve_sampler

    sampler, imputer = api.load_model(resolve_sampler(args.sampler)), api.load_model(args.imputer)
    start = time.perf_counter()
    characters, placed = new_characters(sampler, imputer, args.count, seed=args.seed)
    seconds = time.perf_counter() - start
    views = list(imputer.views)
    labels = classify_views(imageio.to_tensor(characters.reshape(-1, *characters.shape[2:]))).numpy().reshape(len(characters), len(views))

    print(f"{args.count} characters, sampler {args.sampler}, imputer {args.imputer}: {1000 * seconds / args.count:.0f} ms per character "
          "(sampling, classifying, completing)")
    print("samples placed at: " + ", ".join(f"{name} {np.mean(placed == index):.1%}" for index, name in enumerate(views)))
    print()
    print("| drawn view | characters | classified as its slot | palette overlap with the sample | opaque area / sample's |")
    print("|---|---:|---:|---:|---:|")
    totals = []
    for index, name in enumerate(views):
        rows = np.flatnonzero(placed != index)
        correct, overlap, area = [], [], []
        for row in rows:
            drawn, source = characters[row, index], characters[row, placed[row]]
            opaque = drawn[..., 3] == 255
            given = {tuple(c) for c in source[source[..., 3] == 255][:, :3].tolist()}
            colours = [tuple(c) for c in drawn[opaque][:, :3].tolist()]
            overlap.append(np.mean([c in given for c in colours]) if colours else 1.0)
            area.append(opaque.sum() / max(1, (source[..., 3] == 255).sum()))
            correct.append(labels[row, index] == index)
        totals += correct
        print(f"| {name} | {len(rows)} | {np.mean(correct):.3f} | {np.mean(overlap):.3f} | {np.mean(area):.2f} |")
    print(f"| all drawn views | {len(totals)} | {np.mean(totals):.3f} | | |")
    if args.save:
        sheet = imageio.grid([list(character) for character in characters[:8]], padding=0)
        print(f"\n{imageio.save_png(sheet, args.save, 2)}")


if __name__ == "__main__":
    main()
