"""Moments of the conjugate samplers against their closed forms, with draw-count tolerances,
and Kolmogorov–Smirnov tests of the gamma sampler against the exact law.

Where the variance of a moment estimator is known in closed form the z-score uses it;
otherwise `assert_mean_within_mc_error` estimates it from the draws.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from moseq.ops.distributions import (
    _gamma_variates,
    sample_chi2,
    sample_dirichlet,
    sample_gamma,
    sample_inv_gamma,
    sample_invwishart,
    sample_mn,
    sample_mniw,
    sample_scaled_inv_chi2,
    standard_normal,
    uniform,
)
from tests.helpers import assert_counts_follow, assert_mean_within_mc_error

NUM_DRAWS = 100_000
KS_DRAWS = 20_000


def assert_z_below(estimate, truth, stderr, num_sigmas=5.0):
    z = np.abs(np.asarray(estimate) - truth) / stderr
    assert np.all(z < num_sigmas), f"max |z| = {np.max(z):.2f}"


def assert_scalar_moments(draws, mean, variance, fourth_central_moment):
    """Mean and variance of iid scalar draws, z-scored with the exact sampling variances."""
    draws = np.asarray(draws, dtype=float)
    n = draws.shape[0]
    assert_z_below(draws.mean(0), mean, np.sqrt(variance / n))
    squared = (draws - mean) ** 2  # unbiased for the variance when centred on the true mean
    assert_z_below(squared.mean(0), variance, np.sqrt((fourth_central_moment - variance**2) / n))


def random_spd(rng, n, ridge=0.5):
    G = rng.normal(size=(n, n))
    return G @ G.T / n + ridge * np.eye(n)


def test_gamma_uses_shape_and_rate_and_broadcasts():
    a = np.array([0.7, 3.5, 10.0])
    b = np.array([[2.0], [0.5]])
    draws = sample_gamma(jax.random.key(0), np.broadcast_to(a, (NUM_DRAWS, 2, 3)), b)
    assert draws.shape == (NUM_DRAWS, 2, 3)
    mean, var = a / b, a / b**2
    fourth = 3 * a * (a + 2) / b**4  # central fourth moment of Gamma(a, rate b)
    assert_scalar_moments(draws, mean, var, fourth)


def log_gamma_draws(seed, a):
    """float64 logs of Gamma(a, 1) draws, one per entry of `a`, from the samplers' core."""
    key, a = jax.random.key(seed), np.asarray(a, dtype=float)
    return np.asarray(_gamma_variates(key, a, jnp.float64, log=True))


def log_gamma_cdf(t, a):
    """P(log G <= t) for G ~ Gamma(a, 1), also where e^t underflows: there P(G <= x) is
    x^a / Γ(a + 1) up to a relative error below x."""
    t = np.asarray(t, dtype=float)
    tail = np.exp(a * np.minimum(t, 0) - special.gammaln(a + 1))
    return np.where(t < -700, tail, special.gammainc(a, np.exp(t)))


@pytest.mark.parametrize("a", [1e-3, 0.3, 1.0, 2.5, 50.0])
def test_log_gamma_variates_follow_the_law_of_log_gamma(a):
    # At a = 1e-3 about half the variates are below e^-745, so the law is checked on the logs.
    log_draws = log_gamma_draws(10, np.full(KS_DRAWS, a))
    assert log_draws.dtype == np.float64 and np.all(np.isfinite(log_draws))
    assert stats.kstest(log_draws, lambda t: log_gamma_cdf(t, a)).pvalue > 1e-4


@pytest.mark.parametrize("a", [0.3, 2.5])
def test_float32_gamma_draws_follow_the_gamma_law(a):
    draws = sample_gamma(jax.random.key(11), np.full(KS_DRAWS, a, np.float32), np.float32(1.0))
    assert draws.dtype == jnp.float32
    assert stats.kstest(np.asarray(draws, float), stats.gamma(a).cdf).pvalue > 1e-4


