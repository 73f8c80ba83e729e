"""Bayesian multivariate linear regression: the matrix-normal-inverse-Wishart (MNIW) update.

Model: y = A x̃ + N(0, Σ) for outputs y in R^d and regressors x̃ in R^p (for an affine model,
x̃ ends with a constant 1 and A = Ab holds the bias in its last column). Prior
Σ ~ IW(S_0, ν_0), A | Σ ~ MN(M_0, Σ, K_0) (row covariance Σ, column covariance K_0).
Given the weighted sufficient statistics of the data (raw sums Σ w x̃ x̃ᵀ, Σ w y x̃ᵀ, Σ w y yᵀ,
Σ w; `RegressionStats` holds them about a shift, for accuracy) the posterior is
MNIW(ν_n, S_n, M_n, K_n):

    K_n⁻¹ = K_0⁻¹ + S_xx
    M_n   = (M_0 K_0⁻¹ + S_yx) K_n
    S_n   = S_0 + S_yy + M_0 K_0⁻¹ M_0ᵀ - M_n K_n⁻¹ M_nᵀ
    ν_n   = ν_0 + n

This module is the one home of that formula.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from moseq.ops.checks import check_ndim, check_positive, check_same, check_square
from moseq.ops.distributions import sample_mniw
from moseq.ops.linalg import cholesky, segment_gram, solve_triangular, symmetrize

#: The largest ridge `mniw_posterior` tries, in units of the statistics' rounding level.
_MAX_RIDGE_SCALE = 1e9


class RegressionStats(NamedTuple):
    """Weighted sufficient statistics of a regression y = A x̃, taken about a shift.

    With u = [x̃; y] (p + d entries, x̃_p the last regressor) and a shift c whose entry for
    x̃_p is 0, the statistics are the blocks of Σ w_i û_i û_iᵀ for û = u - c x̃_p:

    Attributes:
        S_xx: ``(p, p)`` Σ w x̂ x̂ᵀ.
        S_yx: ``(d, p)`` Σ w ŷ x̂ᵀ.
        S_yy: ``(d, d)`` Σ w ŷ ŷᵀ.
        n: scalar Σ w (the number of points when weights are 0/1).
        shift: ``(p + d,)`` c.

    For an affine model (x̃_p the constant 1, as `moseq.ops.linalg.pad_affine` appends) û is
    u - c, the data centred on c. Any shift describes the same data exactly (`shift_stats`
    moves between them, `mniw_posterior` undoes it); one near the data's weighted mean keeps
    the statistics of poorly centred data accurate in float32. Statistics of disjoint data
    sets combine with `combine_stats`; when they share a shift their first four fields add.
    """

    S_xx: Float[Array, "p p"]
    S_yx: Float[Array, "d p"]
    S_yy: Float[Array, "d d"]
    n: Float[Array, ""]
    shift: Float[Array, " p+d"]


class MNIWParams(NamedTuple):
    """Parameters of MNIW(ν, S, M, K): Σ ~ IW(S, ν), A | Σ ~ MN(M, Σ, K)."""

    nu: Float[Array, ""]
    S: Float[Array, "d d"]
    M: Float[Array, "d p"]
    K: Float[Array, "p p"]


def _check_points(inputs, outputs, weights, segment_ids):
    check_ndim("inputs", inputs, 2, "(M, p)")
    check_ndim("outputs", outputs, 2, "(M, d)")
    check_ndim("weights", weights, 1, "(M,)")
    num_points = np.shape(inputs)[0]
    check_same("inputs", num_points, "outputs", np.shape(outputs)[0], "number of points")
    check_same("inputs", num_points, "weights", np.shape(weights)[0], "number of points")
    if segment_ids is not None:
        check_ndim("segment_ids", segment_ids, 1, "(M,)")
        check_same("inputs", num_points, "segment_ids", np.shape(segment_ids)[0],
                   "number of points")


def _weighted_rows(inputs, outputs, weights):
    """u = [x̃; y] per point (0 where the weight is 0, so 0 · NaN is never formed), weights."""
    dtype = jnp.result_type(inputs, outputs, weights, float)
    weights = jnp.asarray(weights, dtype)
    rows = jnp.concatenate([jnp.asarray(inputs, dtype), jnp.asarray(outputs, dtype)], axis=1)
    return jnp.where(weights[:, None] > 0, rows, 0.0), weights


def shift_moments(
    inputs: Float[Array, "M p"],
    outputs: Float[Array, "M d"],
    weights: Float[Array, " M"],
    segment_ids: Int[Array, " M"],
    num_segments: int,
) -> tuple[Float[Array, "S p+d"], Float[Array, " S"]]:
    """(Σ w x̃_p u, Σ w x̃_p²) per segment, with the entry of u for x̃_p itself set to 0.

    Sums over points, so the moments of data split over devices add; `shift_from_moments`
    turns them into the shift of `RegressionStats`.
    """
    _check_points(inputs, outputs, weights, segment_ids)
    rows, weights = _weighted_rows(inputs, outputs, weights)
    last = np.shape(inputs)[1] - 1
    scale = weights * rows[:, last]
    first = jax.ops.segment_sum(scale[:, None] * rows.at[:, last].set(0.0), segment_ids,
                                num_segments=num_segments)
    second = jax.ops.segment_sum(scale * rows[:, last], segment_ids, num_segments=num_segments)
    return first, second


def shift_from_moments(
    first: Float[Array, "... p+d"], second: Float[Array, " ..."]
) -> Float[Array, "... p+d"]:
    """The shift c = first / second (0 where second is 0) of `shift_moments`' sums: for an
    affine model the weighted mean of [x̃; y], 0 for the constant."""
    has_data = second > 0
    return jnp.where(has_data[..., None], first / jnp.where(has_data, second, 1.0)[..., None],
                     0.0)


def regression_stats(
    inputs: Float[Array, "M p"],
    outputs: Float[Array, "M d"],
    weights: Float[Array, " M"],
    segment_ids: Int[Array, " M"] | None = None,
    num_segments: int | None = None,
    shift: Float[Array, "... p+d"] | None = None,
) -> RegressionStats:
    """Weighted sufficient statistics of M data points (regressors, outputs, weights >= 0).

    `inputs` are the regressors x̃ as given (append the constant 1 yourself for an affine
    model, e.g. with `moseq.ops.linalg.pad_affine`). A weight of 0 removes a point. With
    `segment_ids` (in [0, num_segments)) the statistics of each segment are returned with a
    leading ``(num_segments,)`` axis, computed by `segment_gram` in O(M (p + d)²). They are
    taken about `shift` (one per segment), by default the shift of these points' own
    `shift_moments`. Nothing is assumed of the regressors: the shift is taken along the last
    one, x̃_p, so it centres the data on their weighted mean when x̃_p is the constant 1 (an
    affine model) and is still exact when it is not.
    """
    _check_points(inputs, outputs, weights, segment_ids)
    segmented = segment_ids is not None
    if not segmented:
        segment_ids, num_segments = jnp.zeros(np.shape(inputs)[0], int), 1
    if shift is None:
        shift = shift_from_moments(*shift_moments(inputs, outputs, weights, segment_ids,
                                                  num_segments))
    rows, weights = _weighted_rows(inputs, outputs, weights)
    p = np.shape(inputs)[1]
    shift = jnp.broadcast_to(jnp.asarray(shift, rows.dtype), (num_segments, rows.shape[1]))
    # `take`, not indexing: on a mesh the shift is an array closed over by a `shard_map`,
    # whose sharding jnp indexing refuses there (jax 0.10).
    centred = rows - jnp.take(shift, segment_ids, axis=0, mode="clip") * rows[:, p - 1 : p]
    gram = symmetrize(segment_gram(centred, segment_ids, num_segments, weights))
    stats = RegressionStats(
        S_xx=gram[:, :p, :p],
        S_yx=gram[:, p:, :p],
        S_yy=gram[:, p:, p:],
        n=jax.ops.segment_sum(weights, segment_ids, num_segments=num_segments),
        shift=shift,
    )
    return stats if segmented else jax.tree.map(lambda a: a[0], stats)


def _shift_matrix(shift, p):
    """T = I - c e_pᵀ, the map u ↦ û = u - c x̃_p of statistics about the shift c."""
    return jnp.eye(shift.shape[-1], dtype=shift.dtype).at[:, p - 1].add(-shift)


def shift_stats(stats: RegressionStats, shift: Float[Array, " p+d"]) -> RegressionStats:
    """The same statistics about another `shift` (its entry for x̃_p must be 0): exact, as
    Σ w û ûᵀ transforms by T = I - (shift - stats.shift) e_pᵀ. For one `RegressionStats`;
    vmap over segments."""
    p = stats.S_xx.shape[-1]
    shift = jnp.asarray(shift, stats.S_xx.dtype)
    transform = _shift_matrix(shift - stats.shift, p)
    joint = jnp.block([[stats.S_xx, stats.S_yx.T], [stats.S_yx, stats.S_yy]])
    joint = symmetrize(transform @ joint @ transform.T)
    return RegressionStats(joint[:p, :p], joint[p:, :p], joint[p:, p:], stats.n, shift)


def combine_stats(*stats: RegressionStats) -> RegressionStats:
    """Statistics of the union of disjoint data sets from theirs (for one `RegressionStats`
    each; vmap over segments): each is moved to their common shift, the S_xx[p, p]-weighted
    mean of the shifts (for an affine model the n-weighted mean, the union's mean when each
    shift is its data's mean), and added."""
    p = stats[0].S_xx.shape[-1]
    masses = jnp.stack([s.S_xx[p - 1, p - 1] for s in stats])  # Σ w x̃_p², whatever the shift
    common = shift_from_moments(masses @ jnp.stack([s.shift for s in stats]), jnp.sum(masses))
    moved = [shift_stats(s, common) for s in stats]
    return RegressionStats(*(sum(fields) for fields in zip(*(m[:4] for m in moved),
                                                          strict=True)), common)


def mniw_posterior(
    S_xx: Float[Array, "p p"],
    S_yx: Float[Array, "d p"],
    S_yy: Float[Array, "d d"],
    n: ArrayLike,
    shift: Float[Array, " p+d"],
    nu_0: ArrayLike,
    S_0: Float[Array, "d d"],
    M_0: Float[Array, "d p"],
    K_0: Float[Array, "p p"],
) -> MNIWParams:
    """MNIW posterior (ν_n, S_n, M_n, K_n) from regression statistics and the prior.

    The statistics come first, in `RegressionStats` order, so ``mniw_posterior(*stats, ...)``
    works. In the shifted coordinates û = T u (T = I - c e_pᵀ, see `RegressionStats`) the
    regression is ŷ = A' x̂ with A' = (A + T₂₁) T₁₁⁻¹, under the prior transformed exactly
    (its pseudo-points [I; M_0] K_0^-1/2 mapped by T). One Cholesky factorisation of the
    joint (p + d) x (p + d) matrix

        G' = T [[K_0⁻¹,       K_0⁻¹ M_0ᵀ        ],
                [M_0 K_0⁻¹,   S_0 + M_0 K_0⁻¹ M_0ᵀ]] Tᵀ + [[S_xx, S_yxᵀ], [S_yx, S_yy]] = L Lᵀ

    gives everything: S_n, the Schur complement of its top-left block, is L₂₂ L₂₂ᵀ (T is
    block lower-triangular with an identity output block, so the shift leaves it unchanged;
    symmetric positive definite by construction, not the difference of two large matrices),
    and with R = L₁₁⁻¹ T₁₁, M_n = L₂₁ R - T₂₁ and K_n = Rᵀ R. If rounding has left G'
    numerically singular or indefinite (a squared pivot below the statistics' rounding level
    eps·diag(S_xx, S_yy)), it is refactorised with a ridge of (p + d) times that level,
    growing tenfold until every pivot resolves. In float32 the accuracy of S_n is about
    eps·max|S_yy| of the statistics as given: about the data's mean, that is of the outputs'
    spread, not of their distance from the origin. Needs S_0 and K_0 positive definite.
    Batch over states with `jax.vmap`.
    """
    check_square("K_0", K_0)
    check_square("S_0", S_0)
    check_ndim("M_0", M_0, 2, "(d, p)")
    d, p = np.shape(M_0)
    for name, value, shape in (
        ("S_xx", S_xx, (p, p)),
        ("S_yx", S_yx, (d, p)),
        ("S_yy", S_yy, (d, d)),
        ("shift", shift, (p + d,)),
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

    dtype = jnp.result_type(S_xx, S_yx, S_yy, shift, S_0, M_0, K_0, float)
    S_xx, S_yx, S_yy, shift, S_0, M_0, K_0 = (
        jnp.asarray(a, dtype) for a in (S_xx, S_yx, S_yy, shift, S_0, M_0, K_0)
    )
    transform = _shift_matrix(shift, p)
    # The prior as a Gram matrix of shifted pseudo-points, so it is PSD by construction.
    pseudo_points = transform @ jnp.concatenate([jnp.eye(p, dtype=dtype), M_0])
    whitened = solve_triangular(cholesky(symmetrize(K_0)), pseudo_points.T)  # L_K⁻¹ (T [I; M_0])ᵀ
    joint = symmetrize(whitened.T @ whitened + jnp.block([[S_xx, S_yx.T], [S_yx, S_yy + S_0]]))
    # Accumulated statistics are known to about eps relative to their diagonal (the data's
    # own rounding level, which `segment_gram` keeps). A squared pivot below that level (or
    # none: float32, residuals too small to resolve) means rounding has made G' numerically
    # singular or indefinite: refactorise with a ridge of (p + d) times that level, ten times
    # larger each time it still does not resolve. Each factorisation depends on the previous
    # one, so no two run concurrently.
    rounding = jnp.finfo(dtype).eps * jnp.abs(
        jnp.concatenate([jnp.diagonal(S_xx), jnp.diagonal(S_yy)]))

    def unresolved(attempt):
        factor, ridge_scale = attempt
        resolved = jnp.all(jnp.diagonal(factor) ** 2 >= rounding)  # False for NaN
        return ~resolved & (ridge_scale <= _MAX_RIDGE_SCALE)

    def retry(attempt):
        _, ridge_scale = attempt
        return cholesky(joint + jnp.diag(ridge_scale * rounding)), 10 * ridge_scale

    L, _ = jax.lax.while_loop(unresolved, retry, (cholesky(joint), jnp.asarray(p + d, dtype)))
    L11, L21, L22 = L[:p, :p], L[p:, :p], L[p:, p:]
    R = solve_triangular(L11, transform[:p, :p])
    return MNIWParams(
        nu=jnp.asarray(nu_0, dtype) + jnp.asarray(n, dtype),
        S=symmetrize(L22 @ L22.T),
        M=L21 @ R - transform[p:, :p],
        K=symmetrize(R.T @ R),
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
