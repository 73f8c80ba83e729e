"""Pure sampling and bookkeeping kernels: the maths of moseq, one home per formula.

Modules are named for what they compute; this namespace re-exports their public functions.
"""

from moseq.ops.autoregression import (
    ar_design,
    ar_log_likelihoods,
    ar_log_likelihoods_given_states,
    ar_sufficient_stats,
    get_lags,
)
from moseq.ops.batching import (
    batch,
    find_optimal_segment_length,
    pad_along_axis,
    segment_ownership,
    unbatch,
)
from moseq.ops.distributions import (
    sample_chi2,
    sample_dirichlet,
    sample_gamma,
    sample_inv_gamma,
    sample_invwishart,
    sample_mn,
    sample_mniw,
    sample_scaled_inv_chi2,
)
from moseq.ops.geometry import wrap_angle
from moseq.ops.hmm import (
    backward_sample,
    hmm_filter,
    markov_chain_log_prob,
    sample_hmm_stateseq,
    sample_hmm_stateseqs,
    sample_markov_chain,
)
from moseq.ops.kalman import (
    KalmanPosterior,
    ar_to_lds_dynamics,
    ar_to_lds_emissions,
    kalman_sample,
    kalman_sample_with_noise,
    kalman_smoother,
)
from moseq.ops.linalg import (
    apply_affine,
    cholesky,
    cholesky_solve,
    pad_affine,
    psd_inv,
    psd_solve,
    segment_gram,
    solve_triangular,
    symmetrize,
)
from moseq.ops.pca import fit_pca
from moseq.ops.regression import (
    combine_stats,
    mniw_posterior,
    regression_stats,
    resample_mniw,
    shift_stats,
)
from moseq.ops.sequences import concatenate_stateseqs, get_durations, get_frequencies
from moseq.ops.transitions import (
    count_transitions,
    init_hdp_transitions,
    resample_dir_transitions,
    resample_hdp_transitions,
    sample_betas,
    sample_crt_table_counts,
    sample_dir_transitions,
    sample_hdp_transitions,
    sample_pi,
)

__all__ = [
    "apply_affine",
    "ar_design",
    "ar_log_likelihoods",
    "ar_log_likelihoods_given_states",
    "ar_sufficient_stats",
    "ar_to_lds_dynamics",
    "ar_to_lds_emissions",
    "backward_sample",
    "batch",
    "cholesky",
    "cholesky_solve",
    "combine_stats",
    "concatenate_stateseqs",
    "count_transitions",
    "find_optimal_segment_length",
    "fit_pca",
    "get_durations",
    "get_frequencies",
    "get_lags",
    "hmm_filter",
    "init_hdp_transitions",
    "kalman_sample",
    "kalman_sample_with_noise",
    "kalman_smoother",
    "KalmanPosterior",
    "markov_chain_log_prob",
    "mniw_posterior",
    "pad_affine",
    "pad_along_axis",
    "psd_inv",
    "psd_solve",
    "regression_stats",
    "resample_dir_transitions",
    "resample_hdp_transitions",
    "resample_mniw",
    "sample_betas",
    "sample_chi2",
    "sample_crt_table_counts",
    "sample_dir_transitions",
    "sample_dirichlet",
    "sample_gamma",
    "sample_hdp_transitions",
    "sample_hmm_stateseq",
    "sample_hmm_stateseqs",
    "sample_inv_gamma",
    "sample_invwishart",
    "sample_markov_chain",
    "sample_mn",
    "sample_mniw",
    "sample_pi",
    "sample_scaled_inv_chi2",
    "segment_gram",
    "segment_ownership",
    "shift_stats",
    "solve_triangular",
    "symmetrize",
    "unbatch",
    "wrap_angle",
]
