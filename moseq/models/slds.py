"""The switching linear dynamical system: an AR-HMM on latents seen through linear-Gaussian
observations."""

from __future__ import annotations

import numpy as np
from jax.sharding import Mesh

from moseq.blocks import KalmanLatents, LinearGaussianObservations
from moseq.core import GibbsScheduler
from moseq.models.arhmm import arhmm_blocks


def slds(
    Cd,
    *,
    nu_sigma: float = 1e5,
    sigmasq_0: float = 0.1,
    parallel: bool = False,
    jitter: float = 0.0,
    mesh: Mesh | None = None,
    chunk_frames: int | None = None,
    **hyperparameters,
) -> GibbsScheduler:
    """A ready SLDS sampler for data `{"Y": (N, T, obs), "mask": (N, T)}`.

    `Cd` (obs, D + 1) = [C | d] maps the D-dimensional latent to the observations (e.g. the
    top D principal components and the mean; see `moseq.ops.fit_pca`). Each sweep resamples
    the transitions, the AR parameters, the states `z`, the latents `x` (Kalman FFBS, exact
    lift of the AR(L) dynamics) and the noise variances `sigmasq`; `init` projects Y onto
    the latent space for x, then draws the rest from the prior and z by FFBS.
    `hyperparameters` are those of `moseq.models.arhmm` (num_states, nlags, alpha, kappa,
    gamma, S_0_scale, K_0_scale, transitions, beta).
    Pass `chunk_frames` to set how many frames each device works on at once (default:
    sized to its memory; see `GibbsScheduler`).
    """
    Cd = np.asarray(Cd)
    if Cd.ndim != 2 or Cd.shape[1] < 2:
        raise ValueError(f"`Cd` must have shape (obs, D + 1), [C | d] for a latent of D >= 1 "
                         f"dimensions; got shape {Cd.shape}.")
    transitions, dynamics, states = arhmm_blocks(Cd.shape[1] - 1, **hyperparameters)
    emissions = LinearGaussianObservations(Cd=Cd, nu_sigma=nu_sigma, sigmasq_0=sigmasq_0)
    latents = KalmanLatents(dynamics, emissions, parallel=parallel, jitter=jitter)
    return GibbsScheduler([transitions, dynamics, states, emissions, latents],
                          data_keys=("Y", "mask"), mesh=mesh,
                          chunk_frames=chunk_frames)
