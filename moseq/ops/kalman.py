"""Kalman filtering, smoothing and joint posterior sampling for switching linear-Gaussian models.

The model of one recording (T frames, latent ``x_t`` in R^n, observation ``y_t`` in R^p)::

    x_0     ~ N(m0, S0)
    x_{t+1} = F_t x_t + b_t + N(0, Q_t)            t = 0 .. T-2
    y_t     = C x_t + d + N(0, diag(r_t))           t = 0 .. T-1

where ``(F_t, b_t, Q_t)`` is the dynamics of the discrete state ``z_t`` (``A[z_t], B[z_t],
Q[z_t]``), or the "masked" dynamics when the *source* frame ``t`` is padding, and ``r_t`` is
``Rs[t]``, or ``masked_obs_noise`` when frame ``t`` is padding (its observation is still used).

Numerical choices, and why:

- Conditioning a Gaussian ``N(m, U Uᵀ)`` on ``y_t`` (any square root ``U``) goes through the
  n x n matrix ``M = I + Uᵀ Cᵀ R⁻¹ C U``. Its eigenvalues are >= 1, so its Cholesky factor
  always exists; there is no p x p solve and no inverse of the prior covariance. Cost
  O(n³ + n² p) per frame.
- Backward sampling uses pathwise conditioning (Matheron's rule): with ``x̃_t`` drawn from the
  filtered Gaussian and ``w̃_t ~ N(0, Q_t)``,
  ``x_t = x̃_t + G_t (x_{t+1} - F_t x̃_t - b_t - w̃_t)``, ``G_t = P_t F_tᵀ (F_t P_t F_tᵀ + Q_t)⁻¹``.
  The conditional covariance of ``x_t`` given ``x_{t+1}`` is never factorised; it is singular
  whenever ``Q_t`` is (the noiseless shift blocks of a lifted AR model), and this form samples
  it exactly, without NaN. Square roots of the ``Q``'s are taken by a thresholded
  eigendecomposition, once per call, so they may be singular.
- Sampler and smoother both reduce to an affine backward recursion
  ``x_t = G_t x_{t+1} + h_t``; ``parallel=False`` runs it with ``lax.scan``, ``parallel=True``
  with ``lax.associative_scan`` after the associative-scan filter of Särkkä & García-Fernández
  (2021). With the same noise the two paths give the same draw up to rounding.
- LAPACK calls: jaxlib 0.10.x on CPU runs a large batched factorisation (Cholesky,
  triangular solve, LU, eigh) by fanning the batch out over XLA's intra-op thread pool and
  blocking until it is done; when as many such calls run at once as the pool has threads,
  every worker waits for work no thread is free to run and the program hangs (seen on a
  2-core machine with two concurrent calls of ~100 30x30 matrices). The rest of moseq
  avoids LAPACK on CPU (`moseq.ops.linalg.cholesky` and friends use XLA loops); these
  kernels keep LAPACK, because the loops make the sequential sampler 2x slower than
  jax-moseq's instead of faster, and make it safe by ordering: every factorisation depends
  on the previous one's output (one eigh for all process-noise roots, one stacked Cholesky
  per backward step, one solve per associative-scan combination, a log likelihood from
  factors already computed), so no two of them ever run at the same time.
- Requirements: ``S0`` positive definite, ``Q``'s positive semi-definite, and every one-step
  predictive covariance ``F_t P_t F_tᵀ + Q_t`` positive definite. The last holds whenever
  ``Q_t`` is positive definite, and also for a lifted AR model with noiseless shift blocks
  (provided the AR noise is).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import cho_solve, solve_triangular
from jaxtyping import Array, Float, Int, PRNGKeyArray

from moseq.ops.checks import check_ndim, check_positive, check_same, check_square
from moseq.ops.distributions import draws_standard_noise, standard_noise
from moseq.ops.linalg import symmetrize

_LOG_2PI = math.log(2 * math.pi)

#: Standard-normal draws per frame used by `kalman_sample_with_noise`: filtered state,
#: process noise and jitter.
NOISE_PER_FRAME = 3


class KalmanPosterior(eqx.Module):
    """Exact marginals of the posterior of the latent states, and the data's log likelihood.

    Attributes:
        means: ``(T, n)`` posterior means E[x_t | y_{0:T-1}].
        covariances: ``(T, n, n)`` posterior covariances Cov[x_t | y_{0:T-1}].
        log_likelihood: scalar log p(y_{0:T-1}) (all frames, masked ones with their
            masked emission variance).
    """

    means: Float[Array, "T n"]
    covariances: Float[Array, "T n n"]
    log_likelihood: Float[Array, ""]


# --------------------------------------------------------------------------------------------
# Argument handling


class _Model(NamedTuple):
    """The switching model in the form the kernels use (one recording)."""

    ys: Array  # (T, p)
    variances: Array  # (T, p) emission variance of each frame
    dynamics_index: Array  # (T-1,) row of the stacks used by transition t -> t+1
    weights: Array  # (K+1, n, n) F; row K is the masked dynamics
    biases: Array  # (K+1, n)
    covs: Array  # (K+1, n, n) Q, symmetrised
    cov_roots: Array  # (K+1, n, n) R with R Rᵀ = Q
    C: Array  # (p, n)
    d: Array  # (p,)
    m0: Array  # (n,)
    S0_root: Array  # (n, n)


def _check_shape(name: str, array, shape: tuple, shape_doc: str) -> None:
    if tuple(np.shape(array)) != tuple(shape):
        raise ValueError(
            f"`{name}` must have shape {shape_doc} = {tuple(shape)}; got {tuple(np.shape(array))}."
        )


def _float_dtype(*arrays):
    dtype = jnp.result_type(*arrays)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def psd_sqrt(S: Float[Array, "... n n"]) -> Float[Array, "... n n"]:
    """A square root R (R Rᵀ = S) of a symmetric positive semi-definite matrix, by eigh.

    Works for singular S; eigenvalues below n·eps·max|eigenvalue| (rounding noise) are set to
    zero, so an exactly singular S keeps an exactly singular root.
    """
    S = symmetrize(S)
    eigenvalues, eigenvectors = jnp.linalg.eigh(S)
    eps = jnp.finfo(S.dtype).eps
    floor = S.shape[-1] * eps * jnp.max(jnp.abs(eigenvalues), axis=-1, keepdims=True)
    roots = jnp.sqrt(jnp.where(eigenvalues > floor, eigenvalues, 0.0))
    return eigenvectors * roots[..., None, :]


def _prepare(
    ys, mask, zs, m0, S0, A, B, Q, C, D, Rs, masked_dynamics_params, masked_obs_noise
) -> _Model:
    check_ndim("ys", ys, 2, "(T, obs_dim)")
    num_frames, obs_dim = np.shape(ys)
    if num_frames < 1:
        raise ValueError("`ys` must have at least one frame (T >= 1).")
    check_ndim("A", A, 3, "(num_states, n, n)")
    check_square("A", A)
    num_states, state_dim = np.shape(A)[0], np.shape(A)[-1]
    check_ndim("mask", mask, 1, "(T,)")
    check_same("ys", num_frames, "mask", np.shape(mask)[0], "number of frames T")
    check_ndim("zs", zs, 1, "(T-1,)")
    check_same("ys", num_frames - 1, "zs", np.shape(zs)[0], "number of transitions T-1")
    check_ndim("Rs", Rs, 2, "(T, obs_dim)")
    check_same("ys", num_frames, "Rs", np.shape(Rs)[0], "number of frames T")
    check_same("ys", obs_dim, "Rs", np.shape(Rs)[1], "observation dimension")
    _check_shape("m0", m0, (state_dim,), "(n,)")
    check_square("S0", S0)
    _check_shape("S0", S0, (state_dim, state_dim), "(n, n)")
    _check_shape("B", B, (num_states, state_dim), "(num_states, n)")
    check_square("Q", Q)
    _check_shape("Q", Q, (num_states, state_dim, state_dim), "(num_states, n, n)")
    _check_shape("C", C, (obs_dim, state_dim), "(obs_dim, n)")
    _check_shape("D", D, (obs_dim,), "(obs_dim,)")
    _check_shape("masked_obs_noise", masked_obs_noise, (obs_dim,), "(obs_dim,)")
    if not isinstance(masked_dynamics_params, dict) or not {"weights", "bias", "cov"} <= set(
        masked_dynamics_params
    ):
        raise ValueError(
            "`masked_dynamics_params` must be a dict with keys 'weights' (n, n), 'bias' (n,) "
            f"and 'cov' (n, n); got {masked_dynamics_params!r}."
        )
    masked_weights = masked_dynamics_params["weights"]
    masked_bias = masked_dynamics_params["bias"]
    masked_cov = masked_dynamics_params["cov"]
    _check_shape("masked_dynamics_params['weights']", masked_weights, (state_dim,) * 2, "(n, n)")
    _check_shape("masked_dynamics_params['bias']", masked_bias, (state_dim,), "(n,)")
    _check_shape("masked_dynamics_params['cov']", masked_cov, (state_dim,) * 2, "(n, n)")
    if not jnp.issubdtype(jnp.result_type(zs), jnp.integer):
        raise ValueError(f"`zs` must hold integer state indices; got dtype {jnp.result_type(zs)}.")

    dtype = _float_dtype(ys, m0, S0, A, B, Q, C, D, Rs)
    cast = lambda x: jnp.asarray(x, dtype)
    valid = jnp.asarray(mask) > 0
    weights = jnp.concatenate([cast(A), cast(masked_weights)[None]])
    biases = jnp.concatenate([cast(B), cast(masked_bias)[None]])
    covs = symmetrize(jnp.concatenate([cast(Q), cast(masked_cov)[None]]))
    # One eigendecomposition call for all roots (see "LAPACK calls" in the module docstring).
    roots = psd_sqrt(jnp.concatenate([covs, symmetrize(cast(S0))[None]]))
    return _Model(
        ys=cast(ys),
        variances=jnp.where(valid[:, None], cast(Rs), cast(masked_obs_noise)[None]),
        dynamics_index=jnp.where(valid[:-1], jnp.asarray(zs), num_states),
        weights=weights,
        biases=biases,
        covs=covs,
        cov_roots=roots[:-1],
        C=cast(C),
        d=cast(D),
        m0=cast(m0),
        S0_root=roots[-1],
    )


# --------------------------------------------------------------------------------------------
# One-step pieces shared by both paths


class _Emission(NamedTuple):
    """What y = C x + d + N(0, diag(r)) says about x - m, for a reference point m."""

    whitened_C: Array  # (p, n) R^{-1/2} C
    information: Array  # (n,) Cᵀ R⁻¹ (y - C m - d)
    quadratic: Array  # () (y - C m - d)ᵀ R⁻¹ (y - C m - d)
    log_normaliser: Array  # () p log(2π) + log det R

    @property
    def precision(self):
        """Cᵀ R⁻¹ C, (n, n)."""
        return symmetrize(self.whitened_C.T @ self.whitened_C)


def _emission(C, d, y, variance, mean) -> _Emission:
    inv_variance = 1.0 / variance
    residual = y - C @ mean - d
    return _Emission(
        whitened_C=C * jnp.sqrt(inv_variance)[:, None],
        information=C.T @ (inv_variance * residual),
        quadratic=residual @ (inv_variance * residual),
        log_normaliser=y.shape[-1] * _LOG_2PI + jnp.sum(jnp.log(variance)),
    )


def _condition(mean, root, emission: _Emission):
    """Condition N(mean, root rootᵀ) on one observation.

    Returns ``(posterior mean, posterior covariance, V, log p(y))`` where the posterior
    covariance is ``Vᵀ V`` (Woodbury through M = I + rootᵀ Cᵀ R⁻¹ C root >= I).
    """
    identity = jnp.eye(mean.shape[-1], dtype=mean.dtype)
    whitened = emission.whitened_C @ root  # (p, n): O(n² p), no n x n x n product
    M = symmetrize(identity + whitened.T @ whitened)
    W = jnp.linalg.cholesky(M)
    V = solve_triangular(W, root.T, lower=True)
    Vg = V @ emission.information
    posterior_mean = mean + V.T @ Vg
    posterior_cov = symmetrize(V.T @ V)
    log_det_M = 2.0 * jnp.sum(jnp.log(jnp.diagonal(W)))
    log_likelihood = -0.5 * (emission.log_normaliser + log_det_M + emission.quadratic - Vg @ Vg)
    return posterior_mean, posterior_cov, V, log_likelihood


class _Backward(NamedTuple):
    """The backward kernel of one frame, in pathwise form.

    With x̃ = filtered_mean + filtered_root ε₁ and w̃ = cov_root ε₂,
    ``x_t = x̃ + gain (x_{t+1} - weights x̃ - bias - w̃)`` is a draw of x_t given x_{t+1};
    ``predicted_mean = weights filtered_mean + bias``. The last frame has zero gain.
    """

    gain: Array  # (n, n)
    filtered_mean: Array  # (n,)
    filtered_root: Array  # (n, n) Cholesky factor of the filtered covariance
    predicted_mean: Array  # (n,)
    weights: Array  # (n, n)
    cov_root: Array  # (n, n)


def _backward_step(filtered_mean, filtered_cov, weights, bias, cov, cov_root):
    """Backward kernel of the transition out of a frame, and the next frame's predictive chol.

    Both Cholesky factors (of the predictive and of the filtered covariance) come from one
    batched call, so the step issues one chain of LAPACK calls.
    """
    FP = weights @ filtered_cov
    predicted_cov = symmetrize(FP @ weights.T + cov)
    predicted_chol, filtered_root = jnp.linalg.cholesky(jnp.stack([predicted_cov, filtered_cov]))
    step = _Backward(
        gain=cho_solve((predicted_chol, True), FP).T,
        filtered_mean=filtered_mean,
        filtered_root=filtered_root,
        predicted_mean=weights @ filtered_mean + bias,
        weights=weights,
        cov_root=cov_root,
    )
    return step, predicted_chol


def _last_backward(filtered_mean, filtered_cov) -> _Backward:
    zeros = jnp.zeros_like(filtered_cov)
    return _Backward(
        gain=zeros,
        filtered_mean=filtered_mean,
        filtered_root=jnp.linalg.cholesky(filtered_cov),
        predicted_mean=jnp.zeros_like(filtered_mean),
        weights=zeros,
        cov_root=zeros,
    )


def _without_transition(step: _Backward) -> _Backward:
    """The last frame's kernel from a step computed with placeholder dynamics: zero gain."""
    zeros = jnp.zeros_like(step.gain)
    return step._replace(
        gain=zeros,
        predicted_mean=jnp.zeros_like(step.predicted_mean),
        weights=zeros,
        cov_root=zeros,
    )


