"""The two small interfaces through which blocks supply likelihoods to other blocks."""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array, Bool, Float

from moseq.core.block import Data, GibbsBlock, State


class StateLikelihoods(GibbsBlock):
    """A block that scores every frame under every discrete state (for `HMMStates`).

    `nlags` frames at the start of each recording have no score (AR context), so the states
    `z` it scores have shape (N, T - nlags).
    """

    nlags: eqx.AbstractVar[int]

    def scored_frames(self, data: Data, state: State) -> Bool[Array, "N T-L"]:
        """Frames t >= nlags whose likelihood counts (the rest are scored 0): by default the
        unmasked ones."""
        return data["mask"][:, self.nlags :] > 0

    @abc.abstractmethod
    def state_log_likelihoods(self, data: Data, state: State) -> Float[Array, "T-L N K"]:
        """log p(frame t | z_t = k, everything else) for t >= nlags and every state k,
        time-major (the layout the forward filter scans, so it is never transposed)."""


class GaussianEmissions(GibbsBlock):
    """A block whose observations are linear-Gaussian in a latent `x` (for `KalmanLatents`):
    y_t = C x_t + d + noise, noise ~ N(0, diag(variances_t))."""

    @abc.abstractmethod
    def emission_terms(
        self, data: Data, state: State
    ) -> tuple[Float[Array, "N T obs"], Float[Array, "obs D"], Float[Array, " obs"],
               Float[Array, "N T obs"]]:
        """(y, C, d, variances): the observations in the linear-Gaussian form, with the
        per-frame diagonal noise variances."""

    @abc.abstractmethod
    def initial_latents(self, data: Data, state: State) -> Float[Array, "N T D"]:
        """A first value of the latent `x` from the observations alone (e.g. projection)."""
