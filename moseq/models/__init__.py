"""Models built from blocks: each constructor returns a ready `GibbsScheduler`."""

from moseq.models.allo_dynamics import allo_dynamics
from moseq.models.arhmm import arhmm, arhmm_blocks
from moseq.models.fitting import (
    AppliedModel,
    KappaScanRow,
    apply_model,
    ar_only_frozen,
    concat_traces,
    fit_staged,
    global_frozen,
    kappa_scan,
    parameters,
    staged_init,
    syllable_marginals,
    with_kappa,
)
from moseq.models.keypoint_slds import AR_ONLY_FROZEN, keypoint_slds
from moseq.models.slds import slds

__all__ = [
    "AR_ONLY_FROZEN",
    "AppliedModel",
    "KappaScanRow",
    "allo_dynamics",
    "apply_model",
    "ar_only_frozen",
    "arhmm",
    "arhmm_blocks",
    "concat_traces",
    "fit_staged",
    "global_frozen",
    "kappa_scan",
    "keypoint_slds",
    "parameters",
    "slds",
    "staged_init",
    "syllable_marginals",
    "with_kappa",
]
