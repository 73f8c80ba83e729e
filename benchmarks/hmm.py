"""HMM state-sequence sampling: N=8 recordings x T=5,000 frames x K=100 states, float32.

`xla_mb` is the temporary memory XLA allocates for one call (inputs and outputs excluded).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks._timing import best_seconds, optional_module, xla_working_mb
from moseq.ops.hmm import sample_hmm_stateseq

NUM_RECORDINGS, NUM_FRAMES, NUM_STATES = 8, 5_000, 100


def workload(seed: int = 0):
    keys = jax.random.split(jax.random.key(seed), 4)
    transition_matrix = jax.random.dirichlet(
        keys[0], jnp.ones(NUM_STATES) + 50 * jnp.eye(NUM_STATES)
    )
    log_likelihoods = 3.0 * jax.random.normal(keys[1], (NUM_RECORDINGS, NUM_FRAMES, NUM_STATES))
    mask = jnp.ones((NUM_RECORDINGS, NUM_FRAMES)).at[:, -100:].set(0.0)
    sample_keys = jax.random.split(keys[2], NUM_RECORDINGS)
    return sample_keys, transition_matrix.astype(jnp.float32), log_likelihoods, mask


def run(report) -> None:
    keys, transition_matrix, log_likelihoods, mask = workload()
    ours = jax.jit(jax.vmap(sample_hmm_stateseq, in_axes=(0, None, 0, 0)))
    candidates = {"moseq": (ours, (keys, transition_matrix, log_likelihoods, mask))}
    jax_moseq = optional_module("jax_moseq.utils.distributions")
    if jax_moseq is not None:
        theirs = jax.jit(jax.vmap(jax_moseq.sample_hmm_stateseq, in_axes=(0, None, 0, 0)))
        legacy_keys = jax.vmap(jax.random.key_data)(keys)
        candidates["jax-moseq"] = (theirs, (legacy_keys, transition_matrix, log_likelihoods,
                                            mask))
    best = best_seconds(candidates)
    memory = {name: f"{xla_working_mb(fn, *args):.0f}" for name, (fn, args) in candidates.items()}
    report("hmm: sample_hmm_stateseq (vmap over 8 x 5000, K=100), best of 15", best["moseq"],
           xla_mb=memory["moseq"])
    if jax_moseq is None:
        report("hmm: jax-moseq not importable, no comparison", None)
        return
    report("hmm: jax-moseq sample_hmm_stateseq (same inputs)", best["jax-moseq"],
           xla_mb=memory["jax-moseq"], speedup=best["jax-moseq"] / best["moseq"])
