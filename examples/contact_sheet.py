"""A contact sheet of an imputation model: per character the true views, the views drawn from the front
alone, and the views drawn from the front and the left (each row: back, left, front, right).

    python examples/contact_sheet.py --out sheet.png                         # 8 test characters of `all`
    python examples/contact_sheet.py --datasets tiny synthetic --out docs/contact-sheet.png
    python examples/contact_sheet.py --given back left --out fronts.png      # drawn from the back alone, the left alone

Characters are picked evenly from each dataset's test split (seeded), `--per-dataset` of each. The RPG
Maker and miscellaneous art is research-use only: do not publish a sheet that shows it.
"""

from __future__ import annotations

import argparse

import numpy as np

from spriteforge import imageio
from spriteforge.data.loading import load_data
from spriteforge.inference import load_for_inference
from spriteforge.drawing import draw_characters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--datasets", nargs="+", default=["tiny", "rm2k", "rmxp", "rmvx", "misc"])
    parser.add_argument("--per-dataset", type=int, default=0, help="characters per dataset (default: 8 in all, spread over the datasets)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--given", nargs="+", default=["front", "front+left"],
                        help="the given views of each drawn set, e.g. front  front+left  back  left (default: front, front+left)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model, config = load_for_inference(args.model)
    names = list(config.domains)
    unknown = sorted({view for views in args.given for view in views.split("+")} - set(names))
    if unknown:
        parser.error(f"--given: no view named {', '.join(unknown)} (the views are {', '.join(names)})")
    given_sets = [[names.index(view) for view in views.split("+")] for views in args.given]
    per = args.per_dataset or -(-8 // len(args.datasets))
    rng = np.random.default_rng(args.seed)
    characters = []
    for name in args.datasets:
        test = load_data([name], domains=tuple(config.domains), image_size=config.image_size, seed=config.seed).test.images
        characters.append(test[np.sort(rng.choice(len(test), min(per, len(test)), replace=False))])
    characters = np.concatenate(characters)
    if not args.per_dataset:  # 8 in all, spread over the datasets in order
        characters = characters[np.linspace(0, len(characters) - 1, min(8, len(characters))).round().astype(int)]
    rows = []
    for character in characters:
        row = list(character)
        for given in given_sets:
            available = np.zeros((1, 4), bool)
            available[0, given] = True
            row += list(draw_characters(model, config, character[None] * available[0, :, None, None, None], available)[0])
        rows.append(row)
    path = imageio.save_png(imageio.grid(rows, padding=2), args.out, args.scale)
    print(f"{path}: {len(rows)} characters; per row the truth, then drawn from " + ", from ".join(args.given))


if __name__ == "__main__":
    main()
