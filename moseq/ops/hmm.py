"""Discrete-state HMM message passing: forward filtering, backward sampling and smoothing.

Conventions: `transition_matrix[i, j] = p(z_{t+1} = j | z_t = i)`; the initial distribution is
uniform over the K states; a frame with `mask == 0` contributes no evidence (its log-likelihood
is replaced by 0, so only the Markov prior acts there).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from moseq.ops.checks import check_ndim, check_same, check_square


def _check_hmm_args(transition_matrix, log_likelihoods, mask) -> None:
    check_ndim("transition_matrix", transition_matrix, 2, "(num_states, num_states)")
    check_square("transition_matrix", transition_matrix)
    check_ndim("log_likelihoods", log_likelihoods, 2, "(num_timesteps, num_states)")
    check_same(
        "transition_matrix",
        transition_matrix.shape[0],
        "log_likelihoods",
        log_likelihoods.shape[1],
        "number of states",
    )
    check_ndim("mask", mask, 1, "(num_timesteps,)")
    check_same(
        "log_likelihoods", log_likelihoods.shape[0], "mask", mask.shape[0], "number of timesteps"
    )


def _one_recording_args(transition_matrix, log_likelihoods, mask):
    """The arguments of one recording as arrays, checked, in the time-major layout with a
    recording axis of size 1: (K, K), (T, 1, K), (T, 1)."""
    transition_matrix = jnp.asarray(transition_matrix)
    log_likelihoods = jnp.asarray(log_likelihoods)
    mask = jnp.asarray(mask)
    _check_hmm_args(transition_matrix, log_likelihoods, mask)
    return transition_matrix, log_likelihoods[:, None], mask[:, None]


def _time_major_args(transition_matrix, log_likelihoods, mask):
    """The arguments as arrays, checked for the time-major (T, N, K) / (T, N) layout."""
    transition_matrix = jnp.asarray(transition_matrix)
    log_likelihoods = jnp.asarray(log_likelihoods)
    mask = jnp.asarray(mask)
    check_ndim("log_likelihoods", log_likelihoods, 3, "(num_timesteps, N, num_states)")
    _check_hmm_args(transition_matrix, log_likelihoods[:, 0], mask[:, 0])
    if mask.shape != log_likelihoods.shape[:2]:
        raise ValueError(f"`mask` must have shape {log_likelihoods.shape[:2]} (T, N) to match "
                         f"`log_likelihoods`; got {mask.shape}.")
    return transition_matrix, log_likelihoods, mask


def _filter(transition_matrix, log_likelihoods, mask):
    """Time-major forward filter: log_likelihoods (T, N, K), mask (T, N) -> (N,), (T, N, K).

    The filtered distributions overwrite the log-likelihoods frame by frame in one loop-carried
    buffer, so the filter holds a single (T, N, K) array (XLA updates it in place). Each
    frame's evidence is rescaled by its maximum (log-likelihoods of any magnitude are safe)
    and the predicted distribution is floored at the smallest normal float, so a frame's
    normaliser can never be zero.
    """
    dtype = jnp.result_type(transition_matrix, log_likelihoods)
    num_states = log_likelihoods.shape[-1]
    transition_matrix = transition_matrix.astype(dtype)
    floor = jnp.finfo(dtype).tiny

    def step(carry, inputs):
        predicted, buffer = carry
        t, observed = inputs
        evidence = jnp.where(observed[:, None] > 0, buffer[t], 0)
        evidence_max = jnp.max(evidence, axis=-1, keepdims=True)
        weights = predicted * jnp.exp(evidence - evidence_max)
        normaliser = jnp.sum(weights, axis=-1, keepdims=True)
        filtered = weights / normaliser
        predicted = jnp.maximum(filtered @ transition_matrix, floor)
        log_normaliser = jnp.log(normaliser[:, 0]) + evidence_max[:, 0]
        return (predicted, buffer.at[t].set(filtered)), log_normaliser

    initial = jnp.full(log_likelihoods.shape[1:], 1.0 / num_states, dtype)
    frames = jnp.arange(log_likelihoods.shape[0])
    (_, filtered), log_normalisers = jax.lax.scan(
        step, (initial, log_likelihoods.astype(dtype)), (frames, mask)
    )
    return jnp.sum(log_normalisers, 0), filtered


def hmm_filter(
    transition_matrix: Float[Array, "K K"],
    log_likelihoods: Float[Array, "T K"],
    mask: Float[Array, " T"],
) -> tuple[Float[Array, ""], Float[Array, "T K"]]:
    """Forward filter of an HMM with a uniform initial distribution.

    Returns the log marginal likelihood `log p(y_{0:T})` and the filtered distributions
    `p(z_t | y_{0:t})`, shape (T, K).
    """
    transition_matrix, log_likelihoods, mask = _one_recording_args(
        transition_matrix, log_likelihoods, mask)
    log_norm, filtered = _filter(transition_matrix, log_likelihoods, mask)
    return log_norm[0], filtered[:, 0]


def _smooth(transition_matrix, filtered):
    """Time-major backward smoothing pass: filtered (T, N, K) -> marginals (T, N, K).

    Uses only the filtered distributions: p(z_t | y) = f_t * P (m_{t+1} / p_{t+1}), with
    f the filtered, p_{t+1} = f_t P the predicted (floored as in the filter) and m_{t+1} the
    smoothed marginals. The marginals overwrite the filtered distributions frame by frame in
    the same loop-carried buffer. The ratio r = m / p is at most 1 / tiny and the rows of P
    sum to one, so P r <= max(r) stays finite, and the weights sum to one up to rounding.
    Where no state of frame t can reach the later marginals (transition probabilities of
    exactly zero, against evidence the floored filter let through), the weights are all
    zero and the filtered distribution of frame t is kept.
    """
    dtype = filtered.dtype
    floor = jnp.finfo(dtype).tiny
    transition_matrix = transition_matrix.astype(dtype)

    def step(carry, t):
        later, buffer = carry
        current = buffer[t]
        predicted = jnp.maximum(current @ transition_matrix, floor)
        weights = current * ((later / predicted) @ transition_matrix.T)
        total = jnp.sum(weights, axis=-1, keepdims=True)
        smoothed = jnp.where(total > 0, weights / jnp.where(total > 0, total, 1), current)
        return (smoothed, buffer.at[t].set(smoothed)), None

    frames = jnp.arange(filtered.shape[0] - 1)
    (_, smoothed), _ = jax.lax.scan(step, (filtered[-1], filtered), frames, reverse=True)
    return smoothed


def hmm_smoother(
    transition_matrix: Float[Array, "K K"],
    log_likelihoods: Float[Array, "T K"],
    mask: Float[Array, " T"],
) -> tuple[Float[Array, ""], Float[Array, "T K"]]:
    """Forward-backward smoother of an HMM with a uniform initial distribution.

    Returns the log marginal likelihood `log p(y_{0:T})` and the marginal posterior
    probabilities `p(z_t = k | y_{0:T})`, shape (T, K), each row summing to one. Frames with
    `mask == 0` carry no evidence (as in `hmm_filter`). Rescaled, so log-likelihoods of any
    magnitude are safe. Batch over recordings with `jax.vmap`, or with `hmm_marginals` for
    time-major arrays.
    """
    transition_matrix, log_likelihoods, mask = _one_recording_args(
        transition_matrix, log_likelihoods, mask)
    log_norm, filtered = _filter(transition_matrix, log_likelihoods, mask)
    return log_norm[0], _smooth(transition_matrix, filtered)[:, 0]


def hmm_marginals(
    transition_matrix: Float[Array, "K K"],
    log_likelihoods: Float[Array, "T N K"],
    mask: Float[Array, "T N"],
) -> tuple[Float[Array, " N"], Float[Array, "T N K"]]:
    """`hmm_smoother` for N recordings at once, on time-major arrays.

    Returns the log marginal likelihoods (N,) and the marginals (T, N, K). As in
    `sample_hmm_stateseqs`, the filtered distributions and then the marginals take the
    log-likelihoods' place: the working memory is one (T, N, K) array. `HMMStates.marginals`
    uses this form.
    """
    transition_matrix, log_likelihoods, mask = _time_major_args(
        transition_matrix, log_likelihoods, mask)
    log_norms, filtered = _filter(transition_matrix, log_likelihoods, mask)
    return log_norms, _smooth(transition_matrix, filtered)


def _inverse_cdf_draw(probs: Float[Array, " K"], uniform: Float[Array, ""]) -> Int[Array, ""]:
    """The state k whose cumulative interval of the (unnormalised) `probs` holds `uniform`.

    Two-level search over blocks of about sqrt(K) states: first the block, then the state in
    it. This costs O(K) per draw where a full cumulative sum costs O(K^2) on CPU (XLA lowers
    `cumsum` to a reduce-window, and a triangular matrix product is no cheaper).
    """
    num_states = probs.shape[0]
    block_size = math.isqrt(num_states - 1) + 1 if num_states > 1 else 1
    num_blocks = -(-num_states // block_size)
    blocks = jnp.pad(probs, (0, num_blocks * block_size - num_states)).reshape(
        num_blocks, block_size
    )
    block_sums = jnp.sum(blocks, axis=1)
    block_ends = block_sums @ jnp.triu(jnp.ones((num_blocks, num_blocks), probs.dtype))
    target = uniform * block_ends[-1]
    block = jnp.minimum(jnp.sum(block_ends < target), num_blocks - 1)
    remainder = target - (block_ends[block] - block_sums[block])
    ends_in_block = blocks[block] @ jnp.triu(jnp.ones((block_size, block_size), probs.dtype))
    offset = jnp.minimum(jnp.sum(ends_in_block < remainder), block_size - 1)
    return jnp.minimum(block * block_size + offset, num_states - 1)


def _backward(uniforms, transition_matrix, filtered):
    """Time-major backward sampler: uniforms (T, N), filtered (T, N, K) -> states (T, N).

    Frames are read by index from `filtered`, so no shifted (T - 1, N, K) copy is made.
    """
    draw = jax.vmap(_inverse_cdf_draw)
    last = draw(filtered[-1], uniforms[-1])

    def step(next_state, inputs):
        t, uniform = inputs
        state = draw(filtered[t] * transition_matrix[:, next_state].T, uniform)
        return state, state

    frames = jnp.arange(filtered.shape[0] - 1)
    _, earlier = jax.lax.scan(step, last, (frames, uniforms[:-1]), reverse=True)
    return jnp.concatenate([earlier, last[None]], axis=0)


def backward_sample(
    uniforms: Float[Array, " T"],
    transition_matrix: Float[Array, "K K"],
    filtered: Float[Array, "T K"],
) -> Int[Array, " T"]:
    """Draw a path from `p(z_{0:T} | y)` given filtered distributions and one uniform per frame.

    Deterministic given `uniforms` (each frame's state is an inverse-CDF draw), which lets
    tests compare paths draw for draw.
    """
    transition_matrix = jnp.asarray(transition_matrix).astype(filtered.dtype)
    return _backward(jnp.asarray(uniforms)[:, None], transition_matrix, filtered[:, None])[:, 0]


def sample_hmm_stateseq(
    key: PRNGKeyArray,
    transition_matrix: Float[Array, "K K"],
    log_likelihoods: Float[Array, "T K"],
    mask: Float[Array, " T"],
) -> tuple[Float[Array, ""], Int[Array, " T"]]:
    """Draw one state sequence from an HMM posterior by forward filtering, backward sampling.

    Args:
        key: a `jax.random` key.
        transition_matrix: (K, K), rows sum to one.
        log_likelihoods: (T, K), `log p(y_t | z_t = k)`.
        mask: (T,), 1 where frame t is observed, 0 where its evidence is ignored.

    Returns:
        `(log_norm, states)`: the log marginal likelihood `log p(y)` (initial distribution
        uniform) and a sampled path of shape (T,). Batch over recordings with `jax.vmap`, or
        with `sample_hmm_stateseqs` for time-major arrays.
    """
    log_norms, states = sample_hmm_stateseqs(
        jnp.asarray(key)[None], transition_matrix, jnp.asarray(log_likelihoods)[:, None],
        jnp.asarray(mask)[:, None],
    )
    return log_norms[0], states[:, 0]


def sample_hmm_stateseqs(
    keys: PRNGKeyArray,
    transition_matrix: Float[Array, "K K"],
    log_likelihoods: Float[Array, "T N K"],
    mask: Float[Array, "T N"],
) -> tuple[Float[Array, " N"], Int[Array, "T N"]]:
    """`sample_hmm_stateseq` for N recordings at once, on time-major arrays.

    With `keys[n]` the draw of recording n is the one `sample_hmm_stateseq(keys[n], ...)`
    gives. Time-major inputs are what the forward scan reads, so large (T, N, K) arrays are
    never transposed, and the filtered distributions take the log-likelihoods' place: the
    working memory is one (T, N, K) array. This is the batched form that `HMMStates` uses.
    """
    transition_matrix, log_likelihoods, mask = _time_major_args(
        transition_matrix, log_likelihoods, mask)
    log_norms, filtered = _filter(transition_matrix, log_likelihoods, mask)
    uniforms = jax.vmap(lambda key: jax.random.uniform(key, (filtered.shape[0],),
                                                       filtered.dtype))(keys).T
    states = _backward(uniforms, transition_matrix.astype(filtered.dtype), filtered)
    return log_norms, states


def sample_markov_chain(
    key: PRNGKeyArray, transition_matrix: Float[Array, "K K"], num_timesteps: int
) -> Int[Array, " T"]:
    """A path of a Markov chain started from the uniform distribution over its K states."""
    transition_matrix = jnp.asarray(transition_matrix)
    check_square("transition_matrix", transition_matrix)
    num_states = transition_matrix.shape[0]
    uniforms = jax.random.uniform(key, (num_timesteps,), dtype=transition_matrix.dtype)
    first = jnp.minimum((uniforms[0] * num_states).astype(jnp.result_type(int)), num_states - 1)

    def step(state, uniform):
        next_state = _inverse_cdf_draw(transition_matrix[state], uniform)
        return next_state, next_state

    _, rest = jax.lax.scan(step, first, uniforms[1:])
    return jnp.concatenate([first[None], rest])


def markov_chain_log_prob(
    states: Int[Array, "... T"],
    transition_matrix: Float[Array, "K K"],
    mask: Float[Array, "... T+L"],
) -> Float[Array, ""]:
    """log p(z) of paths started uniformly, counting the first state and every transition
    whose destination frame is unmasked (`mask` is aligned with the last T entries)."""
    num_frames = states.shape[-1]
    valid = jnp.asarray(mask)[..., mask.shape[-1] - num_frames :] > 0
    log_pi = jnp.log(transition_matrix)
    transitions = jnp.where(valid[..., 1:], log_pi[states[..., :-1], states[..., 1:]], 0.0)
    initial = jnp.where(valid[..., 0], -jnp.log(transition_matrix.shape[0]), 0.0)
    return jnp.sum(transitions) + jnp.sum(initial)