def _sample_offset(step: _Backward, noise, jitter_scale):
    """h_t of x_t = G_t x_{t+1} + h_t for one frame; ``noise`` is (3, n) standard normal."""
    state_deviation = step.filtered_root @ noise[0]
    predicted = step.predicted_mean + step.weights @ state_deviation + step.cov_root @ noise[1]
    offset = step.filtered_mean + state_deviation - step.gain @ predicted
    return offset + jitter_scale * noise[2]


def _conditional_moments(step: _Backward, _unused=None):
    """Offset c_t and covariance Σ_t of x_t | x_{t+1} = G_t x_{t+1} + c_t + N(0, Σ_t)."""
    state_part = step.filtered_root - step.gain @ (step.weights @ step.filtered_root)
    noise_part = step.gain @ step.cov_root
    offset = step.filtered_mean - step.gain @ step.predicted_mean
    return offset, symmetrize(state_part @ state_part.T + noise_part @ noise_part.T)


# --------------------------------------------------------------------------------------------
# Forward passes: filter, and emit each frame's backward kernel through `per_frame`


def _forward_sequential(model: _Model, per_frame, extras):
    """Kalman filter by `lax.scan`; returns (gains (T-1,n,n) of the frames with a transition
    (the last frame's is zero and is not stored), per_frame outputs (T frames), log p(y))."""
    C, d = model.C, model.d

    def step(carry, inputs):
        predicted_mean, predicted_root, log_likelihood = carry
        y, variance, index, extra = inputs
        emission = _emission(C, d, y, variance, predicted_mean)
        filtered_mean, filtered_cov, _, frame_ll = _condition(
            predicted_mean, predicted_root, emission
        )
        backward, predicted_chol = _backward_step(
            filtered_mean,
            filtered_cov,
            model.weights[index],
            model.biases[index],
            model.covs[index],
            model.cov_roots[index],
        )
        carry = (backward.predicted_mean, predicted_chol, log_likelihood + frame_ll)
        return carry, (backward.gain, per_frame(backward, extra))

    head = lambda x: x[:-1]
    init = (model.m0, model.S0_root, jnp.zeros((), model.m0.dtype))
    inputs = (head(model.ys), head(model.variances), model.dynamics_index)
    (mean, root, log_likelihood), (gains, outputs) = lax.scan(
        step, init, (*inputs, jax.tree_util.tree_map(head, extras))
    )
    emission = _emission(C, d, model.ys[-1], model.variances[-1], mean)
    filtered_mean, filtered_cov, _, frame_ll = _condition(mean, root, emission)
    last = _last_backward(filtered_mean, filtered_cov)
    last_output = per_frame(last, jax.tree_util.tree_map(lambda x: x[-1], extras))
    outputs = jax.tree_util.tree_map(
        lambda xs, x: jnp.concatenate([xs, x[None]]), outputs, last_output
    )
    return gains, outputs, log_likelihood + frame_ll


