"""Angles and rigid motions of poses.

Conventions: keypoints `Y` (..., k, d) with d = 2 or 3; the heading `h` is an angle in the
x-y plane (3-D: a rotation about the vertical z axis); the centroid `v` (..., d).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def wrap_angle(x):
    """Wrap angles (radians) into [-pi, pi)."""
    return jnp.mod(x + jnp.pi, 2 * jnp.pi) - jnp.pi


def center_embedding(num_keypoints: int) -> np.ndarray:
    """The Helmert basis Γ (k, k-1) of the zero-mean subspace: ΓᵀΓ = I, 1ᵀΓ = 0.

    Column i - 1 (i = 1 .. k-1) is e_i minus the mean of e_0 .. e_{i-1}, normalised.
    """
    if num_keypoints < 2:
        raise ValueError(f"keypoint models need at least 2 keypoints; got {num_keypoints}.")
    basis = np.zeros((num_keypoints, num_keypoints - 1))
    for i in range(1, num_keypoints):
        basis[:i, i - 1] = -1.0 / i
        basis[i, i - 1] = 1.0
        basis[:, i - 1] /= np.linalg.norm(basis[:, i - 1])
    return basis


def rotation_matrix(h: Float[Array, "*batch"], dim: int) -> Float[Array, "... dim dim"]:
    """Rotation by `h` in the x-y plane, embedded in the identity for dim = 3."""
    cos, sin = jnp.cos(h), jnp.sin(h)
    planar = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
    if dim == 2:
        return planar
    full = jnp.broadcast_to(jnp.eye(dim, dtype=planar.dtype), (*jnp.shape(h), dim, dim))
    return full.at[..., :2, :2].set(planar)


def rigid_transform(Y: Float[Array, "... k d"], v: Float[Array, "... d"],
                    h: Float[Array, "*batch"]) -> Float[Array, "... k d"]:
    """R(h) Y + v: egocentric keypoints placed in the arena."""
    R = rotation_matrix(h, Y.shape[-1])
    return jnp.einsum("...ij,...kj->...ki", R, Y) + v[..., None, :]


def inverse_rigid_transform(Y: Float[Array, "... k d"], v: Float[Array, "... d"],
                            h: Float[Array, "*batch"]) -> Float[Array, "... k d"]:
    """R(-h) (Y - v): arena keypoints in the animal's egocentric frame."""
    R = rotation_matrix(h, Y.shape[-1])
    return jnp.einsum("...ji,...kj->...ki", R, Y - v[..., None, :])


def align_egocentric(Y: Float[Array, "... k d"], anterior: tuple[int, ...],
                     posterior: tuple[int, ...]):
    """Centroid v (mean keypoint), heading h (angle of mean anterior - mean posterior in the
    x-y plane) and the aligned keypoints R(-h)(Y - v). Returns (Y_aligned, v, h)."""
    v = jnp.mean(Y, axis=-2)
    axis = (jnp.mean(Y[..., list(anterior), :2], axis=-2)
            - jnp.mean(Y[..., list(posterior), :2], axis=-2))
    h = jnp.arctan2(axis[..., 1], axis[..., 0])
    return inverse_rigid_transform(Y, v, h), v, h
