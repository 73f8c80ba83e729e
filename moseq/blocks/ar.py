"""Autoregressive dynamics: per-state AR(L) parameters with a matrix-normal-inverse-Wishart
prior, and the per-state likelihoods of the trajectory `x` they imply."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from moseq.blocks.providers import StateLikelihoods
from moseq.core.block import Data, State, recording_span
from moseq.core.reduce import sum_over_recordings
from moseq.ops.autoregression import (
    ar_log_likelihoods,
    ar_log_likelihoods_given_states,
    ar_sufficient_stats,
)
from moseq.ops.checks import check_positive
from moseq.ops.densities import mniw_log_prob
from moseq.ops.distributions import sample_mniw
from moseq.ops.linalg import cholesky
from moseq.ops.regression import mniw_posterior


def default_M_0(latent_dim: int, nlags: int) -> np.ndarray:
    """Prior mean of Ab: identity on the most recent lag, zeros on older lags and the bias."""
    M_0 = np.zeros((latent_dim, latent_dim * nlags + 1))
    M_0[:, latent_dim * (nlags - 1) : latent_dim * nlags] = np.eye(latent_dim)
    return M_0


class ARDynamics(StateLikelihoods):
    """Per-state AR(L) dynamics of a D-dimensional trajectory `x` (data or a latent).

    Variables: `Ab` (K, D, D*L + 1) = [A_1 ... A_L, b] acting on [x_{t-L}; ...; x_{t-1}; 1]
    (oldest lag first) and `Q` (K, D, D). Model: x_t ~ N(Ab_{z_t} [lags_t; 1], Q_{z_t}) for
    t >= L. Prior: Q_k ~ IW(S_0, nu_0), Ab_k | Q_k ~ MN(M_0, Q_k, K_0).
    Conditional: the MNIW posterior of each state from its frames' regression statistics
    (segment sums over the states in use).

    Which frames are modelled (`modelled_frames`): when `x` is data, frame t >= L only if
    it and its L lags are unmasked (other frames are covariates the model does not score);
    when `x` is a latent, every frame t >= L up to the recording's last unmasked frame (x is
    imputed where the observations are masked).

    Build with `ARDynamics.create(num_states, latent_dim, nlags)` for the usual defaults
    (nu_0 = D + 2, S_0 = 0.01 I, K_0 = 10 I, M_0 = identity on the newest lag).
    """

    num_states: int = eqx.field(static=True)
    nlags: int = eqx.field(static=True)
    nu_0: float
    S_0: Float[Array, "D D"]
    M_0: Float[Array, "D p"]
    K_0: Float[Array, "p p"]

    writes: ClassVar = ("Ab", "Q")
    reads: ClassVar = ("x", "z", "mask")

    @classmethod
    def create(cls, num_states: int, latent_dim: int, nlags: int = 3, *, S_0_scale: float = 0.01,
               K_0_scale: float = 10.0, nu_0: float | None = None, M_0=None) -> ARDynamics:
        """The block with the established default prior."""
        for name, value in (("num_states", num_states), ("latent_dim", latent_dim),
                            ("nlags", nlags)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
        check_positive("S_0_scale", S_0_scale)
        check_positive("K_0_scale", K_0_scale)
        dtype = jnp.result_type(float)
        return cls(
            num_states=num_states,
            nlags=nlags,
            nu_0=float(latent_dim + 2 if nu_0 is None else nu_0),
            S_0=jnp.asarray(S_0_scale * np.eye(latent_dim), dtype),
            M_0=jnp.asarray(default_M_0(latent_dim, nlags) if M_0 is None else M_0, dtype),
            K_0=jnp.asarray(K_0_scale * np.eye(latent_dim * nlags + 1), dtype),
        )

    def __check_init__(self):
        dim = self.S_0.shape[-1]
        p = dim * self.nlags + 1
        if self.S_0.shape != (dim, dim) or self.M_0.shape != (dim, p) or self.K_0.shape != (p, p):
            raise ValueError(
                f"prior shapes must be S_0 (D, D), M_0 (D, D*L+1), K_0 (D*L+1, D*L+1) with "
                f"D = {dim}, L = {self.nlags}; got {self.S_0.shape}, {self.M_0.shape}, "
                f"{self.K_0.shape}."
            )
        if isinstance(self.nu_0, int | float) and self.nu_0 <= dim - 1:
            raise ValueError(f"`nu_0` must exceed latent_dim - 1 = {dim - 1}; got {self.nu_0}.")

    @property
    def latent_dim(self) -> int:
        return self.S_0.shape[-1]

    def check_data(self, data):
        num_frames = np.shape(data["mask"])[-1] if "mask" in data else None
        if num_frames is not None and num_frames <= self.nlags:
            raise ValueError(f"Recordings of {num_frames} frames are too short for nlags = "
                             f"{self.nlags} (the first nlags frames only give context); give "
                             "longer recordings or lower nlags.")
        if "x" not in data:
            return
        shape = np.shape(data["x"])
        if len(shape) != 3 or shape[-1] != self.latent_dim or shape[1] <= self.nlags:
            raise ValueError(
                f"`data['x']` must have shape (N, T, {self.latent_dim}) with T > nlags = "
                f"{self.nlags}; got {shape}. Set latent_dim to the trajectory dimension."
            )

    def _trajectory(self, data: Data, state: State) -> Array:
        return state["x"] if "x" in state else data["x"]

    def modelled_frames(self, data: Data, observed: bool | None = None) -> Array:
        """(N, T) bool: frames whose AR likelihood the model includes (none of the first L).
        `observed` says whether x is data (default: whether `data` holds "x")."""
        mask = data["mask"] > 0
        num_frames = mask.shape[-1]
        if "x" in data if observed is None else observed:
            lags = [mask[:, lag : num_frames - self.nlags + lag] for lag in range(self.nlags + 1)]
            modelled = jnp.all(jnp.stack(lags), axis=0)
        else:
            modelled = recording_span(mask)[:, self.nlags :]
        return jnp.concatenate([jnp.zeros_like(mask[:, : self.nlags]), modelled], axis=1)

    def scored_frames(self, data, state):
        return self.modelled_frames(data)[:, self.nlags :]

    def posterior(self, data: Data, state: State):
        """(nu_n, S_n, M_n, K_n) of every state, each with a leading K axis."""
        stats = ar_sufficient_stats(self._trajectory(data, state), state["z"],
                                    self.modelled_frames(data), self.num_states, self.nlags,
                                    sum_over_recordings)
        return jax.vmap(mniw_posterior, in_axes=(0, 0, 0, 0, 0, None, None, None, None))(
            *stats, self.nu_0, self.S_0, self.M_0, self.K_0)

    def resample(self, key, data, state):
        nu_n, S_n, M_n, K_n = self.posterior(data, state)
        keys = jax.random.split(key, self.num_states)
        Ab, Q = jax.vmap(sample_mniw)(keys, nu_n, S_n, M_n, K_n)
        return {"Ab": Ab, "Q": Q}

    def sample_prior(self, key, state):
        keys = jax.random.split(key, self.num_states)
        Ab, Q = jax.vmap(sample_mniw, in_axes=(0, None, None, None, None))(
            keys, self.nu_0, self.S_0, self.M_0, self.K_0)
        return {"Ab": Ab, "Q": Q}

    def state_log_likelihoods(self, data, state):
        return ar_log_likelihoods(self._trajectory(data, state), state["Ab"], state["Q"],
                                  time_major=True)

    def frame_log_likelihoods(self, data: Data, state: State) -> Float[Array, "N T-L"]:
        """log N(x_t; Ab_{z_t}[lags_t; 1], Q_{z_t}) of every frame t >= L under its own state."""
        return ar_log_likelihoods_given_states(self._trajectory(data, state), state["z"],
                                               state["Ab"], state["Q"])

    def log_prob(self, data, state):
        prior = jnp.sum(jax.vmap(mniw_log_prob, in_axes=(0, 0, None, None, None, None))(
            state["Ab"], state["Q"], self.nu_0, self.S_0, self.M_0, self.K_0))
        observed = "x" in data

        def scored_sum(x, z, mask, parameters):
            chunk_data = {"mask": mask, **({"x": x} if observed else {})}
            chunk_state = {**parameters, "z": z, **({} if observed else {"x": x})}
            frames = self.frame_log_likelihoods(chunk_data, chunk_state)
            return jnp.sum(jnp.where(self.scored_frames(chunk_data, chunk_state), frames, 0.0))

        return prior + sum_over_recordings(scored_sum, self._trajectory(data, state),
                                           state["z"], data["mask"],
                                           shared={"Ab": state["Ab"], "Q": state["Q"]})

    def sample_data(self, key, state) -> Data:
        """Simulate observed `x` (N, T, D) given `z`, `Ab`, `Q` and the mask: the AR
        recursion on modelled frames, N(0, I) draws (independent of the parameters) on the
        others."""
        return {"x": self.simulate_trajectory(key, state,
                                              self.modelled_frames(state, observed=True))}

    def simulate_trajectory(self, key, state: State, recursive=None,
                            initial_variance: float = 1.0) -> Float[Array, "N T D"]:
        """x (N, T, D) from `z`, `Ab`, `Q`: the AR recursion on the frames where `recursive`
        (N, T) is true (by default every frame t >= L), N(0, initial_variance I) elsewhere."""
        z, Ab, Q = state["z"], state["Ab"], state["Q"]
        num_recordings, num_steps = z.shape
        dim, nlags = self.latent_dim, self.nlags
        fresh = jnp.sqrt(initial_variance) * jax.random.normal(
            key, (num_recordings, num_steps + nlags, dim), Ab.dtype)
        if recursive is None:
            recursive = jnp.ones((num_recordings, num_steps + nlags), bool).at[:, :nlags].set(
                False)
        chol = cholesky(Q)

        def step(lags, inputs):
            states, eps, recurse = inputs  # (N,), (N, D), (N,)
            regressors = jnp.concatenate([lags.reshape(num_recordings, -1),
                                          jnp.ones((num_recordings, 1), lags.dtype)], -1)
            mean = jnp.einsum("ndp,np->nd", Ab[states], regressors)
            new = mean + jnp.einsum("nde,ne->nd", chol[states], eps)
            new = jnp.where(recurse[:, None], new, jnp.sqrt(initial_variance) * eps)
            return jnp.concatenate([lags[:, 1:], new[:, None]], axis=1), new

        noise = jnp.swapaxes(fresh[:, nlags:], 0, 1) / jnp.sqrt(initial_variance)
        _, frames = jax.lax.scan(step, fresh[:, :nlags],
                                 (z.T, noise, recursive[:, nlags:].T))
        return jnp.concatenate([fresh[:, :nlags], jnp.swapaxes(frames, 0, 1)], axis=1)
