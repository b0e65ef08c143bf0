"""`spriteforge export RUN --format onnx`: a trained generator as an ONNX graph for game engines and runtimes.

Imputers (models that draw missing views) export as

    views [B, D, C, H, W] float32 in [-1, 1] (missing views any value), available [B, D] bool
        → images [B, D, C, H, W] float32 in [-1, 1]: every view, the given ones as given.

The turnaround model's graph is its whole pixel-source selection; two steps are left out because
their data-dependent steps do not trace: snapping *drawn* pixels to the character's own colours,
filling enclosed holes the model thinks are opaque and removing stray specks (PyTorch does all three by
default). Snap after the graph, e.g. with `spriteforge.drawing.snap_to_palette` and the given views'
colours; the exported graph is compared with PyTorch with all three off.
Other imputers export as views, available, target [B] int64 → images [B, C, H, W] (the target view).

Samplers (new characters) export as noise [B, Z] (and view labels [B] int64 for view-conditional
models) → images [B, C, H, W] in [-1, 1]. Images map to uint8 as round((x + 1) · 127.5).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from spriteforge import imageio
from spriteforge.errors import SpriteForgeError
from spriteforge.inference import load_for_inference
from spriteforge.models.kinds import Imputer
from spriteforge.models.turnaround import Turnaround

FORMATS = ("onnx",)
OPSET = 17


class AllViews(nn.Module):
    """turnaround: every view in one pass (drawn colours not snapped, holes not filled, specks kept: see the module doc)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, views: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
        return self.model.impute_all(views, available)


class OneView(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, views: torch.Tensor, available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model.impute(views, available, target)


class Sampler(nn.Module):
    def __init__(self, model, conditional: bool):
        super().__init__()
        self.model, self.conditional = model, conditional

    def forward(self, noise: torch.Tensor, views: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.sample(noise, views if self.conditional else None)


def view_conditional(model, noise: torch.Tensor) -> bool:
    """Whether a sampler takes view labels (cdcgan, biggan) or refuses them (dcgan)."""
    try:
        with torch.no_grad():
            model.sample(noise[:1], torch.zeros(1, dtype=torch.long))
    except SpriteForgeError:
        return False
    return True


def example_inputs(model, config, batch: int = 2) -> tuple[nn.Module, tuple, list[str], list[str], dict]:
    """(wrapper module, example inputs, input names, output names, dynamic axes) for exporting `model`."""
    size, domains, channels = config.image_size, len(config.domains), config.output_channels
    generator = torch.Generator().manual_seed(0)
    if isinstance(model, Imputer):
        views = torch.rand(batch, domains, channels, size, size, generator=generator) * 2 - 1
        available = torch.zeros(batch, domains, dtype=torch.bool)
        available[:, 2] = True
        available[1:, 1] = True
        if isinstance(model, Turnaround):  # the model that draws every view in one pass (`impute_all`)
            model.snap_drawn = False
            model.fill_holes = False
            model.remove_specks = False
            return AllViews(model), (views, available), ["views", "available"], ["images"], {
                "views": {0: "batch"}, "available": {0: "batch"}, "images": {0: "batch"}}
        target = torch.zeros(batch, dtype=torch.long)
        return OneView(model), (views, available, target), ["views", "available", "target"], ["images"], {
            "views": {0: "batch"}, "available": {0: "batch"}, "target": {0: "batch"}, "images": {0: "batch"}}
    noise = model.noise(batch, generator)
    conditional = model.domain_count > 1 and view_conditional(model, noise)
    if conditional:
        labels = torch.arange(batch) % model.domain_count
        return Sampler(model, True), (noise, labels), ["noise", "views"], ["images"], {
            "noise": {0: "batch"}, "views": {0: "batch"}, "images": {0: "batch"}}
    return Sampler(model, False), (noise,), ["noise"], ["images"], {"noise": {0: "batch"}, "images": {0: "batch"}}


def export_onnx(location, out: str | Path, opset: int = OPSET) -> tuple[Path, dict]:
    """Export the generator of run/checkpoint `location` to `out` (.onnx); returns (path, description).

    The description (inputs, outputs, model, views, image size) is also written beside it as <out>.json.
    """
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise SpriteForgeError(f"--out {out}: an ONNX model is written as .onnx; name it {out.with_suffix('.onnx').name}")
    model, config = load_for_inference(location, "cpu")
    wrapper, inputs, input_names, output_names, axes = example_inputs(model, config)
    wrapper.eval()
    with imageio.atomic_write(out) as temporary:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes: expected here
                torch.onnx.export(wrapper, inputs, str(temporary), input_names=input_names, output_names=output_names,
                                  dynamic_axes=axes, opset_version=opset, dynamo=False)
        except Exception as error:  # the exporter raises many kinds; say which model failed, in one line
            message = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise SpriteForgeError(f"{config.model}: ONNX export failed ({message}); this model's generator may not be exportable yet") from None
    input_names = graph_inputs(out, input_names)
    description = {"model": config.model, "views": list(config.domains), "image_size": config.image_size,
                   "channels": config.output_channels, "inputs": input_names, "outputs": output_names, "opset": opset,
                   "range": "[-1, 1]; uint8 = round((x + 1) * 127.5)",
                   "note": ("drawn pixels are not snapped to the given views' colours (snap them after the graph), "
                            "enclosed holes are not filled and stray specks are not removed"
                            if isinstance(wrapper, AllViews) else "")}
    with imageio.atomic_write(out.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return out, description


def graph_inputs(path: Path, names: list[str]) -> list[str]:
    """The inputs the written graph really has (tracing drops one the generator ignores, e.g. stargan's
    `available`); `names` when the onnx package is not installed to read them."""
    try:
        import onnx  # optional ([export] extra)
    except ImportError:
        return names
    kept = {item.name for item in onnx.load(str(path), load_external_data=False).graph.input}
    return [name for name in names if name in kept]


def compare_with_torch(location, onnx_path: str | Path, batch: int = 3) -> float:
    """Max abs difference between the exported graph (onnxruntime) and PyTorch on fresh inputs (batch ≠ export's)."""
    import onnxruntime  # optional ([export] extra): imported only when a graph is checked

    model, config = load_for_inference(location, "cpu")
    wrapper, inputs, input_names, _, _ = example_inputs(model, config, batch=batch)
    with torch.no_grad():
        expected = wrapper(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    used = {item.name for item in session.get_inputs()}  # a generator that ignores an input has it traced away
    try:
        got = session.run(None, {name: value.numpy() for name, value in zip(input_names, inputs) if name in used})[0]
    except Exception as error:  # onnxruntime's own exception types; one line for the user
        raise SpriteForgeError(f"{config.model}: onnxruntime could not run the exported graph on a batch of {batch} "
                               f"({str(error).strip().splitlines()[0][-160:]}); this model's graph is not usable as exported") from None
    if got.shape != expected.shape:
        raise SpriteForgeError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}")
    return float(abs(got - expected).max())
