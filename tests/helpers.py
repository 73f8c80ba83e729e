"""Shared helpers for the statistical tests."""

from __future__ import annotations

import jax
import numpy as np

NUM_DRAWS = 20_000


def assert_mean_within_mc_error(samples, expected_mean, num_sigmas: float = 5.0, axis: int = 0):
    """Assert the sample mean of iid draws is within `num_sigmas` standard errors of the truth.

    The standard error is estimated from the draws themselves, so the tolerance shrinks as
    1/sqrt(number of draws).
    """
    samples = np.asarray(samples, dtype=float)
    n = samples.shape[axis]
    mean = samples.mean(axis)
    stderr = samples.std(axis, ddof=1) / np.sqrt(n)
    z = np.abs(mean - np.asarray(expected_mean)) / np.maximum(stderr, 1e-300)
    assert np.all(z < num_sigmas), (
        f"max |z| = {z.max():.2f} (n = {n}); means {mean} vs {expected_mean}"
    )


def assert_counts_follow(observed_counts, probabilities, min_p_value: float = 1e-4):
    """Chi-square goodness of fit of category counts to exact probabilities.

    Categories with expected count below 5 are pooled so that the chi-square approximation
    holds; a single remaining category must then hold every draw.
    """
    from scipy import stats

    observed = np.asarray(observed_counts, dtype=float)
    expected = np.asarray(probabilities, dtype=float) * observed.sum()
    impossible = expected == 0
    assert observed[impossible].sum() == 0, "draws fell in categories of probability zero"
    observed, expected = observed[~impossible], expected[~impossible]
    small = expected < 5
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    if len(expected) == 1:
        np.testing.assert_allclose(observed, expected, rtol=1e-9)
        return
    p_value = stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue
    assert p_value > min_p_value, f"chi-square p = {p_value:.2e}"


def draws(block, data, state, num=NUM_DRAWS, seed=0):
    """`num` independent `resample` draws from the same state (vmapped over keys)."""
    keys = jax.random.split(jax.random.key(seed), num)
    return jax.jit(jax.vmap(lambda key: block.resample(key, data, state)))(keys)
