"""Lagged views of multivariate time series for autoregressive models."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def get_lags(x: Float[Array, "... T D"], nlags: int) -> Float[Array, "... T-L D*L"]:
    """For every frame t >= nlags, the previous frames `[x_{t-L}, ..., x_{t-1}]`, oldest first.

    The lags are concatenated along the last axis, so row i of the result belongs to frame
    i + nlags.
    """
    x = jnp.asarray(x)
    if not isinstance(nlags, int) or nlags < 1:
        raise ValueError(f"`nlags` must be a positive int; got {nlags!r}.")
    if x.ndim < 2 or x.shape[-2] < nlags:
        raise ValueError(
            f"`x` must have shape (..., T, D) with T >= nlags = {nlags}; got {x.shape}."
        )
    num_frames = x.shape[-2]
    return jnp.concatenate(
        [x[..., nlags - lag : num_frames - lag, :] for lag in range(nlags, 0, -1)], axis=-1
    )