def _filter_element(C, d, weights, bias, cov_root, y, variance):
    """Associative-scan filter element of one frame (Särkkä & García-Fernández 2021).

    ``(A, b, C)`` give p(x_t | x_{t-1}, y_t) = N(A x_{t-1} + b, C); ``(eta, J)`` give
    p(y_t | x_{t-1}) ∝ exp(-xᵀ J x / 2 + etaᵀ x) in x = x_{t-1}. The sixth output is
    log N(y_t; C b + d, C Q Cᵀ + R), which is log p(y_0) for frame 0 (F = 0, b = m0, Q = S0).
    """
    emission = _emission(C, d, y, variance, bias)
    mean, cov, V, log_likelihood = _condition(bias, cov_root, emission)
    precision = emission.precision
    V_precision = V @ precision
    transition = weights - cov @ (precision @ weights)
    eta = weights.T @ (emission.information - V_precision.T @ (V @ emission.information))
    J = symmetrize(weights.T @ (precision - V_precision.T @ V_precision) @ weights)
    return transition, mean, cov, eta, J, log_likelihood


def _combine_filter_elements(earlier, later):
    A_i, b_i, C_i, eta_i, J_i = earlier
    A_j, b_j, C_j, eta_j, J_j = later
    identity = jnp.eye(b_i.shape[-1], dtype=b_i.dtype)
    # One solve (a single chain of LAPACK calls, see `_serialise`) for both products.
    inverse = jnp.linalg.solve(identity + C_i @ J_j, identity)  # (I + C_i J_j)⁻¹
    left = A_j @ inverse
    right = (inverse @ A_i).T  # A_iᵀ (I + J_j C_i)⁻¹, as C and J are symmetric
    return (
        left @ A_i,
        left @ (b_i + C_i @ eta_j) + b_j,
        symmetrize(left @ C_i @ A_j.T + C_j),
        right @ (eta_j - J_j @ b_i) + eta_i,
        symmetrize(right @ J_j @ A_i + J_i),
    )


