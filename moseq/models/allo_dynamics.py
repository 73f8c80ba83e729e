"""Syllables from location alone: a sticky HDP-HMM whose states set the dynamics of the
heading change and of the egocentric centroid step."""

from __future__ import annotations

from jax.sharding import Mesh

from moseq.blocks import AllocentricDynamics, HDPTransitions, HMMStates, StickyDirTransitions
from moseq.core import GibbsScheduler


def allo_dynamics(*, num_states: int = 100, centroid_dim: int = 2, vertical_axis: int = 2,
                  alpha: float = 5.7, kappa: float = 1e6, gamma: float = 1e3,
                  transitions: str = "hdp", beta: float = 1.0, alpha0_h: float = 10.0,
                  beta0_h: float = 0.1, lambda0_h: float = 1.0, alpha0_v: float = 10.0,
                  beta0_v: float = 0.1, lambda0_v: float = 1.0, mesh: Mesh | None = None,
                  chunk_frames: int | None = None) -> GibbsScheduler:
    """A ready sampler of allocentric dynamics for data `{"h": (N, T), "v": (N, T,
    centroid_dim), "mask": (N, T)}` (heading in radians, centroid; e.g. from
    `moseq.ops.geometry.align_egocentric`).

    Model: z (N, T - 1), where z[:, i] is the state of frame i + 1 and governs the step into
    it, is a sticky HDP (or, with `transitions="sticky_dir"`, Dirichlet) Markov chain; the
    wrapped heading change Δh_t ~ N(delta_h_z, sigmasq_h_z) and the centroid step in the
    animal's frame at t - 1, Δv_t = R(-h_{t-1})(v_t - v_{t-1}) (horizontal part),
    ~ N(delta_v_z, sigmasq_v_z I_2), on steps between two unmasked frames; normal-inverse-
    gamma priors sigmasq ~ InvGamma(alpha0, beta0), delta | sigmasq ~ N(0, sigmasq / lambda0)
    (keypoint-MoSeq's defaults: 10, 0.1, 1 for both). See `AllocentricDynamics`.

    Each sweep resamples the transitions (`betas`, `pi`: their conditional given the
    transition counts of z), then `delta_h, sigmasq_h, delta_v, sigmasq_v` (the
    normal-inverse-gamma posterior of each state's steps), then z (forward filtering,
    backward sampling). `init` draws the parameters from the prior and z by FFBS.
    `alpha`, `kappa`, `gamma`, `beta` as in `moseq.models.arhmm_blocks`; `mesh` and
    `chunk_frames` as in `moseq.models.arhmm`.
    """
    if transitions == "hdp":
        transition_block = HDPTransitions(num_states, alpha=alpha, kappa=kappa, gamma=gamma)
    elif transitions == "sticky_dir":
        transition_block = StickyDirTransitions(num_states, beta=beta, kappa=kappa)
    else:
        raise ValueError(f"`transitions` must be 'hdp' or 'sticky_dir'; got {transitions!r}.")
    dynamics = AllocentricDynamics(
        num_states, centroid_dim=centroid_dim, vertical_axis=vertical_axis, alpha0_h=alpha0_h,
        beta0_h=beta0_h, lambda0_h=lambda0_h, alpha0_v=alpha0_v, beta0_v=beta0_v,
        lambda0_v=lambda0_v)
    return GibbsScheduler([transition_block, dynamics, HMMStates(dynamics)],
                          data_keys=("h", "v", "mask"), mesh=mesh, chunk_frames=chunk_frames)
