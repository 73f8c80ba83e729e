"""Reference path `moseq.utils.transitions` (implemented in `moseq.ops.transitions`)."""

from moseq.ops.transitions import (
    count_transitions,
    init_hdp_transitions,
    resample_dir_transitions,
    resample_hdp_transitions,
    sample_betas,
    sample_dir_transitions,
    sample_hdp_transitions,
    sample_pi,
)

__all__ = [
    "count_transitions",
    "init_hdp_transitions",
    "resample_dir_transitions",
    "resample_hdp_transitions",
    "sample_betas",
    "sample_dir_transitions",
    "sample_hdp_transitions",
    "sample_pi",
]
