"""Masked frames inside recordings (missing observations), not only trailing padding.

The shipped AR-HMM passes a Geweke test with interior gaps; the keypoint SLDS fits
simulated data with NaN keypoints and masked frames without producing a NaN; and whatever
the observations hold on masked frames, a sweep from the same state and key gives the same
global parameters (masked frames contribute nothing to any sufficient statistic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.blocks import ARDynamics, KeypointObservations
from moseq.models import arhmm, keypoint_slds
from moseq.testing import LOG_JOINT, geweke_test

# ---- (a) the AR-HMM's Geweke test with interior masked frames -------------------------------

LATENT_DIM = 2


def interior_mask():
    """Two recordings of 24 frames: gaps of 1 and 3 frames inside recording 0, a gap
    right after the first frame and trailing padding in recording 1."""
    mask = np.ones((2, 24))
    mask[0, 6] = 0.0
    mask[0, 12:15] = 0.0
    mask[1, 1] = 0.0
    mask[1, 20:] = 0.0
    return mask


def log_det_Q(variables):
    return jnp.mean(jnp.linalg.slogdet(variables["Q"])[1])


# The shipped prior has nu_0 = D + 2, under which Q (and Ab, x) have no finite variance:
# the test functions are bounded or logarithmic.
ARHMM_FUNCTIONS = {
    "mean(tanh Ab)": lambda v: jnp.mean(jnp.tanh(v["Ab"])),
    "mean(tanh(Ab)^2)": lambda v: jnp.mean(jnp.tanh(v["Ab"]) ** 2),
    "mean(log det Q)": log_det_Q,
    "mean(diag pi)": lambda v: jnp.mean(jnp.diagonal(v["pi"], axis1=-2, axis2=-1)),
    "mean(pi[0, 0])": lambda v: v["pi"][0, 0],
    "mean(z)": lambda v: jnp.mean(v["z"].astype(float)),
    "switch_rate(z)": lambda v: jnp.mean((v["z"][:, 1:] != v["z"][:, :-1]).astype(float)),
    "mean(tanh x)": lambda v: jnp.mean(jnp.tanh(v["x"])),
    "mean(tanh x^2)": lambda v: jnp.mean(jnp.tanh(v["x"] ** 2)),
    "log_joint": LOG_JOINT,
}


@pytest.mark.slow
def test_arhmm_passes_geweke_with_interior_masked_frames():
    """The fit scores a frame only if it and its lags are observed; the data are simulated
    the same way (the AR recursion on those frames, N(0, I) on the others). (Checked by
    hand: an ARDynamics that scores every frame of the recording span fails this test on
    every function but mean(tanh x), with |z| up to 44.)"""
    model = arhmm(LATENT_DIM, num_states=2, nlags=1, kappa=3.0, S_0_scale=0.1, K_0_scale=0.1,
                  transitions="sticky_dir")
    report = geweke_test(model, {"mask": interior_mask()}, 2000,
                         test_functions=ARHMM_FUNCTIONS, seed=0)
    assert report.passed, report


def test_arhmm_simulation_does_not_depend_on_a_placeholder_x():
    dynamics = ARDynamics.create(2, LATENT_DIM, 1)
    rng = np.random.default_rng(4)
    mask = interior_mask()
    state = {"mask": jnp.asarray(mask), "z": jnp.asarray(rng.integers(0, 2, size=(2, 23))),
             "Ab": jnp.asarray(0.5 * rng.normal(size=(2, LATENT_DIM, LATENT_DIM + 1))),
             "Q": jnp.tile(jnp.eye(LATENT_DIM), (2, 1, 1))}
    simulate = jax.jit(lambda key, state: dynamics.sample_data(key, state))
    first = simulate(jax.random.key(0), state)["x"]
    again = simulate(jax.random.key(0), {**state, "x": jnp.zeros((2, 24, LATENT_DIM))})["x"]
    np.testing.assert_array_equal(first, again)


# ---- (c) the AR-HMM: x on masked frames does not matter -------------------------------------


def arhmm_data_and_state():
    """An HDP AR-HMM (K = 3, L = 2), observed x, and a state set by hand."""
    K, L = 3, 2
    model = arhmm(LATENT_DIM, num_states=K, nlags=L, kappa=3.0)
    rng = np.random.default_rng(0)
    mask = interior_mask()
    x = rng.normal(size=(2, 24, LATENT_DIM))
    pi = rng.dirichlet(np.ones(K), size=K)
    state = {"Ab": 0.3 * rng.normal(size=(K, LATENT_DIM, LATENT_DIM * L + 1)),
             "Q": np.tile(np.eye(LATENT_DIM), (K, 1, 1)), "pi": pi,
             "betas": np.full(K, 1.0 / K), "z": rng.integers(0, K, size=(2, 24 - L))}
    return model, x, mask, state


def test_arhmm_sweep_ignores_x_on_masked_frames():
    model, x, mask, state = arhmm_data_and_state()
    garbage = x.copy()
    masked = mask == 0
    garbage[masked] = 1e3 * np.random.default_rng(1).normal(size=garbage[masked].shape)
    one = model.sweep(5, {"x": x, "mask": mask}, state)
    other = model.sweep(5, {"x": garbage, "mask": mask}, state)
    assert set(one) == {"Ab", "Q", "pi", "betas", "z"}
    for name in one:
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)
    # and the state moved at all
    assert not np.array_equal(one["Ab"], state["Ab"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_arhmm_sweep_accepts_non_finite_x_on_masked_frames(bad):
    model, x, mask, state = arhmm_data_and_state()
    filled = np.where(mask[..., None] > 0, x, bad)
    one = model.sweep(5, {"x": x, "mask": mask}, state)
    other = model.sweep(5, {"x": filled, "mask": mask}, state)
    for name in one:
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)


# ---- (b), (c) the keypoint SLDS on simulated data with gaps ---------------------------------


NUM_KEYPOINTS = 5
GLOBALS = ("Ab", "Q", "pi", "betas", "Cd", "sigmasq")


@pytest.fixture(scope="module")
def keypoint_fit():
    """A keypoint SLDS (sigmasq resampled), data simulated from stable AR parameters with 5%
    of frames masked (the first frame of each recording kept), and a copy with 10% of the
    keypoints NaN."""
    K, D, L = 3, 2, 1
    model = keypoint_slds((0,), (3,), latent_dim=D, num_keypoints=NUM_KEYPOINTS, num_states=K,
                          nlags=L, kappa=10.0, resample_sigmasq=True)
    rng = np.random.default_rng(0)
    Ab = np.zeros((K, D, D * L + 1))
    Ab[:, :, D * (L - 1) : D * L] = 0.9 * np.eye(D)
    Ab[:, :, -1] = [[-1.0, 0.0], [0.0, 0.5], [1.0, 1.0]]
    pi = np.full((K, K), 0.05 / (K - 1))
    np.fill_diagonal(pi, 0.95)
    given = {"Ab": Ab, "Q": np.tile(0.05 * np.eye(D), (K, 1, 1)), "pi": pi,
             "betas": np.ones(K) / K, "Cd": rng.normal(size=((NUM_KEYPOINTS - 1) * 2, D + 1)),
             "sigmasq": np.ones(NUM_KEYPOINTS)}
    simulated, _ = model.simulate(0, 2, 100, given=given)
    Y = np.array(simulated["Y"])
    mask = np.where(rng.random((2, 100)) < 0.05, 0.0, 1.0)
    mask[:, 0] = 1.0
    with_nans = Y.copy()
    with_nans[rng.random(Y.shape[:3]) < 0.1] = np.nan
    return model, {"Y": Y, "mask": mask}, {"Y": with_nans, "mask": mask}


def assert_finite_state(state):
    bad = [name for name, value in state.items() if not np.all(np.isfinite(np.asarray(value)))]
    assert not bad, f"non-finite {bad}"


@pytest.mark.slow
def test_keypoint_slds_with_nan_keypoints_and_masked_frames_stays_finite(keypoint_fit):
    model, _, data, = keypoint_fit
    assert 0.02 < np.mean(data["mask"] == 0) < 0.1
    assert 0.05 < np.mean(np.isnan(data["Y"]).any(-1)) < 0.15
    state = model.init(1, data)
    assert_finite_state(state)
    state, trace = model.run(2, data, state, 5, chunk_size=5, progress=False)
    assert_finite_state(state)
    assert np.all(np.isfinite(trace["log_joint"]))
    assert set(state) == {"Ab", "Q", "pi", "betas", "z", "Cd", "sigmasq", "x", "h", "v", "s"}


def sweep_pair(model, data, state, change):
    """One sweep from `state` with the same key on `data` and on `data` with Y changed on
    the masked frames."""
    Y = np.array(data["Y"])
    masked = data["mask"] == 0
    Y[masked] = change(Y[masked])
    one, _ = model.run(3, data, state, 1, chunk_size=5, progress=False)
    other, _ = model.run(3, {**data, "Y": Y}, state, 1, chunk_size=5, progress=False)
    return one, other


def garbage(Y):
    return Y + 100.0 * np.random.default_rng(2).normal(size=Y.shape)


@pytest.mark.slow
def test_keypoint_sweep_global_parameters_ignore_masked_frames(keypoint_fit):
    model, data, _ = keypoint_fit
    state = model.init(1, data)
    one, other = sweep_pair(model, data, state, garbage)
    for name in (*GLOBALS, "z"):
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)
    assert not np.array_equal(one["sigmasq"], state["sigmasq"])


@pytest.mark.slow
def test_keypoint_sweep_pose_and_latents_ignore_masked_frames(keypoint_fit):
    model, data, _ = keypoint_fit
    state = model.init(1, data)
    one, other = sweep_pair(model, data, state, garbage)
    for name in ("x", "h", "v", "s"):
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)


@pytest.mark.slow
def test_keypoint_sweep_accepts_infinite_keypoints_on_masked_frames(keypoint_fit):
    model, data, _ = keypoint_fit
    state = model.init(1, data)
    one, other = sweep_pair(model, data, state, lambda Y: np.full_like(Y, np.inf))
    for name in one:
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)


def test_gap_filling_does_not_read_masked_frames():
    block = KeypointObservations(latent_dim=2, anterior=(0,), posterior=(1,))
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(1, 6, 3, 2))
    Y[0, 3, 1] = np.nan  # unmasked frame 3 misses keypoint 1
    mask = np.ones((1, 6))
    mask[0, 2] = 0.0  # its previous frame is masked
    changed = Y.copy()
    changed[0, 2] = 1e3
    one = block.prepare_data({"Y": Y, "mask": mask})
    other = block.prepare_data({"Y": changed, "mask": mask})
    observed = mask[0] > 0
    np.testing.assert_array_equal(one["Y"][0, observed], other["Y"][0, observed])