def _forward_parallel(model: _Model, per_frame, extras, with_log_likelihood=True):
    """Associative-scan Kalman filter; same outputs as `_forward_sequential`."""
    C, d = model.C, model.d
    n = model.m0.shape[-1]
    zeros = jnp.zeros((1, n, n), model.m0.dtype)
    # Frame 0's element is frame t's with F = 0, b = m0 and Q = S0: one vmapped call.
    weights = jnp.concatenate([zeros, model.weights[model.dynamics_index]])
    biases = jnp.concatenate([model.m0[None], model.biases[model.dynamics_index]])
    cov_roots = jnp.concatenate([model.S0_root[None], model.cov_roots[model.dynamics_index]])
    elements = jax.vmap(_filter_element, in_axes=(None, None, 0, 0, 0, 0, 0))(
        C, d, weights, biases, cov_roots, model.ys, model.variances
    )
    _, filtered_means, filtered_covs, _, _ = lax.associative_scan(
        jax.vmap(_combine_filter_elements), elements[:5]
    )

    # The last frame has no transition: use placeholder dynamics (F = 0, Q = I), then drop it.
    identity = jnp.eye(n, dtype=model.m0.dtype)[None]
    steps, predicted_chols = jax.vmap(_backward_step)(
        filtered_means,
        filtered_covs,
        jnp.concatenate([weights[1:], zeros]),
        jnp.concatenate([biases[1:], jnp.zeros((1, n), model.m0.dtype)]),
        jnp.concatenate([model.covs[model.dynamics_index], identity]),
        jnp.concatenate([cov_roots[1:], identity]),
    )
    last = _without_transition(jax.tree_util.tree_map(lambda x: x[-1], steps))
    steps = jax.tree_util.tree_map(lambda xs, x: xs.at[-1].set(x), steps, last)
    outputs = jax.vmap(per_frame)(steps, extras)

    log_likelihood = elements[5][0]
    if with_log_likelihood:
        log_likelihood += jnp.sum(
            jax.vmap(_predictive_log_likelihood, in_axes=(None, None, 0, 0, 0, 0, 0, 0))(
                C,
                d,
                model.ys[1:],
                model.variances[1:],
                steps.predicted_mean[:-1],
                predicted_chols[:-1],
                filtered_covs[1:],
                steps.filtered_root[1:],
            )
        )
    return steps.gain, outputs, log_likelihood


