"""Transition counts and the sticky HDP / sticky Dirichlet conditionals."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, special

from moseq.ops.transitions import (
    count_transitions,
    init_hdp_transitions,
    resample_dir_transitions,
    resample_hdp_transitions,
    sample_betas,
    sample_crt_table_counts,
    sample_dir_transitions,
    sample_hdp_transitions,
    sample_pi,
)
from tests.helpers import assert_counts_follow, assert_mean_within_mc_error


@given(
    num_states=st.integers(1, 5),
    num_sequences=st.integers(1, 3),
    num_frames=st.integers(1, 12),
    num_lags=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_count_transitions_equals_numpy_loop(num_states, num_sequences, num_frames, num_lags, seed):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, num_states, (num_sequences, num_frames))
    mask = rng.integers(0, 2, (num_sequences, num_frames + num_lags))
    expected = np.zeros((num_states, num_states), int)
    for n in range(num_sequences):
        for t in range(num_frames - 1):
            if mask[n, t + 1 + num_lags]:
                expected[z[n, t], z[n, t + 1]] += 1
    np.testing.assert_array_equal(count_transitions(num_states, z, mask), expected)


def test_count_transitions_jits_and_vmaps():
    z = jnp.array([[0, 1, 1, 2], [2, 2, 0, 1]])
    mask = jnp.ones((2, 4))
    counts = jax.jit(count_transitions, static_argnums=0)(3, z, mask)
    per_sequence = jax.vmap(count_transitions, in_axes=(None, 0, 0))(3, z, mask)
    np.testing.assert_array_equal(per_sequence.sum(0), counts)


def test_masked_transitions_contribute_nothing():
    z = np.array([0, 1, 1, 2, 0, 0])
    mask = np.array([1, 1, 0, 1, 1, 0])
    counts = np.asarray(count_transitions(3, z, mask))
    # Destinations at frames 2 and 5 are masked: 0->1, 1->2 and 2->0 remain.
    expected = np.zeros((3, 3), int)
    expected[0, 1] = expected[1, 2] = expected[2, 0] = 1
    np.testing.assert_array_equal(counts, expected)


def unsigned_stirling_first_kind(n):
    """Row n of |s(n, k)|, k = 0..n, by the recurrence |s(n+1,k)| = n|s(n,k)| + |s(n,k-1)|."""
    row = [1]
    for m in range(n):
        row = [m * a + b for a, b in zip(row + [0], [0] + row, strict=True)]
    return row


def crt_pmf(n, rho):
    log_norm = math.lgamma(rho) - math.lgamma(rho + n)
    row = unsigned_stirling_first_kind(n)
    return np.array([row[k] * math.exp(k * math.log(rho) + log_norm) if k else float(n == 0)
                     for k in range(n + 1)])


@pytest.mark.parametrize("n, rho", [(1, 0.7), (4, 0.3), (7, 2.5), (12, 1.0), (20, 8.0)])
def test_crt_table_counts_follow_exact_distribution(n, rho):
    num_draws = 20_000
    draws = sample_crt_table_counts(
        jax.random.key(n), jnp.full(num_draws, n), jnp.full(num_draws, rho)
    )
    pmf = crt_pmf(n, rho)
    np.testing.assert_allclose(pmf.sum(), 1.0, rtol=1e-12)
    assert_counts_follow(np.bincount(np.asarray(draws), minlength=n + 1), pmf)


@pytest.mark.parametrize("n, rho, keep", [(6, 0.8, 0.3), (15, 4.0, 0.6)])
def test_thinned_crt_table_counts_are_binomial_thinning(n, rho, keep):
    """CRT(n, rho) with each table kept with probability `keep`: the exact pmf is the CRT pmf
    mixed over Binomial(m, keep)."""
    num_draws = 20_000
    draws = sample_crt_table_counts(jax.random.key(n), jnp.full(num_draws, n),
                                    jnp.full(num_draws, rho), keep=keep)
    tables = crt_pmf(n, rho)
    pmf = np.array([sum(tables[m] * math.comb(m, k) * keep**k * (1 - keep) ** (m - k)
                        for m in range(k, n + 1)) for k in range(n + 1)])
    assert_counts_follow(np.bincount(np.asarray(draws), minlength=n + 1), pmf)


def test_crt_mixed_cells_across_many_chunks():
    """Cells of very different sizes laid end to end keep their own exact means."""
    counts = np.array([[0, 3, 5000], [40, 1, 0]])
    rho = np.array([[1.0, 0.5, 3.0], [1e6, 0.01, 2.0]])
    num_draws = 400
    keys = jax.random.split(jax.random.key(0), num_draws)
    draws = jax.vmap(sample_crt_table_counts, in_axes=(0, None, None))(keys, counts, rho)
    seated_before = [np.arange(c) for c in counts.ravel()]
    means = [np.sum(r / (r + c)) for r, c in zip(rho.ravel(), seated_before, strict=True)]
    variances = [np.sum(r / (r + c) * c / (r + c)) for r, c in
                 zip(rho.ravel(), seated_before, strict=True)]
    draws = np.asarray(draws).reshape(num_draws, -1)
    np.testing.assert_array_equal(draws[:, counts.ravel() == 0], 0)
    for cell in np.flatnonzero(counts.ravel()):
        standard_error = math.sqrt(variances[cell] / num_draws) + 1e-9
        assert abs(draws[:, cell].mean() - means[cell]) < 5 * standard_error + 1e-9


def test_sample_pi_has_dirichlet_moments():
    counts = np.array([[5, 1, 0], [2, 8, 3], [0, 0, 0]])
    betas = np.array([0.5, 0.3, 0.2])
    alpha, kappa, num_draws = 2.0, 4.0, 20_000
    keys = jax.random.split(jax.random.key(1), num_draws)
    draws = np.asarray(jax.vmap(sample_pi, in_axes=(0, None, None, None, None))(
        keys, counts, betas, alpha, kappa))
    concentration = counts + alpha * betas + kappa * np.eye(3)
    total = concentration.sum(1, keepdims=True)
    mean = concentration / total
    np.testing.assert_allclose(draws.sum(-1), 1.0, rtol=1e-12)
    assert_mean_within_mc_error(draws, mean)
    variance = mean * (1 - mean) / (total + 1)
    assert_mean_within_mc_error((draws - mean) ** 2, variance)


def test_sample_dir_transitions_has_dirichlet_moments():
    counts = np.array([[3, 0], [1, 9]])
    beta, kappa, num_draws = 0.5, 2.0, 20_000
    keys = jax.random.split(jax.random.key(2), num_draws)
    draws = np.asarray(jax.vmap(sample_dir_transitions, in_axes=(0, None, None, None))(
        keys, counts, beta, kappa))
    concentration = counts + beta + kappa * np.eye(2)
    assert_mean_within_mc_error(draws, concentration / concentration.sum(1, keepdims=True))


def two_state_betas_posterior_moments(counts, alpha, kappa, gamma):
    """Mean and variance of beta_0 given transition counts, by quadrature (K = 2)."""

    def log_density(b):
        betas = np.array([b, 1 - b])
        log_p = (gamma / 2 - 1) * (np.log(b) + np.log1p(-b))
        for i in range(2):
            prior = alpha * betas + kappa * (np.arange(2) == i)
            log_p += special.gammaln(prior.sum()) - special.gammaln(prior.sum() + counts[i].sum())
            log_p += np.sum(special.gammaln(prior + counts[i]) - special.gammaln(prior))
        return log_p

    grid = np.linspace(1e-9, 1 - 1e-9, 20001)
    log_values = np.array([log_density(b) for b in grid])
    density = np.exp(log_values - log_values.max())
    norm = integrate.simpson(density, x=grid)
    mean = integrate.simpson(grid * density, x=grid) / norm
    variance = integrate.simpson((grid - mean) ** 2 * density, x=grid) / norm
    return mean, variance


def batch_means_z(chain, expected, num_batches=50):
    """z-score of a chain's mean, with variance from batch means (accounts for autocorrelation)."""
    batches = np.asarray(chain)[: len(chain) // num_batches * num_batches]
    batch_means = batches.reshape(num_batches, -1).mean(1)
    return (batch_means.mean() - expected) / (batch_means.std(ddof=1) / math.sqrt(num_batches))


@pytest.mark.slow
@pytest.mark.parametrize("kappa", [0.0, 6.0])
def test_betas_chain_targets_exact_posterior(kappa):
    """Iterating `sample_betas` with fixed counts is a Gibbs sampler for p(betas | counts).

    Its stationary mean must match the exact posterior of the weak-limit sticky HDP, which
    depends on the sticky override correction: dropping it shifts the mean by many sigmas.
    """
    counts = np.array([[30, 2], [5, 4]])
    alpha, gamma, num_steps = 1.5, 2.0, 40_000
    exact_mean, exact_variance = two_state_betas_posterior_moments(counts, alpha, kappa, gamma)

    def step(betas, key):
        betas = sample_betas(key, counts, betas, alpha, kappa, gamma)
        return betas, betas[0]

    keys = jax.random.split(jax.random.key(3), num_steps)
    _, chain = jax.lax.scan(step, jnp.array([0.5, 0.5]), keys)
    chain = np.asarray(chain)[1000:]
    assert abs(batch_means_z(chain, exact_mean)) < 4.5
    assert abs(batch_means_z((chain - exact_mean) ** 2, exact_variance)) < 4.5


def test_init_hdp_transitions_prior_moments():
    num_states, alpha, kappa, gamma, num_draws = 4, 3.0, 5.0, 2.0, 20_000
    keys = jax.random.split(jax.random.key(4), num_draws)
    betas, pi = jax.vmap(init_hdp_transitions, in_axes=(0, None, None, None, None))(
        keys, num_states, alpha, kappa, gamma)
    betas, pi = np.asarray(betas), np.asarray(pi)
    np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=1e-12)
    assert np.all(pi > 0)
    assert_mean_within_mc_error(betas, np.full(num_states, 1 / num_states))
    beta_variance = (1 / num_states) * (1 - 1 / num_states) / (gamma + 1)
    assert_mean_within_mc_error((betas - 1 / num_states) ** 2, np.full(num_states, beta_variance))
    expected_diagonal = (alpha / num_states + kappa) / (alpha + kappa)
    assert_mean_within_mc_error(np.diagonal(pi, axis1=1, axis2=2), np.full(4, expected_diagonal))


