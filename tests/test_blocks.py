"""Each shipped block's `resample` draws from its exact full conditional.

Small problems whose conditional is known in closed form: Dirichlet, MNIW, scaled
inverse-chi-square, HMM path enumeration and dense Gaussian conditioning; the moments of
many independent `resample` draws (vmapped over keys) must match within Monte Carlo error.
"""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from moseq.blocks import (
    ARDynamics,
    HDPTransitions,
    HMMStates,
    KalmanLatents,
    LinearGaussianObservations,
    StickyDirTransitions,
)
from moseq.models import arhmm, slds
from moseq.ops.autoregression import ar_design
from tests.helpers import assert_counts_follow, assert_mean_within_mc_error, draws


def test_sticky_dir_transitions_conditional_is_dirichlet():
    block = StickyDirTransitions(3, beta=0.7, kappa=2.0)
    z = jnp.array([[0, 0, 1, 2, 2, 2, 0, 1]])
    # Frame 3 is missing inside the recording (its transitions count: z is chained through
    # it); frames 6-7 are padding after the last observed frame (not counted).
    mask = jnp.ones((1, 8)).at[0, 3].set(0).at[0, 6:].set(0)
    pi = np.asarray(draws(block, {"mask": mask}, {"z": z})["pi"])
    counts = np.zeros((3, 3))
    for t in range(5):
        counts[z[0, t], z[0, t + 1]] += 1
    concentration = counts + 0.7 + 2.0 * np.eye(3)
    assert_mean_within_mc_error(pi, concentration / concentration.sum(1, keepdims=True))


def test_hdp_transitions_pi_given_new_betas_is_dirichlet():
    block = HDPTransitions(3, alpha=2.0, kappa=3.0, gamma=1.5)
    z = jnp.array([[0, 0, 1, 1, 1, 2, 0]])
    out = draws(block, {"mask": jnp.ones((1, 7))}, {"z": z, "betas": jnp.full(3, 1 / 3)})
    counts = np.zeros((3, 3))
    for a, b in zip(np.asarray(z[0, :-1]), np.asarray(z[0, 1:]), strict=True):
        counts[a, b] += 1
    concentration = counts + 2.0 * np.asarray(out["betas"])[:, None, :] + 3.0 * np.eye(3)
    expected = concentration / concentration.sum(-1, keepdims=True)
    # E[pi | betas] averaged over the betas draws: compare pi - E[pi | betas] with zero.
    assert_mean_within_mc_error(np.asarray(out["pi"]) - expected, np.zeros((3, 3)))


def test_ar_dynamics_conditional_is_the_mniw_posterior():
    rng = np.random.default_rng(0)
    block = ARDynamics.create(2, latent_dim=2, nlags=1, S_0_scale=0.5, K_0_scale=2.0)
    x = jnp.asarray(rng.normal(size=(2, 30, 2)))
    z = jnp.asarray(rng.integers(0, 2, size=(2, 29)))
    mask = jnp.ones((2, 30)).at[1, 20:].set(0)
    out = draws(block, {"x": x, "mask": mask}, {"z": z})
    # Closed form, independently in NumPy: per state, the frames t >= 1 assigned to it.
    design = np.asarray(ar_design(x, 1))
    for k in range(2):
        rows = (np.asarray(z) == k) & (np.asarray(mask)[:, 1:] > 0)
        X, Y = design[rows], np.asarray(x)[:, 1:][rows]
        K0_inv = np.linalg.inv(np.asarray(block.K_0))
        K_n = np.linalg.inv(K0_inv + X.T @ X)
        M_n = (np.asarray(block.M_0) @ K0_inv + Y.T @ X) @ K_n
        S_n = (np.asarray(block.S_0) + Y.T @ Y + np.asarray(block.M_0) @ K0_inv
               @ np.asarray(block.M_0).T - M_n @ np.linalg.inv(K_n) @ M_n.T)
        nu_n = block.nu_0 + rows.sum()
        assert_mean_within_mc_error(np.asarray(out["Q"])[:, k], S_n / (nu_n - 2 - 1))
        assert_mean_within_mc_error(np.asarray(out["Ab"])[:, k], M_n)


def test_linear_gaussian_noise_conditional_is_scaled_inverse_chi_square():
    rng = np.random.default_rng(1)
    Cd = rng.normal(size=(3, 3))
    block = LinearGaussianObservations(Cd=jnp.asarray(Cd), nu_sigma=4.0, sigmasq_0=0.3)
    x = rng.normal(size=(2, 25, 2))
    Y = rng.normal(size=(2, 25, 3))
    mask = np.ones((2, 25))
    mask[0, :5] = 0
    out = np.asarray(draws(block, {"Y": Y, "mask": mask}, {"x": x})["sigmasq"])
    residual = (Y - (x @ Cd[:, :2].T + Cd[:, 2])) ** 2
    squared = (residual * mask[..., None]).sum((0, 1))
    degs = 4.0 + mask.sum()
    scale = (4.0 * 0.3 + squared) / degs
    assert_mean_within_mc_error(out, degs * scale / (degs - 2))


