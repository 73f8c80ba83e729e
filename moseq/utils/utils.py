"""Reference path `moseq.utils.utils`: odds and ends, implemented across `moseq.ops`, except
the compatibility-only `mixed_map` (and its settings) and `jax_io`, which live in
`moseq.utils._mapping` and `moseq.utils._interop`."""

from moseq.ops.batching import batch, pad_along_axis, unbatch
from moseq.ops.geometry import wrap_angle
from moseq.ops.linalg import pad_affine, psd_inv, psd_solve, symmetrize
from moseq.ops.pca import fit_pca
from moseq.ops.sequences import concatenate_stateseqs, get_durations, get_frequencies
from moseq.utils._interop import jax_io
from moseq.utils._mapping import (
    get_mixed_map_gpus,
    get_mixed_map_iters,
    mixed_map,
    set_mixed_map_gpus,
    set_mixed_map_iters,
)

__all__ = [
    "batch",
    "concatenate_stateseqs",
    "fit_pca",
    "get_durations",
    "get_frequencies",
    "get_mixed_map_gpus",
    "get_mixed_map_iters",
    "jax_io",
    "mixed_map",
    "pad_affine",
    "pad_along_axis",
    "psd_inv",
    "psd_solve",
    "set_mixed_map_gpus",
    "set_mixed_map_iters",
    "symmetrize",
    "unbatch",
    "wrap_angle",
]
