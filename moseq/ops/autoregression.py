"""Lagged views of multivariate time series for autoregressive models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from moseq.ops.linalg import cholesky, pad_affine, solve_triangular
from moseq.ops.regression import (
    RegressionStats,
    regression_stats,
    shift_from_moments,
    shift_moments,
)


def get_lags(x: Float[Array, "... T D"], nlags: int) -> Float[Array, "... T-L D*L"]:
    """For every frame t >= nlags, the previous frames `[x_{t-L}, ..., x_{t-1}]`, oldest first.

    The lags are concatenated along the last axis, so row i of the result belongs to frame
    i + nlags.
    """
    x = jnp.asarray(x)
    if not isinstance(nlags, int) or nlags < 1:
        raise ValueError(f"`nlags` must be a positive int; got {nlags!r}.")
    if x.ndim < 2 or x.shape[-2] < nlags:
        raise ValueError(
            f"`x` must have shape (..., T, D) with T >= nlags = {nlags}; got {x.shape}."
        )
    num_frames = x.shape[-2]
    return jnp.concatenate(
        [x[..., nlags - lag : num_frames - lag, :] for lag in range(nlags, 0, -1)], axis=-1
    )


def ar_design(x: Float[Array, "... T D"], nlags: int) -> Float[Array, "... T-L D*L+1"]:
    """Regressors of every frame t >= nlags: its lags, oldest first, then a constant 1."""
    return pad_affine(get_lags(x, nlags))


def ar_log_likelihoods(
    x: Float[Array, "... T D"],
    Ab: Float[Array, "K D D*L+1"],
    Q: Float[Array, "K D D"],
    frames_per_chunk: int = 4096,
    time_major: bool = False,
) -> Float[Array, "... T-L K"]:
    """log N(x_t; Ab_k [lags_t; 1], Q_k) for every frame t >= L and every state k.

    With `time_major=True` and x of shape (N, T, D) the result is (T - L, N, K), the layout
    of `moseq.ops.hmm.sample_hmm_stateseqs`, made without transposing a (.., K) array.

    All states are evaluated by one product of the stacked regressors [x_t; lags_t; 1] with
    the whitened maps chol(Q_k)^-1 [I, -Ab_k]; frames are processed `frames_per_chunk` at a
    time so the (frames, K * D) intermediate stays small.
    """
    num_states, dim = Ab.shape[0], Ab.shape[1]
    nlags = (Ab.shape[-1] - 1) // dim
    if Q.shape != (num_states, dim, dim):
        raise ValueError(f"`Q` must have shape {(num_states, dim, dim)} to match `Ab` "
                         f"{Ab.shape}; got {Q.shape}.")
    if x.shape[-1] != dim:
        raise ValueError(f"`x` must have {dim} features (last axis) to match `Ab`; got {x.shape}.")
    whitening, log_norms, dtype = _whitened_ar_maps(Ab, Q, x)
    stacked_maps = whitening.transpose(2, 0, 1).reshape(whitening.shape[-1], num_states * dim)
    regressors, lead_shape = _time_major_regressors(x, nlags, dtype)

    def chunk_log_likelihoods(chunk_rows):
        whitened = (chunk_rows @ stacked_maps).reshape(*chunk_rows.shape[:-1], num_states, dim)
        return log_norms - 0.5 * jnp.sum(whitened**2, axis=-1)

    out = _map_time_chunks(chunk_log_likelihoods, (regressors,), frames_per_chunk)
    num_frames = out.shape[0]
    if time_major:
        return out.reshape(num_frames, *lead_shape, num_states)
    return jnp.moveaxis(out, 0, 1).reshape(*lead_shape, num_frames, num_states)


def ar_log_likelihoods_given_states(
    x: Float[Array, "... T D"],
    z: Int[Array, "... T-L"],
    Ab: Float[Array, "K D D*L+1"],
    Q: Float[Array, "K D D"],
    frames_per_chunk: int = 4096,
) -> Float[Array, "... T-L"]:
    """log N(x_t; Ab_{z_t} [lags_t; 1], Q_{z_t}) of every frame t >= L under its state z_t.

    The whitened map of each frame's state is gathered `frames_per_chunk` frames at a time,
    so the working memory stays that of one chunk whatever the number of frames.
    """
    nlags = (Ab.shape[-1] - 1) // Ab.shape[1]
    whitening, log_norms, dtype = _whitened_ar_maps(Ab, Q, x)
    regressors, lead_shape = _time_major_regressors(x, nlags, dtype)
    states = jnp.moveaxis(jnp.reshape(z, (-1, z.shape[-1])), 1, 0)

    def chunk_log_likelihoods(chunk_rows, chunk_states):
        whitened = jnp.einsum("...dp,...p->...d", whitening[chunk_states], chunk_rows)
        return log_norms[chunk_states] - 0.5 * jnp.sum(whitened**2, axis=-1)

    out = _map_time_chunks(chunk_log_likelihoods, (regressors, states), frames_per_chunk)
    return jnp.moveaxis(out, 0, 1).reshape(*lead_shape, out.shape[0])


def _whitened_ar_maps(Ab, Q, x):
    """`(whitening (K, D, D + D L + 1), log_norms (K,), dtype)`: chol(Q_k)^-1 [I, -Ab_k] and
    log N's normaliser of each state, so that log N(x_t; Ab_k r_t, Q_k) = log_norms_k -
    |whitening_k [x_t; r_t]|^2 / 2."""
    num_states, dim = Ab.shape[0], Ab.shape[1]
    dtype = jnp.result_type(x, Ab, Q)
    chol = cholesky(Q.astype(dtype))
    maps = jnp.concatenate(
        [jnp.broadcast_to(jnp.eye(dim, dtype=dtype), (num_states, dim, dim)), -Ab.astype(dtype)],
        axis=-1,
    )
    log_norms = -jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1) - 0.5 * dim * jnp.log(
        2 * jnp.pi
    )
    return solve_triangular(chol, maps), log_norms, dtype


def _time_major_regressors(x, nlags: int, dtype):
    """`([x_t; lags_t; 1] as (T - L, B, D + D L + 1), the leading shape of x)`, B the leading
    (recording) axes flattened: chunks then split the time axis only, so recordings spread
    over devices are never gathered."""
    regressors = jnp.concatenate([x[..., nlags:, :], ar_design(x, nlags)], axis=-1).astype(dtype)
    lead_shape = regressors.shape[:-2]
    return jnp.moveaxis(regressors.reshape(-1, *regressors.shape[-2:]), 1, 0), lead_shape


def _map_time_chunks(fn, arrays, frames_per_chunk: int):
    """`fn(*chunks)` over chunks of the time axis of time-major `arrays` (each (T', B, ...)),
    about `frames_per_chunk` frames (time steps x B) at a time; the outputs (chunk, B, ...)
    are joined back into (T', B, ...)."""
    num_frames, batch = arrays[0].shape[:2]
    chunk = max(1, min(num_frames, frames_per_chunk // max(batch, 1)))
    num_chunks = -(-num_frames // chunk)
    chunked = [jnp.pad(a, ((0, num_chunks * chunk - num_frames),) + ((0, 0),) * (a.ndim - 1))
               .reshape(num_chunks, chunk, *a.shape[1:]) for a in arrays]
    out = jax.lax.map(lambda chunks: fn(*chunks), tuple(chunked))
    return out.reshape(num_chunks * chunk, *out.shape[2:])[:num_frames]


def _sum_here(fn, *arrays):
    return fn(*arrays)


def ar_sufficient_stats(
    x: Float[Array, "N T D"],
    z: Int[Array, "N T-L"],
    weights: Float[Array, "N T"],
    num_states: int,
    nlags: int,
    sum_over_recordings=_sum_here,
) -> RegressionStats:
    """Per-state regression statistics of the AR model, frames weighted by `weights`.

    For regressors x̃_t = [lags_t; 1] (p = D*L + 1) and outputs y_t = x_t of the frames
    t >= L assigned to state k, a `RegressionStats` with a leading K axis, about each
    state's weighted mean of [x̃_t; y_t] (so float32 statistics of poorly centred
    trajectories stay accurate). Computed by `segment_gram` in O(N T p²), never as a
    (K, N T) array.

    `sum_over_recordings(fn, x, z, weights)` evaluates a sum `fn` over the recordings (the
    leading axis) and totals it wherever they live: by default in place; a block on a mesh
    passes `moseq.core.reduce.sum_over_recordings`. It is called twice, for the means and
    then for the sums about them, so that all recordings share one shift.
    """

    def points(x, z, weights):
        x = x.astype(jnp.result_type(x, float))
        inputs = ar_design(x, nlags).reshape(-1, x.shape[-1] * nlags + 1)
        outputs = x[..., nlags:, :].reshape(-1, x.shape[-1])
        frame_weights = weights[..., nlags:].astype(x.dtype).reshape(-1)
        return inputs, outputs, frame_weights, z.reshape(-1), num_states

    moments = sum_over_recordings(lambda *arrays: shift_moments(*points(*arrays)), x, z, weights)
    shift = shift_from_moments(*moments)
    # The shift is the same everywhere: only the sums about it are totalled.
    sums = sum_over_recordings(
        lambda *arrays: regression_stats(*points(*arrays), shift=shift)[:4], x, z, weights)
    return RegressionStats(*sums, shift=shift)
