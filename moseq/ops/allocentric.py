"""Allocentric (location-aware) dynamics: the heading change and the egocentric centroid step
of each frame, their per-state Gaussian likelihoods and the normal-inverse-gamma conjugate
update of their per-state means and variances.

Conventions: heading `h` (..., T) in radians, centroid `v` (..., T, d) with d = 2 or 3. The
step into frame t (t >= 1) is Δh_t = wrap(h_t - h_{t-1}) and Δv_t = R(-h_{t-1}) (v_t -
v_{t-1}) restricted to the horizontal plane (`moseq.ops.geometry.horizontal_axes`): the
displacement seen from the animal's frame at t - 1 (forward, leftward). Per state k:
Δh_t ~ N(δh_k, σ²h_k) and Δv_t ~ N(δv_k, σ²v_k I_2).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln
from jaxtyping import Array, Float, Int, PRNGKeyArray

from moseq.ops.distributions import sample_inv_gamma, standard_normal
from moseq.ops.geometry import horizontal_axes, wrap_angle


def allocentric_steps(h: Float[Array, "... T"], v: Float[Array, "... T d"],
                      vertical_axis: int = 2
                      ) -> tuple[Float[Array, "... T-1"], Float[Array, "... T-1 2"]]:
    """(Δh, Δv): the wrapped heading change and the egocentric horizontal centroid step into
    frames 1 .. T-1 (entry t - 1 is the step t - 1 -> t)."""
    first, second = horizontal_axes(v.shape[-1], vertical_axis)
    step = v[..., 1:, :] - v[..., :-1, :]
    cos, sin = jnp.cos(h[..., :-1]), jnp.sin(h[..., :-1])
    forward = cos * step[..., first] + sin * step[..., second]
    leftward = cos * step[..., second] - sin * step[..., first]
    return wrap_angle(h[..., 1:] - h[..., :-1]), jnp.stack([forward, leftward], axis=-1)


def allocentric_log_likelihoods(
    dh: Float[Array, "*batch"], dv: Float[Array, "*batch 2"],
    delta_h: Float[Array, " K"], sigmasq_h: Float[Array, " K"],
    delta_v: Float[Array, "K 2"], sigmasq_v: Float[Array, " K"],
) -> Float[Array, "*batch K"]:
    """log N(Δh; δh_k, σ²h_k) + log N(Δv; δv_k, σ²v_k I_2) of every step under every state."""
    heading = -0.5 * (jnp.log(2 * jnp.pi * sigmasq_h) + (dh[..., None] - delta_h) ** 2
                      / sigmasq_h)
    squared = jnp.sum((dv[..., None, :] - delta_v) ** 2, axis=-1)
    centroid = -(jnp.log(2 * jnp.pi * sigmasq_v) + 0.5 * squared / sigmasq_v)
    return heading + centroid


class AllocentricStats(NamedTuple):
    """Per-state sums over the weighted steps: counts n (K,), Σ Δh (K,), Σ Δh² (K,),
    Σ Δv (K, 2), Σ |Δv|² (K,)."""

    count: Float[Array, " K"]
    heading_sum: Float[Array, " K"]
    heading_sumsq: Float[Array, " K"]
    centroid_sum: Float[Array, "K 2"]
    centroid_sumsq: Float[Array, " K"]


def allocentric_stats(dh: Float[Array, "N S"], dv: Float[Array, "N S 2"],
                      z: Int[Array, "N S"], weights: Float[Array, "N S"],
                      num_states: int) -> AllocentricStats:
    """The `AllocentricStats` of steps labelled `z`, each step counted with its weight (0 for
    steps the model does not score)."""
    segments = z.reshape(-1)
    weights = weights.reshape(-1).astype(dh.dtype)
    dh, dv = dh.reshape(-1), dv.reshape(-1, 2)

    def total(values):
        return jax.ops.segment_sum(values, segments, num_segments=num_states)

    return AllocentricStats(
        count=total(weights),
        heading_sum=total(weights * dh),
        heading_sumsq=total(weights * dh**2),
        centroid_sum=total(weights[:, None] * dv),
        centroid_sumsq=total(weights * jnp.sum(dv**2, axis=-1)),
    )


class NIGParams(NamedTuple):
    """A normal-inverse-gamma distribution: σ² ~ InvGamma(alpha, beta), δ | σ² ~ N(mean,
    σ²/lam I)."""

    mean: Array
    lam: Array
    alpha: Array
    beta: Array


def nig_posterior(count, total, total_sq, alpha_0, beta_0, lambda_0, dim: int) -> NIGParams:
    """The posterior of (δ, σ²) given n = `count` points y_i in R^dim with Σ y_i = `total`
    (..., dim) and Σ |y_i|² = `total_sq`, each y_i ~ N(δ, σ² I), under the prior
    σ² ~ InvGamma(alpha_0, beta_0), δ | σ² ~ N(0, σ²/lambda_0 I):
    lam = lambda_0 + n, mean = Σy / lam, alpha = alpha_0 + n dim / 2,
    beta = beta_0 + (Σ|y|² - |Σy|² / lam) / 2."""
    lam = lambda_0 + count
    mean = total / lam[..., None]
    residual = total_sq - jnp.sum(total**2, axis=-1) / lam
    return NIGParams(mean, lam, alpha_0 + count * dim / 2,
                     beta_0 + 0.5 * jnp.maximum(residual, 0.0))


def sample_nig(key: PRNGKeyArray, params: NIGParams) -> tuple[Array, Array]:
    """(δ, σ²) from a normal-inverse-gamma distribution (batched over leading axes of the
    parameters; δ has the trailing axis of `params.mean`)."""
    variance_key, mean_key = jax.random.split(key)
    sigmasq = sample_inv_gamma(variance_key, params.alpha, params.beta)
    noise = standard_normal(mean_key, params.mean.shape, params.mean.dtype)
    return params.mean + jnp.sqrt(sigmasq / params.lam)[..., None] * noise, sigmasq


def nig_log_prob(delta: Float[Array, "... dim"], sigmasq: Float[Array, ...], alpha, beta, lam,
                 mean=0.0) -> Float[Array, ...]:
    """log InvGamma(σ²; alpha, beta) + log N(δ; mean, σ²/lam I)."""
    dim = delta.shape[-1]
    inv_gamma = (alpha * jnp.log(beta) - gammaln(alpha) - (alpha + 1) * jnp.log(sigmasq)
                 - beta / sigmasq)
    variance = sigmasq / lam
    normal = -0.5 * (dim * jnp.log(2 * jnp.pi * variance) + jnp.sum((delta - mean) ** 2, axis=-1)
                     / variance)
    return inv_gamma + normal
