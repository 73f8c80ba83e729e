"""Allocentric dynamics: the steps and their likelihoods against numpy, the normal-inverse-
gamma conditional against prior x likelihood, Geweke tests of the block and of
`allo_dynamics` (with a broken variant that must fail), and recovery of simulated syllables."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from moseq.blocks import (
    AllocentricDynamics,
    ARDynamics,
    HMMStates,
    StickyDirTransitions,
    SummedLikelihoods,
)
from moseq.core import GibbsScheduler
from moseq.models import allo_dynamics
from moseq.ops.allocentric import (
    allocentric_log_likelihoods,
    allocentric_stats,
    allocentric_steps,
    nig_log_prob,
    nig_posterior,
    sample_nig,
)
from moseq.testing import geweke_test


def numpy_steps(h, v, first, second):
    """Δh wrapped with complex exponentials, Δv rotated by an explicit R(-h_{t-1})."""
    dh = np.angle(np.exp(1j * (h[:, 1:] - h[:, :-1])))
    dv = np.zeros((*h.shape[:1], h.shape[1] - 1, 2))
    for n, t in itertools.product(range(h.shape[0]), range(1, h.shape[1])):
        c, s = np.cos(h[n, t - 1]), np.sin(h[n, t - 1])
        rotate_back = np.array([[c, s], [-s, c]])
        step = v[n, t] - v[n, t - 1]
        dv[n, t - 1] = rotate_back @ step[[first, second]]
    return dh, dv


def random_parameters(rng, num_states):
    return (rng.normal(size=num_states), rng.uniform(0.1, 1.0, num_states),
            rng.normal(size=(num_states, 2)), rng.uniform(0.1, 1.0, num_states))


@pytest.mark.parametrize(("dim", "vertical_axis", "axes"), [(2, 2, (0, 1)), (3, 0, (1, 2))])
def test_steps_and_likelihoods_match_numpy(dim, vertical_axis, axes):
    rng = np.random.default_rng(0)
    h = rng.uniform(-8, 8, (2, 9))  # large turns: wrapping matters
    v = rng.normal(size=(2, 9, dim)) * 5
    dh, dv = allocentric_steps(jnp.asarray(h), jnp.asarray(v), vertical_axis)
    dh_np, dv_np = numpy_steps(h, v, *axes)
    np.testing.assert_allclose(dh, dh_np, atol=1e-12)
    np.testing.assert_allclose(dv, dv_np, atol=1e-12)

    params = random_parameters(rng, 3)
    ll = allocentric_log_likelihoods(dh, dv, *map(jnp.asarray, params))
    delta_h, sigmasq_h, delta_v, sigmasq_v = params
    for k in range(3):
        expected = (stats.norm.logpdf(dh_np, delta_h[k], np.sqrt(sigmasq_h[k]))
                    + stats.multivariate_normal.logpdf(dv_np, delta_v[k], sigmasq_v[k]))
        np.testing.assert_allclose(ll[..., k], expected, rtol=1e-12)


def test_block_scores_the_step_into_each_frame_of_z():
    """With nlags = L, entry i of z labels frame i + L and is scored by the step L+i-1 -> L+i,
    only where both frames are unmasked (h and v data)."""
    rng = np.random.default_rng(1)
    nlags, T = 3, 10
    h, v = rng.uniform(-4, 4, (2, T)), rng.normal(size=(2, T, 2))
    mask = np.ones((2, T))
    mask[0, 5] = 0.0
    mask[1, 8:] = 0.0
    params = dict(zip(("delta_h", "sigmasq_h", "delta_v", "sigmasq_v"),
                      map(jnp.asarray, random_parameters(rng, 2)), strict=True))
    block = AllocentricDynamics(2, nlags=nlags)
    data = {"h": jnp.asarray(h), "v": jnp.asarray(v), "mask": jnp.asarray(mask)}
    ll = block.state_log_likelihoods(data, params)
    assert ll.shape == (T - nlags, 2, 2)
    dh, dv = numpy_steps(h, v, 0, 1)
    for i, n in itertools.product(range(T - nlags), range(2)):
        t = i + nlags
        expected = allocentric_log_likelihoods(dh[n, t - 1], dv[n, t - 1],
                                               *params.values())
        np.testing.assert_allclose(ll[i, n], expected, rtol=1e-12)
    scored = np.asarray(block.scored_frames(data, params))
    expected_scored = (mask[:, nlags:] > 0) & (mask[:, nlags - 1 : -1] > 0)
    np.testing.assert_array_equal(scored, expected_scored)
    assert not scored[0, 5 - nlags] and not scored[0, 6 - nlags] and scored[0, 7 - nlags]


def test_nig_posterior_is_prior_times_likelihood():
    """log posterior - log prior - log likelihood is the same constant at every (δ, σ²)
    (the posterior is exactly the normalised product), and the draws have its moments."""
    rng = np.random.default_rng(2)
    alpha_0, beta_0, lambda_0 = 3.0, 0.5, 2.0
    for dim in (1, 2):
        points = rng.normal(1.5, 0.7, (11, dim))
        posterior = nig_posterior(jnp.asarray(11.0), jnp.asarray(points.sum(0)),
                                  jnp.asarray(np.sum(points**2)), alpha_0, beta_0, lambda_0,
                                  dim)
        deltas = rng.normal(size=(6, dim))
        sigmasqs = rng.uniform(0.1, 3.0, 6)
        gaps = [nig_log_prob(jnp.asarray(d), s, posterior.alpha, posterior.beta, posterior.lam,
                             posterior.mean)
                - nig_log_prob(jnp.asarray(d), s, alpha_0, beta_0, lambda_0)
                - np.sum(stats.norm.logpdf(points, d, np.sqrt(s)))
                for d, s in zip(deltas, sigmasqs, strict=True)]
        np.testing.assert_allclose(gaps, gaps[0], rtol=0, atol=1e-10)
        # draws: E σ² = beta / (alpha - 1), E δ = mean, Var δ = E σ² / lam
        delta, sigmasq = jax.vmap(sample_nig, in_axes=(0, None))(
            jax.random.split(jax.random.key(0), 100_000), posterior)
        num = len(sigmasq)
        mean_sigmasq = posterior.beta / (posterior.alpha - 1)
        sd_sigmasq = mean_sigmasq / np.sqrt(posterior.alpha - 2)
        assert abs(np.mean(sigmasq) - mean_sigmasq) < 5 * sd_sigmasq / np.sqrt(num)
        np.testing.assert_allclose(np.mean(delta, 0), posterior.mean,
                                   atol=5 * np.sqrt(mean_sigmasq / posterior.lam / num))
        np.testing.assert_allclose(np.var(delta, 0), mean_sigmasq / posterior.lam, rtol=0.03)


def test_stats_sum_the_weighted_steps_of_each_state():
    rng = np.random.default_rng(3)
    dh, dv = rng.normal(size=(2, 7)), rng.normal(size=(2, 7, 2))
    z, weights = rng.integers(0, 3, (2, 7)), rng.integers(0, 2, (2, 7)).astype(float)
    result = allocentric_stats(jnp.asarray(dh), jnp.asarray(dv), jnp.asarray(z),
                               jnp.asarray(weights), 3)
    for k in range(3):
        w = weights * (z == k)
        np.testing.assert_allclose(result.count[k], w.sum())
        np.testing.assert_allclose(result.heading_sumsq[k], np.sum(w * dh**2))
        np.testing.assert_allclose(result.centroid_sum[k], np.einsum("nt,ntd->d", w, dv))
        np.testing.assert_allclose(result.centroid_sumsq[k], np.sum(w[..., None] * dv**2))


class CentroidShapeOneCoordinate(AllocentricDynamics):
    """BUG: the centroid's inverse-gamma shape counts one coordinate per step, not two."""

    def resample(self, key, data, state):
        stats = self.sufficient_stats(data, state)
        new = super().resample(key, data, state)
        centroid = nig_posterior(stats.count, stats.centroid_sum, stats.centroid_sumsq,
                                 self.alpha0_v, self.beta0_v, self.lambda0_v, 1)
        new["delta_v"], new["sigmasq_v"] = sample_nig(jax.random.fold_in(key, 1), centroid)
        return new


