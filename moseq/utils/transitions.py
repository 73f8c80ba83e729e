"""Reference path `moseq.utils.transitions` (implemented in `moseq.ops.transitions`)."""

from moseq.ops import transitions
from moseq.ops.transitions import count_transitions
from moseq.utils._reference import named_seed

sample_betas = named_seed(transitions.sample_betas)
sample_pi = named_seed(transitions.sample_pi)
sample_hdp_transitions = named_seed(transitions.sample_hdp_transitions)
resample_hdp_transitions = named_seed(transitions.resample_hdp_transitions)
init_hdp_transitions = named_seed(transitions.init_hdp_transitions)
sample_dir_transitions = named_seed(transitions.sample_dir_transitions)
resample_dir_transitions = named_seed(transitions.resample_dir_transitions)

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
