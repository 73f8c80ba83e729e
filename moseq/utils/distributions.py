"""Reference path `moseq.utils.distributions` (implemented in `moseq.ops.hmm`)."""

from moseq.ops.hmm import sample_hmm_stateseq

__all__ = ["sample_hmm_stateseq"]
