"""Log densities of the priors and conditionals, for log joints and exact tests."""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammaln, multigammaln
from jaxtyping import Array, Float

from moseq.ops.linalg import cholesky, logdet_from_cholesky, solve_triangular


def dirichlet_log_prob(x: Float[Array, "... K"], concentration: Float[Array, "... K"]):
    """log Dir(x; concentration), summed over leading axes."""
    concentration = jnp.broadcast_to(concentration, x.shape)
    log_norm = gammaln(jnp.sum(concentration, -1)) - jnp.sum(gammaln(concentration), -1)
    return jnp.sum(log_norm + jnp.sum((concentration - 1) * jnp.log(x), -1))


def inverse_wishart_log_prob(
    sigma: Float[Array, "n n"], scale: Float[Array, "n n"], dof: float
) -> Float[Array, ""]:
    """log IW(sigma; scale, dof), the density with mean scale / (dof - n - 1)."""
    return _inverse_wishart_given_factor(cholesky(sigma), scale, dof)


def _inverse_wishart_given_factor(sigma_factor, scale, dof):
    """`inverse_wishart_log_prob` from sigma's lower Cholesky factor L, with
    tr(sigma⁻¹ scale) = |L⁻¹ chol(scale)|²_F."""
    n = sigma_factor.shape[-1]
    scale_factor = cholesky(scale)
    trace = jnp.sum(solve_triangular(sigma_factor, scale_factor) ** 2)
    return (0.5 * dof * logdet_from_cholesky(scale_factor) - 0.5 * dof * n * jnp.log(2.0)
            - multigammaln(0.5 * dof, n)
            - 0.5 * (dof + n + 1) * logdet_from_cholesky(sigma_factor) - 0.5 * trace)


def matrix_normal_log_prob(
    X: Float[Array, "n p"], M: Float[Array, "n p"], U: Float[Array, "n n"], V: Float[Array, "p p"]
) -> Float[Array, ""]:
    """log MN(X; M, U, V): row covariance U, column covariance V (vec(X) ~ N(vec M, V ⊗ U))."""
    return _matrix_normal_given_factors(X - M, cholesky(U), cholesky(V))


def _matrix_normal_given_factors(residual, row_factor, column_factor):
    """`matrix_normal_log_prob` of X - M = `residual` from the lower Cholesky factors of U
    and V, with tr(V⁻¹ Rᵀ U⁻¹ R) = |L_V⁻¹ (L_U⁻¹ R)ᵀ|²_F."""
    n, p = residual.shape
    whitened = solve_triangular(column_factor, solve_triangular(row_factor, residual).T)
    return -0.5 * (n * p * jnp.log(2 * jnp.pi) + p * logdet_from_cholesky(row_factor)
                   + n * logdet_from_cholesky(column_factor) + jnp.sum(whitened**2))


def mniw_log_prob(Ab, Q, nu, S, M, K) -> Float[Array, ""]:
    """log of Q ~ IW(S, nu), Ab | Q ~ MN(M, Q, K); Q is factorised once for both terms (and,
    vmapped over states with the hyperparameters shared, S and K once for all states)."""
    factor = cholesky(Q)
    return (_inverse_wishart_given_factor(factor, S, nu)
            + _matrix_normal_given_factors(Ab - M, factor, cholesky(K)))


def scaled_inv_chi2_log_prob(x, dof, scale):
    """log Scaled-Inv-chi^2(x; dof, scale) = log InvGamma(x; dof/2, dof*scale/2), elementwise."""
    shape, rate = 0.5 * dof, 0.5 * dof * scale
    return shape * jnp.log(rate) - gammaln(shape) - (shape + 1) * jnp.log(x) - rate / x
