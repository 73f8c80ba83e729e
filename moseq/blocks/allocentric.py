"""Location-aware dynamics: per-state Gaussian dynamics of the heading change and of the
egocentric centroid step, with normal-inverse-gamma priors (`moseq.ops.allocentric`)."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from moseq.blocks.providers import StateLikelihoods
from moseq.core.block import Data, State, recording_span
from moseq.core.reduce import sum_over_recordings
from moseq.ops.allocentric import (
    AllocentricStats,
    allocentric_log_likelihoods,
    allocentric_stats,
    allocentric_steps,
    nig_log_prob,
    nig_posterior,
    sample_nig,
)
from moseq.ops.checks import check_positive
from moseq.ops.geometry import horizontal_axes, wrap_angle


class AllocentricDynamics(StateLikelihoods):
    """Per-state dynamics of the heading `h` (N, T) and centroid `v` (N, T, d), d = 2 or 3.

    Variables: `delta_h` (K,), `sigmasq_h` (K,), `delta_v` (K, 2), `sigmasq_v` (K,).
    Model, for the step into every frame t >= nlags (z[:, t - nlags] is the state of frame t):
        Δh_t = wrap(h_t - h_{t-1}) ~ N(delta_h_z, sigmasq_h_z),
        Δv_t = R(-h_{t-1}) (v_t - v_{t-1}) (horizontal part) ~ N(delta_v_z, sigmasq_v_z I_2).
    For 3-D centroids the vertical coordinate is not modelled. The Gaussian is on the wrapped
    heading change: it is the density of a step of the unwrapped heading when |Δh| < pi (all
    but certain for the small turning variances of behaviour).
    Prior: sigmasq_h_k ~ InvGamma(alpha0_h, beta0_h), delta_h_k | sigmasq_h_k ~ N(0,
    sigmasq_h_k / lambda0_h); the same for v with (alpha0_v, beta0_v, lambda0_v), delta_v_k
    ~ N(0, sigmasq_v_k / lambda0_v I_2).
    Conditional: for every state, the normal-inverse-gamma posterior of its scored steps
    (`moseq.ops.allocentric.nig_posterior`; the centroid counts 2 coordinates per step).

    Scored steps (`modelled_steps`): when h and v are data, the step into t counts only if
    frames t - 1 and t are both unmasked; when they are latent variables (in the state),
    every step up to the recording's last unmasked frame.

    `nlags` is 1 for the dynamics alone (`moseq.models.allo_dynamics`); beside an AR(L)
    likelihood on the same z, give it the AR's nlags so both score the same frames.
    """

    num_states: int = eqx.field(static=True)
    nlags: int = eqx.field(default=1, static=True, kw_only=True)
    centroid_dim: int = eqx.field(default=2, static=True)
    vertical_axis: int = eqx.field(default=2, static=True)
    alpha0_h: float = 10.0
    beta0_h: float = 0.1
    lambda0_h: float = 1.0
    alpha0_v: float = 10.0
    beta0_v: float = 0.1
    lambda0_v: float = 1.0

    writes: ClassVar = ("delta_h", "sigmasq_h", "delta_v", "sigmasq_v")
    reads: ClassVar = ("h", "v", "z", "mask")

    def __check_init__(self):
        for name, value in (("num_states", self.num_states), ("nlags", self.nlags)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
        if self.centroid_dim not in (2, 3):
            raise ValueError(f"`centroid_dim` must be 2 or 3 (the dimension of v); got "
                             f"{self.centroid_dim!r}.")
        horizontal_axes(self.centroid_dim, self.vertical_axis)
        for name in ("alpha0_h", "beta0_h", "lambda0_h", "alpha0_v", "beta0_v", "lambda0_v"):
            check_positive(name, getattr(self, name))

    def check_data(self, data):
        if "mask" in data and np.shape(data["mask"])[-1] <= self.nlags:
            raise ValueError(f"Recordings of {np.shape(data['mask'])[-1]} frames are too short "
                             f"for nlags = {self.nlags}; give longer recordings.")
        if "h" in data and np.ndim(data["h"]) != 2:
            raise ValueError(f"`data['h']` must have shape (N, T); got {np.shape(data['h'])}.")
        if "v" in data:
            shape = np.shape(data["v"])
            if len(shape) != 3 or shape[-1] != self.centroid_dim:
                raise ValueError(f"`data['v']` must have shape (N, T, {self.centroid_dim}); got "
                                 f"{shape}. Set centroid_dim to the dimension of v.")
            if "h" in data and np.shape(data["h"]) != shape[:2]:
                raise ValueError(f"`data['h']` {np.shape(data['h'])} and `data['v']` {shape} "
                                 "must have the same (N, T).")

    def _heading_centroid(self, data: Data, state: State) -> tuple[Array, Array]:
        return (state["h"] if "h" in state else data["h"],
                state["v"] if "v" in state else data["v"])

    def modelled_steps(self, data: Data, observed: bool | None = None) -> Bool[Array, "N T"]:
        """(N, T) bool: frames t >= nlags whose incoming step the model scores. `observed`
        says whether h and v are data (default: whether `data` holds "h")."""
        mask = data["mask"] > 0
        if "h" in data if observed is None else observed:
            modelled = mask[:, self.nlags :] & mask[:, self.nlags - 1 : -1]
        else:
            modelled = recording_span(mask)[:, self.nlags :]
        return jnp.concatenate([jnp.zeros_like(mask[:, : self.nlags]), modelled], axis=1)

    def scored_frames(self, data, state):
        return self.modelled_steps(data)[:, self.nlags :]

    def _steps(self, h, v):
        """(Δh, Δv) of the steps into frames nlags .. T-1, (N, T-L) and (N, T-L, 2)."""
        dh, dv = allocentric_steps(h, v, self.vertical_axis)
        return dh[:, self.nlags - 1 :], dv[:, self.nlags - 1 :]

    def sufficient_stats(self, data: Data, state: State) -> AllocentricStats:
        """Per-state sums of the scored steps, over all recordings."""
        observed = "h" in data

        def chunk_stats(h, v, z, mask):
            dh, dv = self._steps(h, v)
            weights = self.modelled_steps({"mask": mask}, observed)[:, self.nlags :]
            return allocentric_stats(dh, dv, z, weights, self.num_states)

        h, v = self._heading_centroid(data, state)
        return sum_over_recordings(chunk_stats, h, v, state["z"], data["mask"])

    def resample(self, key, data, state):
        stats = self.sufficient_stats(data, state)
        heading_key, centroid_key = jax.random.split(key)
        heading = nig_posterior(stats.count, stats.heading_sum[:, None], stats.heading_sumsq,
                                self.alpha0_h, self.beta0_h, self.lambda0_h, 1)
        centroid = nig_posterior(stats.count, stats.centroid_sum, stats.centroid_sumsq,
                                 self.alpha0_v, self.beta0_v, self.lambda0_v, 2)
        delta_h, sigmasq_h = sample_nig(heading_key, heading)
        delta_v, sigmasq_v = sample_nig(centroid_key, centroid)
        return {"delta_h": delta_h[:, 0], "sigmasq_h": sigmasq_h, "delta_v": delta_v,
                "sigmasq_v": sigmasq_v}

    def sample_prior(self, key, state):
        dtype = jnp.result_type(float)
        zeros = jnp.zeros(self.num_states, dtype)
        stats = AllocentricStats(zeros, zeros, zeros, jnp.zeros((self.num_states, 2), dtype),
                                 zeros)
        heading_key, centroid_key = jax.random.split(key)
        delta_h, sigmasq_h = sample_nig(heading_key, nig_posterior(
            stats.count, stats.heading_sum[:, None], stats.heading_sumsq, self.alpha0_h,
            self.beta0_h, self.lambda0_h, 1))
        delta_v, sigmasq_v = sample_nig(centroid_key, nig_posterior(
            stats.count, stats.centroid_sum, stats.centroid_sumsq, self.alpha0_v,
            self.beta0_v, self.lambda0_v, 2))
        return {"delta_h": delta_h[:, 0], "sigmasq_h": sigmasq_h, "delta_v": delta_v,
                "sigmasq_v": sigmasq_v}

    def _parameters(self, state: State) -> tuple[Array, Array, Array, Array]:
        return state["delta_h"], state["sigmasq_h"], state["delta_v"], state["sigmasq_v"]

    def state_log_likelihoods(self, data, state):
        dh, dv = self._steps(*self._heading_centroid(data, state))
        return allocentric_log_likelihoods(dh.T, jnp.swapaxes(dv, 0, 1),
                                           *self._parameters(state))

    def frame_log_likelihoods(self, data: Data, state: State) -> Float[Array, "N T-L"]:
        """The log-likelihood of the step into every frame t >= nlags under its own state."""
        dh, dv = self._steps(*self._heading_centroid(data, state))
        all_states = allocentric_log_likelihoods(dh, dv, *self._parameters(state))
        return jnp.take_along_axis(all_states, state["z"][..., None], axis=-1)[..., 0]

    def log_prob(self, data, state):
        delta_h, sigmasq_h, delta_v, sigmasq_v = self._parameters(state)
        prior = (jnp.sum(nig_log_prob(delta_h[:, None], sigmasq_h, self.alpha0_h,
                                      self.beta0_h, self.lambda0_h))
                 + jnp.sum(nig_log_prob(delta_v, sigmasq_v, self.alpha0_v, self.beta0_v,
                                        self.lambda0_v)))
        observed = "h" in data

        def scored_sum(h, v, z, mask, parameters):
            chunk_data = {"mask": mask, **({"h": h, "v": v} if observed else {})}
            chunk_state = {**parameters, "z": z, **({} if observed else {"h": h, "v": v})}
            frames = self.frame_log_likelihoods(chunk_data, chunk_state)
            return jnp.sum(jnp.where(self.scored_frames(chunk_data, chunk_state), frames, 0.0))

        h, v = self._heading_centroid(data, state)
        shared = {name: state[name] for name in self.writes}
        return prior + sum_over_recordings(scored_sum, h, v, state["z"], data["mask"],
                                           shared=shared)

    def sample_data(self, key, state) -> Data:
        """Simulate observed `h` (N, T) and `v` (N, T, d) given `z`, the parameters and the
        mask: the step into every modelled frame from the dynamics, and elsewhere (and for the
        vertical coordinate of 3-D centroids) draws independent of the parameters: h ~
        Uniform[-pi, pi), v ~ N(0, I)."""
        return dict(zip(("h", "v"), self.simulate(
            key, state, self.modelled_steps(state, observed=True)), strict=True))

    def simulate(self, key, state: State, recursive=None) -> tuple[Array, Array]:
        """(h, v) from `z` and the parameters: the dynamics on the steps into the frames where
        `recursive` (N, T) is true (by default every frame t >= nlags), fresh draws (h ~
        Uniform[-pi, pi), v ~ N(0, I)) elsewhere."""
        z = state["z"]
        delta_h, sigmasq_h, delta_v, sigmasq_v = self._parameters(state)
        num_recordings, num_steps = z.shape
        num_frames, dim = num_steps + self.nlags, self.centroid_dim
        first, second = horizontal_axes(dim, self.vertical_axis)
        fresh_key, heading_key, centroid_key = jax.random.split(key, 3)
        fresh_h = jax.random.uniform(heading_key, (num_frames, num_recordings), delta_h.dtype,
                                     -jnp.pi, jnp.pi)
        fresh_v = jax.random.normal(centroid_key, (num_frames, num_recordings, dim),
                                    delta_h.dtype)
        noise = jax.random.normal(fresh_key, (num_steps, num_recordings, 3), delta_h.dtype)
        if recursive is None:
            recursive = jnp.ones((num_recordings, num_frames), bool).at[:, : self.nlags].set(
                False)

        def step(previous, inputs):
            h_prev, v_prev = previous
            states, eps, recurse, h_new, v_new = inputs
            turn = delta_h[states] + jnp.sqrt(sigmasq_h[states]) * eps[:, 0]
            ego = delta_v[states] + jnp.sqrt(sigmasq_v[states])[:, None] * eps[:, 1:]
            cos, sin = jnp.cos(h_prev), jnp.sin(h_prev)
            moved = (v_new.at[:, first].set(v_prev[:, first] + cos * ego[:, 0] - sin * ego[:, 1])
                     .at[:, second].set(v_prev[:, second] + sin * ego[:, 0] + cos * ego[:, 1]))
            h = jnp.where(recurse, wrap_angle(h_prev + turn), h_new)
            v = jnp.where(recurse[:, None], moved, v_new)
            return (h, v), (h, v)

        start = (fresh_h[self.nlags - 1], fresh_v[self.nlags - 1])
        _, (h, v) = jax.lax.scan(step, start, (z.T, noise, recursive[:, self.nlags :].T,
                                               fresh_h[self.nlags :], fresh_v[self.nlags :]))
        h = jnp.concatenate([fresh_h[: self.nlags], h]).T
        v = jnp.swapaxes(jnp.concatenate([fresh_v[: self.nlags], v]), 0, 1)
        return h, v


class SummedLikelihoods(StateLikelihoods):
    """The per-state log-likelihoods of two providers added, for an `HMMStates` whose frames
    both score (e.g. `ARDynamics` on the pose and `AllocentricDynamics` on the location).

    Both must have the same `nlags` (they score the same frames); a frame counts where
    either scores it (a term is 0 where its provider does not score the frame). Owns no
    variables.
    """

    first: StateLikelihoods
    second: StateLikelihoods
    nlags: int = eqx.field(static=True)

    writes: ClassVar = ()

    def __init__(self, first: StateLikelihoods, second: StateLikelihoods, *,
                 name: str = "SummedLikelihoods"):
        for label, provider in (("first", first), ("second", second)):
            if not isinstance(provider, StateLikelihoods):
                raise TypeError(f"`{label}` must be a StateLikelihoods block; got {provider!r}.")
        if first.nlags != second.nlags:
            raise ValueError(f"the two likelihoods must score the same frames: nlags "
                             f"{first.nlags} and {second.nlags} differ.")
        self.first, self.second, self.nlags, self.name = first, second, first.nlags, name

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.first.reads, *self.first.writes,
                                    *self.second.reads, *self.second.writes)))

    def scored_frames(self, data, state):
        return self.first.scored_frames(data, state) | self.second.scored_frames(data, state)

    def state_log_likelihoods(self, data, state):
        terms = []
        for provider in (self.first, self.second):
            scored = provider.scored_frames(data, state).T[..., None]
            terms.append(jnp.where(scored, provider.state_log_likelihoods(data, state), 0.0))
        return terms[0] + terms[1]

    def resample(self, key, data, state):
        return {}

    def sample_prior(self, key, state):
        return {}

    def log_prob(self, data, state):
        return jnp.zeros((), jnp.result_type(float))

