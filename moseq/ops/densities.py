"""Log densities of the priors and conditionals, for log joints and exact tests."""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import gammaln, multigammaln
from jaxtyping import Array, Float

from moseq.ops.linalg import cholesky, cholesky_solve, logdet_from_cholesky


def dirichlet_log_prob(x: Float[Array, "... K"], concentration: Float[Array, "... K"]):
    """log Dir(x; concentration), summed over leading axes."""
    concentration = jnp.broadcast_to(concentration, x.shape)
    log_norm = gammaln(jnp.sum(concentration, -1)) - jnp.sum(gammaln(concentration), -1)
    return jnp.sum(log_norm + jnp.sum((concentration - 1) * jnp.log(x), -1))


def _logdet(spd: Float[Array, "... n n"]):
    return logdet_from_cholesky(cholesky(spd))


def inverse_wishart_log_prob(
    sigma: Float[Array, "n n"], scale: Float[Array, "n n"], dof: float
) -> Float[Array, ""]:
    """log IW(sigma; scale, dof), the density with mean scale / (dof - n - 1)."""
    n = sigma.shape[-1]
    trace = jnp.trace(cholesky_solve(cholesky(sigma), scale))
    return (0.5 * dof * _logdet(scale) - 0.5 * dof * n * jnp.log(2.0)
            - multigammaln(0.5 * dof, n) - 0.5 * (dof + n + 1) * _logdet(sigma) - 0.5 * trace)


def matrix_normal_log_prob(
    X: Float[Array, "n p"], M: Float[Array, "n p"], U: Float[Array, "n n"], V: Float[Array, "p p"]
) -> Float[Array, ""]:
    """log MN(X; M, U, V): row covariance U, column covariance V (vec(X) ~ N(vec M, V ⊗ U))."""
    n, p = X.shape
    residual = X - M
    quadratic = jnp.trace(
        cholesky_solve(cholesky(V), residual.T) @ cholesky_solve(cholesky(U), residual)
    )
    return -0.5 * (n * p * jnp.log(2 * jnp.pi) + p * _logdet(U) + n * _logdet(V) + quadratic)


def mniw_log_prob(Ab, Q, nu, S, M, K) -> Float[Array, ""]:
    """log of Q ~ IW(S, nu), Ab | Q ~ MN(M, Q, K)."""
    return inverse_wishart_log_prob(Q, S, nu) + matrix_normal_log_prob(Ab, M, Q, K)


def scaled_inv_chi2_log_prob(x, dof, scale):
    """log Scaled-Inv-chi^2(x; dof, scale) = log InvGamma(x; dof/2, dof*scale/2), elementwise."""
    shape, rate = 0.5 * dof, 0.5 * dof * scale
    return shape * jnp.log(rate) - gammaln(shape) - (shape + 1) * jnp.log(x) - rate / x
