"""Pure sampling and bookkeeping kernels: the maths of moseq, one home per formula.

Modules are named for what they compute; this namespace re-exports their public functions.
"""

from moseq.ops.autoregression import get_lags
from moseq.ops.batching import (
    batch,
    find_optimal_segment_length,
    pad_along_axis,
    segment_ownership,
    unbatch,
)
from moseq.ops.distributions import sample_dirichlet
from moseq.ops.geometry import wrap_angle
from moseq.ops.hmm import backward_sample, hmm_filter, sample_hmm_stateseq
from moseq.ops.interop import jax_io
from moseq.ops.linalg import apply_affine, pad_affine, psd_inv, psd_solve, symmetrize
from moseq.ops.mapping import (
    get_mixed_map_gpus,
    get_mixed_map_iters,
    mixed_map,
    set_mixed_map_gpus,
    set_mixed_map_iters,
)
from moseq.ops.pca import fit_pca
from moseq.ops.sequences import concatenate_stateseqs, get_durations, get_frequencies
from moseq.ops.transitions import (
    count_transitions,
    init_hdp_transitions,
    resample_dir_transitions,
    resample_hdp_transitions,
    sample_betas,
    sample_crt_table_counts,
    sample_dir_transitions,
    sample_hdp_transitions,
    sample_pi,
)

__all__ = [
    "apply_affine",
    "backward_sample",
    "batch",
    "concatenate_stateseqs",
    "count_transitions",
    "find_optimal_segment_length",
    "fit_pca",
    "get_durations",
    "get_frequencies",
    "get_lags",
    "get_mixed_map_gpus",
    "get_mixed_map_iters",
    "hmm_filter",
    "init_hdp_transitions",
    "jax_io",
    "mixed_map",
    "pad_affine",
    "pad_along_axis",
    "psd_inv",
    "psd_solve",
    "resample_dir_transitions",
    "resample_hdp_transitions",
    "sample_betas",
    "sample_crt_table_counts",
    "sample_dir_transitions",
    "sample_dirichlet",
    "sample_hdp_transitions",
    "sample_hmm_stateseq",
    "sample_pi",
    "segment_ownership",
    "set_mixed_map_gpus",
    "set_mixed_map_iters",
    "symmetrize",
    "unbatch",
    "wrap_angle",
]
