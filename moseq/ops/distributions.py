"""Random draws from the standard distributions the conditionals need.

Every sampler takes an explicit `jax.random` key and draws in the dtype of its parameters.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray

from moseq.ops.checks import check_ndim, check_positive, check_square, is_concrete
from moseq.ops.linalg import cholesky, solve_triangular, symmetrize


def standard_normal(key: PRNGKeyArray, shape: tuple[int, ...], dtype) -> Array:
    """`jax.random.normal(key, shape, dtype)`: the same numbers, drawn as one flat vector and
    reshaped. XLA:CPU compiles a draw over three or more axes (which a vmapped draw of a
    matrix is) several times slower than the flat one, for the same bits (~2.2 s against
    ~0.6 s for (100, 10, 31) on a 2-core CPU)."""
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def uniform(key: PRNGKeyArray, shape: tuple[int, ...], dtype) -> Array:
    """`jax.random.uniform(key, shape, dtype)` drawn flat, as `standard_normal`."""
    return jax.random.uniform(key, (math.prod(shape),), dtype).reshape(shape)


def sample_dirichlet(
    key: PRNGKeyArray, concentration: Float[Array, "... K"]
) -> Float[Array, "... K"]:
    """One Dirichlet draw per leading index of `concentration`.

    Drawn as the softmax of log-gamma variates, so concentrations far below 1 (weak-limit HDP
    rows with small `alpha * beta`) give valid probability vectors instead of 0/0. Entries
    that underflow are raised to the smallest normal float, so that log densities of the
    draw stay finite (the row sums move by far less than rounding error).
    """
    concentration = jnp.asarray(concentration)
    dtype = _float_dtype(concentration)
    log_gammas = _gamma_variates(key, concentration, dtype, log=True)
    probabilities = jax.nn.softmax(log_gammas, axis=-1)
    return jnp.maximum(probabilities, jnp.finfo(dtype).tiny)


def _float_dtype(*arrays):
    dtype = jnp.result_type(*arrays)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


GAMMA_RETRY_ROUNDS = 32
"""Rounds of the gamma sampler after its first pass over the entries before the pending ones
are accepted unconditionally (each retry accepts with probability above 0.95)."""


def _gamma_variates(key: PRNGKeyArray, a: ArrayLike, dtype, log: bool) -> Array:
    """Gamma(shape a, rate 1) draws, or their logs (`log=True`), one per entry of `a`.

    Marsaglia & Tsang (2000): with d = a - 1/3 and y = x / sqrt(9d), x ~ N(0, 1), the proposal
    d (1 + y)³ is accepted when log u < h = 3d (log(1 + y) - y + y²/2 - y³/3) <= 0, u ~ U(0, 1]
    (h is x²/2 + d - d(1 + y)³ + 3d log(1 + y) with less cancellation). For a < 1,
    Gamma(a) = Gamma(a + 1) U^(1/a), added in log space so that tiny a keep finite logs; U is
    u e^-h of the accepted proposal, uniform and independent of x given acceptance. Variates
    are formed directly, not as exp(log), so they keep the resolution of `dtype`.

    Rounds of fresh bits serve a buffer of about n/16 entries (64 at least, n at most): each
    entry in turn, then those still pending, until all are accepted (acceptance > 0.95 for
    a >= 1). Each entry keeps its first accepted proposal, an exact draw. The loop is
    bounded: after `GAMMA_RETRY_ROUNDS` rounds past the first pass, pending entries take
    their next proposal unconditionally (d (1 + y)³, Wilson and Hilferty's normal
    approximation, with y <= -1 replaced by 0, and U = u for a < 1), an event of
    probability below 1e-40 per entry. a = 0 gives 0 (log: -inf), a = inf gives inf,
    a < 0 and NaN give NaN.
    """
    a = jnp.asarray(a, dtype)
    shape, a = a.shape, a.reshape(-1)
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):  # a raw uint32 key
        key = jax.random.wrap_key_data(key)
    buffer = min(a.size, max(-(-a.size // 16), 64))
    first_pass = -(-a.size // max(buffer, 1))

    def next_round(carry):
        round_, key, draws, pending = carry
        index = jax.lax.cond(
            round_ < first_pass,
            lambda: round_ * buffer + jnp.arange(buffer, dtype=jnp.int32),
            lambda: jax.lax.top_k(pending.astype(jnp.float32), buffer)[1],  # pending first
        )
        a_i = a.at[index].get(mode="clip")
        boosted = a_i < 1
        d = jnp.where(boosted, a_i + 1, a_i) - 1 / 3
        uniforms, key = _uniforms_and_key(key, (2, buffer), dtype)
        # x = sqrt(2) erfinv(2 U - 1) ~ N(0, 1); U = 0 gives x = -inf, rejected below.
        y = jax.lax.rsqrt(9 * d) * 2**0.5 * jax.lax.erf_inv(2 * uniforms[0] - 1)
        positive = y > -1
        y = jnp.where(positive, y, 0)
        h = 3 * d * (jnp.log1p(y) - y * (1 - y * (1 / 2 - y / 3)))
        log_u = jnp.log1p(-uniforms[1])
        # log(u e^-h) of an accepted proposal; log u alone for one accepted at the limit.
        log_boost = jnp.where(boosted, jnp.where(log_u < h, log_u - h, log_u) / a_i, 0)
        if log:
            draw = jnp.log(d) + 3 * jnp.log1p(y) + log_boost
        else:
            draw = d * (1 + y) ** 3 * jnp.exp(log_boost)
        forced = round_ >= first_pass + GAMMA_RETRY_ROUNDS
        accepted = ((positive & (log_u < h)) | forced) & pending.at[index].get(
            mode="fill", fill_value=False)
        index = jnp.where(accepted, index, a.size)  # out of bounds: dropped
        draws = draws.at[index].set(draw, mode="drop")
        return round_ + 1, key, draws, pending.at[index].set(False, mode="drop")

    valid = (a >= 0) & (a < jnp.inf)
    draws = jnp.where(a == jnp.inf, jnp.inf, jnp.nan).astype(dtype)
    carry = (jnp.int32(0), key, draws, valid)
    carry = jax.lax.while_loop(lambda carry: jnp.any(carry[3]), next_round, carry)
    return carry[2].reshape(shape)


def _uniforms_and_key(key: PRNGKeyArray, shape: tuple[int, ...], dtype):
    """U[0, 1) draws of `shape` on the grid 2^-p (p = significand bits of `dtype`) and the
    next key, all from one call for random 32-bit words (a split, too, makes keys of words)."""
    precision = jnp.finfo(dtype).nmant + 1
    key_data = jax.random.key_data(key)
    size = int(np.prod(shape))
    words = jax.random.bits(key, (size * (1 + (precision > 32)) + key_data.size,), jnp.uint32)
    next_key = jax.random.wrap_key_data(
        words[-key_data.size :].reshape(key_data.shape), impl=jax.random.key_impl(key)
    )
    if precision <= 32:
        grid = (words[:size] >> (32 - precision)).astype(dtype)
    else:  # the top precision - 32 bits of one word, all 32 of the next
        grid = (words[:size] >> (64 - precision)).astype(dtype) * 2**32
        grid += words[size : 2 * size].astype(dtype)
    return (grid * 2.0**-precision).reshape(shape), next_key


def sample_gamma(key: PRNGKeyArray, a: ArrayLike, b: ArrayLike) -> Array:
    """Gamma(shape a, rate b) draws, broadcast over `a` and `b` (mean a / b)."""
    dtype = _float_dtype(a, b)
    a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    shape = jnp.broadcast_shapes(a.shape, b.shape)
    return _gamma_variates(key, jnp.broadcast_to(a, shape), dtype, log=False) / b


def sample_inv_gamma(key: PRNGKeyArray, a: ArrayLike, b: ArrayLike) -> Array:
    """Inverse-gamma(shape a, scale b) draws: 1 / Gamma(a, rate b) (mean b / (a - 1))."""
    return 1.0 / sample_gamma(key, a, b)


def sample_scaled_inv_chi2(
    key: PRNGKeyArray, degs: ArrayLike, variance: ArrayLike
) -> Array:
    """Scaled-inverse-χ²(ν = degs, s² = variance) draws = InvGamma(ν/2, ν s²/2)."""
    dtype = _float_dtype(degs, variance)
    degs, variance = jnp.asarray(degs, dtype), jnp.asarray(variance, dtype)
    return sample_inv_gamma(key, degs / 2, degs * variance / 2)


def sample_chi2(key: PRNGKeyArray, degs: ArrayLike) -> Array:
    """χ²(degs) draws = 2 Gamma(degs/2, rate 1); `degs` need not be an integer."""
    dtype = _float_dtype(degs)
    degs = jnp.asarray(degs, dtype)
    return 2 * _gamma_variates(key, degs / 2, dtype, log=False)


def sample_mn(
    key: PRNGKeyArray, M: Float[Array, "m n"], U: Float[Array, "m m"], V: Float[Array, "n n"]
) -> Float[Array, "m n"]:
    """Matrix-normal MN(M, U, V) draw: M + chol(U) G chol(V)ᵀ, G iid N(0, 1).

    U is the row covariance, V the column covariance (vec(X) ~ N(vec(M), V ⊗ U)); both must be
    positive definite. One matrix per call; batch with `jax.vmap`.
    """
    check_ndim("M", M, 2, "(m, n)")
    _check_square_of("U", U, np.shape(M)[0])
    _check_square_of("V", V, np.shape(M)[1])
    dtype = _float_dtype(M, U, V)
    M, U, V = (jnp.asarray(x, dtype) for x in (M, U, V))
    G = standard_normal(key, M.shape, dtype)
    return M + cholesky(symmetrize(U)) @ G @ cholesky(symmetrize(V)).T


def sample_invwishart(key: PRNGKeyArray, S: Float[Array, "n n"], nu) -> Float[Array, "n n"]:
    """Inverse-Wishart IW(S, ν) draw, parameterised so that E[Σ] = S / (ν - n - 1).

    Bartlett construction: with S = L Lᵀ and A lower triangular, A_ii = sqrt(χ²(ν - i)) and
    A_ij ~ N(0, 1) below the diagonal, A Aᵀ ~ Wishart(I, ν) and
    Σ = (A⁻¹ Lᵀ)ᵀ (A⁻¹ Lᵀ) = L (A Aᵀ)⁻¹ Lᵀ ~ IW(S, ν); it is symmetric PSD by construction.
    Needs ν > n - 1 (real ν allowed). One matrix per call; batch with `jax.vmap`.
    """
    check_square("S", S)
    check_ndim("S", S, 2, "(n, n)")
    n = np.shape(S)[-1]
    check_positive("nu", nu)
    if is_concrete(nu) and np.any(np.asarray(nu, dtype=float) <= n - 1):
        raise ValueError(f"`nu` must exceed n - 1 = {n - 1} for an {n} x {n} scale; got {nu!r}.")
    dtype = _float_dtype(S, nu)
    S, nu = jnp.asarray(S, dtype), jnp.asarray(nu, dtype)
    chi2_key, normal_key = jax.random.split(key)
    diagonal = jnp.sqrt(sample_chi2(chi2_key, nu - jnp.arange(n, dtype=dtype)))
    below = jnp.tril(standard_normal(normal_key, (n, n), dtype), -1)
    bartlett = below + jnp.diag(diagonal)
    chol_S = cholesky(symmetrize(S))
    root = solve_triangular(bartlett, chol_S.T)
    return root.T @ root


def sample_mniw(
    key: PRNGKeyArray, nu, S: Float[Array, "d d"], M: Float[Array, "d p"], K: Float[Array, "p p"]
) -> tuple[Float[Array, "d p"], Float[Array, "d d"]]:
    """Matrix-normal-inverse-Wishart draw: Σ ~ IW(S, ν), then A ~ MN(M, Σ, K).

    Returns ``(A, Σ)``. The two draws use independent children of `key` (the key itself is
    never used for a draw). Batch over states with `jax.vmap`.
    """
    iw_key, mn_key = jax.random.split(key)
    sigma = sample_invwishart(iw_key, S, nu)
    return sample_mn(mn_key, M, sigma, K), sigma


def _check_square_of(name: str, array, size: int) -> None:
    if np.shape(array) != (size, size):
        raise ValueError(f"`{name}` must have shape ({size}, {size}); got {np.shape(array)}.")


# --------------------------------------------------------------------------------------------
# Samplers written as deterministic functions of their standard-normal draws


class _NoiseFromKey(NamedTuple):
    """Stands for the standard-normal draws of `key`, in the shape the kernel asks for."""

    key: PRNGKeyArray


def standard_noise(noise, shape: tuple[int, ...], dtype, shape_doc: str) -> Array:
    """The standard-normal draws `noise` of a `*_with_noise` kernel, checked to have `shape`
    (described as `shape_doc` in the error) and cast to `dtype`; in a sampler made by
    `draws_standard_noise`, N(0, I) draws of that shape and dtype from its key."""
    if isinstance(noise, _NoiseFromKey):
        return standard_normal(noise.key, tuple(shape), dtype)
    if np.shape(noise) != tuple(shape):
        raise ValueError(f"`noise` must have shape {shape_doc} = {tuple(shape)}; "
                         f"got {np.shape(noise)}.")
    return jnp.asarray(noise, dtype)


def draws_standard_noise(with_noise):
    """Decorator: the keyed sampler `f(key, *args)` of a kernel `with_noise(noise, *args)`.

    `with_noise` takes its standard-normal draws as its first argument and passes it through
    `standard_noise`; the decorated stub gives the sampler its name, docstring and `key`
    parameter, and `with_noise` the rest of its signature, so the parameter list is written
    once. `f(key, *args)` equals `with_noise(jax.random.normal(key, shape, dtype), *args)`
    for the shape and dtype that `with_noise` checks. Works under `jax.jit` and `jax.vmap`.
    """
    signature = inspect.signature(with_noise)
    _, *parameters = signature.parameters.values()

    def decorate(stub):
        key_parameter, *_ = inspect.signature(stub).parameters.values()

        @functools.wraps(stub)
        def sampler(key, *args, **kwargs):
            return with_noise(_NoiseFromKey(key), *args, **kwargs)

        sampler.__signature__ = signature.replace(parameters=[key_parameter, *parameters])
        return sampler

    return decorate