GEWEKE_SHAPES = {"mask": jnp.ones((2, 12)).at[1, 9:].set(0.0)}
# Priors with finite fourth moments of σ² and moves large enough to be seen in 11 steps.
GEWEKE_PRIOR = dict(alpha0_h=6.0, beta0_h=2.0, alpha0_v=6.0, beta0_v=2.0)


def test_geweke_of_the_block_alone():
    """Only the parameters move (z fixed at its joint draw), 3-D centroids; the broken
    variant must fail."""
    for cls, should_pass in ((AllocentricDynamics, True), (CentroidShapeOneCoordinate, False)):
        block = cls(2, centroid_dim=3, **GEWEKE_PRIOR)
        model = GibbsScheduler([StickyDirTransitions(2, beta=1.0, kappa=2.0), block,
                                HMMStates(block)], data_keys=("h", "v", "mask"))
        report = geweke_test(model, GEWEKE_SHAPES, 1000, blocks=[block.name],
                             seed=0)
        assert report.passed is should_pass, f"{cls.__name__}:\n{report}"


def test_geweke_of_allo_dynamics():
    model = allo_dynamics(num_states=2, kappa=2.0, alpha=2.0, gamma=2.0, **GEWEKE_PRIOR)
    report = geweke_test(model, GEWEKE_SHAPES, 1000, seed=0)
    assert report.passed, report


