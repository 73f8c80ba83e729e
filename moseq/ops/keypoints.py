"""The keypoint-SLDS's pose variables: error model, gap filling, and the exact conditionals
of the heading (von Mises) and the centroid (Gaussian random walk), plus the PCA behind
the emission matrix. Geometry (rotations, alignment) lives in `moseq.ops.geometry`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from moseq.ops.geometry import wrap_angle
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


def sample_von_mises(key: PRNGKeyArray, mean: Float[Array, "*batch"],
                     concentration: Float[Array, "*batch"]) -> Float[Array, "*batch"]:
    """Angles ~ von Mises(mean, concentration) in (-π, π], by Best and Fisher's (1979)
    wrapped-Cauchy rejection sampler (exact; concentration 0 gives the uniform law)."""
    mean, concentration = jnp.broadcast_arrays(mean, concentration)
    dtype = mean.dtype
    kappa = jnp.maximum(concentration, jnp.finfo(dtype).tiny)
    tau = 1.0 + jnp.sqrt(1.0 + 4.0 * kappa**2)
    rho = (tau - jnp.sqrt(2.0 * tau)) / (2.0 * kappa)
    # The sampler is exact for any envelope parameter r > 1; the optimal one cancels
    # catastrophically for small kappa, where its limit 1 / kappa serves.
    r = jnp.where(kappa > 1e-2, (1.0 + rho**2) / (2.0 * rho), 1.0 / kappa)

    def attempt(carry):
        key, done, angle = carry
        key, sub = jax.random.split(key)
        u1, u2, u3 = jax.random.uniform(sub, (3, *mean.shape), dtype)
        z = jnp.cos(jnp.pi * u1)
        f = (1.0 + r * z) / (r + z)
        c = kappa * (r - f)
        accept = ~done & ((c * (2.0 - c) - u2 > 0) | (jnp.log(c / u2) + 1.0 - c >= 0))
        proposal = jnp.sign(u3 - 0.5) * jnp.arccos(jnp.clip(f, -1.0, 1.0))
        return key, done | accept, jnp.where(accept, proposal, angle)

    # A non-finite parameter would never be accepted: it yields NaN instead of looping.
    stuck = ~jnp.isfinite(kappa * mean)
    init = (key, stuck, jnp.where(stuck, jnp.nan, jnp.zeros(mean.shape, dtype)))
    _, _, angle = jax.lax.while_loop(lambda carry: ~jnp.all(carry[1]), attempt, init)
    return wrap_angle(angle + mean)


def heading_natural_params(Y: Float[Array, "... k d"], v: Float[Array, "... d"],
                           pose: Float[Array, "... k d"], precision: Float[Array, "... k"]):
    """(a, b) with log p(h | rest) = a cos h + b sin h + const, for
    Y_k ~ N(R(h) pose_k + v, I / precision_k) and a uniform prior on h (x-y components)."""
    centred = (Y - v[..., None, :])[..., :2]
    ex, ey = pose[..., 0], pose[..., 1]
    a = jnp.sum(precision * (ex * centred[..., 0] + ey * centred[..., 1]), -1)
    b = jnp.sum(precision * (ex * centred[..., 1] - ey * centred[..., 0]), -1)
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
    noise = jax.random.normal(key, obs.shape, dtype)
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