@pytest.mark.parametrize("a", [1e-3, 0.3, 1.0, 2.5, 50.0, 1e4])
def test_log_gamma_variates_have_the_exact_log_moments(a):
    """The cumulants of log G are the polygammas ψ⁽ⁿ⁻¹⁾(a), so mean and variance of the logs
    are z-scored exactly: a wrong boost exponent or Marsaglia–Tsang constant fails here."""
    log_draws = log_gamma_draws(12, np.full(NUM_DRAWS, a))
    k2, k4 = special.polygamma(1, a), special.polygamma(3, a)
    assert_scalar_moments(log_draws, special.digamma(a), k2, k4 + 3 * k2**2)


def test_gamma_special_shapes_and_batching():
    a = np.array([0.0, np.inf, -1.0, np.nan, 1e-300, 0.5])
    log_draws = log_gamma_draws(13, a)
    assert log_draws[0] == -np.inf and log_draws[1] == np.inf
    assert np.all(np.isnan(log_draws[2:4])) and np.all(np.isfinite(log_draws[4:]))
    # The same key gives the same proposals, so the variates formed directly are the exps.
    np.testing.assert_allclose(sample_gamma(jax.random.key(13), a, 1.0), np.exp(log_draws))
    assert log_gamma_draws(14, np.ones((0, 3))).shape == (0, 3)
    # Under vmap each key's loop stops with its own last pending entry: same draws as one by one.
    keys = jax.random.split(jax.random.key(15), 4)
    shapes = np.array([[1e-2, 0.5, 1.0, 7.0]] * 50)
    one_by_one = np.stack([sample_gamma(key, shapes, 2.0) for key in keys])
    batched = jax.jit(jax.vmap(sample_gamma, in_axes=(0, None, None)))(keys, shapes, 2.0)
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-12)


@pytest.mark.parametrize(
    "dtype, scale", [(np.float64, 1e-6), (np.float32, 1e-6), (np.float32, 1e-30)]
)
def test_dirichlet_with_tiny_concentrations_picks_vertices_in_proportion(dtype, scale):
    """Dir(s w) with s → 0 puts its mass on one vertex, vertex k with probability w_k / Σ w:
    rows stay finite and normalised, and the vertex counts follow w."""
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    concentration = np.full((KS_DRAWS, 4), scale * weights, dtype)
    draws = np.asarray(sample_dirichlet(jax.random.key(16), concentration))
    assert draws.dtype == dtype and np.all(np.isfinite(draws)) and draws.min() > 0
    np.testing.assert_allclose(draws.sum(-1), 1.0, rtol=1e-6)
    assert_counts_follow(np.bincount(draws.argmax(-1), minlength=4), weights / weights.sum())


def test_inverse_gamma_and_scaled_inverse_chi2():
    a, b = 7.0, 3.0
    draws = np.asarray(sample_inv_gamma(jax.random.key(1), np.full(NUM_DRAWS, a), b))
    mean = b / (a - 1)
    var = b**2 / ((a - 1) ** 2 * (a - 2))
    assert_z_below(draws.mean(), mean, np.sqrt(var / NUM_DRAWS))
    # 1 / InvGamma(a, scale b) is Gamma(a, rate b), whose moments are all finite.
    assert_scalar_moments(1 / draws, a / b, a / b**2, 3 * a * (a + 2) / b**4)

    degs, variance = 9.0, 2.0
    draws = np.asarray(
        sample_scaled_inv_chi2(jax.random.key(2), np.full(NUM_DRAWS, degs), variance)
    )
    mean = degs * variance / (degs - 2)
    var = 2 * degs**2 * variance**2 / ((degs - 2) ** 2 * (degs - 4))
    assert_z_below(draws.mean(), mean, np.sqrt(var / NUM_DRAWS))
    # ν s² / X ~ χ²(ν).
    chi2 = degs * variance / draws
    assert_scalar_moments(chi2, degs, 2 * degs, 12 * degs * (degs + 4))


