"""Angles and rigid motions of poses."""

from __future__ import annotations

import jax.numpy as jnp


def wrap_angle(x):
    """Wrap angles (radians) into [-pi, pi)."""
    return jnp.mod(x + jnp.pi, 2 * jnp.pi) - jnp.pi
