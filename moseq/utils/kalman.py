"""Reference path `moseq.utils.kalman` (implemented in `moseq.ops.kalman`)."""

from moseq.ops import kalman
from moseq.ops.kalman import ar_to_lds_dynamics, ar_to_lds_emissions
from moseq.utils._reference import named_seed

kalman_sample = named_seed(kalman.kalman_sample)

__all__ = ["ar_to_lds_dynamics", "ar_to_lds_emissions", "kalman_sample"]
