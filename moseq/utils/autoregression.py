"""Reference path `moseq.utils.autoregression` (implemented in `moseq.ops.autoregression`)."""

from moseq.ops.autoregression import get_lags

__all__ = ["get_lags"]
