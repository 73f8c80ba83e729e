"""moseq: blocked Gibbs sampling for behavioural syllables in JAX and Equinox.

The pipeline (`moseq.fit`, `moseq.apply`, `moseq.init_project`; CLI `moseq`) sits on top:
`moseq.io` loads tracking files, `moseq.export` and `moseq.viz` write results and figures.

Layers (imports only point down): `moseq.models` (models as lists of blocks),
`moseq.blocks` (the Gibbs blocks), `moseq.core` (`GibbsBlock`, `GibbsScheduler`, sharding),
`moseq.ops` (pure kernels) and `moseq.utils` (the reference API's module paths).
"""

from moseq import models
from moseq._version import __version__ as __version__
from moseq.blocks import (
    ARDynamics,
    HDPTransitions,
    HMMStates,
    KalmanLatents,
    LinearGaussianObservations,
    StickyDirTransitions,
)
from moseq.core import GibbsBlock, GibbsScheduler, NumericalFailure, PlanError
from moseq.pipeline import apply, fit, init_project

__all__ = [
    "ARDynamics",
    "GibbsBlock",
    "GibbsScheduler",
    "HDPTransitions",
    "HMMStates",
    "KalmanLatents",
    "LinearGaussianObservations",
    "NumericalFailure",
    "PlanError",
    "StickyDirTransitions",
    "apply",
    "fit",
    "init_project",
    "models",
]
