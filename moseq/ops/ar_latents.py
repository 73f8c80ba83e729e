"""Joint posterior draws of switching AR(L) trajectories seen through linear-Gaussian emissions.

The model of one recording (T frames, latent ``x_t`` in R^D, observation ``y_t`` in R^p)::

    x_t ~ N(0, prior_variance I)                                  t < L
    x_t = Ab[z_t] [x_{t-L}; …; x_{t-1}; 1] + N(0, Q[z_t])          t >= L
    y_t = C x_t + d + N(0, diag(r_t))                             every t

with ``Ab[k] = [A_L … A_1 | b]`` (lag blocks oldest first, as in `moseq.ops.autoregression`)
and ``zs[t - L]`` the state of frame t.

The posterior precision of x_{0:T} is block banded: each AR factor couples L + 1 consecutive
frames. The sampler is a banded Cholesky factorisation run as a filter in information form:
the carry is the information of the window of the L newest frames, everything older
eliminated; each step adds one frame's AR factor and emission, then eliminates the oldest
frame of the window, keeping its conditional given the L frames after it. The last window
is drawn jointly, then every older frame given its L successors.

Why this form and not the lifted first-order Kalman sampler (`moseq.ops.kalman`): a step
factorises one D x D matrix instead of D L x D L ones, so the sequential pass does a
fraction of the work; and no covariance of a lifted state (singular in its shift blocks) is
ever formed. It needs every ``Q[k]`` positive definite, as the AR model does anyway.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import solve_triangular as lapack_solve_triangular
from jaxtyping import Array, Float, Int, PRNGKeyArray

from moseq.ops import linalg
from moseq.ops.checks import check_ndim, check_positive, check_same
from moseq.ops.distributions import draws_standard_noise, standard_noise
from moseq.ops.linalg import symmetrize

#: Standard-normal draws per frame used by `sample_ar_latents_with_noise`: the frame's
#: conditional draw and its jitter.
NOISE_PER_FRAME = 2


class _Eliminated(NamedTuple):
    """x_o | x_r ~ N(F⁻ᵀ (u - B x_r), (F Fᵀ)⁻¹) for an eliminated frame o and the L frames r
    after it: F the Cholesky factor of the conditional precision, B = F⁻¹ Λ_or, u = F⁻¹ η_o."""

    inverse_factor: Array  # (D, D) F⁻¹
    coupling: Array  # (D, L D) B
    whitened_information: Array  # (D,) u


def _ar_factors(Ab, Q):
    """Precision Φᵀ Q⁻¹ Φ ((K, (L+1)D, (L+1)D)) and information Φᵀ Q⁻¹ b ((K, (L+1)D)) of
    each state's AR factor over [x_{t-L}; …; x_t], with Φ = [-A_L … -A_1  I]."""
    latent_dim = Q.shape[-1]
    identity = jnp.broadcast_to(jnp.eye(latent_dim, dtype=Q.dtype), Q.shape)
    phi_and_bias = jnp.concatenate([-Ab[..., :-1], identity, Ab[..., -1:]], axis=-1)
    whitened = linalg.solve_triangular(linalg.cholesky(symmetrize(Q)), phi_and_bias)
    phi, bias = whitened[..., :-1], whitened[..., -1]
    return (symmetrize(jnp.einsum("kdi,kdj->kij", phi, phi)),
            jnp.einsum("kdi,kd->ki", phi, bias))


def _emission_information(ys, variances, C, d):
    """Cᵀ diag(r_t)⁻¹ C ((T, D, D)) and Cᵀ diag(r_t)⁻¹ (y_t - d) ((T, D)) of every frame."""
    inverse = 1.0 / variances
    return (jnp.einsum("pi,tp,pj->tij", C, inverse, C),
            jnp.einsum("pi,tp->ti", C, inverse * (ys - d)))