def test_chi2_with_real_degrees_of_freedom():
    degs = 3.5
    draws = sample_chi2(jax.random.key(3), np.full(NUM_DRAWS, degs))
    assert_scalar_moments(draws, degs, 2 * degs, 12 * degs * (degs + 4))


def test_matrix_normal_has_kronecker_covariance():
    rng = np.random.default_rng(0)
    M, U, V = rng.normal(size=(2, 3)), random_spd(rng, 2), random_spd(rng, 3)
    num_draws = 50_000
    keys = jax.random.split(jax.random.key(4), num_draws)
    draws = np.asarray(jax.vmap(sample_mn, in_axes=(0, None, None, None))(keys, M, U, V))
    flat = draws.reshape(num_draws, -1) - M.reshape(-1)
    cov = np.kron(U, V)  # Cov(X_ij, X_kl) = U_ik V_jl in row-major order
    assert_z_below(flat.mean(0), 0.0, np.sqrt(np.diag(cov) / num_draws))
    sample_cov = flat.T @ flat / num_draws
    stderr = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / num_draws)
    assert_z_below(sample_cov, cov, stderr)


@pytest.mark.parametrize("nu", [11.0, 11.5])
def test_inverse_wishart_moments(nu):
    rng = np.random.default_rng(1)
    n = 3
    S = random_spd(rng, n)
    num_draws = 50_000
    keys = jax.random.split(jax.random.key(5), num_draws)
    draws = np.asarray(jax.vmap(sample_invwishart, in_axes=(0, None, None))(keys, S, nu))
    np.testing.assert_array_equal(draws, np.swapaxes(draws, 1, 2))
    assert np.linalg.eigvalsh(draws).min() > 0
    # E[Σ] = S / (ν - n - 1), with the exact variance of each entry.
    k = nu - n
    mean = S / (k - 1)
    var = ((k + 1) * S**2 + (k - 1) * np.outer(np.diag(S), np.diag(S))) / (
        k * (k - 1) ** 2 * (k - 3)
    )
    assert_z_below(draws.mean(0), mean, np.sqrt(var / num_draws))
    # Σ⁻¹ ~ Wishart(S⁻¹, ν): E[Σ⁻¹] = ν S⁻¹ pins the Bartlett degrees of freedom.
    assert_mean_within_mc_error(np.linalg.inv(draws), nu * np.linalg.inv(S))


def test_mniw_moments():
    rng = np.random.default_rng(2)
    d, p, nu = 2, 3, 9.0
    S, M, K = random_spd(rng, d), rng.normal(size=(d, p)), random_spd(rng, p)
    num_draws = 50_000
    keys = jax.random.split(jax.random.key(6), num_draws)
    A, sigma = jax.vmap(sample_mniw, in_axes=(0, None, None, None, None))(keys, nu, S, M, K)
    A, sigma = np.asarray(A), np.asarray(sigma)
    mean_sigma = S / (nu - d - 1)
    assert_mean_within_mc_error(sigma, mean_sigma)
    assert_mean_within_mc_error(A, M)
    # Cov(A_ij, A_kl) = E[Σ]_ik K_jl: the MN draw uses the drawn Σ as its row covariance.
    centred = (A - M).reshape(num_draws, -1)
    products = centred[:, :, None] * centred[:, None, :]
    assert_mean_within_mc_error(products, np.kron(mean_sigma, K))


def test_samplers_never_reuse_a_key_and_keep_float32():
    f32 = lambda x: np.asarray(x, np.float32)
    rng = np.random.default_rng(3)
    S, M, K = f32(random_spd(rng, 2)), f32(rng.normal(size=(2, 3))), f32(random_spd(rng, 3))
    with jax.debug_key_reuse(True):
        keys = jax.random.split(jax.random.key(0), 7)
        outputs = [
            sample_gamma(keys[0], f32(2.0), f32(1.0)),
            sample_inv_gamma(keys[1], f32(2.0), f32(1.0)),
            sample_scaled_inv_chi2(keys[2], f32(3.0), f32(1.0)),
            sample_chi2(keys[3], f32(3.0)),
            sample_mn(keys[4], M, S, K),
            sample_invwishart(keys[5], S, f32(5.0)),
            *sample_mniw(keys[6], f32(5.0), S, M, K),
        ]
    for output in outputs:
        assert output.dtype == jnp.float32


