"""Data-parallel layout over a device mesh: pad the recording axis, shard it, unpad.

Per-recording arrays (all data, and state variables that blocks declare `per_recording`)
are split along their leading axis over the mesh axis "batch"; everything else (the global
parameters) is replicated, so the reductions that global updates need (transition counts,
regression statistics) compile to cross-device collectives.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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


# ---- several processes ----------------------------------------------------------------------
#
# Across processes (after `jax.distributed.initialize`), each process holds only its own
# recordings. The global batch is the processes' blocks of rows one after the other, each
# padded to the same number of rows (a multiple of the process's devices), so padding rows
# sit at the end of every block rather than at the end of the batch.


def process_mesh() -> Mesh:
    """A mesh with a "batch" axis over every device of every process, process by process, so
    that each process's devices hold one contiguous block of recordings."""
    devices = sorted(jax.devices(), key=lambda device: (device.process_index, device.id))
    return Mesh(np.array(devices), (BATCH_AXIS,), axis_types=(AxisType.Auto,))


def spans_processes(mesh: Mesh | None) -> bool:
    """Whether `mesh` has devices of other processes (its arrays are then not all readable
    on this host)."""
    return mesh is not None and any(
        device.process_index != jax.process_index() for device in mesh.devices.flat)


class ProcessRows(NamedTuple):
    """Where each process's recordings lie in a batch assembled across processes.

    Attributes:
        counts: `(P,)` the real rows of each process, in process order.
        block: the rows of each process's block (its real rows, then padding).
    """

    counts: np.ndarray
    block: int

    @property
    def offsets(self) -> np.ndarray:
        """`(P,)` the global recording index of each process's first row."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(int)

    @property
    def mine(self) -> slice:
        """This process's rows in a host array of all recordings."""
        start = int(self.offsets[jax.process_index()])
        return slice(start, start + int(self.counts[jax.process_index()]))

    @property
    def real(self) -> np.ndarray:
        """The positions of the real rows in the assembled (padded) batch, in recording
        order."""
        return np.concatenate([process * self.block + np.arange(count)
                               for process, count in enumerate(self.counts)])


def process_rows(num_local: int, mesh: Mesh) -> ProcessRows:
    """The layout of a batch whose rows this process holds `num_local` of (a collective: every
    process calls it)."""
    from jax.experimental import multihost_utils

    counts = np.asarray(multihost_utils.process_allgather(np.int64(num_local))).reshape(-1)
    local_devices = sum(device.process_index == jax.process_index() for device in mesh.devices.flat)
    block = -(-int(counts.max()) // local_devices) * local_devices
    return ProcessRows(counts, block)


def pad_rows(array: np.ndarray, size: int) -> np.ndarray:
    """Host-side `pad_recordings`: the leading axis padded to `size` with the last row."""
    array = np.asarray(array)
    extra = size - array.shape[0]
    return array if extra == 0 else np.concatenate([array, np.repeat(array[-1:], extra, 0)])


def assemble(local: dict, rows: ProcessRows, mesh: Mesh) -> dict:
    """Global arrays split over `mesh`'s "batch" axis from each process's own rows (each
    padded to `rows.block` with its last row)."""
    return {name: jax.make_array_from_process_local_data(
        batch_sharding(mesh), pad_rows(value, rows.block)) for name, value in local.items()}


def gather_rows(tree: dict, per_recording: set[str], rows: ProcessRows) -> dict | None:
    """The real rows of the per-recording entries of a tree assembled across processes, and
    its replicated entries, as host arrays on process 0 (None on the others). A collective:
    every process calls it. One process's block is copied to every process at a time, so no
    other process ever holds more than its own rows and one other block."""
    first = jax.process_index() == 0
    gathered = {}
    for name, value in tree.items():
        if name not in per_recording:
            gathered[name] = np.asarray(value) if first else None
            continue
        mesh = value.sharding.mesh
        blocks = []
        for process, count in enumerate(rows.counts):
            start = process * rows.block
            block = _replicated_slice(value, start, start + int(count), replicated(mesh))
            if first:
                blocks.append(np.asarray(block))
        gathered[name] = np.concatenate(blocks) if first else None
    return gathered if first else None


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _replicated_slice(array, start: int, stop: int, out: NamedSharding):
    return jax.lax.with_sharding_constraint(array[start:stop], out)
