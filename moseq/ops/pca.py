"""Principal component analysis of the valid frames of a batch, for initialising latents."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.decomposition import PCA


def fit_pca(Y, mask, PCA_fitting_num_frames=1000000, verbose=False, **kwargs) -> PCA:
    """Fit scikit-learn's `PCA` (all components, exact SVD) to the frames where `mask` > 0.

    When there are more valid frames than `PCA_fitting_num_frames`, that many are drawn
    without replacement by a NumPy generator seeded with 42, so the fit is reproducible.
    Masked frames are never read, so they may hold anything (NaN included).

    Args:
        Y: `(..., d)` observations (e.g. aligned, flattened keypoints).
        mask: `Y.shape[:-1]`; frames where it is 0 are ignored.
        PCA_fitting_num_frames: the most frames to fit on.
        verbose: print how many frames the fit uses.
        **kwargs: ignored, so that a whole config dict can be splatted in.

    Returns:
        The fitted `sklearn.decomposition.PCA`.
    """
    del kwargs
    Y = np.asarray(Y)
    mask = np.asarray(mask)
    if Y.ndim < 1 or mask.shape != Y.shape[:-1]:
        raise ValueError(
            f"`mask` must have the shape of `Y` without its last axis, {Y.shape[:-1]}; "
            f"got {mask.shape}."
        )
    if (
        isinstance(PCA_fitting_num_frames, bool)
        or not isinstance(PCA_fitting_num_frames, numbers.Integral)
        or PCA_fitting_num_frames < 1
    ):
        raise ValueError(
            f"`PCA_fitting_num_frames` must be a positive integer; got {PCA_fitting_num_frames!r}."
        )

    frames = Y[mask > 0]
    num_features = Y.shape[-1]
    frames_needed = max(num_features, 2)
    if len(frames) < frames_needed or PCA_fitting_num_frames < frames_needed:
        raise ValueError(
            f"PCA of {num_features} features needs at least {frames_needed} valid frames; "
            f"`mask` marks {len(frames)} and `PCA_fitting_num_frames` is "
            f"{PCA_fitting_num_frames}. Mark more frames valid (e.g. a lower confidence "
            "threshold for the mask, or fewer keypoints) or raise `PCA_fitting_num_frames`."
        )
    if len(frames) > PCA_fitting_num_frames:
        chosen = np.random.RandomState(42).choice(
            len(frames), PCA_fitting_num_frames, replace=False
        )
        frames = frames[chosen]
    bad = ~np.all(np.isfinite(frames), axis=-1)
    if bad.any():
        raise ValueError(
            f"`Y` has NaN or infinite values in {int(bad.sum())} of the frames that `mask` "
            "marks valid; interpolate them (`moseq.ops.keypoints.interpolate_missing`) or set "
            "`mask` to 0 there."
        )
    if verbose:
        print(f"Fitting PCA model to {len(frames)} data points")
    return PCA(svd_solver="full").fit(frames)
