"""Models built from blocks: each constructor returns a ready `GibbsScheduler`."""

from moseq.models.arhmm import arhmm

__all__ = ["arhmm"]