def _predictive_log_likelihood(
    C, d, y, variance, predicted_mean, predicted_chol, filtered_cov, filtered_root
):
    """log p(y_t | y_{<t}) from factors the filter already has (no new factorisation).

    With S = C P⁻ Cᵀ + R: log det S = log det R + log det P⁻ - log det P⁺ and
    rᵀ S⁻¹ r = rᵀ R⁻¹ r - gᵀ P⁺ g, for r = y - C m⁻ - d and g = Cᵀ R⁻¹ r.
    """
    emission = _emission(C, d, y, variance, predicted_mean)
    log_det_ratio = 2.0 * jnp.sum(
        jnp.log(jnp.diagonal(predicted_chol)) - jnp.log(jnp.diagonal(filtered_root))
    )
    g = emission.information
    return -0.5 * (
        emission.log_normaliser + log_det_ratio + emission.quadratic - g @ filtered_cov @ g
    )


def _forward(model, per_frame, extras, parallel, with_log_likelihood=True):
    if parallel:
        return _forward_parallel(model, per_frame, extras, with_log_likelihood)
    return _forward_sequential(model, per_frame, extras)


# --------------------------------------------------------------------------------------------
# Backward passes: the affine recursion x_t = G_t x_{t+1} + h_t (+ noise of covariance Σ_t)


