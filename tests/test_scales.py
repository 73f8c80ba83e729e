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
from moseq.ops.geometry import rigid_transform
from tests.helpers import assert_mean_within_mc_error
from tests.test_recovery import LATENT_DIM, NLAGS, NUM_FIT

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
    in the next round: the loop ends, and the draws keep the gamma mean (the proposal is
    Wilson and Hilferty's approximation)."""
    monkeypatch.setattr(distributions, "GAMMA_RETRY_ROUNDS", 0)
    a = np.asarray([0.05, 1.0, 3.0, 50.0])
    draws = np.asarray(sample_gamma(jax.random.key(1), np.broadcast_to(a, (20_000, 4)), 1.0))
    assert np.all(np.isfinite(draws)) and np.all(draws >= 0)
    assert_mean_within_mc_error(draws, a)  # 200 seeds: max |z| 3.6


def moving_keypoints(rng, num_recordings, num_frames, num_keypoints):
    """3-D keypoints of a pose that wiggles, turns about the vertical axis y and walks, with
    noise; unit body size."""
    body = rng.normal(size=(num_keypoints, 3))
    body[0], body[3] = [2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]
    frames = np.arange(num_frames)[None, :, None, None]
    poses = body + 0.3 * np.sin(frames / 4 + rng.normal(size=(num_recordings, 1,
                                                               num_keypoints, 3)))
    heading = np.cumsum(rng.normal(0, 0.1, (num_recordings, num_frames)), 1)
    centroid = np.cumsum(rng.normal(0, 0.3, (num_recordings, num_frames, 3)), 1)
    Y = np.asarray(rigid_transform(jnp.asarray(poses), jnp.asarray(centroid),
                                   jnp.asarray(heading), vertical_axis=1))
    return Y + rng.normal(0, 0.05, Y.shape)


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


def test_keypoint_slds_ends_finite_at_any_coordinate_scale():
    """Float32 keypoints of body size 1e-3 to 1e5 (the von Mises heading draw used to loop
    forever from about 1e3), and constant, frozen or collapsed keypoints: three AR-only and
    three full sweeps end with every variable finite and the heading drawn in float32;
    collapsed keypoints (all at one point) are refused by name. The
    model and shapes are those of the 3-D recovery test, whose compiled programs this reuses."""
    Y = moving_keypoints(np.random.default_rng(0), 4, 600, 6)
    mask = np.ones(Y.shape[:2], np.float32)
    model = keypoint_slds((0,), (3,), latent_dim=LATENT_DIM, keypoint_dim=3, vertical_axis=1,
                          num_states=NUM_FIT, nlags=NLAGS, kappa=100.0)
    cases = [(scale, "moving") for scale in (1e-3, 1.0, 1e3, 1e5)]
    cases += [(1e5, case) for case in ("all constant", "one frozen")]
    for scale in (1e-3, 1e5):  # keypoints at one point: refused by name before anything runs
        with pytest.raises(ValueError, match="same point in every observed frame"):
            model.init(0, {"Y": (degenerate(Y, "collapsed") * scale).astype(np.float32),
                           "mask": mask})
    for scale, case in cases:
        data = {"Y": (degenerate(Y, case) * scale).astype(np.float32), "mask": mask}
        state = model.init(0, data)
        state, _ = model.run(1, data, state, 3, frozen=AR_ONLY_FROZEN, progress=False)
        state, _ = model.run(2, data, state, 3, progress=False)
        assert state["h"].dtype == jnp.float32
        for name, value in state.items():
            assert bool(jnp.all(jnp.isfinite(value))), (scale, case, name)
