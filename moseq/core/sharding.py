"""Data-parallel layout over a device mesh: pad the recording axis, shard it, unpad.

Per-recording arrays (all data, and state variables that blocks declare `per_recording`)
are split along their leading axis over the mesh axis "batch"; everything else (the global
parameters) is replicated, so the reductions that global updates need (transition counts,
regression statistics) compile to cross-device collectives.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def automatic_mesh(mesh: Mesh | None) -> Mesh | None:
    """Check the mesh and return it with automatic axis types.

    `jax.make_mesh` gives explicit axes, whose shardings enter the array types and would need
    a mesh context around every op of every block; the scheduler places inputs and pins
    outputs itself and lets the compiler propagate the layout in between.
    """
    if mesh is None:
        return None
    if BATCH_AXIS not in mesh.axis_names:
        raise ValueError(
            f"`mesh` must have an axis named {BATCH_AXIS!r} to spread recordings over; got axes "
            f"{mesh.axis_names}. Build it with jax.make_mesh((num_devices,), ('batch',))."
        )
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def padded_size(num_recordings: int, mesh: Mesh | None) -> int:
    """The recording count rounded up to a multiple of the mesh's batch axis."""
    if mesh is None:
        return num_recordings
    devices = mesh.shape[BATCH_AXIS]
    return -(-num_recordings // devices) * devices


def pad_recordings(array, size: int):
    """Pad the leading axis to `size` by repeating the last recording."""
    extra = size - array.shape[0]
    if extra == 0:
        return array
    return jnp.concatenate([array, jnp.repeat(array[-1:], extra, axis=0)], axis=0)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def place(tree: dict, per_recording: set[str], mesh: Mesh | None) -> dict:
    """Put every entry on the mesh: per-recording ones sharded, the rest replicated."""
    if mesh is None:
        return tree
    return {
        name: jax.device_put(
            value, batch_sharding(mesh) if name in per_recording else replicated(mesh)
        )
        for name, value in tree.items()
    }


def constrain(tree: dict, per_recording: set[str], mesh: Mesh | None) -> dict:
    """Inside jit: pin the layout of the outputs so that repeated calls never recompile."""
    if mesh is None:
        return tree
    return {
        name: jax.lax.with_sharding_constraint(
            value, batch_sharding(mesh) if name in per_recording else replicated(mesh)
        )
        for name, value in tree.items()
    }


def unpad(tree: dict, per_recording: set[str], num_recordings: int) -> dict:
    return {
        name: value[:num_recordings] if name in per_recording else value
        for name, value in tree.items()
    }
