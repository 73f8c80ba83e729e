"""Work over recordings that stays local to each device and bounded in memory.

Blocks compute global statistics (regression Gram matrices, counts) as sums over
recordings, and per-recording draws (state sequences, latent trajectories, headings) one
recording at a time. `sum_over_recordings(fn, *arrays)` evaluates `fn` on each device's own
recordings and adds the results with one `psum`, so no device ever holds another's frames;
`map_over_recordings` draws a recording-wise block on each device's own recordings. Within
`recording_chunks(size)` both work `size` recordings at a time (a `lax.scan` / `lax.map` over
chunks), so the working memory of a block is that of one chunk, whatever the number of
recordings. Without a mesh or chunks (one device, or a block called by hand) they are simply
`fn(*arrays)`.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from moseq.core.sharding import BATCH_AXIS

_CURRENT_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "moseq_recording_mesh", default=None
)
_CHUNK_SIZE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "moseq_recordings_per_chunk", default=None
)


@contextlib.contextmanager
def recording_mesh(mesh: Mesh | None):
    """Within this context (the scheduler's tracing), recordings are spread over `mesh`."""
    token = _CURRENT_MESH.set(mesh)
    try:
        yield
    finally:
        _CURRENT_MESH.reset(token)


@contextlib.contextmanager
def recording_chunks(size: int | None):
    """Within this context (tracing a block), sums and maps over recordings take `size`
    recordings of each device at a time (None: all at once)."""
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ValueError(f"recordings per chunk must be a positive int or None; got {size!r}.")
    token = _CHUNK_SIZE.set(size)
    try:
        yield
    finally:
        _CHUNK_SIZE.reset(token)


def _split(arrays, size: int):
    """(full, rest): the leading axis cut into (num_full, size, ...) chunks, and the
    remaining recordings (fewer than `size`, possibly none)."""
    num_full = arrays[0].shape[0] // size
    full = tuple(a[: num_full * size].reshape(num_full, size, *a.shape[1:]) for a in arrays)
    rest = tuple(a[num_full * size :] for a in arrays)
    return num_full, full, rest


def _chunked_sum(fn, *arrays):
    size = _CHUNK_SIZE.get()
    if size is None or arrays[0].shape[0] <= size:
        return fn(*arrays)
    num_full, full, rest = _split(arrays, size)

    def add_chunk(total, chunk):
        return jax.tree.map(jnp.add, total, fn(*chunk)), None

    first = fn(*(a[0] for a in full))
    total, _ = jax.lax.scan(add_chunk, first, tuple(a[1:] for a in full)) if num_full > 1 \
        else (first, None)
    if rest[0].shape[0]:
        total = jax.tree.map(jnp.add, total, fn(*rest))
    return total


def sum_over_recordings(fn, *arrays, shared=None):
    """`fn(*arrays)` for an `fn` that sums over the leading (recording) axis of its inputs,
    computed per device (and per chunk of recordings, within `recording_chunks`) and reduced
    across the mesh when there is one. Chunks change the order of the additions only.

    With `shared` (a pytree of arrays without a recording axis, e.g. parameters) it is
    `fn(*arrays, shared)`: pass what `fn` computes with this way, not by closure, since
    closed-over arrays on a mesh cannot enter a `shard_map`'s computations.
    """
    mesh = _CURRENT_MESH.get()

    def chunked(*local_arrays):
        if shared is None:
            return _chunked_sum(fn, *local_arrays)
        *local_arrays, local_shared = local_arrays
        return _chunked_sum(lambda *a: fn(*a, local_shared), *local_arrays)

    operands = arrays if shared is None else (*arrays, shared)
    if mesh is None:
        return chunked(*operands)

    def local_sums(*local_arrays):
        return jax.lax.psum(chunked(*local_arrays), BATCH_AXIS)

    specs = tuple(PartitionSpec(BATCH_AXIS) for _ in arrays)
    if shared is not None:
        specs = (*specs, jax.tree.map(lambda _: PartitionSpec(), shared))
    return jax.shard_map(local_sums, mesh=mesh, in_specs=specs,
                         out_specs=PartitionSpec())(*operands)


def _chunked_map(fn, per_recording, shared):
    size = _CHUNK_SIZE.get()
    leaves = jax.tree.leaves(per_recording)
    if size is None or leaves[0].shape[0] <= size:
        return fn(per_recording, shared)
    treedef = jax.tree.structure(per_recording)
    num_full, full, rest = _split(leaves, size)
    mapped = jax.lax.map(lambda chunk: fn(jax.tree.unflatten(treedef, chunk), shared), full)
    mapped = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), mapped)
    if not rest[0].shape[0]:
        return mapped
    last = fn(jax.tree.unflatten(treedef, rest), shared)
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), mapped, last)


def map_over_recordings(fn, per_recording, shared):
    """`fn(per_recording, shared)` for an `fn` whose outputs (each with a leading recording
    axis) depend on each recording's own entries of `per_recording` (pytrees of arrays with
    a leading recording axis) and on `shared` only: computed per device, and per chunk of
    recordings within `recording_chunks`, with the same result for every recording."""
    mesh = _CURRENT_MESH.get()
    if mesh is None:
        return _chunked_map(fn, per_recording, shared)

    def local_map(local, shared):
        with recording_mesh(None):
            return _chunked_map(fn, local, shared)

    batch, whole = PartitionSpec(BATCH_AXIS), PartitionSpec()
    # Blocks' scans start from constants and carry per-recording values: not checked for
    # varying manual axes (every output is per device, by construction).
    return jax.shard_map(
        local_map,
        mesh=mesh,
        check_vma=False,
        in_specs=(jax.tree.map(lambda _: batch, per_recording),
                  jax.tree.map(lambda _: whole, shared)),
        out_specs=batch,
    )(per_recording, shared)
