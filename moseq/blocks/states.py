"""Discrete state sequences by forward filtering, backward sampling."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from moseq.blocks.providers import StateLikelihoods
from moseq.core.block import Data, GibbsBlock, Provider, State, recording_keys, recording_span
from moseq.ops.hmm import (
    hmm_marginals,
    markov_chain_log_prob,
    sample_hmm_stateseqs,
    sample_markov_chain,
)


class HMMStates(GibbsBlock):
    """State sequences `z` (N, T - L): an HMM whose frames are scored by `likelihood`.

    Prior: z starts uniformly and moves by the transition matrix `pi` (written by a
    transitions block). Conditional: one forward-filter/backward-sample draw per recording
    (keys folded from the recording index); frames the provider does not score carry no
    evidence. z is chained through masked frames inside a recording (missing observations).
    `likelihood` is any `StateLikelihoods` block in the same plan (e.g. `ARDynamics`).
    """

    likelihood: StateLikelihoods

    writes: ClassVar = ("z",)
    prior_reads: ClassVar = ("pi", "mask")
    per_recording: ClassVar = ("z",)
    recording_wise: ClassVar = True

    def __check_init__(self):
        if not isinstance(self.likelihood, StateLikelihoods | Provider):
            raise TypeError(
                "`likelihood` must be a block that provides state log-likelihoods "
                f"(a StateLikelihoods subclass such as ARDynamics); got {self.likelihood!r}."
            )

    @property
    def reads(self) -> tuple[str, ...]:
        return ("pi", "mask", *self.likelihood.reads)

    @property
    def init_reads(self) -> tuple[str, ...]:
        return ("pi", *self.likelihood.writes, *self.likelihood.reads)

    def resample(self, key, data, state):
        log_likelihoods = self.likelihood.state_log_likelihoods(data, state)  # (T', N, K)
        num_frames, num_recordings = log_likelihoods.shape[:2]
        mask = self.likelihood.scored_frames(data, state).T
        keys = recording_keys(key, data, num_recordings)
        _, z = sample_hmm_stateseqs(
            keys, state["pi"].astype(log_likelihoods.dtype), log_likelihoods, mask
        )
        return {"z": z.T}

    def marginals(self, data: Data, state: State) -> Float[Array, "N T-L K"]:
        """Marginal probabilities p(z[n, i] = k | data, everything else in `state`), shape
        (N, T - L, K), by forward-backward smoothing on the same likelihoods and mask as
        `resample` (the distribution its FFBS draws of each frame follow).

        Frames past a recording's end (padding) carry no evidence; mask them out. Working
        memory: the (T - L, N, K) log-likelihoods, smoothed in place, and the (N, T - L, K)
        result.
        """
        log_likelihoods = self.likelihood.state_log_likelihoods(data, state)  # (T', N, K)
        mask = self.likelihood.scored_frames(data, state).T
        _, probs = hmm_marginals(state["pi"].astype(log_likelihoods.dtype), log_likelihoods,
                                 mask)
        return jnp.swapaxes(probs, 0, 1)

    def init(self, key, data, state):
        return self.resample(key, data, state)

    def sample_prior(self, key, state):
        num_recordings, num_frames = state["mask"].shape
        keys = recording_keys(key, state, num_recordings)
        z = jax.vmap(sample_markov_chain, in_axes=(0, None, None))(
            keys, state["pi"], num_frames - self.likelihood.nlags
        )
        return {"z": z}

    def log_prob(self, data, state):
        return markov_chain_log_prob(state["z"], state["pi"], recording_span(data["mask"]))


