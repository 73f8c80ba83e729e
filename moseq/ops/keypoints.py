"""The keypoint-SLDS's pose variables: error model, gap filling, and the exact conditionals
of the heading (von Mises) and the centroid (Gaussian random walk), plus the PCA behind
the emission matrix. Geometry (rotations, alignment) lives in `moseq.ops.geometry`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from moseq.ops.distributions import standard_normal, uniform
from moseq.ops.geometry import horizontal_axes, wrap_angle
from moseq.ops.linalg import symmetrize


def noise_prior_scale(conf: Float[Array, "*batch"], slope: float, intercept: float):
    """The error model's prior scale s₀ of a keypoint's noise from its tracking confidence:
    s₀ = (10^intercept · conf^slope)², i.e. log10 of the error's sd is linear in log10 conf."""
    log10_sd = slope * jnp.log10(conf + 1e-6) + intercept
    return 10.0 ** (2 * log10_sd)


def interpolate_missing(Y: Float[np.ndarray, "... T k d"],
                        missing: Bool[np.ndarray, "... T k"]) -> Float[np.ndarray, "... T k d"]:
    """`Y` with its `missing` points filled, per recording (leading index); host-side NumPy,
    computed in float64, returned as a new array.

    A keypoint seen in at least one frame is interpolated linearly over time (and held at its
    first / last seen value before / after them). A keypoint never seen takes, in every
    frame, the mean of that frame's other keypoints that were seen at least once (after
    their filling); 0 if no keypoint of the recording was ever seen.
    """
    Y = np.array(Y, dtype=float)
    missing = np.broadcast_to(np.asarray(missing, bool), Y.shape[:-1])
    frames = np.arange(Y.shape[-3])
    for points, gaps in zip(Y.reshape(-1, *Y.shape[-3:]), missing.reshape(-1, *Y.shape[-3:-1]),
                            strict=True):
        seen = ~gaps
        for keypoint in np.flatnonzero(seen.any(axis=0) & gaps.any(axis=0)):
            known = seen[:, keypoint]
            for axis in range(Y.shape[-1]):
                points[~known, keypoint, axis] = np.interp(
                    frames[~known], frames[known], points[known, keypoint, axis])
        never_seen = ~seen.any(axis=0)
        if never_seen.all():
            points[:] = 0.0
        elif never_seen.any():
            points[:, never_seen] = points[:, ~never_seen].mean(axis=1, keepdims=True)
    return Y


VON_MISES_MAX_ROUNDS = 64
"""Rounds of the von Mises rejection sampler; a still pending entry takes the last round's
proposal. Each round accepts with probability at least 0.65 at any concentration, so an
entry reaches the bound with probability below 1e-29 (a batch of 1e9 angles below 1e-20)."""


def sample_von_mises(key: PRNGKeyArray, mean: Float[Array, "*batch"],
                     concentration: Float[Array, "*batch"]) -> Float[Array, "*batch"]:
    """Angles ~ von Mises(mean, concentration) in [-π, π), in bounded time for any input.

    Below `von_mises_normal_threshold(dtype)` (1 / eps: about 8e6 in float32, 5e15 in
    float64): Best and Fisher's (1979) wrapped-Cauchy rejection sampler, exact
    (concentration 0 gives the uniform law), written in terms of r - 1 so that it keeps
    its acceptance rate however concentrated the law (the textbook form rounds r to 1 and
    rejects every proposal from about 1e7 in float32, 1e15 in float64), and bounded to
    `VON_MISES_MAX_ROUNDS` rounds. From the threshold up: the normal law N(mean,
    1 / concentration), the von Mises law's limit, whose total-variation distance to it
    (about 0.09 / concentration) is then below the dtype's resolution. A non-finite
    parameter gives NaN.
    """
    mean, concentration = jnp.broadcast_arrays(mean, concentration)
    dtype = mean.dtype
    kappa = jnp.maximum(concentration, jnp.finfo(dtype).tiny)
    normal_key, rejection_key = jax.random.split(key)
    normal = standard_normal(normal_key, mean.shape, dtype) * jax.lax.rsqrt(kappa)
    # The envelope parameter r > 1 as excess = r - 1 and kappa_excess = kappa (r - 1), from
    # Best and Fisher's optimal r written without cancellation at large kappa; it cancels
    # catastrophically at small kappa instead, where r = 1 / kappa serves (any r > 1 is exact).
    root = jnp.sqrt(1.0 + 4.0 * kappa**2)
    tau = 1.0 + root
    one_minus_rho = (jnp.sqrt(2.0 * tau) - 1.0 - 1.0 / (root + 2.0 * kappa)) / (2.0 * kappa)
    small = kappa <= 1e-2
    excess = jnp.where(small, 1.0 / kappa - 1.0, one_minus_rho**2 / (2.0 * (1.0 - one_minus_rho)))
    kappa_excess = jnp.where(small, 1.0 - kappa, kappa * excess)

    def attempt(carry):
        round_, key, pending, angle = carry
        key, sub = jax.random.split(key)
        u1, u2, u3 = uniform(sub, (3, *mean.shape), dtype)
        # z = cos(pi u1) is the wrapped-Cauchy proposal's cosine before the map
        # f = (1 + r z) / (r + z); with 1 - z = 2 sin², 1 + z = 2 cos² (half-angle pi u1 / 2):
        # 1 - f = 2 sin² / q and c = kappa (r - f) = (2 kappa + kappa (r - 1)) / q.
        half = 0.5 * jnp.pi * u1
        q = 1.0 + 2.0 * jnp.cos(half) ** 2 / excess
        c = (2.0 * kappa + kappa_excess) / q
        last = round_ == VON_MISES_MAX_ROUNDS - 1
        accept = pending & ((c * (2.0 - c) - u2 > 0) | (jnp.log(c / u2) + 1.0 - c >= 0) | last)
        # arccos(f) = 2 arcsin(sqrt((1 - f) / 2)), accurate for f near 1.
        proposal = jnp.sign(u3 - 0.5) * 2.0 * jnp.arcsin(
            jnp.minimum(jnp.abs(jnp.sin(half)) * jax.lax.rsqrt(q), 1.0))
        return round_ + 1, key, pending & ~accept, jnp.where(accept, proposal, angle)

    use_normal = kappa >= von_mises_normal_threshold(dtype)
    finite = jnp.isfinite(kappa * mean)
    init = (jnp.int32(0), rejection_key, finite & ~use_normal, jnp.zeros(mean.shape, dtype))
    _, _, _, angle = jax.lax.while_loop(lambda carry: jnp.any(carry[2]), attempt, init)
    angle = jnp.where(use_normal, normal, angle)
    return jnp.where(finite, wrap_angle(angle + mean), jnp.nan)