def test_geweke_of_summed_likelihoods():
    """z scored by an AR term on observed x plus the allo term on observed (h, v)."""
    ar = ARDynamics.create(2, 1, 1, S_0_scale=0.5, K_0_scale=0.1, nu_0=9.0)
    allo = AllocentricDynamics(2, nlags=1, **GEWEKE_PRIOR)
    summed = SummedLikelihoods(ar, allo)
    model = GibbsScheduler([StickyDirTransitions(2, beta=1.0, kappa=2.0), ar, allo, summed,
                            HMMStates(summed)], data_keys=("x", "h", "v", "mask"))
    report = geweke_test(model, GEWEKE_SHAPES, 1000, seed=0)
    assert report.passed, report


def test_recovers_turning_and_speed_syllables():
    """Three syllables: still, walking forward, turning left; 60 sweeps recover them."""
    truth = allo_dynamics(num_states=3, kappa=50.0, alpha=1.0, gamma=1.0)
    given = {"delta_h": jnp.array([0.0, 0.0, 0.4]), "sigmasq_h": jnp.array([1e-3, 1e-3, 1e-2]),
             "delta_v": jnp.array([[0.0, 0.0], [2.0, 0.0], [0.3, 0.0]]),
             "sigmasq_v": jnp.array([1e-2, 0.1, 0.05]),
             "pi": 0.97 * jnp.eye(3) + 0.01, "betas": jnp.ones(3) / 3}
    data, state = truth.simulate(0, {"mask": jnp.ones((2, 300))}, given=given)
    model = allo_dynamics(num_states=6)
    fitted, _ = model.run(2, data, model.init(1, data), 60, progress=False)
    z, z_true = np.asarray(fitted["z"]).ravel(), np.asarray(state["z"]).ravel()
    # each fitted state maps to the true state it overlaps most
    mapping = {k: np.bincount(z_true[z == k], minlength=3).argmax() for k in np.unique(z)}
    accuracy = np.mean([mapping[k] == t for k, t in zip(z, z_true, strict=True)])
    assert accuracy > 0.95, accuracy


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="centroid_dim"):
        AllocentricDynamics(2, centroid_dim=4)
    with pytest.raises(ValueError, match="beta0_v"):
        AllocentricDynamics(2, beta0_v=0.0)
    with pytest.raises(ValueError, match="transitions"):
        allo_dynamics(transitions="dirichlet")
    block = AllocentricDynamics(2)
    with pytest.raises(ValueError, match=r"data\['v'\].*centroid_dim"):
        block.check_data({"h": np.zeros((1, 5)), "v": np.zeros((1, 5, 3)), "mask": np.ones((1, 5))})
    with pytest.raises(ValueError, match="same"):
        block.check_data({"h": np.zeros((1, 4)), "v": np.zeros((1, 5, 2)), "mask": np.ones((1, 5))})
    with pytest.raises(ValueError, match="same frames"):
        SummedLikelihoods(ARDynamics.create(2, 1, 3), AllocentricDynamics(2, nlags=1))