def test_hmm_states_conditional_matches_enumeration():
    rng = np.random.default_rng(2)
    dynamics = ARDynamics.create(2, latent_dim=1, nlags=1)
    block = HMMStates(dynamics)
    x = jnp.asarray(rng.normal(size=(1, 6, 1)))
    state = {"pi": jnp.array([[0.7, 0.3], [0.4, 0.6]]),
             "Ab": jnp.array([[[0.5, 0.2]], [[-0.3, -0.4]]]),
             "Q": jnp.array([[[0.5]], [[1.5]]])}
    data = {"x": x, "mask": jnp.ones((1, 6))}
    z = np.asarray(draws(block, data, state)["z"])[:, 0]
    log_lik = np.asarray(dynamics.state_log_likelihoods(data, state))[:, 0]
    paths = np.array(list(itertools.product(range(2), repeat=5)))
    log_joint = log_lik[np.arange(5), paths].sum(1) + np.log(
        np.asarray(state["pi"])[paths[:, :-1], paths[:, 1:]]).sum(1)
    probabilities = np.exp(log_joint - np.logaddexp.reduce(log_joint))
    codes = z @ (2 ** np.arange(5)[::-1])
    assert_counts_follow(np.bincount(codes, minlength=32), probabilities)


def test_kalman_latents_conditional_is_the_dense_gaussian_posterior():
    rng = np.random.default_rng(3)
    Cd = jnp.asarray(rng.normal(size=(3, 2)))  # obs 3, D 1
    dynamics = ARDynamics.create(2, latent_dim=1, nlags=2)
    emissions = LinearGaussianObservations(Cd=Cd)
    block = KalmanLatents(dynamics, emissions, prior_variance=2.0)
    num_frames = 6
    state = {"Ab": jnp.array([[[0.3, 0.5, 0.1]], [[-0.2, 0.8, -0.1]]]),
             "Q": jnp.array([[[0.4]], [[0.9]]]), "z": jnp.array([[0, 1, 1, 0]]),
             "sigmasq": jnp.array([0.5, 0.8, 1.2])}
    Y = jnp.asarray(rng.normal(size=(1, num_frames, 3)))
    mask = jnp.ones((1, num_frames)).at[0, 3].set(0)
    x = np.asarray(draws(block, {"Y": Y, "mask": mask}, state)["x"])[:, 0, :, 0]

    # Dense joint Gaussian of x_{0:T}: x_0, x_1 ~ N(0, 2); x_t = a1 x_{t-2} + a2 x_{t-1} + b + e.
    Ab, Q, z = np.asarray(state["Ab"]), np.asarray(state["Q"]), np.asarray(state["z"])[0]
    coef = np.zeros((num_frames, num_frames))
    const = np.zeros(num_frames)
    coef[0, 0] = coef[1, 1] = np.sqrt(2.0)
    for t in range(2, num_frames):
        a1, a2, b = Ab[z[t - 2], 0]
        coef[t] = a1 * coef[t - 2] + a2 * coef[t - 1]
        coef[t, t] += np.sqrt(Q[z[t - 2], 0, 0])
        const[t] = a1 * const[t - 2] + a2 * const[t - 1] + b
    prior_cov = coef @ coef.T
    C, d = np.asarray(Cd[:, 0]), np.asarray(Cd[:, 1])
    observed = np.flatnonzero(np.asarray(mask[0]))
    H = np.zeros((3 * len(observed), num_frames))
    for i, t in enumerate(observed):
        H[3 * i : 3 * i + 3, t] = C
    y = np.concatenate([np.asarray(Y[0, t]) - d for t in observed])
    R = np.diag(np.tile(np.asarray(state["sigmasq"]), len(observed)))
    gain = prior_cov @ H.T @ np.linalg.inv(H @ prior_cov @ H.T + R)
    mean = const + gain @ (y - H @ const)
    cov = prior_cov - gain @ H @ prior_cov
    assert_mean_within_mc_error(x, mean)
    centred = x - mean
    assert_mean_within_mc_error(centred[:, :, None] * centred[:, None, :], cov)


def test_models_compose_the_blocks():
    assert [b.name for b in arhmm(2, num_states=3).blocks] == [
        "HDPTransitions", "ARDynamics", "HMMStates"]
    assert [b.name for b in slds(np.ones((4, 3)), num_states=3).blocks] == [
        "HDPTransitions", "ARDynamics", "HMMStates", "LinearGaussianObservations",
        "KalmanLatents"]


@pytest.mark.parametrize("parallel", [False, True])
def test_slds_runs_and_recovers_latents(parallel):
    rng = np.random.default_rng(4)
    Cd = np.concatenate([rng.normal(size=(8, 2)), np.zeros((8, 1))], 1)
    model = slds(Cd, num_states=3, nlags=2, kappa=10.0, nu_sigma=10.0, sigmasq_0=0.01,
                 parallel=parallel)
    data, truth = model.simulate(0, {"mask": jnp.ones((2, 60))})
    state = model.init(1, data)
    state, trace = model.run(2, data, state, 6, progress=False)
    assert np.all(np.isfinite(trace["log_joint"]))
    error = np.mean((np.asarray(state["x"]) - np.asarray(truth["x"])) ** 2)
    assert error < 0.1 * np.mean(np.asarray(truth["x"]) ** 2)
