"""`make demo`: sample syllables on built-in synthetic data with the kernels of `moseq.ops`.

The data are recordings of a sticky 5-state Markov chain observed through noisy 2-D Gaussian
emissions. The sampler knows a bank of 20 candidate emission templates (the 5 true ones among
them) and alternates sticky-HDP transition updates with forward-filter/backward-sample of
the state sequences; it should concentrate its usage on the 5 true templates and recover
their durations. Run with `python -m moseq.demo`.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from moseq.ops import (
    count_transitions,
    get_durations,
    get_frequencies,
    init_hdp_transitions,
    sample_hdp_transitions,
    sample_hmm_stateseq,
)

NUM_RECORDINGS, NUM_FRAMES, NUM_TRUE_STATES, NUM_STATES = 6, 3_000, 5, 20
MEAN_DURATION, NOISE = 12.0, 0.6
ALPHA, KAPPA, GAMMA = 5.7, 200.0, 1e3


def synthetic_recordings(seed: int = 0):
    """Sticky Markov chains with 2-D Gaussian emissions; templates on a 4x5 grid."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(5.0), np.arange(4.0)), -1).reshape(-1, 2) * 1.5
    true_templates = rng.choice(NUM_STATES, NUM_TRUE_STATES, replace=False)
    stay = 1 - 1 / MEAN_DURATION
    transition = np.full((NUM_TRUE_STATES,) * 2, (1 - stay) / (NUM_TRUE_STATES - 1))
    np.fill_diagonal(transition, stay)
    states = np.zeros((NUM_RECORDINGS, NUM_FRAMES), int)
    for n in range(NUM_RECORDINGS):
        states[n, 0] = rng.integers(NUM_TRUE_STATES)
        for t in range(1, NUM_FRAMES):
            states[n, t] = rng.choice(NUM_TRUE_STATES, p=transition[states[n, t - 1]])
    labels = true_templates[states]
    observations = grid[labels] + NOISE * rng.normal(size=(NUM_RECORDINGS, NUM_FRAMES, 2))
    return observations, labels, grid


def log_likelihoods(observations, templates):
    """Isotropic Gaussian log density of every frame under every template: (N, T, K)."""
    squared = jnp.sum((observations[:, :, None, :] - templates) ** 2, axis=-1)
    return -0.5 * squared / NOISE**2 - jnp.log(2 * jnp.pi * NOISE**2)


@jax.jit
def gibbs_sweep(key, betas, pi, evidence, mask):
    """One sweep: states given (pi, evidence), then (betas, pi) given the state counts."""
    state_key, transition_key = jax.random.split(key)
    keys = jax.random.split(state_key, evidence.shape[0])
    log_norms, z = jax.vmap(sample_hmm_stateseq, in_axes=(0, None, 0, 0))(keys, pi, evidence, mask)
    counts = count_transitions(NUM_STATES, z, mask)
    betas, pi = sample_hdp_transitions(transition_key, counts, betas, ALPHA, KAPPA, GAMMA)
    return betas, pi, z, jnp.sum(log_norms)


def main(num_sweeps: int = 60) -> None:
    observations, true_labels, templates = synthetic_recordings()
    evidence = log_likelihoods(jnp.asarray(observations), jnp.asarray(templates))
    mask = jnp.ones(true_labels.shape)
    key = jax.random.key(0)
    betas, pi = init_hdp_transitions(key, NUM_STATES, ALPHA, KAPPA, GAMMA)
    print(f"moseq demo: {NUM_RECORDINGS} recordings x {NUM_FRAMES} frames, "
          f"{NUM_TRUE_STATES} true states, {NUM_STATES} candidate states")
    start = time.perf_counter()
    for sweep in range(num_sweeps):
        betas, pi, z, log_evidence = gibbs_sweep(jax.random.fold_in(key, sweep), betas, pi,
                                                 evidence, mask)
        if sweep % 10 == 9:
            print(f"  sweep {sweep + 1:3d}: log p(y | pi) = {float(log_evidence):12.1f}, "
                  f"states used: {len(np.unique(np.asarray(z)))}")
    elapsed = time.perf_counter() - start

    z = np.asarray(z)
    usage = get_frequencies(z, num_states=NUM_STATES, runlength=False)
    true_usage = get_frequencies(true_labels, num_states=NUM_STATES, runlength=False)
    print(f"\n{num_sweeps} sweeps in {elapsed:.1f} s (first sweep includes compilation)")
    print(f"frames labelled as the true state: {np.mean(z == true_labels):.3f}")
    print("state  usage  true usage")
    for state in np.argsort(-usage)[: NUM_TRUE_STATES + 2]:
        print(f"{state:5d}  {usage[state]:.3f}  {true_usage[state]:.3f}")
    print(f"median duration: {np.median(get_durations(z)):.1f} frames "
          f"(truth {np.median(get_durations(true_labels)):.1f}); "
          f"mean {np.mean(get_durations(z)):.1f} (truth {np.mean(get_durations(true_labels)):.1f})")


if __name__ == "__main__":
    main()
