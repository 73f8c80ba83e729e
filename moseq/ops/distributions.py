"""Random draws from the standard distributions the conditionals need.

Every sampler takes an explicit `jax.random` key and draws in the dtype of its parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


def sample_dirichlet(
    key: PRNGKeyArray, concentration: Float[Array, "... K"]
) -> Float[Array, "... K"]:
    """One Dirichlet draw per leading index of `concentration`.

    Drawn as the softmax of log-gamma variates, so concentrations far below 1 (weak-limit HDP
    rows with small `alpha * beta`) give valid probability vectors instead of 0/0.
    """
    concentration = jnp.asarray(concentration)
    dtype = concentration.dtype if jnp.issubdtype(concentration.dtype, jnp.floating) else float
    log_gammas = jax.random.loggamma(key, concentration, concentration.shape, dtype=dtype)
    return jax.nn.softmax(log_gammas, axis=-1)
