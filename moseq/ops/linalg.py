"""Small linear-algebra helpers used throughout the kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve
from jaxtyping import Array, Float, Int

from moseq.ops._checks import check_square


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
    return cho_solve(cho_factor(A, lower=True), B)


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
    products. Weights must be >= 0 (0/1 masks in practice). Ids outside [0, S) are dropped.
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
    owner = jnp.zeros(num_blocks, sorted_ids.dtype).at[block].set(sorted_ids)
    grams = jnp.einsum("nbi,nbj->nij", packed, packed)
    return jax.ops.segment_sum(grams, owner, num_segments=num_segments)
