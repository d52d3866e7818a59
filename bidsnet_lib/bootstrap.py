"""Intervals over photos: the percentile bootstrap of a mean, paired differences and wins, as
``bidsnet evaluate`` states them beside every score.

Taught in ``notebooks/07_evaluation.ipynb``. Why over photos: the fixed masks of a group meet every
photo, so the photos are the sample that another test set would change. One photo's scores under
the group's masks are correlated (a flat sky is easy under every mask), so resampling photo × mask
pairs as if they were independent gives intervals far too narrow. Each photo first becomes one
number, its mean over the group's masks; the bootstrap then draws photos with replacement.

A paired difference (model minus baseline, photo by photo) cancels what the photos share: its
interval is what a claim "the model beats the baseline" needs, and it is often much narrower than
the two methods' own intervals suggest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from bidsnet_lib.plumbing import check_finite_float, check_int

N_RESAMPLES = 10_000
CONFIDENCE = 0.95


def _values(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: got shape {a.shape}, expected one value per photo (N,)")
    return a


def bootstrap_interval(values: Sequence[float], *, n_resamples: int = N_RESAMPLES,
                       confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values`` (one per photo).

    ``n_resamples`` means of ``len(values)`` values drawn with replacement (scipy.stats.bootstrap,
    seeded with ``seed``); the interval holds their central ``confidence`` share. (nan, nan) for
    fewer than 2 values or any that is not finite (a perfect fill's PSNR is +inf).
    """
    a = _values(values, "values")
    check_int("n_resamples", n_resamples, 1)
    check_finite_float("confidence", confidence, 0, 1, low_open=True, high_open=True)
    if len(a) < 2 or not np.isfinite(a).all():
        return math.nan, math.nan
    if np.all(a == a[0]):  # every resample has the same mean
        return float(a[0]), float(a[0])
    result = stats.bootstrap((a,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                             method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_difference(model: Sequence[float], baseline: Sequence[float], *,
                      higher_is_better: bool = True, n_resamples: int = N_RESAMPLES,
                      confidence: float = CONFIDENCE, seed: int = 0) -> dict:
    """Model minus baseline, photo by photo (both in the same photo order): the mean difference,
    its bootstrap interval, and ``wins``, the fraction of photos on which the model is better.

    ``beats`` is True when the whole interval lies on the better side of zero.
    """
    m, b = _values(model, "model"), _values(baseline, "baseline")
    if m.shape != b.shape or not len(m):
        raise ValueError(f"model and baseline: got {len(m)} and {len(b)} values, expected one per "
                         "photo for both, at least one")
    with np.errstate(invalid="ignore"):  # inf - inf (two perfect fills) is NaN: a tie, neither wins
        diff = m - b
        better = diff > 0 if higher_is_better else diff < 0
    low, high = bootstrap_interval(diff, n_resamples=n_resamples, confidence=confidence, seed=seed)
    side = low if higher_is_better else -high
    return {"diff": float(np.mean(diff)) if np.isfinite(diff).all() else math.nan,
            "ci_low": low, "ci_high": high, "wins": float(np.mean(better)),
            "beats": bool(side > 0), "n_photos": len(m)}
