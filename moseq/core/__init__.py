"""The Gibbs framework: blocks, plan validation, the scheduler and its device layout."""

from moseq.core.block import (
    RECORDING_INDEX,
    Data,
    GibbsBlock,
    State,
    recording_keys,
    recording_span,
)
from moseq.core.plan import PlanError, validate_plan
from moseq.core.scheduler import GibbsScheduler, NumericalFailure, as_key

__all__ = [
    "RECORDING_INDEX",
    "Data",
    "GibbsBlock",
    "GibbsScheduler",
    "NumericalFailure",
    "PlanError",
    "State",
    "as_key",
    "recording_keys",
    "recording_span",
    "validate_plan",
]
