"""Every sampler ends in bounded time for finite input, and the keypoint SLDS runs at any
coordinate scale.

The rejection samplers (gamma, von Mises; the von Mises laws are tested in
`tests/test_keypoints.py`) at the extremes of their parameters and with their round limits
forced; then a few sweeps of a small keypoint SLDS in float32 on keypoints from 1e-3 to 1e5
units, on constant keypoints and on a frozen keypoint: each fit ends with a finite state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.models import AR_ONLY_FROZEN, keypoint_slds
from moseq.ops import distributions
from moseq.ops.distributions import sample_gamma

SHAPES = (1e-30, 1e-3, 0.5, 1.0, 10.0, 1e4, 1e8, 1e12, 1e16, 1e20, 1e30)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gamma_draws_end_and_keep_their_mean_at_extreme_shapes(dtype):
    """Gamma(a, 1) for a from 1e-30 to 1e30: the draws end, are finite, and their mean is
    within 5 standard errors of a, or within the dtype's rounding of a where the spread
    (sqrt(a)) is below it."""
    num = 4000
    a = jnp.broadcast_to(jnp.asarray(SHAPES, dtype), (num, len(SHAPES)))
    draws = np.asarray(jax.jit(sample_gamma)(jax.random.key(0), a, jnp.ones((), dtype)), float)
    assert np.all(np.isfinite(draws)) and np.all(draws >= 0)
    shapes = np.asarray(SHAPES)
    error = np.abs(np.mean(draws - shapes, axis=0))  # (a column sum of 1e30s drifts)
    allowed = 5 * np.sqrt(shapes / num) + 4 * np.finfo(dtype).eps * shapes
    assert np.all(error < allowed), error / allowed


def test_gamma_pending_draws_take_their_proposal_at_the_round_limit(monkeypatch):
    """With no retry round after the first pass, the proposals rejected there are accepted
    in the next round: the loop ends, and the draws stay close to the gamma law (the
    proposal is Wilson and Hilferty's approximation)."""
    monkeypatch.setattr(distributions, "GAMMA_RETRY_ROUNDS", 0)
    a = np.asarray([0.05, 1.0, 3.0, 50.0])
    draws = np.asarray(sample_gamma(jax.random.key(1), np.broadcast_to(a, (20_000, 4)), 1.0))
    assert np.all(np.isfinite(draws)) and np.all(draws >= 0)
    np.testing.assert_allclose(draws.mean(0), a, rtol=0.05)


def moving_keypoints(rng, num_frames, num_keypoints, dim):
    """Two recordings of a pose that wiggles, turns and walks, with noise; unit body size."""
    body = rng.normal(size=(num_keypoints, dim))
    body[0, :2], body[1, :2] = [2.0, 0.0], [-2.0, 0.0]
    frames = np.arange(num_frames)[None, :, None, None]
    poses = body + 0.3 * np.sin(frames / 4 + rng.normal(size=(2, 1, num_keypoints, dim)))
    heading = np.cumsum(rng.normal(0, 0.1, (2, num_frames)), 1)
    rotation = np.zeros((2, num_frames, dim, dim))
    rotation[..., 0, 0] = rotation[..., 1, 1] = np.cos(heading)
    rotation[..., 1, 0], rotation[..., 0, 1] = np.sin(heading), -np.sin(heading)
    if dim == 3:
        rotation[..., 2, 2] = 1.0
    centroid = np.cumsum(rng.normal(0, 0.3, (2, num_frames, dim)), 1)
    return (np.einsum("ntij,ntkj->ntki", rotation, poses) + centroid[..., None, :]
            + rng.normal(0, 0.05, (2, num_frames, num_keypoints, dim)))


def degenerate(Y, case):
    """`Y` with every keypoint constant over time, one keypoint frozen, or all keypoints of
    every frame at one point."""
    if case == "moving":
        return Y
    if case == "all constant":
        return np.broadcast_to(Y[:, :1], Y.shape).copy()
    if case == "one frozen":
        Y = Y.copy()
        Y[:, :, 2] = Y[:, :1, 2]
        return Y
    return np.broadcast_to(Y.mean(2, keepdims=True), Y.shape).copy()  # collapsed


@pytest.mark.parametrize("dim", [2, 3])
def test_keypoint_slds_ends_finite_at_any_coordinate_scale(dim):
    """Float32 keypoints of body size 1e-3 to 1e5 (the von Mises heading draw used to loop
    forever from about 1e3), and constant, frozen or collapsed keypoints: three AR-only and
    three full sweeps end with every variable finite."""
    rng = np.random.default_rng(0)
    Y = moving_keypoints(rng, 24, 5, dim)
    mask = np.ones(Y.shape[:2], np.float32)
    model = keypoint_slds((0,), (1,), latent_dim=2, keypoint_dim=dim, num_states=3, nlags=1)
    cases = [(scale, "moving") for scale in (1e-3, 1e-1, 1.0, 1e2, 1e3, 1e4, 1e5)]
    cases += [(scale, case) for scale in (1e-3, 1.0, 1e5)
              for case in ("all constant", "one frozen", "collapsed")]
    for scale, case in cases:
        data = {"Y": (degenerate(Y, case) * scale).astype(np.float32), "mask": mask}
        state = model.init(0, data)
        state, _ = model.run(1, data, state, 3, frozen=AR_ONLY_FROZEN, progress=False)
        state, _ = model.run(2, data, state, 3, progress=False)
        for name, value in state.items():
            assert bool(jnp.all(jnp.isfinite(value))), (scale, case, name)
