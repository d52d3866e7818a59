"""bidsnet_lib.bootstrap: percentile intervals of a mean over photos, paired differences, wins."""

import math

import numpy as np
import pytest

from bidsnet_lib.bootstrap import bootstrap_interval, paired_difference


def test_interval_is_the_percentiles_of_resampled_means():
    values = np.random.default_rng(0).normal(25, 3, size=30)
    low, high = bootstrap_interval(values, seed=0)
    assert low < values.mean() < high
    # The same idea by hand: resample the photos, take the 2.5th and 97.5th percentiles of the means.
    rng = np.random.default_rng(1)
    means = values[rng.integers(0, len(values), size=(20_000, len(values)))].mean(axis=1)
    ours = np.percentile(means, [2.5, 97.5])
    np.testing.assert_allclose([low, high], ours, atol=0.08)  # two Monte Carlo draws of one interval
    # Close to the normal approximation mean ± 1.96 standard errors at this size.
    se = values.std() / math.sqrt(len(values))
    np.testing.assert_allclose([low, high], [values.mean() - 1.96 * se, values.mean() + 1.96 * se], atol=0.15)


def test_interval_is_seeded_and_narrows_with_more_photos():
    rng = np.random.default_rng(2)
    few, many = rng.normal(0, 1, size=8), rng.normal(0, 1, size=128)
    assert bootstrap_interval(few, seed=3) == bootstrap_interval(few, seed=3)
    assert bootstrap_interval(few, seed=3) != bootstrap_interval(few, seed=4)
    width = lambda v: np.subtract(*bootstrap_interval(v)[::-1])  # noqa: E731
    assert width(many) < width(few) / 2


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(5)
    covered = 0
    trials = 200
    for _ in range(trials):
        sample = rng.normal(10, 2, size=30)
        low, high = bootstrap_interval(sample, n_resamples=2000, seed=int(rng.integers(1 << 30)))
        covered += low <= 10 <= high
    assert 0.88 <= covered / trials <= 0.99, covered  # the percentile bootstrap runs a little short


def test_degenerate_samples():
    assert all(math.isnan(v) for v in bootstrap_interval([3.0]))
    assert all(math.isnan(v) for v in bootstrap_interval([30.0, math.inf, 28.0]))  # a perfect fill
    assert bootstrap_interval([2.5, 2.5, 2.5]) == (2.5, 2.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"values": [[1.0, 2.0]]}, r"values: got shape \(1, 2\), expected one value per photo"),
    ({"values": [1.0, 2.0], "n_resamples": 0}, "n_resamples: got 0"),
    ({"values": [1.0, 2.0], "confidence": 95}, r"confidence: got 95, expected a number in \(0, 1\)"),
])
def test_interval_bad_arguments(kwargs, match):
    values = kwargs.pop("values")
    with pytest.raises(ValueError, match=match):
        bootstrap_interval(values, **kwargs)


def test_paired_difference_cancels_what_the_photos_share():
    rng = np.random.default_rng(6)
    photo = rng.normal(25, 4, size=20)  # easy and hard photos: a spread far larger than the gain
    baseline = photo + rng.normal(0, 0.1, size=20)
    model = photo + 0.3 + rng.normal(0, 0.1, size=20)
    d = paired_difference(model, baseline)
    assert d["diff"] == pytest.approx(np.mean(model - baseline))
    assert 0 < d["ci_low"] < d["diff"] < d["ci_high"] and d["beats"] and d["n_photos"] == 20
    assert d["wins"] == np.mean(model > baseline) and d["wins"] > 0.9
    # Unpaired, the two methods' own intervals overlap: the gain would not show.
    assert bootstrap_interval(model)[0] < bootstrap_interval(baseline)[1]


def test_paired_difference_lower_is_better_ties_and_errors():
    d = paired_difference([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], higher_is_better=False)
    assert d["diff"] == pytest.approx(-0.1) and d["beats"] and d["wins"] == 1.0
    d = paired_difference([0.3, 0.2, 0.3], [0.2, 0.3, 0.4], higher_is_better=False)
    assert not d["beats"] and d["wins"] == pytest.approx(2 / 3)
    tie = paired_difference([math.inf, 30.0], [math.inf, 31.0])
    assert tie["wins"] == 0 and math.isnan(tie["diff"]) and not tie["beats"]
    with pytest.raises(ValueError, match="got 2 and 3 values"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