def test_bad_inputs_name_the_argument():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="nu"):
        sample_invwishart(key, np.eye(3), 2.0)
    with pytest.raises(ValueError, match="nu"):
        sample_mniw(key, -1.0, np.eye(2), np.zeros((2, 3)), np.eye(3))
    with pytest.raises(ValueError, match="`S`"):
        sample_invwishart(key, np.zeros((3, 2)), 5.0)
    with pytest.raises(ValueError, match="`U`"):
        sample_mn(key, np.zeros((2, 3)), np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match="`V`"):
        sample_mn(key, np.zeros((2, 3)), np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match="`M`"):
        sample_mn(key, np.zeros(3), np.eye(3), np.eye(1))


@pytest.mark.parametrize(("shape", "dtype"), [((), jnp.float32), ((2, 3, 4), jnp.float32),
                                              ((2, 1, 3), jnp.float64)])
def test_flat_draws_are_jax_randoms_draws(shape, dtype):
    """standard_normal and uniform draw the numbers of jax.random.normal / uniform (flat, for
    a faster compilation), alone and vmapped over keys."""
    keys = jax.random.split(jax.random.key(4), 3)
    for ours, theirs in ((standard_normal, jax.random.normal), (uniform, jax.random.uniform)):
        np.testing.assert_array_equal(ours(keys[0], shape, dtype), theirs(keys[0], shape, dtype))
        np.testing.assert_array_equal(
            jax.vmap(lambda key: ours(key, shape, dtype))(keys),  # noqa: B023
            jax.vmap(lambda key: theirs(key, shape, dtype))(keys))  # noqa: B023


def test_log_densities_are_scipys():
    """The log densities of the log joint against scipy's, in float64: inverse-Wishart,
    matrix normal, their product (MNIW, as `ARDynamics.log_prob` sums it over states),
    Dirichlet and scaled inverse-χ²."""
    from moseq.ops import densities

    rng = np.random.default_rng(3)
    n, p = 3, 4

    def spd(size):
        root = rng.normal(size=(size, size))
        return root @ root.T + size * np.eye(size)

    sigma, scale, U, V = spd(n), spd(n), spd(n), spd(p)
    X, M = rng.normal(size=(n, p)), rng.normal(size=(n, p))
    dof = 7.5
    expected_iw = stats.invwishart(df=dof, scale=scale).logpdf(sigma)
    expected_mn = stats.matrix_normal(mean=M, rowcov=U, colcov=V).logpdf(X)
    np.testing.assert_allclose(densities.inverse_wishart_log_prob(sigma, scale, dof),
                               expected_iw, rtol=1e-12)
    np.testing.assert_allclose(densities.matrix_normal_log_prob(X, M, U, V), expected_mn,
                               rtol=1e-12)
    expected_mniw = expected_iw + stats.matrix_normal(mean=M, rowcov=sigma,
                                                      colcov=V).logpdf(X)
    np.testing.assert_allclose(densities.mniw_log_prob(X, sigma, dof, scale, M, V),
                               expected_mniw, rtol=1e-12)
    x, concentration = np.array([0.2, 0.3, 0.5]), np.array([0.5, 2.0, 3.0])
    np.testing.assert_allclose(densities.dirichlet_log_prob(x, concentration),
                               stats.dirichlet(concentration).logpdf(x), rtol=1e-12)
    values = np.array([0.3, 1.0, 4.0])
    np.testing.assert_allclose(
        densities.scaled_inv_chi2_log_prob(values, 5.0, 2.0),
        stats.invgamma(2.5, scale=5.0).logpdf(values), rtol=1e-12)
