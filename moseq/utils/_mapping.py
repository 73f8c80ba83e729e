"""`mixed_map`: `jax.vmap` that bounds memory with serial chunks and spreads them over devices.

Compatibility only: it exists for the reference API (`moseq.utils.utils.mixed_map`); nothing
else in moseq uses it.

Two process-wide settings, read when a mapped function is traced, control it:

- iters: the mapped axis is cut into at most this many chunks, run one after another with
  `jax.lax.map`, so the peak memory of the vmapped body shrinks by about this factor;
- gpus: each chunk is split evenly over this many local devices of a 1-D
  `jax.sharding.Mesh` with `jax.shard_map` (not `jax.pmap`, whose outputs forced recompiles
  in the reference, its defect A5).

Because they are read at trace time, a function already compiled by `jax.jit` keeps the
settings it was traced with; change them before the first call.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

_MIXED_MAP_ITERS = 1
_MIXED_MAP_GPUS = 1
_MESH_AXIS = "mixed_map_devices"


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")


def get_mixed_map_iters() -> int:
    """Number of serial chunks `mixed_map` cuts the mapped axis into (default 1)."""
    return _MIXED_MAP_ITERS


def set_mixed_map_iters(iters: int) -> None:
    """Set the number of serial chunks of `mixed_map`; more chunks use less memory, more time."""
    global _MIXED_MAP_ITERS
    _check_count("iters", iters)
    _MIXED_MAP_ITERS = int(iters)


def get_mixed_map_gpus() -> int:
    """Number of local devices `mixed_map` spreads each chunk over (default 1)."""
    return _MIXED_MAP_GPUS


def set_mixed_map_gpus(gpus: int) -> None:
    """Set the number of local devices `mixed_map` uses (at most `len(jax.local_devices())`)."""
    global _MIXED_MAP_GPUS
    _check_count("gpus", gpus)
    available = len(jax.local_devices())
    if gpus > available:
        raise ValueError(
            f"`gpus` is {gpus} but only {available} local device(s) are available "
            f"({jax.local_devices()[0].platform}); use at most {available}."
        )
    _MIXED_MAP_GPUS = int(gpus)


def _axes_per_leaf(axes_prefix, tree) -> list:
    """Broadcast a vmap-style axes prefix (ints and Nones) to one axis per leaf of `tree`."""
    prefix_leaves, prefix_def = jax.tree.flatten(axes_prefix, is_leaf=lambda axis: axis is None)
    subtrees = prefix_def.flatten_up_to(tree)
    return [
        axis
        for axis, subtree in zip(prefix_leaves, subtrees, strict=True)
        for _ in jax.tree.leaves(subtree)
    ]


def _pad_with_last(leaf, padded_size: int):
    """Extend axis 0 to `padded_size` by repeating its last entry (zeros could give NaNs)."""
    extra = padded_size - leaf.shape[0]
    return jnp.pad(leaf, [(0, extra)] + [(0, 0)] * (leaf.ndim - 1), mode="edge")


def mixed_map(fun, in_axes=None, out_axes=None):
    """Like `jax.vmap(fun, in_axes, out_axes)`, run in serial chunks spread over devices.

    The mapped axis of size n is padded (by repeating its last entry) to `chunks * gpus * m`
    with `m = ceil(n / (iters * gpus))` and `chunks = ceil(n / (gpus * m))`, then processed as
    `chunks` serial steps of `jax.lax.map`, each a `jax.vmap` over `m` entries on each of
    `gpus` devices; the padding is dropped from the outputs. The result equals `jax.vmap`'s.

    Args:
        fun: the function to map; positional arguments may be pytrees.
        in_axes: None (every positional argument mapped on axis 0, as in the reference, not
            vmap's "nothing mapped"), an int for all arguments, or a tuple with one entry per
            positional argument: an int, None (not mapped) or a pytree prefix of them.
            Keyword arguments are mapped on axis 0, as in `jax.vmap`.
        out_axes: where the mapped axis goes in the outputs: an int or a pytree prefix of ints
            (None means 0).

    Works inside `jax.jit`. With `gpus > 1` the devices are the first `gpus` local ones.
    """
    out_axes = 0 if out_axes is None else out_axes
    if any(axis is None for axis in jax.tree.leaves(out_axes, is_leaf=lambda axis: axis is None)):
        raise ValueError("`out_axes` must be an int or a pytree of ints; every output is mapped.")

    @functools.wraps(fun)
    def mapped_fun(*args, **kwargs):
        if in_axes is None or isinstance(in_axes, int):
            arg_axes = (0 if in_axes is None else in_axes,) * len(args)
        else:
            arg_axes = tuple(in_axes)
            if len(arg_axes) != len(args):
                raise ValueError(
                    f"`in_axes` has {len(arg_axes)} entries but the function was called with "
                    f"{len(args)} positional arguments; give one entry per argument."
                )
        vmapped = jax.vmap(fun, in_axes=arg_axes, out_axes=out_axes)

        leaves, treedef = jax.tree.flatten((args, kwargs))
        leaf_axes = _axes_per_leaf((arg_axes, 0), (args, kwargs))
        sizes = {
            np.shape(leaf)[axis] if -np.ndim(leaf) <= axis < np.ndim(leaf) else None
            for leaf, axis in zip(leaves, leaf_axes, strict=True)
            if axis is not None
        }
        iters, gpus = _MIXED_MAP_ITERS, _MIXED_MAP_GPUS
        # Plain vmap when there is nothing to split, and to let vmap report bad axes or sizes.
        if iters * gpus == 1 or len(sizes) != 1 or sizes & {0, None}:
            return vmapped(*args, **kwargs)
        (size,) = sizes

        per_device = math.ceil(size / (iters * gpus))
        num_chunks = math.ceil(size / (gpus * per_device))
        padded_size = num_chunks * gpus * per_device
        is_mapped = [axis is not None for axis in leaf_axes]
        chunked = [
            _pad_with_last(jnp.moveaxis(leaf, axis, 0), padded_size).reshape(
                num_chunks, gpus * per_device, *np.delete(np.shape(leaf), axis)
            )
            for leaf, axis in zip(leaves, leaf_axes, strict=True)
            if axis is not None
        ]
        fixed = [
            jnp.asarray(leaf) for leaf, axis in zip(leaves, leaf_axes, strict=True) if axis is None
        ]

        def call_on_leaves(mapped_leaves, fixed_leaves):
            mapped_iter, fixed_iter = iter(mapped_leaves), iter(fixed_leaves)
            flat = [next(mapped_iter) if mapped else next(fixed_iter) for mapped in is_mapped]
            call_args, call_kwargs = jax.tree.unflatten(treedef, flat)
            return fun(*call_args, **call_kwargs)

        run_chunk = jax.vmap(call_on_leaves, in_axes=(0, None))
        if gpus > 1:
            mesh = Mesh(np.array(jax.local_devices()[:gpus]), (_MESH_AXIS,))
            run_chunk = jax.shard_map(
                run_chunk,
                mesh=mesh,
                in_specs=(PartitionSpec(_MESH_AXIS), PartitionSpec()),
                out_specs=PartitionSpec(_MESH_AXIS),
            )
        chunk_outputs = jax.lax.map(lambda chunk: run_chunk(chunk, fixed), chunked)

        def unchunk(output, axis):
            output = output.reshape(padded_size, *output.shape[2:])[:size]
            return jnp.moveaxis(output, 0, axis)

        output_axes = _axes_per_leaf(out_axes, chunk_outputs)
        output_leaves, output_def = jax.tree.flatten(chunk_outputs)
        return jax.tree.unflatten(
            output_def,
            [unchunk(leaf, axis) for leaf, axis in zip(output_leaves, output_axes, strict=True)],
        )

    return mapped_fun
