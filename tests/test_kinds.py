"""Every model is of exactly the kinds it should be (models/kinds.py), by its methods alone."""

from __future__ import annotations

import pytest

from spriteforge.models import MODELS
from spriteforge.models.baselines import BASELINES
from spriteforge.models.kinds import Imputer, Sampler, Stylizer, kinds
from spriteforge.models.pix2pix import PairModels

EXPECTED = {
    "stargan-paired": {Imputer}, "stargan-unpaired": {Imputer}, "collagan": {Imputer}, "pix2pix": {Imputer},
    "munit": {Imputer}, "remic": {Imputer}, "yamata": {Imputer}, "turnaround": {Imputer},
    "dcgan": {Sampler}, "cdcgan": {Sampler}, "wgan-gp": {Sampler}, "biggan": {Sampler}, "deep-biggan": {Sampler}, "fastgan": {Sampler},
    "autoencoder": {Sampler},
    "cyclegan": {Stylizer},
    "pix2pix-pairs": {Stylizer, Imputer},  # its two domains are views: training-time L1 and previews impute the pixel art
}


def test_every_registered_model_is_listed():
    assert set(MODELS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_model_is_exactly_its_kinds(name):
    cls = MODELS[name]
    assert set(kinds(cls)) == EXPECTED[name]
    assert cls.imputes == (Imputer in EXPECTED[name]) and cls.stylizes == (Stylizer in EXPECTED[name])


def test_baselines_and_pair_models_are_imputers():
    for baseline in BASELINES.values():
        assert kinds(baseline()) == (Imputer,)
    assert kinds(PairModels) == (Imputer,)
