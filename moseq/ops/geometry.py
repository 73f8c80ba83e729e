"""Angles and rigid motions of poses.

Conventions: keypoints `Y` (..., k, d) with d = 2 or 3; the centroid `v` (..., d); the
heading `h` is an angle in the horizontal plane: in 2-D the x-y plane; in 3-D a rotation
about the vertical axis `vertical_axis` (default 2, z), in the plane of the two other axes
taken in cyclic order (x-y about z, y-z about x, z-x about y), so that it is right-handed.
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


def horizontal_axes(dim: int, vertical_axis: int = 2) -> tuple[int, int]:
    """The axes (first, second) of the plane the heading turns in: (0, 1) in 2-D; in 3-D the
    two axes after `vertical_axis` in cyclic order. The heading is measured from `first`
    towards `second`."""
    if dim == 2:
        return 0, 1
    if dim != 3 or vertical_axis not in (0, 1, 2):
        raise ValueError(f"the heading turns about axis 0, 1 or 2 of 3-D keypoints; got "
                         f"vertical_axis={vertical_axis!r} for {dim}-D keypoints.")
    return (vertical_axis + 1) % 3, (vertical_axis + 2) % 3


def rotation_matrix(h: Float[Array, "*batch"], dim: int,
                    vertical_axis: int = 2) -> Float[Array, "... dim dim"]:
    """Rotation by `h` in the horizontal plane (`horizontal_axes`), the identity on the
    vertical axis in 3-D."""
    first, second = horizontal_axes(dim, vertical_axis)
    cos, sin = jnp.cos(h), jnp.sin(h)
    R = jnp.broadcast_to(jnp.eye(dim, dtype=cos.dtype), (*jnp.shape(h), dim, dim))
    return (R.at[..., first, first].set(cos).at[..., first, second].set(-sin)
            .at[..., second, first].set(sin).at[..., second, second].set(cos))


def rigid_transform(Y: Float[Array, "... k d"], v: Float[Array, "... d"],
                    h: Float[Array, "*batch"], vertical_axis: int = 2) -> Float[Array, "... k d"]:
    """R(h) Y + v: egocentric keypoints placed in the arena."""
    R = rotation_matrix(h, Y.shape[-1], vertical_axis)
    return jnp.einsum("...ij,...kj->...ki", R, Y) + v[..., None, :]


def inverse_rigid_transform(Y: Float[Array, "... k d"], v: Float[Array, "... d"],
                            h: Float[Array, "*batch"],
                            vertical_axis: int = 2) -> Float[Array, "... k d"]:
    """R(-h) (Y - v): arena keypoints in the animal's egocentric frame."""
    R = rotation_matrix(h, Y.shape[-1], vertical_axis)
    return jnp.einsum("...ji,...kj->...ki", R, Y - v[..., None, :])


def align_egocentric(Y: Float[Array, "... k d"], anterior: tuple[int, ...],
                     posterior: tuple[int, ...], vertical_axis: int = 2):
    """Centroid v (mean keypoint), heading h (angle of mean anterior - mean posterior in the
    horizontal plane) and the aligned keypoints R(-h)(Y - v). Returns (Y_aligned, v, h)."""
    first, second = horizontal_axes(Y.shape[-1], vertical_axis)
    v = jnp.mean(Y, axis=-2)
    axis = jnp.mean(Y[..., list(anterior), :], axis=-2) - jnp.mean(Y[..., list(posterior), :],
                                                                   axis=-2)
    h = jnp.arctan2(axis[..., second], axis[..., first])
    return inverse_rigid_transform(Y, v, h, vertical_axis), v, h
