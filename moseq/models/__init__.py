"""Models built from blocks: each constructor returns a ready `GibbsScheduler`."""

from moseq.models.arhmm import arhmm
from moseq.models.slds import slds

__all__ = ["arhmm", "slds"]
