"""The sticky HDP autoregressive HMM on given low-dimensional trajectories."""

from __future__ import annotations

from jax.sharding import Mesh

from moseq.blocks import ARDynamics, HDPTransitions, HMMStates, StickyDirTransitions
from moseq.core import GibbsScheduler


def arhmm_blocks(latent_dim: int, *, num_states: int = 100, nlags: int = 3, alpha: float = 5.7,
                 kappa: float = 1e6, gamma: float = 1e3, S_0_scale: float = 0.01,
                 K_0_scale: float = 10.0, transitions: str = "hdp", beta: float = 1.0):
    """(transitions, dynamics, states): the AR-HMM blocks every MoSeq model starts with.

    The defaults are keypoint-MoSeq's, and those of the blocks' own fields; the pipeline's
    config (`moseq.pipeline.ModelConfig`) reads them from here.
    """
    if transitions == "hdp":
        transition_block = HDPTransitions(num_states, alpha=alpha, kappa=kappa, gamma=gamma)
    elif transitions == "sticky_dir":
        transition_block = StickyDirTransitions(num_states, beta=beta, kappa=kappa)
    else:
        raise ValueError(f"`transitions` must be 'hdp' or 'sticky_dir'; got {transitions!r}.")
    dynamics = ARDynamics.create(num_states, latent_dim, nlags, S_0_scale=S_0_scale,
                                 K_0_scale=K_0_scale)
    return transition_block, dynamics, HMMStates(dynamics)


def arhmm(latent_dim: int, *, mesh: Mesh | None = None, chunk_frames: int | None = None,
          **hyperparameters) -> GibbsScheduler:
    """A ready AR-HMM sampler for data `{"x": (N, T, latent_dim), "mask": (N, T)}`.

    Each sweep resamples the transitions (`betas`, `pi` with `transitions="hdp"`, or `pi`
    alone with `"sticky_dir"` and concentration `beta`), then the AR parameters (`Ab`, `Q`),
    then the state sequences `z` (N, T - nlags), where z[:, i] labels frame i + nlags.
    Hyperparameters (keywords of `arhmm_blocks`) default to the established MoSeq values
    (see its signature).
    Pass `mesh` (a `jax.sharding.Mesh` with a "batch" axis) to spread recordings over devices.
    Pass `chunk_frames` to set how many frames each device works on at once (default:
    sized to its memory; see `GibbsScheduler`).
    """
    return GibbsScheduler(arhmm_blocks(latent_dim, **hyperparameters), data_keys=("x", "mask"),
                          mesh=mesh, chunk_frames=chunk_frames)