def _compose_samples(later, earlier):
    """(earlier ∘ later) for maps x ↦ G x + h."""
    G_later, h_later = later
    G_earlier, h_earlier = earlier
    return G_earlier @ G_later, G_earlier @ h_later + h_earlier


def _compose_gaussians(later, earlier):
    G_later, c_later, S_later = later
    G_earlier, c_earlier, S_earlier = earlier
    return (
        G_earlier @ G_later,
        G_earlier @ c_later + c_earlier,
        symmetrize(G_earlier @ S_later @ G_earlier.T + S_earlier),
    )


def _backward_samples(gains, offsets, parallel):
    """Run x_t = G_t x_{t+1} + h_t backwards. Sequential `gains` hold T-1 frames (the last
    frame, whose gain is zero, is x_{T-1} = h_{T-1}); parallel ones hold all T."""
    if parallel:
        _, xs = lax.associative_scan(jax.vmap(_compose_samples), (gains, offsets), reverse=True)
        return xs

    def step(x_next, inputs):
        gain, offset = inputs
        x = gain @ x_next + offset
        return x, x

    last = offsets[-1]
    _, xs = lax.scan(step, last, (gains, offsets[:-1]), reverse=True)
    return jnp.concatenate([xs, last[None]])


def _backward_moments(gains, offsets, covs, parallel):
    if parallel:
        _, means, covariances = lax.associative_scan(
            jax.vmap(_compose_gaussians), (gains, offsets, covs), reverse=True
        )
        return means, covariances

    def step(carry, inputs):
        mean_next, cov_next = carry
        gain, offset, cov = inputs
        mean = gain @ mean_next + offset
        cov = symmetrize(gain @ cov_next @ gain.T + cov)
        return (mean, cov), (mean, cov)

    last = (offsets[-1], symmetrize(covs[-1]))  # the last frame has zero gain
    _, (means, covariances) = lax.scan(step, last, (gains, offsets[:-1], covs[:-1]),
                                       reverse=True)
    return (jnp.concatenate([means, last[0][None]]),
            jnp.concatenate([covariances, last[1][None]]))


# --------------------------------------------------------------------------------------------
# Public API


def _sample(model: _Model, noise, jitter, parallel):
    jitter_scale = jnp.sqrt(jnp.asarray(jitter, model.m0.dtype))
    per_frame = lambda step, eps: _sample_offset(step, eps, jitter_scale)
    gains, offsets, _ = _forward(model, per_frame, noise, parallel, with_log_likelihood=False)
    return _backward_samples(gains, offsets, parallel)


def _check_jitter(jitter):
    check_positive("jitter", jitter, allow_zero=True)
    if np.ndim(jitter) != 0:
        raise ValueError(f"`jitter` must be a scalar; got shape {np.shape(jitter)}.")


def kalman_sample_with_noise(
    noise: Float[Array, "T 3 n"],
    ys: Float[Array, "T obs"],
    mask: Float[Array, " T"],
    zs: Int[Array, " T-1"],
    m0: Float[Array, " n"],
    S0: Float[Array, "n n"],
    A: Float[Array, "K n n"],
    B: Float[Array, "K n"],
    Q: Float[Array, "K n n"],
    C: Float[Array, "obs n"],
    D: Float[Array, " obs"],
    Rs: Float[Array, "T obs"],
    masked_dynamics_params: dict,
    masked_obs_noise: Float[Array, " obs"],
    jitter: float = 0,
    parallel: bool = True,
) -> Float[Array, "T n"]:
    """`kalman_sample` with its standard-normal draws given: ``noise`` is ``(T, 3, n)``.

    ``noise[t]`` holds the draws of frame t: the filtered-state deviation, the process noise
    of the transition out of t (unused for the last frame) and the jitter noise. The result
    is an affine function of ``noise``: the posterior mean at ``noise = 0``, and its Jacobian
    J satisfies ``J Jᵀ = Cov[x | y]`` (plus the jitter terms), so tests can check draws
    exactly. `kalman_sample` is this function with ``noise ~ N(0, I)``.
    """
    model = _prepare(
        ys, mask, zs, m0, S0, A, B, Q, C, D, Rs, masked_dynamics_params, masked_obs_noise
    )
    _check_jitter(jitter)
    shape = (model.ys.shape[0], NOISE_PER_FRAME, model.m0.shape[0])
    noise = standard_noise(noise, shape, model.m0.dtype, "(T, 3, n)")
    return _sample(model, noise, jitter, parallel)


