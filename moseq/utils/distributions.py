"""Reference path `moseq.utils.distributions` (implemented in `moseq.ops.hmm` and
`moseq.ops.distributions`)."""

from moseq.ops.distributions import (
    sample_chi2,
    sample_gamma,
    sample_inv_gamma,
    sample_invwishart,
    sample_mn,
    sample_mniw,
    sample_scaled_inv_chi2,
)
from moseq.ops.hmm import sample_hmm_stateseq

__all__ = [
    "sample_chi2",
    "sample_gamma",
    "sample_hmm_stateseq",
    "sample_inv_gamma",
    "sample_invwishart",
    "sample_mn",
    "sample_mniw",
    "sample_scaled_inv_chi2",
]
