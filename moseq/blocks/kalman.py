"""Continuous latent trajectories of a switching linear dynamical system, by Kalman FFBS."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from moseq.blocks.ar import ARDynamics
from moseq.blocks.providers import GaussianEmissions
from moseq.core.block import GibbsBlock, Provider, recording_keys, recording_span
from moseq.ops.ar_latents import sample_ar_latents
from moseq.ops.checks import check_positive
from moseq.ops.kalman import ar_to_lds_dynamics, ar_to_lds_emissions, kalman_sample

UNOBSERVED_VARIANCE = 1e8
"""Emission variance of masked frames, whose observations are replaced by the emission
offset: no value of a masked frame is read, and the pseudo-observation is negligible."""


class KalmanLatents(GibbsBlock):
    """Latent trajectories `x` (N, T, D) given the states `z`, the AR dynamics and the
    emissions, drawn jointly per recording.

    Prior: the first L frames ~ N(0, prior_variance I), then x_t ~ N(Ab_{z_t}[lags; 1],
    Q_{z_t}) (the AR factor is scored by `dynamics.log_prob`); masked frames carry no
    observation. The default sequential sampler works on the AR model directly, in
    information form (`moseq.ops.ar_latents`: one D x D factorisation per frame).
    `parallel=True` lifts the AR(L) model exactly to a first-order system in R^(D L)
    (`moseq.ops.kalman`) and uses the associative-scan sampler (O(log T) depth, for GPUs).
    `jitter` is added to the variance of each frame's conditional draw.
    """

    dynamics: ARDynamics
    emissions: GaussianEmissions
    parallel: bool = eqx.field(static=True, default=False)
    jitter: float = 0.0
    prior_variance: float = 10.0

    writes: ClassVar = ("x",)
    prior_reads: ClassVar = ("z", "Ab", "Q", "mask")
    per_recording: ClassVar = ("x",)
    recording_wise: ClassVar = True

    def __check_init__(self):
        if not isinstance(self.dynamics, ARDynamics | Provider):
            raise TypeError(f"`dynamics` must be an ARDynamics block; got {self.dynamics!r}.")
        if not isinstance(self.emissions, GaussianEmissions | Provider):
            raise TypeError("`emissions` must be a GaussianEmissions block (it provides "
                            f"`emission_terms`); got {self.emissions!r}.")
        check_positive("jitter", self.jitter, allow_zero=True)
        check_positive("prior_variance", self.prior_variance)

    @property
    def reads(self) -> tuple[str, ...]:
        return ("z", "Ab", "Q", "mask", *self.emissions.reads)

    @property
    def init_reads(self) -> tuple[str, ...]:
        return self.emissions.init_reads + self.emissions.writes

    def init(self, key, data, state):
        return {"x": self.emissions.initial_latents(data, state)}

    def resample(self, key, data, state):
        ys, C, d, variances = self.emissions.emission_terms(data, state)
        observed = data["mask"][..., None] > 0
        variances = jnp.where(observed, variances, UNOBSERVED_VARIANCE)
        ys = jnp.where(observed, ys, d)  # masked values are never read
        Ab, Q = state["Ab"].astype(ys.dtype), state["Q"].astype(ys.dtype)
        draw = jax.vmap(self._sample_lifted if self.parallel else self._sample_banded,
                        in_axes=(0, 0, 0, 0, None, None, None, None))
        keys = recording_keys(key, data, ys.shape[0])
        return {"x": draw(keys, ys, variances, state["z"], Ab, Q, C, d)}

    def _sample_banded(self, key, ys, variances, zs, Ab, Q, C, d):
        """The draw of one recording in information form, on the AR model itself."""
        return sample_ar_latents(key, ys, variances, zs, Ab, Q, C, d, self.prior_variance,
                                 self.jitter)

    def _sample_lifted(self, key, ys, variances, zs, Ab, Q, C, d):
        """The draw of one recording through the lifted first-order model."""
        nlags, dim = self.dynamics.nlags, self.dynamics.latent_dim
        dtype = ys.dtype
        A, b, Q = ar_to_lds_dynamics(Ab, Q)
        lifted_dim = dim * nlags
        m0 = jnp.zeros(lifted_dim, dtype)
        S0 = self.prior_variance * jnp.eye(lifted_dim, dtype=dtype)
        unused_masked_dynamics = {"weights": jnp.eye(lifted_dim, dtype=dtype),
                                  "bias": m0, "cov": S0}
        Cd = jnp.concatenate([C, d[:, None]], axis=1)
        C_, d_, R_, y_, m0_, S0_ = ar_to_lds_emissions(Cd, variances, ys, m0, S0, nlags)
        lifted = kalman_sample(
            key, y_, jnp.ones(y_.shape[0], dtype), zs, m0_, S0_, A, b, Q, C_, d_, R_,
            unused_masked_dynamics, jnp.ones(y_.shape[1], dtype), self.jitter, parallel=True,
        )
        first = lifted[0].reshape(nlags, dim)[:-1]
        return jnp.concatenate([first, lifted[:, -dim:]], axis=0)

    def sample_prior(self, key, state):
        return {"x": self.dynamics.simulate_trajectory(key, state,
                                                       initial_variance=self.prior_variance)}

    def log_prob(self, data, state):
        nlags = self.dynamics.nlags
        first = state["x"][:, :nlags]
        log_density = -0.5 * (first**2 / self.prior_variance
                              + jnp.log(2 * jnp.pi * self.prior_variance))
        span = recording_span(data["mask"])[:, :nlags, None]
        return jnp.sum(jnp.where(span, log_density, 0.0))
