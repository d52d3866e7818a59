"""Checks shared by the mask tests (tests/test_masks*.py): a seeded generator, a binary mask."""

import numpy as np


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_binary(mask, shape):
    assert mask.dtype == np.uint8 and mask.shape == shape
    assert set(np.unique(mask)) <= {0, 1}
