"""Discrete-state HMM message passing: forward filtering and backward sampling.

Conventions: `transition_matrix[i, j] = p(z_{t+1} = j | z_t = i)`; the initial distribution is
uniform over the K states; a frame with `mask == 0` contributes no evidence (its log-likelihood
is replaced by 0, so only the Markov prior acts there).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from moseq.ops._checks import check_ndim, check_same, check_square


def _check_hmm_args(transition_matrix, log_likelihoods, mask) -> None:
    check_ndim("transition_matrix", transition_matrix, 2, "(num_states, num_states)")
    check_square("transition_matrix", transition_matrix)
    check_ndim("log_likelihoods", log_likelihoods, 2, "(num_timesteps, num_states)")
    check_same(
        "transition_matrix", transition_matrix.shape[0], "log_likelihoods",
        log_likelihoods.shape[1], "number of states",
    )
    check_ndim("mask", mask, 1, "(num_timesteps,)")
    check_same(
        "log_likelihoods", log_likelihoods.shape[0], "mask", mask.shape[0], "number of timesteps"
    )


def hmm_filter(
    transition_matrix: Float[Array, "K K"],
    log_likelihoods: Float[Array, "T K"],
    mask: Float[Array, " T"],
) -> tuple[Float[Array, ""], Float[Array, "T K"]]:
    """Forward filter of an HMM with a uniform initial distribution.

    Returns the log marginal likelihood `log p(y_{0:T})` and the filtered distributions
    `p(z_t | y_{0:t})`, shape (T, K). Each step normalises in log space, so log-likelihoods of
    any magnitude and transition matrices with exact zeros are handled without underflow.
    """
    transition_matrix = jnp.asarray(transition_matrix)
    log_likelihoods = jnp.asarray(log_likelihoods)
    mask = jnp.asarray(mask)
    _check_hmm_args(transition_matrix, log_likelihoods, mask)
    dtype = jnp.result_type(transition_matrix, log_likelihoods)
    num_states = log_likelihoods.shape[1]
    evidence = jnp.where(mask[:, None] > 0, log_likelihoods, 0).astype(dtype)
    transition_matrix = transition_matrix.astype(dtype)

    def step(carry, frame_evidence):
        log_norm, log_predicted = carry
        joint = frame_evidence + log_predicted
        shift = jnp.max(joint)
        weights = jnp.exp(joint - shift)
        total = jnp.sum(weights)
        filtered = weights / total
        next_predicted = jnp.log(filtered @ transition_matrix)
        return (log_norm + shift + jnp.log(total), next_predicted), filtered

    initial = (
        jnp.zeros((), dtype),
        jnp.full((num_states,), -jnp.log(num_states), dtype),
    )
    (log_norm, _), filtered = jax.lax.scan(step, initial, evidence)
    return log_norm, filtered


def backward_sample(
    uniforms: Float[Array, " T"],
    transition_matrix: Float[Array, "K K"],
    filtered: Float[Array, "T K"],
) -> Int[Array, " T"]:
    """Draw a path from `p(z_{0:T} | y)` given filtered distributions and one uniform per frame.

    Deterministic given `uniforms` (each frame's state is an inverse-CDF draw), which lets
    tests compare paths draw for draw.
    """

    transition_matrix = jnp.asarray(transition_matrix)

    def draw(probs, uniform):
        cumulative = jnp.cumsum(probs)
        state = jnp.sum(cumulative < uniform * cumulative[-1])
        return jnp.minimum(state, probs.shape[0] - 1)

    last = draw(filtered[-1], uniforms[-1])

    def step(next_state, inputs):
        filtered_t, uniform = inputs
        state = draw(filtered_t * transition_matrix[:, next_state], uniform)
        return state, state

    _, earlier = jax.lax.scan(step, last, (filtered[:-1], uniforms[:-1]), reverse=True)
    return jnp.append(earlier, last)


def sample_hmm_stateseq(
    seed: PRNGKeyArray,
    transition_matrix: Float[Array, "K K"],
    log_likelihoods: Float[Array, "T K"],
    mask: Float[Array, " T"],
) -> tuple[Float[Array, ""], Int[Array, " T"]]:
    """Draw one state sequence from an HMM posterior by forward filtering, backward sampling.

    Args:
        seed: a `jax.random` key.
        transition_matrix: (K, K), rows sum to one.
        log_likelihoods: (T, K), `log p(y_t | z_t = k)`.
        mask: (T,), 1 where frame t is observed, 0 where its evidence is ignored.

    Returns:
        `(log_norm, states)`: the log marginal likelihood `log p(y)` (initial distribution
        uniform) and a sampled path of shape (T,). Batch over recordings with `jax.vmap`.
    """
    log_norm, filtered = hmm_filter(transition_matrix, log_likelihoods, mask)
    uniforms = jax.random.uniform(seed, (filtered.shape[0],), dtype=filtered.dtype)
    return log_norm, backward_sample(uniforms, transition_matrix.astype(filtered.dtype), filtered)
