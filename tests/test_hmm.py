"""Exactness of the HMM forward filter / backward sampler against brute-force enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq.ops.hmm import (
    backward_sample,
    hmm_filter,
    hmm_marginals,
    hmm_smoother,
    sample_hmm_stateseq,
    sample_hmm_stateseqs,
)
from tests.helpers import assert_counts_follow


def random_hmm(rng, num_frames, num_states, zero_fraction=0.3):
    transition_matrix = rng.dirichlet(np.ones(num_states), size=num_states)
    log_likelihoods = 2.0 * rng.normal(size=(num_frames, num_states))
    mask = (rng.uniform(size=num_frames) > zero_fraction).astype(float)
    return transition_matrix, log_likelihoods, mask


def enumerate_paths(transition_matrix, log_likelihoods, mask):
    """Every path with its exact log joint probability, uniform initial distribution."""
    num_frames, num_states = log_likelihoods.shape
    paths = np.array(list(itertools.product(range(num_states), repeat=num_frames)))
    log_joint = -np.log(num_states) + np.sum(
        mask * log_likelihoods[np.arange(num_frames), paths], axis=1
    )
    log_joint += np.sum(np.log(transition_matrix[paths[:, :-1], paths[:, 1:]]), axis=1)
    return paths, log_joint


@pytest.mark.parametrize("seed", range(12))
def test_log_normaliser_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    num_frames, num_states = rng.integers(1, 7), rng.integers(1, 4)
    transition_matrix, log_likelihoods, mask = random_hmm(rng, num_frames, num_states)
    _, log_joint = enumerate_paths(transition_matrix, log_likelihoods, mask)
    log_norm, _ = sample_hmm_stateseq(
        jax.random.key(seed), transition_matrix, log_likelihoods, mask
    )
    np.testing.assert_allclose(log_norm, np.logaddexp.reduce(log_joint), rtol=1e-9)


def test_fully_masked_sequence_has_zero_log_normaliser():
    rng = np.random.default_rng(0)
    transition_matrix, log_likelihoods, _ = random_hmm(rng, 9, 4)
    log_norm, filtered = hmm_filter(transition_matrix, log_likelihoods, np.zeros(9))
    np.testing.assert_allclose(log_norm, 0.0, atol=1e-12)
    # With no evidence the filtered marginals are the prior's: uniform pushed through P.
    np.testing.assert_allclose(filtered[1], np.full(4, 0.25) @ transition_matrix, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_paths_follow_exact_posterior(seed):
    rng = np.random.default_rng(100 + seed)
    num_frames, num_states, num_draws = 5, 3, 40_000
    transition_matrix, log_likelihoods, mask = random_hmm(rng, num_frames, num_states)
    mask[2] = 0.0
    paths, log_joint = enumerate_paths(transition_matrix, log_likelihoods, mask)
    exact = np.exp(log_joint - np.logaddexp.reduce(log_joint))

    keys = jax.random.split(jax.random.key(seed), num_draws)
    draw = jax.jit(jax.vmap(sample_hmm_stateseq, in_axes=(0, None, None, None)))
    _, samples = draw(keys, transition_matrix, log_likelihoods, mask)
    codes = np.asarray(samples) @ (num_states ** np.arange(num_frames)[::-1])
    assert_counts_follow(np.bincount(codes, minlength=len(paths)), exact)


def test_backward_sample_is_inverse_cdf_of_exact_conditionals():
    """With given uniforms, each state is the inverse-CDF draw of p(z_t | z_{t+1}, y_{0:t})."""
    rng = np.random.default_rng(3)
    transition_matrix, log_likelihoods, mask = random_hmm(rng, 4, 3, zero_fraction=0.0)
    paths, log_joint = enumerate_paths(transition_matrix, log_likelihoods, mask)
    uniforms = rng.uniform(size=4)
    _, filtered = hmm_filter(transition_matrix, log_likelihoods, mask)
    path = np.asarray(backward_sample(jnp.asarray(uniforms), transition_matrix, filtered))

    posterior = np.exp(log_joint - np.logaddexp.reduce(log_joint))
    for t in range(3, -1, -1):  # draw from the exact conditional given the later states
        later = np.all(paths[:, t + 1 :] == path[t + 1 :], axis=1)
        conditional = np.bincount(paths[later, t], weights=posterior[later], minlength=3)
        cdf = np.cumsum(conditional) / conditional.sum()
        assert path[t] == np.searchsorted(cdf, uniforms[t], side="right")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_huge_log_likelihoods_are_stable(dtype):
    rng = np.random.default_rng(5)
    transition_matrix, log_likelihoods, mask = random_hmm(rng, 50, 6)
    scaled = jnp.asarray(1e4 * log_likelihoods, dtype)
    log_norm, states = sample_hmm_stateseq(
        jax.random.key(0), jnp.asarray(transition_matrix, dtype), scaled, mask
    )
    assert log_norm.dtype == dtype and np.isfinite(log_norm)
    # Evidence this strong pins every observed frame to its most likely state.
    observed = mask > 0
    np.testing.assert_array_equal(states[observed], np.argmax(log_likelihoods, 1)[observed])


def test_long_float32_sequence_is_finite_and_tracks_evidence():
    rng = np.random.default_rng(6)
    num_frames, num_states = 100_000, 5
    true_states = np.repeat(rng.integers(0, num_states, num_frames // 50), 50)
    log_likelihoods = np.where(np.eye(num_states)[true_states] > 0, 0.0, -5.0)
    log_likelihoods += 0.5 * rng.normal(size=log_likelihoods.shape)
    transition_matrix = np.full((num_states, num_states), 0.01 / (num_states - 1))
    np.fill_diagonal(transition_matrix, 0.99)
    log_norm, states = jax.jit(sample_hmm_stateseq)(
        jax.random.key(1),
        jnp.asarray(transition_matrix, jnp.float32),
        jnp.asarray(log_likelihoods, jnp.float32),
        jnp.ones(num_frames, jnp.float32),
    )
    assert np.isfinite(log_norm)
    assert np.mean(np.asarray(states) == true_states) > 0.99


def test_vmap_over_recordings_matches_single_calls():
    rng = np.random.default_rng(7)
    transition_matrix = rng.dirichlet(np.ones(4), size=4)
    log_likelihoods = rng.normal(size=(3, 20, 4))
    mask = (rng.uniform(size=(3, 20)) > 0.2).astype(float)
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(sample_hmm_stateseq, in_axes=(0, None, 0, 0)))
    log_norms, states = batched(keys, transition_matrix, log_likelihoods, mask)
    for n in range(3):
        log_norm, path = sample_hmm_stateseq(
            keys[n], transition_matrix, log_likelihoods[n], mask[n]
        )
        np.testing.assert_allclose(log_norms[n], log_norm, rtol=1e-12)
        np.testing.assert_array_equal(states[n], path)


@pytest.mark.parametrize(
    "transition_shape, ll_shape, mask_shape, argument",
    [
        ((3, 4), (5, 3), (5,), "transition_matrix"),
        ((3, 3), (5, 4), (5,), "log_likelihoods"),
        ((3, 3), (5, 3), (6,), "mask"),
        ((3, 3), (5,), (5,), "log_likelihoods"),
    ],
)
def test_bad_shapes_name_the_argument(transition_shape, ll_shape, mask_shape, argument):
    with pytest.raises(ValueError, match=argument):
        sample_hmm_stateseq(
            jax.random.key(0), jnp.ones(transition_shape), jnp.ones(ll_shape), jnp.ones(mask_shape)
        )


def test_time_major_batch_matches_single_calls():
    rng = np.random.default_rng(8)
    transition_matrix = rng.dirichlet(np.ones(5), size=5)
    log_likelihoods = rng.normal(size=(30, 4, 5))
    mask = (rng.uniform(size=(30, 4)) > 0.2).astype(float)
    keys = jax.random.split(jax.random.key(3), 4)
    log_norms, states = jax.jit(sample_hmm_stateseqs)(keys, transition_matrix,
                                                      log_likelihoods, mask)
    assert states.shape == (30, 4)
    for n in range(4):
        log_norm, path = sample_hmm_stateseq(keys[n], transition_matrix,
                                             log_likelihoods[:, n], mask[:, n])
        np.testing.assert_allclose(log_norms[n], log_norm, rtol=1e-12)
        np.testing.assert_array_equal(states[:, n], path)


def test_batched_sampler_works_in_one_time_major_buffer():
    """The filtered distributions overwrite the log-likelihoods: XLA's working memory is one
    (T, N, K) array (a copy of the input), not one per intermediate (evidence, filtered)."""
    num_frames, num_recordings, num_states = 300, 4, 32
    log_likelihoods = jnp.zeros((num_frames, num_recordings, num_states))
    args = (jax.random.split(jax.random.key(0), num_recordings),
            jnp.full((num_states, num_states), 1.0 / num_states), log_likelihoods,
            jnp.ones((num_frames, num_recordings)))
    compiled = jax.jit(sample_hmm_stateseqs).lower(*args).compile()
    assert compiled.memory_analysis().temp_size_in_bytes < 1.5 * log_likelihoods.nbytes


# ---- smoothing ---------------------------------------------------------------------------


def enumerated_marginals(transition_matrix, log_likelihoods, mask):
    """Exact p(z_t = k | y) and log p(y) by summing over every path."""
    paths, log_joint = enumerate_paths(transition_matrix, log_likelihoods, mask)
    log_norm = np.logaddexp.reduce(log_joint)
    posterior = np.exp(log_joint - log_norm)
    num_frames, num_states = log_likelihoods.shape
    marginals = np.stack([np.bincount(paths[:, t], weights=posterior, minlength=num_states)
                          for t in range(num_frames)])
    return log_norm, marginals


@pytest.mark.parametrize("seed", range(12))
def test_smoother_equals_enumeration(seed):
    rng = np.random.default_rng(200 + seed)
    num_frames, num_states = rng.integers(1, 7), rng.integers(1, 4)
    transition_matrix, log_likelihoods, mask = random_hmm(rng, num_frames, num_states)
    exact_log_norm, exact = enumerated_marginals(transition_matrix, log_likelihoods, mask)
    log_norm, marginals = hmm_smoother(transition_matrix, log_likelihoods, mask)
    assert marginals.shape == (num_frames, num_states)
    np.testing.assert_allclose(log_norm, exact_log_norm, rtol=1e-9)
    np.testing.assert_allclose(marginals, exact, rtol=1e-9, atol=1e-12)


def test_smoother_with_no_evidence_gives_the_prior_marginals():
    rng = np.random.default_rng(9)
    transition_matrix, log_likelihoods, _ = random_hmm(rng, 6, 3)
    log_norm, marginals = hmm_smoother(transition_matrix, log_likelihoods, np.zeros(6))
    prior = [np.full(3, 1 / 3) @ np.linalg.matrix_power(transition_matrix, t) for t in range(6)]
    np.testing.assert_allclose(log_norm, 0.0, atol=1e-12)
    np.testing.assert_allclose(marginals, np.stack(prior), rtol=1e-10)


def test_smoother_last_frame_is_the_filtered_one():
    rng = np.random.default_rng(10)
    transition_matrix, log_likelihoods, mask = random_hmm(rng, 30, 5)
    _, filtered = hmm_filter(transition_matrix, log_likelihoods, mask)
    _, marginals = hmm_smoother(transition_matrix, log_likelihoods, mask)
    np.testing.assert_allclose(marginals[-1], filtered[-1], rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_smoother_is_stable_for_huge_evidence_and_near_zero_transitions(dtype):
    """Predicted probabilities at the floor (1e-30 transitions against 1e4-scale evidence)
    must not overflow the smoothing ratio: marginals stay finite and sum to one."""
    rng = np.random.default_rng(11)
    num_states = 6
    transition_matrix = np.full((num_states, num_states), 1e-30)
    np.fill_diagonal(transition_matrix, 1.0)
    transition_matrix /= transition_matrix.sum(1, keepdims=True)
    log_likelihoods = 1e4 * rng.normal(size=(80, num_states))
    mask = (rng.uniform(size=80) > 0.2).astype(float)
    log_norm, marginals = jax.jit(hmm_smoother)(
        jnp.asarray(transition_matrix, dtype), jnp.asarray(log_likelihoods, dtype), mask
    )
    assert log_norm.dtype == dtype and marginals.dtype == dtype
    assert np.isfinite(log_norm) and np.all(np.isfinite(marginals))
    np.testing.assert_allclose(np.sum(marginals, -1), 1.0, rtol=1e-5)
    observed = mask > 0
    np.testing.assert_array_equal(np.argmax(marginals, -1)[observed],
                                  np.argmax(log_likelihoods, 1)[observed])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_smoother_survives_an_impossible_transition(dtype):
    """Two closed blocks of states, evidence that jumps from one to the other: the floored
    filter follows it; the smoother must stay finite and normalised, not divide 0 by 0."""
    transition_matrix = np.kron(np.eye(2), np.full((2, 2), 0.5))
    log_likelihoods = np.zeros((10, 4))
    log_likelihoods[:5, 2:] = log_likelihoods[5:, :2] = -1e4
    _, marginals = hmm_smoother(jnp.asarray(transition_matrix, dtype),
                                jnp.asarray(log_likelihoods, dtype), np.ones(10))
    marginals = np.asarray(marginals)
    assert np.all(np.isfinite(marginals))
    np.testing.assert_allclose(marginals.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(marginals[:5, :2].sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(marginals[5:, 2:].sum(-1), 1.0, rtol=1e-6)


def test_smoother_vmaps_and_time_major_batch_matches_single_calls():
    rng = np.random.default_rng(12)
    transition_matrix = rng.dirichlet(np.ones(4), size=4)
    log_likelihoods = rng.normal(size=(3, 25, 4))
    mask = (rng.uniform(size=(3, 25)) > 0.2).astype(float)
    vmapped = jax.jit(jax.vmap(hmm_smoother, in_axes=(None, 0, 0)))(
        transition_matrix, log_likelihoods, mask)
    time_major = jax.jit(hmm_marginals)(transition_matrix, np.swapaxes(log_likelihoods, 0, 1),
                                        mask.T)
    for n in range(3):
        log_norm, marginals = hmm_smoother(transition_matrix, log_likelihoods[n], mask[n])
        np.testing.assert_allclose(vmapped[0][n], log_norm, rtol=1e-12)
        np.testing.assert_allclose(vmapped[1][n], marginals, rtol=1e-12)
        np.testing.assert_allclose(time_major[0][n], log_norm, rtol=1e-12)
        np.testing.assert_allclose(time_major[1][:, n], marginals, rtol=1e-12)


def test_smoother_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match="mask"):
        hmm_smoother(jnp.eye(3), jnp.ones((5, 3)), jnp.ones(6))
    with pytest.raises(ValueError, match="mask"):
        hmm_marginals(jnp.eye(3), jnp.ones((5, 2, 3)), jnp.ones((5, 3)))


def test_batched_smoother_works_in_one_time_major_buffer():
    """Filtered distributions, then marginals, overwrite the log-likelihoods in place."""
    num_frames, num_recordings, num_states = 300, 4, 32
    log_likelihoods = jnp.zeros((num_frames, num_recordings, num_states))
    args = (jnp.full((num_states, num_states), 1.0 / num_states), log_likelihoods,
            jnp.ones((num_frames, num_recordings)))
    compiled = jax.jit(hmm_marginals).lower(*args).compile()
    assert compiled.memory_analysis().temp_size_in_bytes < 1.5 * log_likelihoods.nbytes