def test_resample_functions_jit_and_count_their_inputs():
    z = jnp.array([[0, 0, 1, 1, 2], [2, 2, 2, 0, 0]])
    mask = jnp.ones((2, 5))
    key = jax.random.key(5)
    betas0 = jnp.full(3, 1 / 3)
    update = jax.jit(resample_hdp_transitions)
    betas, pi = update(key, z, mask, betas0, 5.7, 1e2, 1e3)
    expected = sample_hdp_transitions(key, count_transitions(3, z, mask), betas0, 5.7, 1e2, 1e3)
    np.testing.assert_allclose(betas, expected[0])
    np.testing.assert_allclose(pi, expected[1])
    pi_dir = jax.jit(resample_dir_transitions, static_argnums=1)(key, 3, z, mask, 1.0, 10.0)
    np.testing.assert_allclose(
        pi_dir, sample_dir_transitions(key, count_transitions(3, z, mask), 1.0, 10.0))


def test_float32_tiny_concentrations_give_valid_matrices():
    counts = jnp.zeros((100, 100), jnp.int32)
    betas = jnp.full(100, 1e-30, jnp.float32).at[0].set(1.0)
    betas, pi = sample_hdp_transitions(jax.random.key(6), counts, betas, 5.7, 1e6, 1e3)
    assert betas.dtype == pi.dtype == jnp.float32
    assert np.all(np.isfinite(pi)) and np.allclose(pi.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda k: sample_betas(k, jnp.ones((3, 2)), jnp.ones(3) / 3, 1.0, 1.0, 1.0),
         "transition_counts"),
        (lambda k: sample_betas(k, jnp.ones((3, 3)), jnp.ones(4) / 4, 1.0, 1.0, 1.0), "betas"),
        (lambda k: sample_betas(k, jnp.ones((3, 3)), jnp.ones(3) / 3, -1.0, 1.0, 1.0), "alpha"),
        (lambda k: sample_pi(k, jnp.ones((3, 3)), jnp.ones(3) / 3, 1.0, -2.0), "kappa"),
        (lambda k: sample_betas(k, jnp.ones((3, 3)), jnp.ones(3) / 3, 1.0, 1.0, 0.0), "gamma"),
        (lambda k: init_hdp_transitions(k, 0, 1.0, 1.0, 1.0), "num_states"),
        (lambda k: sample_dir_transitions(k, jnp.ones((2, 2)), -1.0, 1.0), "beta"),
        (lambda k: count_transitions(3, jnp.zeros((2, 5), int), jnp.ones((3, 5))), "mask"),
    ],
)
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        call(jax.random.key(0))
