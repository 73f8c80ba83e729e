"""The switching linear dynamical system: an AR-HMM on latents seen through linear-Gaussian
observations."""

from __future__ import annotations

import numpy as np
from jax.sharding import Mesh

from moseq.blocks import (
    ARDynamics,
    HDPTransitions,
    HMMStates,
    KalmanLatents,
    LinearGaussianObservations,
)
from moseq.core import GibbsScheduler


def slds(
    Cd,
    *,
    nlags: int = 3,
    num_states: int = 100,
    alpha: float = 5.7,
    kappa: float = 1e6,
    gamma: float = 1e3,
    S_0_scale: float = 0.01,
    K_0_scale: float = 10.0,
    nu_sigma: float = 1e5,
    sigmasq_0: float = 0.1,
    parallel: bool = False,
    jitter: float = 0.0,
    mesh: Mesh | None = None,
) -> GibbsScheduler:
    """A ready SLDS sampler for data `{"Y": (N, T, obs), "mask": (N, T)}`.

    `Cd` (obs, D + 1) = [C | d] maps the D-dimensional latent to the observations (e.g. the
    top D principal components and the mean; see `moseq.ops.fit_pca`). Each sweep resamples
    the transitions, the AR parameters, the states `z`, the latents `x` (Kalman FFBS, exact
    lift of the AR(L) dynamics) and the noise variances `sigmasq`; `init` projects Y onto
    the latent space for x, then draws the rest from the prior and z by FFBS.
    """
    Cd = np.asarray(Cd)
    latent_dim = Cd.shape[1] - 1
    transitions = HDPTransitions(num_states, alpha=alpha, kappa=kappa, gamma=gamma)
    dynamics = ARDynamics.create(num_states, latent_dim, nlags, S_0_scale=S_0_scale,
                                 K_0_scale=K_0_scale)
    emissions = LinearGaussianObservations(Cd=Cd, nu_sigma=nu_sigma, sigmasq_0=sigmasq_0)
    latents = KalmanLatents(dynamics, emissions, parallel=parallel, jitter=jitter)
    return GibbsScheduler(
        [transitions, dynamics, HMMStates(dynamics), emissions, latents],
        data_keys=("Y", "mask"),
        mesh=mesh,
    )
