"""Pose correctness: a small view classifier (back / left / front / right) that judges drawn views.

The classifier is trained only on the real views of the pooled `all` train split (the validation block
held out) by ``benchmarks/train_view_classifier.py``; its weights ship with the package
(``weights/view-classifier.safetensors``, model card beside it). It is an independent judge for
evaluation only: no model may use it as a training signal, or the score would stop meaning anything.

Input convention: images [N, 4, 64, 64] (RGBA) in [-1, 1], as models draw them. The colour of a
transparent pixel carries no information, so the network sees premultiplied RGB (colour × opacity) and
the alpha channel: junk colours under alpha 0 do not change the verdict. 3-channel images are taken
as opaque.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from spriteforge import VIEWS
from spriteforge.errors import SpriteForgeError

WEIGHTS = Path(__file__).resolve().parent / "weights" / "view-classifier.safetensors"
MODEL_CARD = WEIGHTS.with_name("view-classifier.md")
IMAGE_SIZE = 64
WIDTHS = (16, 32, 48, 64)


class ViewClassifier(nn.Module):
    """Four 3×3 conv blocks (conv, batch norm, ReLU, 2×2 max pool: 64 → 4 px), then a linear layer on the
    flattened 4×4 map (position matters: left and right are mirror images of each other)."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS, classes: int = len(VIEWS)):
        super().__init__()
        layers, previous = [], 4
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        side = IMAGE_SIZE >> len(widths)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(previous * side * side, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [N, 4] of images [N, 4, 64, 64] in [-1, 1]."""
        return self.head(self.features(prepare(images)))


def prepare(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGBA (or RGB) → premultiplied RGB and alpha, both in [-1, 1]."""
    images = images.float().clamp(-1, 1)
    if images.shape[1] == 3:
        images = torch.cat([images, torch.ones_like(images[:, :1])], 1)
    alpha = (images[:, 3:4] + 1) / 2
    rgb = (images[:, :3] + 1) / 2 * alpha
    return torch.cat([rgb * 2 - 1, images[:, 3:4]], 1)


@functools.lru_cache(maxsize=2)
def load_classifier(path: str | None = None) -> ViewClassifier:
    """The shipped classifier (or the one at `path`), in eval mode on CPU; one line if the file is bad."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    location = Path(path) if path else WEIGHTS
    if not location.is_file():
        raise SpriteForgeError(f"the view classifier's weights are missing ({location}); reinstall spriteforge or "
                               f"retrain them with python benchmarks/train_view_classifier.py")
    try:
        state = load_file(str(location))
        model = ViewClassifier()
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except (SafetensorError, RuntimeError, OSError) as error:
        raise SpriteForgeError(f"{location}: not a valid view classifier ({str(error).splitlines()[0]})") from None
    return model.eval()


@torch.no_grad()
def classify_views(images: torch.Tensor, batch: int = 256, classifier: ViewClassifier | None = None) -> torch.Tensor:
    """The view index (0 back, 1 left, 2 front, 3 right) of each image [N, 4, 64, 64] in [-1, 1]: LongTensor [N]."""
    if images.dim() != 4 or images.shape[1] not in (3, 4) or tuple(images.shape[2:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise SpriteForgeError(f"the view classifier takes images [N, 4, {IMAGE_SIZE}, {IMAGE_SIZE}], got {list(images.shape)}")
    classifier = classifier or load_classifier()
    labels = [classifier(images[start : start + batch].detach().cpu()).argmax(1) for start in range(0, len(images), batch)]
    return torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)


def view_correct(images: torch.Tensor, targets: torch.Tensor | int, classifier: ViewClassifier | None = None) -> torch.Tensor:
    """Per image: whether the classifier labels it as its target view (BoolTensor [N])."""
    targets = torch.as_tensor(targets, dtype=torch.long).expand(len(images))
    return classify_views(images, classifier=classifier) == targets


def view_score(images: torch.Tensor, targets: torch.Tensor | int, classifier: ViewClassifier | None = None) -> float:
    """Pose correctness: the share of images the classifier labels as their target view (NaN for none)."""
    if len(images) == 0:
        return float("nan")
    return float(view_correct(images, targets, classifier).float().mean())
