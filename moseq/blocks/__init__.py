"""The Gibbs blocks moseq ships; subclass them (or `GibbsBlock`) to build new models."""

from moseq.blocks.allocentric import AllocentricDynamics, SummedLikelihoods
from moseq.blocks.ar import ARDynamics
from moseq.blocks.emissions import LinearGaussianObservations
from moseq.blocks.kalman import KalmanLatents
from moseq.blocks.keypoints import (
    KeypointCentroid,
    KeypointHeading,
    KeypointNoiseScales,
    KeypointObservations,
)
from moseq.blocks.providers import GaussianEmissions, StateLikelihoods
from moseq.blocks.states import HMMStates
from moseq.blocks.transitions import HDPTransitions, StickyDirTransitions

__all__ = [
    "ARDynamics",
    "AllocentricDynamics",
    "GaussianEmissions",
    "HDPTransitions",
    "HMMStates",
    "KalmanLatents",
    "KeypointCentroid",
    "KeypointHeading",
    "KeypointNoiseScales",
    "KeypointObservations",
    "LinearGaussianObservations",
    "StateLikelihoods",
    "StickyDirTransitions",
    "SummedLikelihoods",
]
