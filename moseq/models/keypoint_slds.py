"""The keypoint SLDS (keypoint-MoSeq's model): an AR-HMM on a latent pose seen through
keypoints, with centroid, heading and confidence-aware noise."""

from __future__ import annotations

from collections.abc import Sequence

from jax.sharding import Mesh

from moseq.blocks import (
    KalmanLatents,
    KeypointCentroid,
    KeypointHeading,
    KeypointNoiseScales,
    KeypointObservations,
)
from moseq.core import GibbsScheduler
from moseq.models.arhmm import arhmm_blocks

AR_ONLY_FROZEN = ("KeypointObservations", "KalmanLatents", "KeypointHeading",
                  "KeypointCentroid", "KeypointNoiseScales")
"""Blocks held fixed in the AR-only stage: only the transitions, AR parameters and z move."""


def keypoint_slds(
    anterior: Sequence[int],
    posterior: Sequence[int],
    *,
    latent_dim: int = 10,
    num_keypoints: int | None = None,
    keypoint_dim: int = 2,
    vertical_axis: int = 2,
    keypoint_names: Sequence[str] | None = None,
    sigmasq_loc: float = 0.5,
    nu_s: float = 5.0,
    slope: float = -0.5,
    intercept: float = 0.25,
    nu_sigma: float = 1e5,
    sigmasq_0: float = 0.1,
    conf_threshold: float = 0.5,
    whiten: bool = True,
    fix_heading: bool = False,
    resample_sigmasq: bool = False,
    parallel: bool = False,
    jitter: float = 1e-3,
    mesh: Mesh | None = None,
    chunk_frames: int | None = None,
    **hyperparameters,
) -> GibbsScheduler:
    """A ready keypoint-SLDS sampler for data `{"Y": (N, T, k, 2 or 3), "conf": (N, T, k)
    (optional), "mask": (N, T)}`.

    `anterior` and `posterior` are keypoint indices whose mean positions define the heading.
    `init(key, data)` aligns the keypoints egocentrically (centroid = mean keypoint, heading
    from posterior to anterior), takes the emission matrix `Cd` from the whitened PCA of the
    aligned poses over confident frames, projects them for the latents `x`, draws the
    AR-HMM parameters from the prior, `z` by FFBS and the noise scales `s` from their
    conditional. NaN keypoints are interpolated and given confidence 0.

    Each sweep resamples, in order: transitions, AR parameters (`Ab`, `Q`), `z`, `Cd`/
    `sigmasq` (held fixed unless `resample_sigmasq`, as in keypoint-MoSeq where σ² stays 1),
    `x` (Kalman FFBS), heading `h`, centroid `v`, noise scales `s`. For the AR-only stage
    run with `frozen=AR_ONLY_FROZEN` (see `moseq.models.fit_staged`).

    `hyperparameters` are the keywords of `moseq.models.arhmm_blocks` (num_states, nlags,
    alpha, kappa, gamma, S_0_scale, K_0_scale, transitions, beta). Defaults, here and there,
    are keypoint-MoSeq's; the pipeline's config reads them from these signatures.
    `num_keypoints` is needed only to simulate without giving `Cd`; `keypoint_names` (the k
    names, e.g. `moseq.io.Batch.keypoint_names`) only name keypoints in error messages and
    warnings. `init` checks the frames of the PCA first (`moseq.ops.checks.check_pca_frames`:
    an error if fewer than latent_dim + 1 frames have every keypoint above `conf_threshold`,
    a `moseq.io.DataWarning` if few do or a keypoint mostly does not). In 3-D the heading
    turns about `vertical_axis` (0, 1, 2: x, y, z); see the 3-D page of the docs for the
    conventions (vertical axis, units of the noise prior, when to fix the heading).
    Pass `chunk_frames` to set how many frames each device works on at once (default:
    sized to its memory; see `GibbsScheduler`).
    """
    transitions, dynamics, states = arhmm_blocks(latent_dim, **hyperparameters)
    observations = KeypointObservations(
        latent_dim=latent_dim, anterior=tuple(int(i) for i in anterior),
        posterior=tuple(int(i) for i in posterior), num_keypoints=num_keypoints,
        keypoint_dim=keypoint_dim, vertical_axis=vertical_axis, whiten=whiten,
        conf_threshold=conf_threshold, nu_sigma=nu_sigma, sigmasq_0=sigmasq_0,
        keypoint_names=None if keypoint_names is None else tuple(map(str, keypoint_names)))
    blocks = [
        transitions, dynamics, states, observations,
        KalmanLatents(dynamics, observations, parallel=parallel, jitter=jitter),
        KeypointHeading(observations, fixed=fix_heading),
        KeypointCentroid(observations, sigmasq_loc=sigmasq_loc),
        KeypointNoiseScales(observations, nu_s=nu_s, slope=slope, intercept=intercept),
    ]
    frozen = () if resample_sigmasq else ("KeypointObservations",)
    return GibbsScheduler(blocks, data_keys=("Y", "conf", "mask"), mesh=mesh, frozen=frozen,
                          chunk_frames=chunk_frames)
