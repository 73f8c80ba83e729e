"""AR log-likelihood kernels against scipy's multivariate normal density, in float64, with
time chunks that do not divide the frames."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from moseq.ops import ar_log_likelihoods, ar_log_likelihoods_given_states

NUM_STATES, DIM, NLAGS = 3, 2, 2


def random_ar(rng):
    Ab = rng.normal(scale=0.5, size=(NUM_STATES, DIM, DIM * NLAGS + 1))
    factors = rng.normal(size=(NUM_STATES, DIM, DIM))
    Q = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(DIM)
    return Ab, Q


def reference(x, Ab, Q):
    """(T - L, K) log densities of one recording x (T, D), frame by frame."""
    out = np.empty((len(x) - NLAGS, NUM_STATES))
    for t in range(NLAGS, len(x)):
        regressors = np.concatenate([x[t - NLAGS:t].ravel(), [1.0]])
        for k in range(NUM_STATES):
            out[t - NLAGS, k] = multivariate_normal(Ab[k] @ regressors, Q[k]).logpdf(x[t])
    return out


@pytest.mark.parametrize("shape", [(11,), (2, 11)])
@pytest.mark.parametrize("frames_per_chunk", [1, 4, 7, 4096])
def test_ar_log_likelihoods_are_the_gaussian_densities(shape, frames_per_chunk):
    rng = np.random.default_rng(0)
    Ab, Q = random_ar(rng)
    x = rng.normal(size=(*shape, DIM))
    z = rng.integers(NUM_STATES, size=(*shape[:-1], shape[-1] - NLAGS))
    with jax.enable_x64(True):
        every_state = np.asarray(ar_log_likelihoods(x, Ab, Q, frames_per_chunk))
        own_state = np.asarray(ar_log_likelihoods_given_states(x, z, Ab, Q, frames_per_chunk))
    rows = x.reshape(-1, *x.shape[-2:])
    expected = np.stack([reference(row, Ab, Q) for row in rows]).reshape(every_state.shape)
    np.testing.assert_allclose(every_state, expected, rtol=1e-12)
    np.testing.assert_allclose(own_state, np.take_along_axis(expected, z[..., None], -1)[..., 0],
                               rtol=1e-12)