def _eliminate_oldest(precision, information, latent_dim):
    """Marginalise the first D coordinates out of N-information (Λ, η); returns the rest's
    information and the eliminated frame's conditional. One D x D factorisation, then one
    triangular solve that depends on it (LAPACK calls never run side by side: see
    `moseq.ops.kalman`)."""
    factor = jnp.linalg.cholesky(precision[:latent_dim, :latent_dim])
    rhs = jnp.concatenate([precision[:latent_dim, latent_dim:], information[:latent_dim, None],
                           jnp.eye(latent_dim, dtype=precision.dtype)], axis=1)
    solved = lapack_solve_triangular(factor, rhs, lower=True)
    width = precision.shape[0] - latent_dim
    coupling, whitened = solved[:, :width], solved[:, width]
    rest_precision = symmetrize(precision[latent_dim:, latent_dim:] - coupling.T @ coupling)
    rest_information = information[latent_dim:] - coupling.T @ whitened
    return rest_precision, rest_information, _Eliminated(solved[:, width + 1:], coupling,
                                                         whitened)


def _sample(noise, ys, variances, zs, Ab, Q, C, d, prior_variance, jitter):
    num_frames, latent_dim = ys.shape[0], Q.shape[-1]
    nlags = (Ab.shape[-1] - 1) // latent_dim
    window = nlags * latent_dim
    emission_precision, emission_information = _emission_information(ys, variances, C, d)
    factor_precision, factor_information = _ar_factors(Ab, Q)

    # The window of frames 0 .. L-1: their prior and emissions.
    prior = jnp.eye(latent_dim, dtype=ys.dtype) / prior_variance
    precision = jax.scipy.linalg.block_diag(*(prior + emission_precision[:nlags]))
    information = emission_information[:nlags].reshape(window)

    def step(carry, inputs):
        precision, information = carry
        state, frame_precision, frame_information = inputs
        precision = jnp.pad(precision, (0, latent_dim)) + factor_precision[state]
        precision = precision.at[window:, window:].add(frame_precision)
        information = jnp.pad(information, (0, latent_dim)) + factor_information[state]
        information = information.at[window:].add(frame_information)
        precision, information, eliminated = _eliminate_oldest(precision, information,
                                                               latent_dim)
        return (precision, information), eliminated

    (precision, information), eliminated = lax.scan(
        step, (precision, information),
        (zs, emission_precision[nlags:], emission_information[nlags:]), unroll=2)

    # Every frame's draw is F⁻ᵀ (u - B x_r + ε) plus jitter noise.
    jitter_scale = jnp.sqrt(jnp.asarray(jitter, ys.dtype))
    last_factor = linalg.cholesky(precision)
    last_mean = linalg.cholesky_solve(last_factor, information[:, None])[:, 0]
    last = last_mean + linalg.solve_triangular(
        last_factor, noise[-nlags:, 0].reshape(window, 1), transpose=True)[:, 0]
    last = last + jitter_scale * noise[-nlags:, 1].reshape(window)
    if num_frames == nlags:
        return last.reshape(nlags, latent_dim)
    inverse_transposed = jnp.swapaxes(eliminated.inverse_factor, -1, -2)
    gains = -inverse_transposed @ eliminated.coupling
    offsets = jnp.einsum("tij,tj->ti", inverse_transposed,
                         eliminated.whitened_information + noise[:-nlags, 0])
    offsets = offsets + jitter_scale * noise[:-nlags, 1]

    def backward(later, inputs):
        gain, offset = inputs
        frame = gain @ later + offset
        return jnp.concatenate([frame, later[:-latent_dim]]), frame

    _, older = lax.scan(backward, last, (gains, offsets), reverse=True)
    return jnp.concatenate([older, last.reshape(nlags, latent_dim)])


