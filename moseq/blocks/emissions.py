"""Linear-Gaussian observations of a latent trajectory (the SLDS emission model)."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from moseq.blocks.providers import GaussianEmissions
from moseq.ops.checks import check_positive
from moseq.ops.densities import scaled_inv_chi2_log_prob
from moseq.ops.distributions import sample_scaled_inv_chi2
from moseq.ops.linalg import apply_affine, psd_solve


def least_squares_latents(Y: Float[Array, "N T obs"], Cd: Float[Array, "obs D+1"]):
    """x (N, T, D) solving C x_t = Y_t - d in the least-squares sense, frame by frame."""
    C, d = Cd[:, :-1].astype(Y.dtype), Cd[:, -1].astype(Y.dtype)
    projected = ((Y - d) @ C).reshape(-1, C.shape[1]).T  # (D, N T)
    return psd_solve(C.T @ C, projected).T.reshape(*Y.shape[:-1], C.shape[1])


class LinearGaussianObservations(GaussianEmissions):
    """Observations `Y` (N, T, obs) = C x_t + d + noise, noise ~ N(0, diag(sigmasq)).

    Variable: `sigmasq` (obs,), the per-dimension noise variance, with prior
    Scaled-Inv-chi^2(nu_sigma, sigmasq_0). Its conditional given x and Y is
    Scaled-Inv-chi^2(nu_sigma + n, (nu_sigma sigmasq_0 + sum of squared residuals) / (nu_sigma
    + n)) over the n unmasked frames (one degree of freedom per frame and dimension). The
    emission map `Cd` = [C | d] (obs, D + 1) is a fixed field (from PCA, see
    `moseq.models`).
    """

    Cd: Float[Array, "obs D+1"]
    nu_sigma: float = 1e5
    sigmasq_0: float = 0.1

    writes: ClassVar = ("sigmasq",)
    reads: ClassVar = ("x", "Y", "mask")

    def __check_init__(self):
        if np.ndim(self.Cd) != 2:
            raise ValueError(f"`Cd` must have shape (obs, D + 1); got {np.shape(self.Cd)}.")
        check_positive("nu_sigma", self.nu_sigma)
        check_positive("sigmasq_0", self.sigmasq_0)

    def check_data(self, data):
        if "Y" in data and np.shape(data["Y"])[-1] != self.Cd.shape[0]:
            raise ValueError(f"`data['Y']` must have {self.Cd.shape[0]} features (the rows of "
                             f"`Cd`); got shape {np.shape(data['Y'])}.")

    def emission_terms(self, data, state):
        dtype = jnp.result_type(data["Y"], float)
        variances = jnp.broadcast_to(state["sigmasq"].astype(dtype), data["Y"].shape)
        Cd = self.Cd.astype(dtype)
        return data["Y"].astype(dtype), Cd[:, :-1], Cd[:, -1], variances

    def initial_latents(self, data, state) -> Float[Array, "N T D"]:
        return least_squares_latents(jnp.asarray(data["Y"]), self.Cd)

    def _squared_residuals(self, data, state):
        residual = data["Y"] - apply_affine(state["x"], self.Cd)
        return jnp.where(data["mask"][..., None] > 0, residual**2, 0.0)

    def resample(self, key, data, state):
        squared = jnp.sum(self._squared_residuals(data, state), axis=(0, 1))
        frames = jnp.sum(data["mask"] > 0)
        degs = self.nu_sigma + frames
        return {"sigmasq": sample_scaled_inv_chi2(
            key, degs, (self.nu_sigma * self.sigmasq_0 + squared) / degs)}

    def sample_prior(self, key, state):
        shape = (self.Cd.shape[0],)
        return {"sigmasq": sample_scaled_inv_chi2(
            key, jnp.full(shape, self.nu_sigma), jnp.full(shape, self.sigmasq_0))}

    def log_prob(self, data, state):
        sigmasq = state["sigmasq"]
        prior = jnp.sum(scaled_inv_chi2_log_prob(sigmasq, self.nu_sigma, self.sigmasq_0))
        squared = self._squared_residuals(data, state)
        frames = (data["mask"] > 0)[..., None]
        likelihood = -0.5 * (squared / sigmasq + jnp.log(2 * jnp.pi * sigmasq)) * frames
        return prior + jnp.sum(likelihood)

    def sample_data(self, key, state):
        mean = apply_affine(state["x"], self.Cd)
        return {"Y": mean + jnp.sqrt(state["sigmasq"]) * jax.random.normal(key, mean.shape,
                                                                            mean.dtype)}
