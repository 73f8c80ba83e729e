"""Models built from blocks: each constructor returns a ready `GibbsScheduler`."""

from moseq.models.arhmm import arhmm, arhmm_blocks
from moseq.models.keypoint_slds import AR_ONLY_FROZEN, keypoint_slds
from moseq.models.slds import slds

__all__ = ["AR_ONLY_FROZEN", "arhmm", "arhmm_blocks", "keypoint_slds", "slds"]