@draws_standard_noise(kalman_sample_with_noise)
def kalman_sample(key: PRNGKeyArray, *args, **kwargs) -> Float[Array, "T n"]:
    """One joint draw of x_{0:T-1} from the posterior of a switching linear-Gaussian model.

    Takes a `jax.random` key, then the arguments of `kalman_sample_with_noise` after ``noise``
    (its signature is this function's, with ``key`` first). The model is the module's (see
    the module docstring): dynamics ``A[zs[t]], B[zs[t]], Q[zs[t]]`` for the transition
    t -> t+1, replaced by ``masked_dynamics_params``
    (``{"weights": (n, n), "bias": (n,), "cov": (n, n)}``) when ``mask[t] == 0``; emission
    ``y_t = C x_t + D + N(0, diag(Rs[t]))``, with variance ``masked_obs_noise`` when
    ``mask[t] == 0``. ``jitter`` (>= 0) is added to the diagonal of every covariance the
    backward pass draws from (the last frame's filtered covariance and each conditional
    covariance of x_t given x_{t+1}), identically on both paths. ``parallel=True`` uses
    associative scans (depth O(log T), for accelerators); ``False`` uses ``lax.scan``.
    ``parallel`` must be a Python bool (static under `jax.jit`). Batch recordings with
    `jax.vmap`. Returns x with the dtype of the inputs.
    """


def kalman_smoother(
    ys: Float[Array, "T obs"],
    mask: Float[Array, " T"],
    zs: Int[Array, " T-1"],
    m0: Float[Array, " n"],
    S0: Float[Array, "n n"],
    A: Float[Array, "K n n"],
    B: Float[Array, "K n"],
    Q: Float[Array, "K n n"],
    C: Float[Array, "obs n"],
    D: Float[Array, " obs"],
    Rs: Float[Array, "T obs"],
    masked_dynamics_params: dict,
    masked_obs_noise: Float[Array, " obs"],
    parallel: bool = True,
) -> KalmanPosterior:
    """Exact posterior marginals and log marginal likelihood of the `kalman_sample` model.

    Same arguments and conventions as `kalman_sample` (no key, no jitter). The smoothed
    covariances are built as sums of positive semi-definite terms,
    ``P_t = G_t P_{t+1} G_tᵀ + Σ_t``, so they stay symmetric PSD in float32.
    """
    model = _prepare(
        ys, mask, zs, m0, S0, A, B, Q, C, D, Rs, masked_dynamics_params, masked_obs_noise
    )
    extras = jnp.zeros(model.ys.shape[0], model.m0.dtype)
    gains, (offsets, covs), log_likelihood = _forward(model, _conditional_moments, extras, parallel)
    means, covariances = _backward_moments(gains, offsets, covs, parallel)
    return KalmanPosterior(means=means, covariances=covariances, log_likelihood=log_likelihood)


# --------------------------------------------------------------------------------------------
# AR(L) in R^D  <->  first-order state in R^(D L)


def ar_to_lds_dynamics(
    Ab: Float[Array, "... D DL+1"], Q: Float[Array, "... D D"], shift_noise: float = 0.0
) -> tuple[Float[Array, "... DL DL"], Float[Array, "... DL"], Float[Array, "... DL DL"]]:
    """Companion form of AR(L) dynamics: the first-order dynamics of ξ_t = [x_{t-L+1}; …; x_t].

    ``Ab`` is ``[A_L … A_1 | b]`` (lag blocks oldest first, bias last), so that
    ``x_t = Ab [x_{t-L}; …; x_{t-1}; 1] + N(0, Q)``. Returns ``(A_, b_, Q_)``: ``A_`` shifts
    every block up by one and puts ``Ab[:, :-1]`` in the last block row; ``b_ = [0; b]``;
    ``Q_ = blockdiag(shift_noise · I, Q)``. Leading batch axes (e.g. states) are kept.

    Deviation from jax-moseq, on purpose: the reference gives the shift blocks process noise
    1e-2·I, so its lifted model is not exactly the AR model. Here ``shift_noise`` defaults to
    0 and the lift is exact; the Kalman kernels of this module sample singular process noise
    exactly. Pass ``shift_noise=1e-2`` to reproduce the reference.
    """
    check_positive("shift_noise", shift_noise, allow_zero=True)
    if np.ndim(Ab) < 2:
        raise ValueError(f"`Ab` must have shape (..., D, D*L + 1); got shape {np.shape(Ab)}.")
    latent_dim, width = np.shape(Ab)[-2:]
    if width < latent_dim + 1 or (width - 1) % latent_dim != 0:
        raise ValueError(
            f"`Ab` must have shape (..., D, D*L + 1); got shape {np.shape(Ab)}, whose last "
            f"axis minus 1 is not a multiple of D = {latent_dim}."
        )
    _check_shape("Q", Q, (*np.shape(Ab)[:-2], latent_dim, latent_dim), "(..., D, D)")
    dtype = _float_dtype(Ab, Q)
    Ab, Q = jnp.asarray(Ab, dtype), jnp.asarray(Q, dtype)
    batch = Ab.shape[:-2]
    lifted_dim = width - 1
    shift_dim = lifted_dim - latent_dim
    shift = jnp.broadcast_to(
        jnp.eye(shift_dim, lifted_dim, k=latent_dim, dtype=dtype), (*batch, shift_dim, lifted_dim)
    )
    A_lifted = jnp.concatenate([shift, Ab[..., :-1]], axis=-2)
    b_lifted = jnp.concatenate([jnp.zeros((*batch, shift_dim), dtype), Ab[..., -1]], axis=-1)
    Q_lifted = jnp.zeros((*batch, lifted_dim, lifted_dim), dtype)
    Q_lifted = Q_lifted.at[..., :shift_dim, :shift_dim].set(
        jnp.asarray(shift_noise, dtype) * jnp.eye(shift_dim, dtype=dtype)
    )
    Q_lifted = Q_lifted.at[..., shift_dim:, shift_dim:].set(Q)
    return A_lifted, b_lifted, Q_lifted


