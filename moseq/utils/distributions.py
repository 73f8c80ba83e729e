"""Reference path `moseq.utils.distributions` (implemented in `moseq.ops.hmm` and
`moseq.ops.distributions`)."""

from moseq.ops import hmm
from moseq.ops.distributions import (
    sample_chi2,
    sample_gamma,
    sample_inv_gamma,
    sample_invwishart,
    sample_mn,
    sample_mniw,
    sample_scaled_inv_chi2,
)
from moseq.utils._reference import named_seed

sample_hmm_stateseq = named_seed(hmm.sample_hmm_stateseq)

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
