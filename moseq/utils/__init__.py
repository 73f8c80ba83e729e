"""The reference utility API (`jax_moseq.utils`) under the same module paths.

Code written against that API runs after changing its import: `moseq.utils.distributions`,
`moseq.utils.transitions`, `moseq.utils.autoregression`, `moseq.utils.kalman` and
`moseq.utils.utils` hold the same functions with the same parameters. The odds and ends of
`moseq.utils.utils` are also importable from `moseq.utils` itself. Everything here
re-exports `moseq.ops`, where the implementations live, except what exists only for the
reference API: `mixed_map` with its settings, and `jax_io`, implemented here.
"""

from moseq.utils import autoregression, distributions, kalman, transitions, utils
from moseq.utils.utils import *  # noqa: F403
from moseq.utils.utils import __all__ as _odds_and_ends

__all__ = ["autoregression", "distributions", "kalman", "transitions", "utils", *_odds_and_ends]