def _prepare(ys, variances, zs, Ab, Q, C, d, prior_variance, jitter):
    check_ndim("ys", ys, 2, "(T, obs_dim)")
    check_ndim("variances", variances, 2, "(T, obs_dim)")
    check_same("ys", np.shape(ys), "variances", np.shape(variances), "shape (T, obs_dim)")
    check_ndim("Q", Q, 3, "(num_states, D, D)")
    num_states, latent_dim = np.shape(Q)[0], np.shape(Q)[-1]
    check_ndim("Ab", Ab, 3, "(num_states, D, D*L + 1)")
    width = np.shape(Ab)[-1]
    if np.shape(Ab)[:2] != (num_states, latent_dim) or width < latent_dim + 1 or (
            width - 1) % latent_dim:
        raise ValueError(f"`Ab` must have shape (num_states, D, D*L + 1) = ({num_states}, "
                         f"{latent_dim}, D*L + 1) with Q's D; got {np.shape(Ab)}.")
    nlags = (width - 1) // latent_dim
    num_frames, obs_dim = np.shape(ys)
    if num_frames < nlags:
        raise ValueError(f"`ys` must have at least nlags = {nlags} frames; got {num_frames}.")
    check_ndim("zs", zs, 1, "(T - L,)")
    check_same("zs", np.shape(zs)[0], "ys", num_frames - nlags,
               "number of frames after the first L (T - L)")
    if not jnp.issubdtype(jnp.result_type(zs), jnp.integer):
        raise ValueError(f"`zs` must hold integer state indices; got dtype {jnp.result_type(zs)}.")
    if np.shape(C) != (obs_dim, latent_dim):
        raise ValueError(f"`C` must have shape (obs_dim, D) = ({obs_dim}, {latent_dim}); "
                         f"got {np.shape(C)}.")
    if np.shape(d) != (obs_dim,):
        raise ValueError(f"`d` must have shape (obs_dim,) = ({obs_dim},); got {np.shape(d)}.")
    check_positive("prior_variance", prior_variance)
    check_positive("jitter", jitter, allow_zero=True)
    dtype = jnp.result_type(ys, variances, Ab, Q, C, d)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    cast = lambda x: jnp.asarray(x, dtype)
    return (cast(ys), cast(variances), jnp.asarray(zs), cast(Ab), cast(Q), cast(C), cast(d),
            cast(prior_variance), cast(jitter))


def sample_ar_latents_with_noise(
    noise: Float[Array, "T 2 D"],
    ys: Float[Array, "T p"],
    variances: Float[Array, "T p"],
    zs: Int[Array, " T-L"],
    Ab: Float[Array, "K D D*L+1"],
    Q: Float[Array, "K D D"],
    C: Float[Array, "p D"],
    d: Float[Array, " p"],
    prior_variance: float = 10.0,
    jitter: float = 0.0,
) -> Float[Array, "T D"]:
    """`sample_ar_latents` with its standard-normal draws given (``noise[t]``: frame t's
    conditional draw and its jitter). Affine in ``noise``: the posterior mean at 0, and its
    Jacobian J has J Jᵀ = Cov[x | y] when ``jitter`` is 0, so tests can check it exactly."""
    args = _prepare(ys, variances, zs, Ab, Q, C, d, prior_variance, jitter)
    shape = (args[0].shape[0], NOISE_PER_FRAME, args[4].shape[-1])
    noise = standard_noise(noise, shape, args[0].dtype, f"(T, {NOISE_PER_FRAME}, D)")
    return _sample(noise, *args)


@draws_standard_noise(sample_ar_latents_with_noise)
def sample_ar_latents(key: PRNGKeyArray, *args, **kwargs) -> Float[Array, "T D"]:
    """One joint draw of x_{0:T} from its posterior under the module's model.

    Takes a `jax.random` key, then the arguments of `sample_ar_latents_with_noise` after
    ``noise`` (its signature is this function's, with ``key`` first). ``variances`` are the
    emission variances r_t (a frame with no observation takes a huge variance). ``jitter``
    (>= 0) is added to the variance of each frame's conditional draw (for every coordinate
    of the last L frames' joint draw), as keypoint-MoSeq adds it to its Kalman sampler's
    covariances. Batch recordings with `jax.vmap`.
    """
