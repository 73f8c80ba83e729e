"""The Gibbs framework: blocks, plan validation, the functional core, the scheduler and its
device layout."""

from moseq.core import gibbs
from moseq.core.block import (
    RECORDING_INDEX,
    Data,
    GibbsBlock,
    Provider,
    State,
    declared_inputs,
    recording_keys,
    recording_span,
)
from moseq.core.gibbs import UndeclaredRead
from moseq.core.plan import PlanError, bind_plan, validate_plan
from moseq.core.scheduler import GibbsScheduler, NumericalFailure, PreparedData, as_key

__all__ = [
    "RECORDING_INDEX",
    "Data",
    "GibbsBlock",
    "GibbsScheduler",
    "NumericalFailure",
    "PlanError",
    "PreparedData",
    "Provider",
    "State",
    "UndeclaredRead",
    "as_key",
    "bind_plan",
    "declared_inputs",
    "gibbs",
    "recording_keys",
    "recording_span",
    "validate_plan",
]
