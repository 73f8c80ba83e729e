"""Small linear-algebra helpers used throughout the kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from moseq.ops.checks import check_square


def symmetrize(A: Float[Array, "... n n"]) -> Float[Array, "... n n"]:
    """(A + Aᵀ) / 2 over the last two axes."""
    return 0.5 * (A + jnp.swapaxes(A, -1, -2))


def psd_solve(A: Float[Array, "n n"], B: Float[Array, "n ..."], diagonal_boost: float = 1e-6):
    """Solve A x = B for a positive semi-definite `A` by Cholesky.

    `A` is symmetrised and its diagonal raised by `diagonal_boost` first. `B` has shape `(n,)`
    or `(n, m)`; the solution has the shape of `B`. Batch with `jax.vmap`.
    """
    check_square("A", A)
    if jnp.ndim(A) != 2:
        raise ValueError(f"`A` must be one (n, n) matrix (vmap for batches); got {jnp.shape(A)}.")
    if jnp.shape(B)[0] != jnp.shape(A)[0]:
        raise ValueError(
            f"`B` must have {jnp.shape(A)[0]} rows to match `A`; got shape {jnp.shape(B)}."
        )
    A = symmetrize(A) + diagonal_boost * jnp.eye(A.shape[-1], dtype=A.dtype)
    B = jnp.asarray(B)
    solution = cholesky_solve(cholesky(A), B if B.ndim == 2 else B[:, None])
    return solution if B.ndim == 2 else solution[:, 0]


def psd_inv(A: Float[Array, "n n"], diagonal_boost: float = 1e-6) -> Float[Array, "n n"]:
    """Inverse of a positive semi-definite matrix, symmetric by construction (see `psd_solve`)."""
    return symmetrize(psd_solve(A, jnp.eye(A.shape[-1], dtype=A.dtype), diagonal_boost))


def pad_affine(x: Float[Array, "... d"]) -> Float[Array, "... d+1"]:
    """Append a constant 1 to the last axis, so that `Ab @ pad_affine(x)` is an affine map."""
    ones = jnp.ones((*jnp.shape(x)[:-1], 1), dtype=jnp.result_type(x))
    return jnp.concatenate([x, ones], axis=-1)


def apply_affine(x: Float[Array, "... d"], Ab: Float[Array, "m d+1"]) -> Float[Array, "... m"]:
    """Ab · [x; 1] for every leading index of `x`."""
    return x @ Ab[:, :-1].T + Ab[:, -1]



def segment_gram(
    rows: Float[Array, "M p"],
    segment_ids: Int[Array, " M"],
    num_segments: int,
    weights: Float[Array, " M"] | None = None,
    block_size: int = 64,
) -> Float[Array, "S p p"]:
    """Weighted Gram matrices per segment: out[s] = sum over rows with id s of w u uᵀ.

    Rows are sorted by segment and packed into blocks of `block_size` rows that each belong to
    one segment (at most M / block_size + S blocks), so the work is one batched matrix
    product, O(M p^2), with no (S, M) one-hot array and no per-row scatter of p x p outer
    products. The blocks' Gram matrices are totalled per segment in a tree of additions of
    depth O(log M) (`_tree_segment_sum`): the rounding error grows with log(M), not with the
    number of blocks, whatever order XLA would add them in. Weights must be >= 0
    (0/1 masks in practice). Ids outside [0, S) are dropped.
    """
    num_rows, dim = rows.shape
    if weights is not None:
        rows = rows * jnp.sqrt(weights)[:, None].astype(rows.dtype)
    in_range = (segment_ids >= 0) & (segment_ids < num_segments)
    rows = jnp.where(in_range[:, None], rows, 0)
    segment_ids = jnp.where(in_range, segment_ids, 0)
    order = jnp.argsort(segment_ids)
    sorted_ids = segment_ids[order]
    counts = jnp.bincount(segment_ids, length=num_segments)
    blocks_per_segment = -(-counts // block_size)
    first_block = jnp.cumsum(blocks_per_segment) - blocks_per_segment
    rank = jnp.arange(num_rows) - (jnp.cumsum(counts) - counts)[sorted_ids]
    num_blocks = -(-num_rows // block_size) + num_segments
    block = first_block[sorted_ids] + rank // block_size
    packed = jnp.zeros((num_blocks, block_size, dim), rows.dtype)
    packed = packed.at[block, rank % block_size].set(rows[order])
    # Unused blocks go last, owned by no segment, so owners stay sorted.
    owner = jnp.full(num_blocks, num_segments, sorted_ids.dtype).at[block].set(sorted_ids)
    grams = jnp.einsum("nbi,nbj->nij", packed, packed)
    return _tree_segment_sum(grams, owner, blocks_per_segment, num_segments)


def _tree_segment_sum(values, owner, sizes, num_segments: int, fan_in: int = 16):
    """Per-segment totals of `values` (n, ...) whose entries are grouped by segment (`owner`
    sorted, segment s holding `sizes[s]` consecutive entries; other entries owned by
    `num_segments`), added `fan_in` at a time in a tree: every addition has at most `fan_in`
    terms and there are log_fan_in(n) levels, so the rounding error grows with log(n)."""
    count = bound = values.shape[0]  # entries, and the most one segment can hold (static)
    while bound > 1:
        groups = -(-sizes // fan_in)
        valid = owner < num_segments
        safe = jnp.where(valid, owner, 0)
        rank = jnp.arange(count) - (jnp.cumsum(sizes) - sizes)[safe]
        count = min(count, -(-count // fan_in) + num_segments)
        group = jnp.where(valid, (jnp.cumsum(groups) - groups)[safe] + rank // fan_in, count)
        values = jax.ops.segment_sum(values, group, num_segments=count)
        owner = jnp.full(count, num_segments, owner.dtype).at[group].set(owner, mode="drop")
        sizes, bound = groups, -(-bound // fan_in)
    return jax.ops.segment_sum(values, owner, num_segments=num_segments)


# Batched factorizations run on CPU through LAPACK kernels that split their batch over XLA's
# intra-op thread pool and wait for it; two such calls executing side by side (which every
# Gibbs sweep makes: all states' covariances, all recordings' Kalman steps) can hold every
# pool thread while waiting for each other, and the program hangs (jaxlib 0.10, 2 cores).
# On CPU, moseq therefore factorizes its small matrices with plain XLA loops below; other
# platforms keep their solver libraries.


def _cholesky_by_columns(A):
    n = A.shape[-1]
    index = jnp.arange(n)

    def next_column(j, L):
        row = L[..., j, :]  # entries left of the diagonal are final
        diagonal = jnp.sqrt(A[..., j, j] - jnp.sum(row * row, axis=-1))
        below = (A[..., :, j] - jnp.einsum("...ik,...k->...i", L, row)) / diagonal[..., None]
        column = jnp.where(index == j, diagonal[..., None], jnp.where(index > j, below, 0))
        return L.at[..., :, j].set(column)

    return jax.lax.fori_loop(0, n, next_column, jnp.zeros_like(A))


def cholesky(A: Float[Array, "... n n"]) -> Float[Array, "... n n"]:
    """Lower Cholesky factor of positive-definite matrices; NaN where one is not."""
    A = jnp.asarray(A)
    return jax.lax.platform_dependent(A, cpu=_cholesky_by_columns, default=jnp.linalg.cholesky)


def _substitute(L, B, lower_system: bool):
    n = L.shape[-1]
    order = jnp.arange(n) if lower_system else jnp.arange(n)[::-1]

    def next_row(step, X):
        i = order[step]
        known = jnp.einsum("...k,...km->...m", L[..., i, :], X)
        return X.at[..., i, :].set((B[..., i, :] - known) / L[..., i, i][..., None])

    return jax.lax.fori_loop(0, n, next_row, jnp.zeros_like(B))


def solve_triangular(
    L: Float[Array, "... n n"], B: Float[Array, "... n m"], lower: bool = True,
    transpose: bool = False,
) -> Float[Array, "... n m"]:
    """Solve op(L) X = B for triangular L, op = transpose if `transpose`; B is (..., n, m)."""
    L, B = jnp.asarray(L), jnp.asarray(B)
    B = jnp.broadcast_to(B, (*jnp.broadcast_shapes(L.shape[:-2], B.shape[:-2]), *B.shape[-2:]))
    system = jnp.swapaxes(L, -1, -2) if transpose else L
    system_is_lower = lower != transpose
    system = jnp.broadcast_to(system, (*B.shape[:-2], *system.shape[-2:]))

    def library(system, B):
        return jax.scipy.linalg.solve_triangular(system, B, lower=system_is_lower)

    def loops(system, B):
        return _substitute(system, B, system_is_lower)

    return jax.lax.platform_dependent(system, B, cpu=loops, default=library)


def cholesky_solve(factor: Float[Array, "... n n"], B: Float[Array, "... n m"]):
    """Solve (L Lᵀ) X = B given the lower Cholesky factor L."""
    return solve_triangular(factor, solve_triangular(factor, B), transpose=True)


def logdet_from_cholesky(factor: Float[Array, "... n n"]) -> Float[Array, ...]:
    """log det(L Lᵀ) from the lower Cholesky factor L."""
    return 2 * jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)