def ar_to_lds_emissions(
    Cd: Float[Array, "obs D+1"],
    R: Float[Array, "T obs"],
    y: Float[Array, "T obs"],
    m0: Float[Array, " DL"],
    S0: Float[Array, "DL DL"],
    nlags: int,
):
    """Emissions and initial state of the lifted (first-order, R^(D L)) form of an AR(L) model.

    The data model is ``y_t = C x_t + d + N(0, diag(R[t]))`` with ``Cd = [C | d]``. The
    lifted chain has ``T - L + 1`` frames, the lifted state of frame ``L - 1 + s`` being
    ``[x_s; …; x_{s+L-1}]`` (newest block last). Returns
    ``(C_, d_, R_, y_, m0_, S0_)``: ``C_ = [0 … 0 C]`` observes the newest block, ``d_ = d``,
    ``R_ = R[L-1:]``, ``y_ = y[L-1:]``, and ``N(m0_, S0_)`` is the prior ``N(m0, S0)`` on
    ``[x_0; …; x_{L-1}]`` conditioned on the first ``L - 1`` observations (block l seen by
    ``y_l``). ``nlags`` is a Python int; ``m0, S0`` live in R^(D L).
    """
    if not isinstance(nlags, (int, np.integer)) or nlags < 1:
        raise ValueError(f"`nlags` must be a positive Python int; got {nlags!r}.")
    check_ndim("Cd", Cd, 2, "(obs_dim, D + 1)")
    obs_dim, latent_dim = np.shape(Cd)[0], np.shape(Cd)[1] - 1
    if latent_dim < 1:
        raise ValueError(f"`Cd` must have shape (obs_dim, D + 1) with D >= 1; got {np.shape(Cd)}.")
    check_ndim("y", y, 2, "(T, obs_dim)")
    check_same("Cd", obs_dim, "y", np.shape(y)[1], "observation dimension")
    _check_shape("R", R, np.shape(y), "(T, obs_dim)")
    if np.shape(y)[0] < nlags:
        raise ValueError(f"`y` must have at least nlags = {nlags} frames; got {np.shape(y)[0]}.")
    lifted_dim = latent_dim * nlags
    _check_shape("m0", m0, (lifted_dim,), "(D * nlags,)")
    _check_shape("S0", S0, (lifted_dim, lifted_dim), "(D * nlags, D * nlags)")
    dtype = _float_dtype(Cd, R, y, m0, S0)
    Cd, R, y, m0, S0 = (jnp.asarray(a, dtype) for a in (Cd, R, y, m0, S0))
    C, d = Cd[:, :-1], Cd[:, -1]
    C_lifted = jnp.concatenate([jnp.zeros((obs_dim, lifted_dim - latent_dim), dtype), C], axis=1)
    if nlags == 1:
        return C_lifted, d, R, y, m0, symmetrize(S0)
    num_initial = nlags - 1
    observe_initial = jnp.kron(jnp.eye(num_initial, nlags, dtype=dtype), C)
    emission = _emission(
        observe_initial,
        jnp.tile(d, num_initial),
        y[:num_initial].reshape(-1),
        R[:num_initial].reshape(-1),
        m0,
    )
    m0_lifted, S0_lifted, _, _ = _condition(m0, psd_sqrt(S0), emission)
    return C_lifted, d, R[num_initial:], y[num_initial:], m0_lifted, S0_lifted
