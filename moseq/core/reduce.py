"""Sums over recordings that stay local to each device of the scheduler's mesh.

Blocks compute global statistics (regression Gram matrices, counts) as sums over
recordings. `sum_over_recordings(fn, *arrays)` evaluates `fn` on each device's own
recordings and adds the results with one `psum`, so no device ever holds another's frames.
Without a mesh (one device, or a block called by hand) it is simply `fn(*arrays)`.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
from jax.sharding import Mesh, PartitionSpec

from moseq.core.sharding import BATCH_AXIS

_CURRENT_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "moseq_recording_mesh", default=None
)


@contextlib.contextmanager
def recording_mesh(mesh: Mesh | None):
    """Within this context (the scheduler's tracing), recordings are spread over `mesh`."""
    token = _CURRENT_MESH.set(mesh)
    try:
        yield
    finally:
        _CURRENT_MESH.reset(token)


def sum_over_recordings(fn, *arrays):
    """`fn(*arrays)` for an `fn` that sums over the leading (recording) axis of its inputs,
    computed per device and reduced across the mesh when there is one."""
    mesh = _CURRENT_MESH.get()
    if mesh is None:
        return fn(*arrays)

    def local_sums(*local_arrays):
        return jax.lax.psum(fn(*local_arrays), BATCH_AXIS)

    return jax.shard_map(
        local_sums,
        mesh=mesh,
        in_specs=tuple(PartitionSpec(BATCH_AXIS) for _ in arrays),
        out_specs=PartitionSpec(),
    )(*arrays)
