"""TEMPORARY: replaced by helper-1's regression/distributions."""
import jax
import jax.numpy as jnp

from moseq.ops.linalg import psd_inv, symmetrize


def sample_invwishart(seed, S, nu):
    n = S.shape[-1]
    k1, k2 = jax.random.split(seed)
    chi2 = 2 * jax.random.gamma(k1, (nu - jnp.arange(n)) / 2, dtype=S.dtype)
    X = jnp.triu(jax.random.normal(k2, (n, n), S.dtype), 1) + jnp.diag(jnp.sqrt(chi2))
    R = jnp.linalg.qr(X, mode="r")
    T = jax.scipy.linalg.solve_triangular(R, jnp.linalg.cholesky(S).T, lower=False).T
    return symmetrize(T @ T.T)

def sample_mniw(seed, nu, S, M, K):
    k1, k2 = jax.random.split(seed)
    Sigma = sample_invwishart(k1, S, nu)
    G = jax.random.normal(k2, M.shape, M.dtype)
    return M + jnp.linalg.cholesky(Sigma) @ G @ jnp.linalg.cholesky(K).T, Sigma

def mniw_posterior(S_xx, S_yx, S_yy, n, nu_0, S_0, M_0, K_0):
    K0inv = psd_inv(K_0, 0.0)
    Kninv = K0inv + S_xx
    K_n = psd_inv(Kninv, 0.0)
    M_n = (M_0 @ K0inv + S_yx) @ K_n
    S_n = symmetrize(S_0 + S_yy + M_0 @ K0inv @ M_0.T - M_n @ Kninv @ M_n.T)
    return nu_0 + n, S_n, M_n, K_n