def von_mises_normal_threshold(dtype) -> float:
    """The concentration from which `sample_von_mises` draws the normal limit: 1 / eps of
    `dtype`, where the limit's error (about 0.09 / concentration in total variation) falls
    below the dtype's resolution."""
    return float(1.0 / jnp.finfo(dtype).eps)


def heading_natural_params(Y: Float[Array, "... k d"], v: Float[Array, "... d"],
                           pose: Float[Array, "... k d"], precision: Float[Array, "... k"],
                           vertical_axis: int = 2):
    """(a, b) with log p(h | rest) = a cos h + b sin h + const, for
    Y_k ~ N(R(h) pose_k + v, I / precision_k) and a uniform prior on h; only the components
    in the horizontal plane (`moseq.ops.geometry.horizontal_axes`) depend on h."""
    first, second = horizontal_axes(Y.shape[-1], vertical_axis)
    centred = Y - v[..., None, :]
    cx, cy = centred[..., first], centred[..., second]
    ex, ey = pose[..., first], pose[..., second]
    a = jnp.sum(precision * (ex * cx + ey * cy), -1)
    b = jnp.sum(precision * (ex * cy - ey * cx), -1)
    return a, b


def sample_random_walk(key: PRNGKeyArray, obs: Float[Array, "T d"], obs_precision:
                       Float[Array, " T"], step_variance, init_variance) -> Float[Array, "T d"]:
    """A draw of v (T, d) from its posterior under v_0 ~ N(0, init_variance I),
    v_t ~ N(v_{t-1}, step_variance I), obs_t ~ N(v_t, I / obs_precision_t) (precision 0 =
    no observation); the coordinates are independent, so the filter is scalar."""
    dtype = obs.dtype

    def forward(carry, inputs):
        mean, var = carry  # predictive moments of v_t
        y, prec = inputs
        post_var = var / (1.0 + var * prec)
        post_mean = mean + post_var * prec * (y - mean)
        return (post_mean, post_var + step_variance), (post_mean, post_var)

    init = (jnp.zeros(obs.shape[-1], dtype), jnp.asarray(init_variance, dtype))
    _, (means, variances) = jax.lax.scan(forward, init, (obs, obs_precision))
    noise = standard_normal(key, obs.shape, dtype)
    last = means[-1] + jnp.sqrt(variances[-1]) * noise[-1]

    def backward(next_v, inputs):
        mean, var, eps = inputs
        gain = var / (var + step_variance)
        cond_mean = mean + gain * (next_v - mean)
        value = cond_mean + jnp.sqrt(var * (1.0 - gain)) * eps
        return value, value

    _, rest = jax.lax.scan(backward, last, (means[:-1], variances[:-1], noise[:-1]),
                           reverse=True)
    return jnp.concatenate([rest, last[None]])


def random_walk_log_prob(v: Float[Array, "... T d"], step_variance, init_variance, span=None):
    """log N(v_0; 0, init_variance I) + Σ_t log N(v_t; v_{t-1}, step_variance I), each term
    counted where `span` (..., T) is true at its frame (all when None)."""
    def normal(x, var):
        return jnp.sum(-0.5 * (x**2 / var + jnp.log(2 * jnp.pi * var)), -1)

    terms = jnp.concatenate([normal(v[..., :1, :], init_variance),
                             normal(jnp.diff(v, axis=-2), step_variance)], -1)
    return jnp.sum(terms if span is None else jnp.where(span, terms, 0.0))


def pca_from_moments(total, first: Float[Array, " p"], second: Float[Array, "p p"],
                     num_components: int):
    """(components (p, n), variances (n,), mean (p,)) from the weighted moments
    (Σ w, Σ w f, Σ w f fᵀ) of feature vectors f, largest variance first."""
    mean = first / total
    cov = symmetrize(second / total - jnp.outer(mean, mean))
    variances, vectors = jnp.linalg.eigh(cov)
    order = jnp.argsort(variances)[::-1][:num_components]
    return vectors[:, order], variances[order], mean
