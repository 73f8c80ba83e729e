"""Random draws from the standard distributions the conditionals need.

Every sampler takes an explicit `jax.random` key and draws in the dtype of its parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray

from moseq.ops._checks import check_ndim, check_positive, check_square, is_concrete
from moseq.ops.linalg import cholesky, solve_triangular, symmetrize


def sample_dirichlet(
    key: PRNGKeyArray, concentration: Float[Array, "... K"]
) -> Float[Array, "... K"]:
    """One Dirichlet draw per leading index of `concentration`.

    Drawn as the softmax of log-gamma variates, so concentrations far below 1 (weak-limit HDP
    rows with small `alpha * beta`) give valid probability vectors instead of 0/0. Entries
    that underflow are raised to the smallest normal float, so that log densities of the
    draw stay finite (the row sums move by far less than rounding error).
    """
    concentration = jnp.asarray(concentration)
    dtype = concentration.dtype if jnp.issubdtype(concentration.dtype, jnp.floating) else float
    log_gammas = jax.random.loggamma(key, concentration, concentration.shape, dtype=dtype)
    probabilities = jax.nn.softmax(log_gammas, axis=-1)
    return jnp.maximum(probabilities, jnp.finfo(probabilities.dtype).tiny)


def _float_dtype(*arrays):
    dtype = jnp.result_type(*arrays)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def sample_gamma(key: PRNGKeyArray, a: ArrayLike, b: ArrayLike) -> Array:
    """Gamma(shape a, rate b) draws, broadcast over `a` and `b` (mean a / b)."""
    dtype = _float_dtype(a, b)
    a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    shape = jnp.broadcast_shapes(a.shape, b.shape)
    return jax.random.gamma(key, jnp.broadcast_to(a, shape), dtype=dtype) / b


def sample_inv_gamma(key: PRNGKeyArray, a: ArrayLike, b: ArrayLike) -> Array:
    """Inverse-gamma(shape a, scale b) draws: 1 / Gamma(a, rate b) (mean b / (a - 1))."""
    return 1.0 / sample_gamma(key, a, b)


def sample_scaled_inv_chi2(
    key: PRNGKeyArray, degs: ArrayLike, variance: ArrayLike
) -> Array:
    """Scaled-inverse-χ²(ν = degs, s² = variance) draws = InvGamma(ν/2, ν s²/2)."""
    dtype = _float_dtype(degs, variance)
    degs, variance = jnp.asarray(degs, dtype), jnp.asarray(variance, dtype)
    return sample_inv_gamma(key, degs / 2, degs * variance / 2)


def sample_chi2(key: PRNGKeyArray, degs: ArrayLike) -> Array:
    """χ²(degs) draws = 2 Gamma(degs/2, rate 1); `degs` need not be an integer."""
    dtype = _float_dtype(degs)
    degs = jnp.asarray(degs, dtype)
    return 2.0 * jax.random.gamma(key, degs / 2, dtype=dtype)


def sample_mn(
    key: PRNGKeyArray, M: Float[Array, "m n"], U: Float[Array, "m m"], V: Float[Array, "n n"]
) -> Float[Array, "m n"]:
    """Matrix-normal MN(M, U, V) draw: M + chol(U) G chol(V)ᵀ, G iid N(0, 1).

    U is the row covariance, V the column covariance (vec(X) ~ N(vec(M), V ⊗ U)); both must be
    positive definite. One matrix per call; batch with `jax.vmap`.
    """
    check_ndim("M", M, 2, "(m, n)")
    _check_square_of("U", U, np.shape(M)[0])
    _check_square_of("V", V, np.shape(M)[1])
    dtype = _float_dtype(M, U, V)
    M, U, V = (jnp.asarray(x, dtype) for x in (M, U, V))
    G = jax.random.normal(key, M.shape, dtype)
    return M + cholesky(symmetrize(U)) @ G @ cholesky(symmetrize(V)).T


def sample_invwishart(key: PRNGKeyArray, S: Float[Array, "n n"], nu) -> Float[Array, "n n"]:
    """Inverse-Wishart IW(S, ν) draw, parameterised so that E[Σ] = S / (ν - n - 1).

    Bartlett construction: with S = L Lᵀ and A lower triangular, A_ii = sqrt(χ²(ν - i)) and
    A_ij ~ N(0, 1) below the diagonal, A Aᵀ ~ Wishart(I, ν) and
    Σ = (A⁻¹ Lᵀ)ᵀ (A⁻¹ Lᵀ) = L (A Aᵀ)⁻¹ Lᵀ ~ IW(S, ν); it is symmetric PSD by construction.
    Needs ν > n - 1 (real ν allowed). One matrix per call; batch with `jax.vmap`.
    """
    check_square("S", S)
    check_ndim("S", S, 2, "(n, n)")
    n = np.shape(S)[-1]
    check_positive("nu", nu)
    if is_concrete(nu) and np.any(np.asarray(nu, dtype=float) <= n - 1):
        raise ValueError(f"`nu` must exceed n - 1 = {n - 1} for an {n} x {n} scale; got {nu!r}.")
    dtype = _float_dtype(S, nu)
    S, nu = jnp.asarray(S, dtype), jnp.asarray(nu, dtype)
    chi2_key, normal_key = jax.random.split(key)
    diagonal = jnp.sqrt(sample_chi2(chi2_key, nu - jnp.arange(n, dtype=dtype)))
    below = jnp.tril(jax.random.normal(normal_key, (n, n), dtype), -1)
    bartlett = below + jnp.diag(diagonal)
    chol_S = cholesky(symmetrize(S))
    root = solve_triangular(bartlett, chol_S.T)
    return root.T @ root


def sample_mniw(
    key: PRNGKeyArray, nu, S: Float[Array, "d d"], M: Float[Array, "d p"], K: Float[Array, "p p"]
) -> tuple[Float[Array, "d p"], Float[Array, "d d"]]:
    """Matrix-normal-inverse-Wishart draw: Σ ~ IW(S, ν), then A ~ MN(M, Σ, K).

    Returns ``(A, Σ)``. The two draws use independent children of `key` (the key itself is
    never used for a draw). Batch over states with `jax.vmap`.
    """
    iw_key, mn_key = jax.random.split(key)
    sigma = sample_invwishart(iw_key, S, nu)
    return sample_mn(mn_key, M, sigma, K), sigma


def _check_square_of(name: str, array, size: int) -> None:
    if np.shape(array) != (size, size):
        raise ValueError(f"`{name}` must have shape ({size}, {size}); got {np.shape(array)}.")
