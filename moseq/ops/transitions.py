"""Transition matrices of sticky HMMs: counts, sticky HDP (weak limit) and sticky Dirichlet.

The weak-limit sticky HDP (Fox et al., 2011) with K states:
    betas ~ Dir(gamma/K, ..., gamma/K)
    pi_i  ~ Dir(alpha * betas + kappa * e_i)
Its Gibbs update draws auxiliary table counts m_ij ~ CRT(n_ij, alpha*beta_j + kappa*[i=j]),
removes the "override" tables that stickiness added on the diagonal,
    m̄_jj ~ Binomial(m_jj, alpha*beta_j / (alpha*beta_j + kappa)),
then betas ~ Dir(gamma/K + sum_i m̄_ij) and pi_i ~ Dir(n_i + alpha*betas + kappa*e_i).
Every step runs on the device; nothing is sent to the host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from moseq.ops.checks import check_ndim, check_positive, check_same, check_square
from moseq.ops.distributions import sample_dirichlet

CUSTOMERS_PER_CHUNK = 4096


def count_transitions(
    num_states: int, stateseqs: Int[Array, "... T"], mask: Float[Array, "... T+L"]
) -> Int[Array, "K K"]:
    """Number of transitions i -> j between consecutive entries of `stateseqs`.

    `mask` is aligned with the *last* T entries of its time axis (so a mask of length T + nlags
    serves AR models whose states start at frame nlags); a transition counts when its
    destination frame is unmasked. States must lie in [0, num_states).
    """
    stateseqs = jnp.asarray(stateseqs)
    mask = jnp.asarray(mask)
    num_frames = stateseqs.shape[-1]
    if mask.shape[:-1] != stateseqs.shape[:-1] or mask.shape[-1] < num_frames:
        raise ValueError(
            f"`mask` must have shape (..., >= T) matching `stateseqs` {stateseqs.shape}; "
            f"got {mask.shape}."
        )
    valid = mask[..., mask.shape[-1] - num_frames + 1 :] > 0
    pair_index = stateseqs[..., :-1] * num_states + stateseqs[..., 1:]
    counts = jnp.zeros(num_states * num_states, dtype=jnp.result_type(int))
    counts = counts.at[pair_index.ravel()].add(valid.ravel().astype(counts.dtype), mode="drop")
    return counts.reshape(num_states, num_states)


def sample_crt_table_counts(
    key: PRNGKeyArray,
    customer_counts: Int[Array, ...],
    concentrations: Float[Array, ...],
    customers_per_chunk: int = CUSTOMERS_PER_CHUNK,
    keep: Float[Array, ...] | float = 1.0,
) -> Int[Array, ...]:
    """Exact Chinese-restaurant table counts, m ~ CRT(n, rho), elementwise.

    m is the number of tables that n customers open in a Chinese restaurant with concentration
    rho: a sum of independent Bernoulli(rho / (rho + c)) for c = 0..n-1. With `keep` < 1 each
    table is kept independently with that probability (Binomial(m, keep) thinning), drawn in
    the same pass as Bernoulli(keep rho / (rho + c)). All customers of all cells are laid end
    to end and drawn `customers_per_chunk` at a time in a `while_loop`, so the cost is
    O(sum n) with no host round trip and no bound on any n.
    """
    customer_counts = jnp.asarray(customer_counts)
    concentrations = jnp.broadcast_to(concentrations, customer_counts.shape)
    counts = jnp.round(customer_counts).astype(jnp.result_type(int)).ravel()
    rho = concentrations.ravel()
    kept_rho = (rho * jnp.broadcast_to(keep, customer_counts.shape).ravel()).astype(rho.dtype)
    ends = jnp.cumsum(counts)
    starts = ends - counts
    total = ends[-1]
    offsets = jnp.arange(customers_per_chunk, dtype=counts.dtype)

    def has_customers(carry):
        chunk, _ = carry
        return chunk * customers_per_chunk < total

    def seat_chunk(carry):
        chunk, tables = carry
        customer = chunk * customers_per_chunk + offsets
        cell = jnp.minimum(jnp.searchsorted(ends, customer, side="right"), counts.size - 1)
        seated_before = (customer - starts[cell]).astype(rho.dtype)
        uniforms = jax.random.uniform(jax.random.fold_in(key, chunk), customer.shape, rho.dtype)
        new_table = (uniforms * (rho[cell] + seated_before) < kept_rho[cell]) & (customer < total)
        return chunk + 1, tables.at[cell].add(new_table.astype(tables.dtype))

    _, tables = jax.lax.while_loop(
        has_customers, seat_chunk, (jnp.zeros((), counts.dtype), jnp.zeros_like(counts))
    )
    return tables.reshape(customer_counts.shape)


def _check_hdp_args(transition_counts, betas, alpha, kappa, gamma=None) -> None:
    check_ndim("transition_counts", transition_counts, 2, "(num_states, num_states)")
    check_square("transition_counts", transition_counts)
    check_ndim("betas", betas, 1, "(num_states,)")
    check_same(
        "transition_counts", transition_counts.shape[0], "betas", betas.shape[0],
        "number of states",
    )
    check_positive("alpha", alpha)
    check_positive("kappa", kappa, allow_zero=True)
    if gamma is not None:
        check_positive("gamma", gamma)


def sample_betas(
    key: PRNGKeyArray,
    transition_counts: Int[Array, "K K"],
    betas: Float[Array, " K"],
    alpha: float,
    kappa: float,
    gamma: float,
) -> Float[Array, " K"]:
    """Draw the global state usages `betas` from their conditional given transition counts.

    Auxiliary-variable update of the weak-limit sticky HDP (see the module docstring); `betas`
    is the current value, which sets the table-count distribution.
    """
    transition_counts, betas = jnp.asarray(transition_counts), jnp.asarray(betas)
    _check_hdp_args(transition_counts, betas, alpha, kappa, gamma)
    num_states = betas.shape[0]
    table_key, dirichlet_key = jax.random.split(key)
    shared_mass = alpha * betas
    concentrations = shared_mass[None, :] + kappa * jnp.eye(num_states, dtype=betas.dtype)
    # A diagonal table is kept for the dish (not overridden by stickiness) with probability
    # alpha beta_k / (alpha beta_k + kappa).
    keep = jnp.where(jnp.eye(num_states, dtype=bool), shared_mass / (shared_mass + kappa), 1.0)
    tables = sample_crt_table_counts(table_key, transition_counts, concentrations, keep=keep)
    dish_counts = jnp.sum(tables, axis=0).astype(betas.dtype)
    return sample_dirichlet(dirichlet_key, gamma / num_states + dish_counts)


def sample_pi(
    key: PRNGKeyArray,
    transition_counts: Int[Array, "K K"],
    betas: Float[Array, " K"],
    alpha: float,
    kappa: float,
) -> Float[Array, "K K"]:
    """Draw the transition matrix: row i ~ Dir(n_i + alpha * betas + kappa * e_i)."""
    transition_counts, betas = jnp.asarray(transition_counts), jnp.asarray(betas)
    _check_hdp_args(transition_counts, betas, alpha, kappa)
    stickiness = kappa * jnp.eye(betas.shape[0], dtype=betas.dtype)
    return sample_dirichlet(key, transition_counts + alpha * betas[None, :] + stickiness)


def sample_hdp_transitions(
    key: PRNGKeyArray,
    transition_counts: Int[Array, "K K"],
    betas: Float[Array, " K"],
    alpha: float,
    kappa: float,
    gamma: float,
) -> tuple[Float[Array, " K"], Float[Array, "K K"]]:
    """One Gibbs update of `(betas, pi)` given transition counts: betas first, then pi."""
    betas_key, pi_key = jax.random.split(key)
    betas = sample_betas(betas_key, transition_counts, betas, alpha, kappa, gamma)
    return betas, sample_pi(pi_key, transition_counts, betas, alpha, kappa)


def resample_hdp_transitions(
    key: PRNGKeyArray,
    z: Int[Array, "... T"],
    mask: Float[Array, "... T+L"],
    betas: Float[Array, " K"],
    alpha: float,
    kappa: float,
    gamma: float,
    **kwargs,
) -> tuple[Float[Array, " K"], Float[Array, "K K"]]:
    """Count the transitions of `z` (see `count_transitions`), then `sample_hdp_transitions`.

    Extra keyword arguments are accepted and ignored, so a dict of model settings can be
    splatted in.
    """
    counts = count_transitions(jnp.shape(betas)[0], z, mask)
    return sample_hdp_transitions(key, counts, betas, alpha, kappa, gamma)


def init_hdp_transitions(
    key: PRNGKeyArray, num_states: int, alpha: float, kappa: float, gamma: float, **kwargs
) -> tuple[Float[Array, " K"], Float[Array, "K K"]]:
    """Draw `(betas, pi)` from the sticky HDP prior (extra keyword arguments are ignored)."""
    if not isinstance(num_states, int) or num_states < 1:
        raise ValueError(f"`num_states` must be a positive int; got {num_states!r}.")
    check_positive("gamma", gamma)
    dtype = jnp.result_type(float)
    betas_key, pi_key = jax.random.split(key)
    betas = sample_dirichlet(betas_key, jnp.full((num_states,), gamma / num_states, dtype))
    zero_counts = jnp.zeros((num_states, num_states), dtype)
    return betas, sample_pi(pi_key, zero_counts, betas, alpha, kappa)


def sample_dir_transitions(
    key: PRNGKeyArray, transition_counts: Int[Array, "K K"], beta: float, kappa: float
) -> Float[Array, "K K"]:
    """Sticky Dirichlet transition matrix: row i ~ Dir(beta + n_i + kappa * e_i)."""
    transition_counts = jnp.asarray(transition_counts)
    check_ndim("transition_counts", transition_counts, 2, "(num_states, num_states)")
    check_square("transition_counts", transition_counts)
    check_positive("beta", beta)
    check_positive("kappa", kappa, allow_zero=True)
    dtype = jnp.result_type(float)
    stickiness = kappa * jnp.eye(transition_counts.shape[0], dtype=dtype)
    return sample_dirichlet(key, beta + transition_counts.astype(dtype) + stickiness)


def resample_dir_transitions(
    key: PRNGKeyArray,
    num_states: int,
    z: Int[Array, "... T"],
    mask: Float[Array, "... T+L"],
    beta: float,
    kappa: float,
    **kwargs,
) -> Float[Array, "K K"]:
    """Count the transitions of `z`, then `sample_dir_transitions` (extra kwargs ignored)."""
    counts = count_transitions(num_states, z, mask)
    return sample_dir_transitions(key, counts, beta, kappa)
