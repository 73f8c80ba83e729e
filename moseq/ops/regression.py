"""Bayesian multivariate linear regression: the matrix-normal-inverse-Wishart (MNIW) update.

Model: y = A x̃ + N(0, Σ) for outputs y in R^d and regressors x̃ in R^p (for an affine model,
x̃ ends with a constant 1 and A = Ab holds the bias in its last column). Prior
Σ ~ IW(S_0, ν_0), A | Σ ~ MN(M_0, Σ, K_0) (row covariance Σ, column covariance K_0).
Given the weighted sufficient statistics of the data the posterior is MNIW(ν_n, S_n, M_n, K_n):

    K_n⁻¹ = K_0⁻¹ + S_xx
    M_n   = (M_0 K_0⁻¹ + S_yx) K_n
    S_n   = S_0 + S_yy + M_0 K_0⁻¹ M_0ᵀ - M_n K_n⁻¹ M_nᵀ
    ν_n   = ν_0 + n

This module is the one home of that formula.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray

from moseq.ops.checks import check_ndim, check_positive, check_same, check_square
from moseq.ops.distributions import sample_mniw
from moseq.ops.linalg import cholesky, cholesky_solve, solve_triangular, symmetrize


class RegressionStats(NamedTuple):
    """Weighted sufficient statistics of a regression y = A x̃ (sums over data points i).

    Attributes:
        S_xx: ``(p, p)`` Σ w_i x̃_i x̃_iᵀ.
        S_yx: ``(d, p)`` Σ w_i y_i x̃_iᵀ.
        S_yy: ``(d, d)`` Σ w_i y_i y_iᵀ.
        n: scalar Σ w_i (the number of points when weights are 0/1).

    Statistics of disjoint data sets add (``jax.tree.map(jnp.add, a, b)``, or a `psum`).
    """

    S_xx: Float[Array, "p p"]
    S_yx: Float[Array, "d p"]
    S_yy: Float[Array, "d d"]
    n: Float[Array, ""]


class MNIWParams(NamedTuple):
    """Parameters of MNIW(ν, S, M, K): Σ ~ IW(S, ν), A | Σ ~ MN(M, Σ, K)."""

    nu: Float[Array, ""]
    S: Float[Array, "d d"]
    M: Float[Array, "d p"]
    K: Float[Array, "p p"]


def regression_stats(
    inputs: Float[Array, "M p"], outputs: Float[Array, "M d"], weights: Float[Array, " M"]
) -> RegressionStats:
    """Weighted sufficient statistics of M data points (regressors, outputs, weights >= 0).

    `inputs` are the regressors x̃ as given (append the constant 1 yourself for an affine
    model, e.g. with `moseq.ops.linalg.pad_affine`). A weight of 0 removes a point.
    """
    check_ndim("inputs", inputs, 2, "(M, p)")
    check_ndim("outputs", outputs, 2, "(M, d)")
    check_ndim("weights", weights, 1, "(M,)")
    check_same("inputs", np.shape(inputs)[0], "outputs", np.shape(outputs)[0], "number of points")
    check_same("inputs", np.shape(inputs)[0], "weights", np.shape(weights)[0], "number of points")
    dtype = jnp.result_type(inputs, outputs, weights, float)
    x, y, w = (jnp.asarray(a, dtype) for a in (inputs, outputs, weights))
    weighted_x = x * w[:, None]
    return RegressionStats(
        S_xx=symmetrize(weighted_x.T @ x),
        S_yx=y.T @ weighted_x,
        S_yy=symmetrize((y * w[:, None]).T @ y),
        n=jnp.sum(w),
    )


def mniw_posterior(
    S_xx: Float[Array, "p p"],
    S_yx: Float[Array, "d p"],
    S_yy: Float[Array, "d d"],
    n: ArrayLike,
    nu_0: ArrayLike,
    S_0: Float[Array, "d d"],
    M_0: Float[Array, "d p"],
    K_0: Float[Array, "p p"],
) -> MNIWParams:
    """MNIW posterior (ν_n, S_n, M_n, K_n) from regression statistics and the prior.

    The statistics come first, in `RegressionStats` order, so ``mniw_posterior(*stats, ...)``
    works. Computed from one Cholesky factorisation of the joint (p + d) x (p + d) matrix

        G = [[K_0⁻¹ + S_xx,        (M_0 K_0⁻¹ + S_yx)ᵀ        ],
             [M_0 K_0⁻¹ + S_yx,    S_0 + S_yy + M_0 K_0⁻¹ M_0ᵀ]] = L Lᵀ,

    so that S_n, the Schur complement of the top-left block, is L₂₂ L₂₂ᵀ: symmetric positive
    definite by construction rather than the difference of two large matrices (the float32
    failure of the direct formula). M_n = L₂₁ L₁₁⁻¹ and K_n = (L₁₁ L₁₁ᵀ)⁻¹. If rounding has
    left G numerically indefinite, it is refactorised with a ridge at the statistics' rounding
    level, (p + d)·eps·diag(G). In float32 the accuracy of S_n is bounded by that of S_yy
    (about eps·max|S_yy|): centre the data upstream when residuals are tiny compared to the
    outputs. Needs S_0 and K_0 positive definite. Batch over states with `jax.vmap`.
    """
    check_square("K_0", K_0)
    check_square("S_0", S_0)
    check_ndim("M_0", M_0, 2, "(d, p)")
    d, p = np.shape(M_0)
    for name, value, shape in (
        ("S_xx", S_xx, (p, p)),
        ("S_yx", S_yx, (d, p)),
        ("S_yy", S_yy, (d, d)),
        ("S_0", S_0, (d, d)),
        ("K_0", K_0, (p, p)),
    ):
        if np.shape(value) != shape:
            raise ValueError(
                f"`{name}` must have shape {shape} to match `M_0` {(d, p)}; got {np.shape(value)}."
            )
    if np.ndim(n) != 0 or np.ndim(nu_0) != 0:
        raise ValueError("`n` and `nu_0` must be scalars (vmap over states).")
    check_positive("n", n, allow_zero=True)
    check_positive("nu_0", nu_0)

    dtype = jnp.result_type(S_xx, S_yx, S_yy, S_0, M_0, K_0, float)
    S_xx, S_yx, S_yy, S_0, M_0, K_0 = (
        jnp.asarray(a, dtype) for a in (S_xx, S_yx, S_yy, S_0, M_0, K_0)
    )
    K_0_chol = cholesky(symmetrize(K_0))
    prior_precision = cholesky_solve(K_0_chol, jnp.eye(p, dtype=dtype))
    # M_0 K_0⁻¹ M_0ᵀ as a Gram matrix, so it is PSD by construction.
    whitened_M_0 = solve_triangular(K_0_chol, M_0.T)  # L_K⁻¹ M_0ᵀ
    cross = cholesky_solve(K_0_chol, M_0.T).T + S_yx  # M_0 K_0⁻¹ + S_yx
    joint = jnp.block(
        [
            [symmetrize(prior_precision) + symmetrize(S_xx), cross.T],
            [cross, symmetrize(S_0) + symmetrize(S_yy) + whitened_M_0.T @ whitened_M_0],
        ]
    )
    joint = symmetrize(joint)
    # Statistics accumulated in floating point are only known to ~eps relative to their
    # diagonal. If rounding has made the joint matrix numerically indefinite (float32, many
    # poorly centred points, small residuals), refactorise with a ridge of that size. The
    # second factorisation depends on the first, so the two never run concurrently.
    first_try = cholesky(joint)
    failed = ~jnp.all(jnp.isfinite(first_try))
    ridge = (p + d) * jnp.finfo(dtype).eps * jnp.abs(jnp.diagonal(joint))
    L = cholesky(joint + jnp.diag(jnp.where(failed, ridge, 0.0)))
    L11, L21, L22 = L[:p, :p], L[p:, :p], L[p:, p:]
    L11_inv = solve_triangular(L11, jnp.eye(p, dtype=dtype))
    return MNIWParams(
        nu=jnp.asarray(nu_0, dtype) + jnp.asarray(n, dtype),
        S=symmetrize(L22 @ L22.T),
        M=L21 @ L11_inv,
        K=symmetrize(L11_inv.T @ L11_inv),
    )


def resample_mniw(
    key: PRNGKeyArray,
    stats: RegressionStats,
    nu_0: ArrayLike,
    S_0: Float[Array, "d d"],
    M_0: Float[Array, "d p"],
    K_0: Float[Array, "p p"],
) -> tuple[Float[Array, "d p"], Float[Array, "d d"]]:
    """One draw (A, Σ) from the MNIW posterior given regression statistics and the prior."""
    posterior = mniw_posterior(*stats, nu_0, S_0, M_0, K_0)
    return sample_mniw(key, posterior.nu, posterior.S, posterior.M, posterior.K)
